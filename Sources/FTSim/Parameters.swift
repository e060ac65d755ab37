import FTReplication
import FTStack

/// Everything a run draws before it starts: the world, the workload and the
/// fault rates (swarm testing: each seed enables a different subset of
/// faults at different rates, as TigerBeetle's VOPR does).
public struct SimParameters: CustomStringConvertible {
    // Replication timing (within what `ftap run` accepts).
    public var heartbeat: Nanos = 50 * nsPerMs
    public var failoverTimeout: Nanos = 500 * nsPerMs
    // Clocks: each node's monotonic clock has its own origin and rate.
    public var clockOffset: [Nanos] = [0, 0]  // per node; a rebooted machine gets a new one
    public var clockPPM: [Int64] = [0, 0]
    /// Scheduling delay between a fd becoming ready and the loop running.
    public var schedDelayMax: Nanos = 0

    // Log channel.
    public var channelLatency: Nanos = 200_000
    public var channelJitter: Nanos = 0
    // Client links (switch <-> client host).
    public var linkLatency: Nanos = 50_000
    public var linkJitter: Nanos = 0
    public var lossRate = 0.0
    public var dupRate = 0.0
    public var reorderRate = 0.0
    // Switch <-> node latency.
    public var nodeLinkLatency: Nanos = 20_000
    public var tapQueueLimit = 1000

    // Arbiter: one-way latency to the store, per claim.
    public var arbiterLatencyMin: Nanos = 100_000
    public var arbiterLatencyMax: Nanos = 2_000_000

    // Workload.
    public var counterClients = 1
    public var echoClients = 1
    public var udpClients = 1
    public var thinkMin: Nanos = 5 * nsPerMs
    public var thinkMax: Nanos = 300 * nsPerMs
    public var echoMaxBytes = 4000
    public var counterMaxRequests = 6

    // Phases.
    public var faultStart: Nanos = 300 * nsPerMs
    public var safetyEnd: Nanos = 4_000 * nsPerMs
    public var livenessBound: Nanos = 120_000 * nsPerMs

    /// The primary serves alone at once (`--start-alone`); the backup joins by state transfer.
    public var startAlone = false

    // Faults (times are absolute simulated time).
    /// Each crash waits until the pair is whole (one node protected, the other
    /// its backup), so that a node able to take over always remains.
    public var crashes: [CrashPlan] = []
    /// A crashed or exited node is started again (fresh, as a backup that joins
    /// by state transfer) after this delay; nil: it stays down.
    public var restartDelay: (min: Nanos, max: Nanos)? = nil
    /// Operator `POST /switchover` to whichever node is primary at that time.
    public var switchovers: [Nanos] = []
    public var pauses: [(node: Int, at: Nanos, duration: Nanos)] = []
    public var partitions: [(dirs: [Int], at: Nanos, duration: Nanos)] = []
    public var spikes: [(dir: Int, at: Nanos, duration: Nanos, extra: Nanos)] = []
    public var channelBreak: Nanos? = nil
    /// A node's uplink goes down (it reports itself unhealthy); with `cable`,
    /// its log link too (SimHealth.swift).
    public var healthFaults: [(node: Int, at: Nanos, duration: Nanos, cable: Bool)] = []
    /// The arbiter answers nothing but `unavailable`.
    public var arbiterOutages: [(at: Nanos, duration: Nanos)] = []
    /// An etcd-like store with an alone lease of this TTL (SimLease.swift); nil: file-like.
    public var arbiterLeaseTTL: Nanos? = nil
    /// The switch mirrors frames for the appliance's MAC sent to one node's
    /// port to the other's (what `scripts/netns.sh mirror` sets up), so the
    /// standby buffer holds what the primary never logged.
    public var mirror = false
    /// The appliance emits TCP super-segments (`StackConfig.tsoMaxBytes`),
    /// cut into segments on the way out as the kernel's TSO would.
    public var tso = false

    // Checker sampling.
    public var digestEvery: UInt64 = 32

    public struct CrashPlan: CustomStringConvertible {
        public enum When: String { case randomTime = "at-a-random-time", afterAck = "after-ack-before-release", afterApply = "backup-after-apply" }
        /// Which role to crash: the protected primary (0) or its backup (1).
        public var node: Int
        public var at: Nanos
        public var when: When
        /// A machine crash takes the switch port down (the switch forgets its MACs)
        /// and closes no connection; a process crash leaves the port up and the
        /// kernel closes the log channel.
        public var machine: Bool
        public var description: String { "crash \(node == 0 ? "primary" : "backup") \(when.rawValue) from \(fmtTime(at)) (\(machine ? "machine" : "process"))" }
    }

