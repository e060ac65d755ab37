#if canImport(Glibc)
import Glibc
#endif
import FTReplication
import FTStack
import Prometheus

/// What `ftap --version` says, for ftap_build_info and the log.
public struct BuildInfo: Sendable {
    public var version: String
    public var commit: String
    public init(version: String, commit: String) { self.version = version; self.commit = commit }
}

/// Seconds since the Unix epoch (wall clock; node-local, never replicated).
public func wallClockSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Prometheus metrics of one node, on a swift-prometheus registry. Every
/// metric has its `# HELP` text in `NodeMetrics.help` (registering a name
/// without one is a programming error). Stack counters are cumulative in the
/// core; they are carried over to Prometheus counters as deltas when scraped.
public final class NodeMetrics {
    public let registry = PrometheusCollectorRegistry()
    var lastCounters: [String: UInt64] = [:]
    var counters: [String: Counter] = [:]
    var gauges: [String: Gauge] = [:]
    let holdTime: DurationHistogram
    let claimTime: DurationHistogram
    var roleChanges: [String: Counter] = [:]

    static let help: [String: String] = [
        "ftap_build_info": "Build of this ftap binary: version and git commit (always 1)",
        "ftap_start_time_seconds": "When this process started, seconds since the Unix epoch",
        "ftap_role": "1 for this node's current role (solo, primary, backup), else 0",
        "ftap_live": "1 while this node serves the appliance (emits frames)",
        "ftap_healthy": "1 while this node's own health checks pass",
        "ftap_peer_healthy": "1 while the peer reported itself healthy",
        "ftap_arbiter_unavailable_total": "Arbiter calls that got no answer (unreachable or failing store)",
        "ftap_arbiter_claim_duration_seconds": "Time from submitting an epoch claim to the arbiter's answer",
        "ftap_epoch": "The epoch this node is in",
        "ftap_applied_index": "Index of the last log entry applied by this node's replica",
        "ftap_acked_index": "Index of the last log entry the backup acknowledged",
        "ftap_replication_lag_entries": "Log entries shipped and not yet acknowledged",
        "ftap_replication_lag_bytes": "Bytes of log entries shipped and not yet acknowledged",
        "ftap_output_held_frames": "Output frames held until the backup acknowledges their entries",
        "ftap_output_hold_seconds": "Time an output frame was held by the output rule before release",
        "ftap_peer_connected": "1 while the log channel to the peer is up",
        "ftap_tcp_connections": "Open TCP connections of the appliance",
        "ftap_frames_in_total": "Frames the appliance's stack received",
        "ftap_frames_out_total": "Frames written to the TAP",
        "ftap_tap_super_frames_total": "TCP super-frames with TAP offloads: read (more than one MTU), written whole for the kernel's TSO, or split in ftap because the TAP refused TSO",
        "ftap_frames_suppressed_total": "Frames a backup's replica produced and did not emit (shadow)",
        "ftap_frames_dropped_total": "Frames dropped, by reason",
        "ftap_tcp_segments_in_total": "TCP segments received",
        "ftap_tcp_segments_out_total": "TCP segments sent",
        "ftap_tcp_retransmits_total": "TCP retransmissions",
        "ftap_tcp_fast_retransmits_total": "TCP fast retransmissions",
        "ftap_tcp_timeouts_total": "TCP retransmission timeouts",
        "ftap_tcp_accepted_total": "TCP connections accepted",
        "ftap_tcp_refused_total": "TCP connections refused (RST to a SYN)",
        "ftap_tcp_resets_sent_total": "TCP resets sent",
        "ftap_failovers_total": "Takeovers by this node after its primary failed",
        "ftap_switchovers_total": "Planned switchovers this node took part in",
        "ftap_joins_served_total": "State transfers this node served to a joining backup",
        "ftap_divergence_detections_total": "Digest mismatches between primary and backup",
        "ftap_digest_checks_total": "Digest checkpoints compared with the peer",
        "ftap_standby_receiving_client_frames": "1 while this node, as standby, received a copy of client traffic (switch mirror or flood) in the last \(StandbyBuffer.clientFramesRecent / 1_000_000_000) s",
        "ftap_standby_client_frames_total": "Copies of client frames (unicast to the appliance MAC) the standby buffer received",
        "ftap_standby_buffer_bytes": "Bytes held in the standby buffer (frames the log does not cover yet)",
        "ftap_syn_shed_total": "SYNs dropped before logging by the SYN admission under a flood (--tcp-syn-rate)",
        "ftap_syn_admitted_total": "SYNs the SYN admission let into the log, by rule: known source, retransmission of a shed SYN, new source",
        "ftap_standby_applied_total": "Frames from the standby buffer logged and applied at go-live after a takeover",
        "ftap_capture_dropped_total": "Capture records dropped because the writer fell behind",
        "ftap_role_changes_total": "Role and mode changes of this node (the --notify-script events), by event",
        "ftap_last_role_change_timestamp_seconds": "When this node's role or mode last changed, seconds since the Unix epoch",
    ]

