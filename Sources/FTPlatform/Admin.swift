#if canImport(Glibc)
import Glibc
#endif
import CShims
import CoreMetrics
import FTReplication
import FTStack
import Metrics
import Prometheus

/// Prometheus metrics of one node, registered through swift-metrics with a
/// swift-prometheus backend. Stack counters are cumulative in the core; they
/// are carried over to swift-metrics counters as deltas when scraped.
public final class NodeMetrics {
    public let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    var lastCounters: [String: UInt64] = [:]
    var counters: [String: CoreMetrics.Counter] = [:]
    let holdTime: CoreMetrics.Timer

    public init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets["ftap_output_hold_seconds"] = [
            .microseconds(20), .microseconds(50), .microseconds(100), .microseconds(200), .microseconds(500),
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50),
            .milliseconds(100), .milliseconds(500), .seconds(1),
        ]
        factory = f
        holdTime = CoreMetrics.Timer(label: "ftap_output_hold_seconds", dimensions: [], factory: factory)
    }

    func gauge(_ name: String, _ value: Double, _ dims: [(String, String)] = []) {
        Gauge(label: name, dimensions: dims, factory: factory).record(value)
    }

    func count(_ name: String, _ total: UInt64, _ dims: [(String, String)] = []) {
        let key = name + dims.map { "|\($0.0)=\($0.1)" }.joined()
        let c = counters[key] ?? CoreMetrics.Counter(label: name, dimensions: dims, factory: factory)
        counters[key] = c
        let last = lastCounters[key] ?? 0
        if total > last { c.increment(by: Int64(total - last)) }
        lastCounters[key] = total
    }

    func recordHold(_ ns: UInt64) { holdTime.recordNanoseconds(Int64(ns)) }

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
              core.standby.receivingClientFrames(now: monotonicNanos(), recent: 2_000_000_000) ? 1 : 0)
        count("ftap_standby_client_frames_total", core.standby.clientFrames)
        gauge("ftap_standby_buffer_bytes", Double(core.standby.bytes))
        count("ftap_standby_applied_total", core.standbyApplied)
        if let r = n.options.recorder { count("ftap_capture_dropped_total", r.dropped) }
    }

    func text() -> [UInt8] { registry.emitToBuffer() }
}

/// `--admin ADDR:PORT`: a minimal HTTP/1.0 responder in the node's poll loop
/// for `/metrics` (Prometheus text) and `/status` (JSON). One request per
/// connection; requests over 8 KiB or slower than 2 s are dropped.
final class AdminServer {
    struct Client { var fd: Int32; var buffer: [UInt8]; var since: UInt64; var response: [UInt8]; var sent: Int }
    let fd: Int32
    var clients: [Client] = []

    init(address: SocketAddress) throws {
        fd = try Sockets.listen(on: address)
    }

    var pollFDs: [pollfd] {
        [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            + clients.map { pollfd(fd: $0.fd, events: $0.response.isEmpty ? Int16(POLLIN) : Int16(POLLOUT), revents: 0) }
    }

    /// Handles readiness; `respond` maps "METHOD PATH" and the request's bearer
    /// token (`Authorization: Bearer T`), if any, to (status, content type, body).
    func service(_ fds: ArraySlice<pollfd>, now: UInt64, respond: (String, [UInt8]?) -> (Int, String, [UInt8])) {
        let ready = Array(fds)
        if let l = ready.first, l.revents & Int16(POLLIN) != 0 {
            while clients.count < 16 {
                let c = ftap_accept_nonblock(fd)
                if c < 0 { break }
                clients.append(Client(fd: c, buffer: [], since: now, response: [], sent: 0))
            }
        }
        var keep: [Client] = []
        for (i, var c) in clients.enumerated() {
            let ev = i + 1 < ready.count ? ready[i + 1].revents : 0
            var done = false
            if c.response.isEmpty && ev != 0 {
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = read(c.fd, &buf, buf.count)
                if n <= 0 && !(n < 0 && errno == EAGAIN) { done = true }
                else if n > 0 {
                    c.buffer += buf[0..<n]
                    if let end = findHeaderEnd(c.buffer) {
                        let lines = String(decoding: c.buffer[0..<end], as: UTF8.self).split(separator: "\r\n")
                        let parts = (lines.first ?? "").split(separator: " ")
                        let token = lines.dropFirst().lazy.compactMap(AdminServer.bearerToken).first
                        let (status, type, body): (Int, String, [UInt8])
                        if parts.count >= 2 && (parts[0] == "GET" || parts[0] == "POST") { (status, type, body) = respond(String(parts[0]) + " " + String(parts[1]), token) }
                        else { (status, type, body) = (405, "text/plain", Array("only GET and POST\n".utf8)) }
                        let reason = [200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"][status] ?? "Method Not Allowed"
                        c.response = Array("HTTP/1.0 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
                    } else if c.buffer.count > 8192 { done = true }
                }
            }
            if !c.response.isEmpty {
                let n = c.response.withUnsafeBytes { write(c.fd, $0.baseAddress! + c.sent, $0.count - c.sent) }
                if n > 0 { c.sent += n }
                if c.sent >= c.response.count || (n < 0 && errno != EAGAIN) { done = true }
            }
            if now - c.since > 2_000_000_000 { done = true }
            if done { Glibc.close(c.fd) } else { keep.append(c) }
        }
        clients = keep
    }

    /// The token of an `Authorization: Bearer TOKEN` header line.
    static func bearerToken(_ line: Substring) -> [UInt8]? {
        guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == "authorization" else { return nil }
        let value = line[line.index(after: colon)...].drop(while: { $0 == " " })
        guard value.lowercased().hasPrefix("bearer ") else { return nil }
        return Array(value.dropFirst(7).utf8)
    }

    func findHeaderEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    func close() {
        for c in clients { Glibc.close(c.fd) }
        Glibc.close(fd)
    }
}

/// Compares a presented token with the configured one in time that does not
/// depend on where they differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var d: UInt8 = a.count == b.count ? 0 : 1
    for i in 0..<max(a.count, b.count) { d |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
    return d == 0
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if ch.value < 0x20 { out += "\\u00" + (ch.value < 16 ? "0" : "") + String(ch.value, radix: 16) } else { out.unicodeScalars.append(ch) }
        }
    }
    return out + "\""
}