    public init() {}

    /// Draws a configuration for one seed.
    public static func draw(_ r: inout SimRandom) -> SimParameters {
        var p = SimParameters()
        if r.chance(0.4) {
            p.failoverTimeout = r.nanos(200, 900) * nsPerMs
            p.heartbeat = r.nanos(10, p.failoverTimeout / nsPerMs / 4) * nsPerMs
        }
        for n in 0..<2 {
            p.clockOffset[n] = r.nanos(1, 4_000_000) * 1_000_000  // up to ~66 minutes of uptime
            p.clockPPM[n] = r.chance(0.5) ? Int64(r.int(-100...100)) : 0
        }
        p.schedDelayMax = r.chance(0.5) ? r.nanos(0, 200_000) : 0
        p.channelLatency = r.logNanos(20_000, 3_000_000)
        p.channelJitter = r.chance(0.5) ? r.nanos(0, p.channelLatency) : 0
        p.linkLatency = r.logNanos(10_000, 2_000_000)
        p.linkJitter = r.chance(0.5) ? r.nanos(0, p.linkLatency) : 0
        p.lossRate = r.chance(0.5) ? r.unit() * 0.08 : 0
        p.dupRate = r.chance(0.4) ? r.unit() * 0.05 : 0
        p.reorderRate = r.chance(0.4) ? r.unit() * 0.08 : 0
        p.nodeLinkLatency = r.nanos(5_000, 50_000)
        if r.chance(0.3) {  // slow arbiter
            p.arbiterLatencyMin = r.logNanos(1_000_000, 200_000_000)
            p.arbiterLatencyMax = p.arbiterLatencyMin + r.logNanos(1_000_000, 1_500_000_000)
        } else {
            p.arbiterLatencyMin = r.nanos(50_000, 500_000)
            p.arbiterLatencyMax = p.arbiterLatencyMin + r.nanos(0, 3_000_000)
        }
        p.counterClients = r.int(0...3)
        p.echoClients = r.int(0...2)
        p.udpClients = r.int(0...2)
        if p.counterClients + p.echoClients + p.udpClients == 0 { p.counterClients = 1 }
        p.thinkMin = r.logNanos(1 * nsPerMs, 50 * nsPerMs)
        p.thinkMax = p.thinkMin + r.logNanos(5 * nsPerMs, 800 * nsPerMs)
        p.echoMaxBytes = r.chance(0.2) ? r.int(2000...24000) : r.int(1...3000)
        p.counterMaxRequests = r.int(1...10)
        p.digestEvery = UInt64(r.int(8...64))

        p.faultStart = r.nanos(150, 600) * nsPerMs
        p.safetyEnd = p.faultStart + r.logNanos(1_000 * nsPerMs, 8_000 * nsPerMs)
        let window = p.safetyEnd - p.faultStart
        func at() -> Nanos { p.faultStart + r.below(window) }
        // Durations either below the failure timeout (must be ridden out) or above it (force a failover).
        // Durations below the failure timeout (must be ridden out), around it
        // (races between detection and resumption), or above it (failover).
        func span() -> Nanos {
            switch r.below(5) {
            case 0, 1: return r.nanos(5 * nsPerMs, p.failoverTimeout * 9 / 10)
            case 2: return r.nanos(p.failoverTimeout * 8 / 10, p.failoverTimeout * 12 / 10)
            default: return p.failoverTimeout + r.logNanos(10 * nsPerMs, 3_000 * nsPerMs)
            }
        }

        p.startAlone = r.chance(0.2)
        if r.chance(0.5) { let lo = r.logNanos(50 * nsPerMs, 2_000 * nsPerMs); p.restartDelay = (lo, lo * 2) }
        if r.chance(0.65) {
            for _ in 0..<(p.restartDelay == nil ? 1 : r.int(1...3)) {
                let when: CrashPlan.When = r.pick([.randomTime, .randomTime, .afterAck, .afterApply])
                let node = when == .afterAck ? 0 : when == .afterApply ? 1 : r.int(0...1)
                p.crashes.append(CrashPlan(node: node, at: at(), when: when, machine: r.chance(0.4)))
            }
            p.crashes.sort { $0.at < $1.at }
        }
        if r.chance(0.2) {
            for _ in 0..<r.int(1...2) { p.switchovers.append(at()) }
        }
        if r.chance(0.4) {
            for _ in 0..<r.int(1...3) { p.pauses.append((r.int(0...1), at(), span())) }
        }
        if r.chance(0.35) {
            for _ in 0..<r.int(1...2) {
                let dirs = r.chance(0.6) ? [0, 1] : [r.int(0...1)]
                p.partitions.append((dirs, at(), span()))
            }
        }
        if r.chance(0.35) {
            for _ in 0..<r.int(1...3) {
                p.spikes.append((r.int(0...1), at(), r.logNanos(20 * nsPerMs, 2_000 * nsPerMs),
                                 r.logNanos(5 * nsPerMs, p.failoverTimeout * 2)))
            }
        }
        if r.chance(0.15) { p.channelBreak = at() }
        if r.chance(0.3) {
            for _ in 0..<r.int(1...2) {
                p.healthFaults.append((r.int(0...1), at(), span() + r.logNanos(10 * nsPerMs, 2_000 * nsPerMs), r.chance(0.5)))
            }
        }
        if r.chance(0.2) {
            for _ in 0..<r.int(1...2) { p.arbiterOutages.append((at(), r.logNanos(10 * nsPerMs, 3_000 * nsPerMs))) }
        }
        p.mirror = r.chance(0.5)
        // Long enough that outages and slow answers (above) never make an
        // alone node stop: the liveness phase needs it to keep serving.
        if r.chance(0.3) { p.arbiterLeaseTTL = r.nanos(10_000, 15_000) * nsPerMs }
        p.tso = r.chance(0.5)
        return p
    }