    /// The metric's name with its help text (the name is used whole, unit included).
    static func descriptor(_ name: String) -> MetricNameDescriptor {
        guard let h = help[name] else { preconditionFailure("metric \(name) has no help text in NodeMetrics.help") }
        return MetricNameDescriptor(metricName: name, unitName: "", helpText: h)
    }

    public init(build: BuildInfo = BuildInfo(version: "unknown", commit: "unknown")) {
        holdTime = registry.makeDurationHistogram(descriptor: Self.descriptor("ftap_output_hold_seconds"), labels: [], buckets: [
            .microseconds(20), .microseconds(50), .microseconds(100), .microseconds(200), .microseconds(500),
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50),
            .milliseconds(100), .milliseconds(500), .seconds(1),
        ])
        claimTime = registry.makeDurationHistogram(descriptor: Self.descriptor("ftap_arbiter_claim_duration_seconds"), labels: [], buckets: [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        ])
        gauge("ftap_build_info", 1, [("version", build.version), ("commit", build.commit)])
        gauge("ftap_start_time_seconds", wallClockSeconds())
        gauge("ftap_last_role_change_timestamp_seconds", 0)
    }

    func gauge(_ name: String, _ value: Double, _ dims: [(String, String)] = []) {
        let key = name + dims.map { "|\($0.0)=\($0.1)" }.joined()
        let g = gauges[key] ?? registry.makeGauge(descriptor: Self.descriptor(name), labels: dims)
        gauges[key] = g
        g.set(to: value)
    }

    func count(_ name: String, _ total: UInt64, _ dims: [(String, String)] = []) {
        let key = name + dims.map { "|\($0.0)=\($0.1)" }.joined()
        let c = counters[key] ?? registry.makeCounter(descriptor: Self.descriptor(name), labels: dims)
        counters[key] = c
        let last = lastCounters[key] ?? 0
        if total > last { c.increment(by: Int64(total - last)) }
        lastCounters[key] = total
    }

    func recordHold(_ ns: UInt64) { holdTime.recordNanoseconds(Int64(ns)) }

    func recordClaim(milliseconds ms: Double) { claimTime.record(.nanoseconds(Int64(ms * 1e6))) }

    /// A role or mode change (see RoleEvents.swift): counted by event, and its wall-clock time.
    func roleChanged(_ event: String) {
        let c = roleChanges[event] ?? registry.makeCounter(descriptor: Self.descriptor("ftap_role_changes_total"),
                                                           labels: [("event", event)])
        roleChanges[event] = c
        c.increment()
        gauge("ftap_last_role_change_timestamp_seconds", wallClockSeconds())
    }

    /// Brings every metric up to date with the node's state.
    func refresh(_ n: Node) {
        let core = n.core
        let st = core.replica.stack.counters
        for r in Role.allCases { gauge("ftap_role", core.role == r ? 1 : 0, [("role", r.rawValue)]) }
        gauge("ftap_live", core.isLive ? 1 : 0)
        gauge("ftap_healthy", core.healthy ? 1 : 0)
        gauge("ftap_peer_healthy", core.peerHealthy == true ? 1 : 0)
        count("ftap_arbiter_unavailable_total", core.arbiterUnavailable)
        gauge("ftap_epoch", Double(core.epoch))
        gauge("ftap_applied_index", Double(core.replica.appliedIndex))
        gauge("ftap_acked_index", Double(core.ackedIndex))
        gauge("ftap_replication_lag_entries", Double(core.lagEntries))
        gauge("ftap_replication_lag_bytes", Double(core.lagBytes))
        gauge("ftap_output_held_frames", Double(core.heldFrames))
        gauge("ftap_peer_connected", core.isPeerConnected ? 1 : 0)
        gauge("ftap_tcp_connections", Double(core.replica.stack.connectionCount))
        count("ftap_frames_in_total", st.framesIn)
        count("ftap_frames_out_total", n.framesEmitted)
        count("ftap_tap_super_frames_total", n.tap?.superFramesRead ?? 0, [("op", "read")])
        count("ftap_tap_super_frames_total", n.tap?.superFramesWritten ?? 0, [("op", "written")])
        count("ftap_tap_super_frames_total", n.tap?.superFramesSplit ?? 0, [("op", "split")])
        count("ftap_frames_suppressed_total", n.shadowFrames)
        count("ftap_frames_dropped_total", core.ignoredFrames, [("reason", "not_for_appliance")])
        count("ftap_frames_dropped_total", core.discardedWhileNotLive, [("reason", "not_live")])
        count("ftap_frames_dropped_total", st.malformed, [("reason", "malformed")])
        count("ftap_frames_dropped_total", st.badChecksum, [("reason", "bad_checksum")])
        count("ftap_frames_dropped_total", st.ipFragmentsDropped, [("reason", "ip_fragment")])
        count("ftap_frames_dropped_total", st.ipOptionsDropped, [("reason", "ip_options")])
        count("ftap_frames_dropped_total", st.notForUs, [("reason", "not_for_us")])
        count("ftap_frames_dropped_total", n.framesDroppedOnWrite, [("reason", "tap_write_full")])
        count("ftap_tcp_segments_in_total", st.tcpSegmentsIn)
        count("ftap_tcp_segments_out_total", st.tcpSegmentsOut)
        count("ftap_tcp_retransmits_total", st.tcpRetransmits)
        count("ftap_tcp_fast_retransmits_total", st.tcpFastRetransmits)
        count("ftap_tcp_timeouts_total", st.tcpTimeouts)
        count("ftap_tcp_accepted_total", st.tcpConnectionsAccepted)
        count("ftap_tcp_refused_total", st.tcpConnectionsRefused)
        count("ftap_tcp_resets_sent_total", st.tcpResetsSent)
        count("ftap_failovers_total", core.takeovers)
        count("ftap_switchovers_total", core.switchovers)
        count("ftap_joins_served_total", core.joinsServed)
        count("ftap_divergence_detections_total", core.divergences)
        count("ftap_digest_checks_total", core.digestChecks)
        gauge("ftap_standby_receiving_client_frames",
              core.standby.receivingClientFrames(now: monotonicNanos()) ? 1 : 0)
        count("ftap_standby_client_frames_total", core.standby.clientFrames)
        gauge("ftap_standby_buffer_bytes", Double(core.standby.bytes))
        count("ftap_standby_applied_total", core.standbyApplied)
        let sa = n.driver.synAdmission
        count("ftap_syn_shed_total", sa.shed)
        count("ftap_syn_admitted_total", sa.admittedKnown, [("rule", "known")])
        count("ftap_syn_admitted_total", sa.admittedRetransmitted, [("rule", "retransmitted")])
        count("ftap_syn_admitted_total", sa.admittedNew, [("rule", "new")])
        if let r = n.options.recorder { count("ftap_capture_dropped_total", r.dropped) }
    }

    func text() -> [UInt8] { registry.emitToBuffer() }
}