    public var description: String {
        var s = "timing: heartbeat \(fmtMs(heartbeat)), failover timeout \(fmtMs(failoverTimeout))\n"
        s += "clocks: offsets \(clockOffset.map(fmtTime)), rates \(clockPPM) ppm, scheduling delay up to \(fmtMs(schedDelayMax))\n"
        s += "log channel: latency \(fmtMs(channelLatency)) + jitter \(fmtMs(channelJitter))\n"
        s += "client links: latency \(fmtMs(linkLatency)) + jitter \(fmtMs(linkJitter)), loss \(pct(lossRate)), duplication \(pct(dupRate)), reordering \(pct(reorderRate))\n"
        s += "arbiter: one-way latency \(fmtMs(arbiterLatencyMin))..\(fmtMs(arbiterLatencyMax))"
            + (arbiterLeaseTTL.map { ", alone lease \(fmtMs($0)) (etcd-like)" } ?? "") + "\n"
        s += "clients: \(counterClients) counter, \(echoClients) echo (up to \(echoMaxBytes) bytes), \(udpClients) udp-counter; think \(fmtMs(thinkMin))..\(fmtMs(thinkMax))\n"
        s += "phases: faults from \(fmtTime(faultStart)) to \(fmtTime(safetyEnd)), then liveness within \(fmtTime(livenessBound))\n"
        if startAlone { s += "primary starts alone; the backup joins by state transfer\n" }
        if let r = restartDelay { s += "crashed or exited nodes restart as fresh backups after \(fmtMs(r.min))..\(fmtMs(r.max))\n" }
        for c in crashes { s += "fault: \(c)\n" }
        for t in switchovers { s += "operator: switchover requested at \(fmtTime(t))\n" }
        for x in pauses { s += "fault: pause n\(x.node) at \(fmtTime(x.at)) for \(fmtMs(x.duration))\n" }
        for x in partitions { s += "fault: partition \(x.dirs.count == 2 ? "both ways" : x.dirs[0] == 0 ? "n0->n1" : "n1->n0") at \(fmtTime(x.at)) for \(fmtMs(x.duration))\n" }
        for x in spikes { s += "fault: latency spike \(x.dir == 0 ? "n0->n1" : "n1->n0") +\(fmtMs(x.extra)) at \(fmtTime(x.at)) for \(fmtMs(x.duration))\n" }
        if let b = channelBreak { s += "fault: log channel reset at \(fmtTime(b))\n" }
        for x in healthFaults { s += "fault: \(x.cable ? "cable pull" : "uplink down") on n\(x.node) at \(fmtTime(x.at)) for \(fmtMs(x.duration))\n" }
        for x in arbiterOutages { s += "fault: arbiter unavailable at \(fmtTime(x.at)) for \(fmtMs(x.duration))\n" }
        if mirror { s += "switch: mirrors the appliance's frames to the other node's port\n" }
        if tso { s += "appliance: TCP segmentation offload (super-segments cut on the way out)\n" }
        s += "checker: full-state digests sampled every \(digestEvery) entries"
        return s
    }
}

func pct(_ x: Double) -> String {
    let v = Int(x * 1000)
    return "\(v / 10).\(v % 10)%"
}
