/// # The deterministic simulator (`ftap sim`)
///
/// One process, one thread, simulated time (ns) and one seed. A run builds
/// the real thing twice (two `ReplicationCore`s with their `Stack`s, made by
/// `Appliance.make` exactly as `ftap run` does) and runs each through the
/// daemon's own loop (`FTReplication.NodeDriver`), answering its system calls
/// (`SimIO`, `SimNodeIO.swift`) from a simulated world: a TCP-like log channel
/// per connection (ordered, latency and jitter, partitions, latency spikes,
/// resets, FIN or RST on process death), an epoch arbiter store with latency
/// and outages, health faults (`SimHealth.swift`), a learning switch (GARP and
/// every frame teach it; a machine crash takes the port down), and client
/// machines with their own MAC/IP running a client-side TCP (`Clients.swift`)
/// and UDP, doing counter, echo and udp-counter sessions.
///
/// `SimParameters.draw` picks the world, the workload and the faults from the
/// seed (swarm testing). A run has a safety phase (faults) and a liveness
/// phase (faults stop; every client finishes and runs one more session, an
/// auditor checks the counter, the pair must re-form and converge) bounded in
/// simulated time. The invariants (`Checker.swift`) are checked as events
/// happen; the first violation ends the run. Every event is mixed into a
/// trace hash, so a seed's run is reproducible and comparable.
///
/// Nothing here reads a clock or a random source other than `SimRandom`,
/// and no decision depends on Dictionary iteration order.
import FTReplication
import FTServices
import FTStack
import FTWire

/// What to run.
public struct SimOptions {
    public var seed: UInt64
    public var sabotage: Set<Sabotage> = []
    /// Keep the event trace as text (the hash is always computed).
    public var trace = false
    public init(seed: UInt64, sabotage: Set<Sabotage> = [], trace: Bool = false) {
        self.seed = seed; self.sabotage = sabotage; self.trace = trace
    }
}

/// A broken invariant: which one, what was seen, when (simulated time).
public struct Violation: CustomStringConvertible, Equatable {
    public var invariant: String
    public var message: String
    public var time: Nanos
    public var description: String { "\(invariant) at t=\(fmtTime(time))s: \(message)" }
}

/// The outcome of one seed.
public struct SimResult {
    public var seed: UInt64
    public var violation: Violation?
    public var simulatedTime: Nanos
    public var traceHash: UInt64
    /// Faults injected, by kind (see `SimResult.faultKinds` for the order).
    public var faults: [String: Int]
    /// Takeovers: a node went live in a new epoch because its peer failed.
    public var failovers: Int
    /// Planned switchovers completed.
    public var switchovers: Int
    public var trace: [String]
    public var parameters: String
    public var stats: [String: Int]
    public var passed: Bool { violation == nil }

    public static let faultKinds = ["crash-primary", "crash-backup", "crash-after-ack", "crash-backup-after-apply",
                                    "crash-joining-backup", "crash-skipped", "restart", "switchover-request", "pause", "partition",
                                    "latency-spike", "channel-reset", "slow-arbiter-claim",
                                    "frame-loss", "frame-dup", "frame-reorder"]
}

enum Ev {
    case nodeWake(Int, UInt64)
    case nodeResume(Int, Int)
    case arbiterArrive(node: Int, epoch: UInt64, token: UInt64)
    case arbiterReply(node: Int, epoch: UInt64, answer: ArbiterAnswer, token: UInt64)
    case checkArrive(node: Int, epoch: UInt64, token: UInt64)
    case checkReply(node: Int, answer: EpochCheck, token: UInt64)
    case leaseRelease(node: Int, uid: Int, epoch: UInt64)
    case health(node: Int, healthy: Bool, cable: Bool)
    case chanPump(conn: Int, dir: Int, token: UInt64)
    case connectArrive(conn: Int)
    case connectResult(conn: Int, ok: Bool)
    case chanReset(conn: Int, node: Int)
    case atSwitch(port: Int, frame: [UInt8])
    case atNode(node: Int, frame: [UInt8])
    case atHost(host: Int, frame: [UInt8])
    case hostWake(host: Int, token: UInt64)
    case crashCheck(Int)
    case restart(Int)
    case switchover
    case pause(node: Int, duration: Nanos)
    case faultMark(String)
    case channelBreak
    case livenessStart
    case deadline
}

enum Phase { case safety, liveness, auditing, settling, finished }

/// One deterministic run of the replicated pair, its network and clients.
public final class Simulation {
    public let options: SimOptions
    public let params: SimParameters
    var rng: SimRandom       // runtime choices (latencies, losses, client data)
    var queue = EventQueue<Ev>()
    public private(set) var now: Nanos = 0
    var phase = Phase.safety
    var hash = TraceHash()
    var traceLines: [String] = []
    var violation: Violation?
    var faults: [String: Int] = [:]
    var stats: [String: Int] = [:]
    var tokens: UInt64 = 0
    var incarnations = 0

    let applianceMAC = MACAddress("02:00:00:00:00:10")!
    let applianceIP = IPv4Interface("10.0.0.100/24")!
    var isnKey: (UInt64, UInt64) = (0, 0)
    var channelKeys = ChannelKeys(secret: [])
    var nodes: [SimNode] = []
    var retired: [SimNode] = []
    var clockOffset: [Nanos]
    var conns: [ChanConn] = []
    var macTable: [UInt64: Int] = [:]
    var linkLast: [Int: Nanos] = [:]  // FIFO per link direction (key: port * 2 + dir)
    var hosts: [Host] = []
    var auditor: Host!
    let checker = Checker()
    let counter = CounterChecker()
    var arbiter: [UInt64: Int] = [:]
    /// The alone lease of an etcd-like store (SimLease.swift).
    var aloneLease: SimLease? = nil
    /// A node's switch port (its uplink) is down (SimHealth.swift).
    var portDown = [false, false]

    /// A run whose world and faults are drawn from the seed (`params` nil),
    /// or given (a scenario written by a test; the seed still drives every
    /// runtime choice).
    public init(options: SimOptions, params given: SimParameters? = nil) {
        self.options = options
        var root = SimRandom(seed: options.seed)
        var pr = root.fork()
        let drawn = SimParameters.draw(&pr)
        params = given ?? drawn
        rng = root.fork()
        clockOffset = params.clockOffset
    }

    // MARK: - Tracing

    var tracing: Bool { options.trace }

    func trace(_ who: String, _ msg: @autoclosure () -> String) {
        guard tracing else { return }
        traceLines.append("\(fmtTime(now)) \(who) \(msg())")
    }

    func fail(_ invariant: String, _ message: String) {
        guard violation == nil else { return }
        violation = Violation(invariant: invariant, message: message, time: now)
        trace("CHECK", "VIOLATION \(invariant): \(message)")
    }

    func count(_ fault: String, _ n: Int = 1) { faults[fault, default: 0] += n }
    func stat(_ k: String, _ n: Int = 1) { stats[k, default: 0] += n }
    func nextToken() -> UInt64 { tokens += 1; return tokens }

    func schedule(_ t: Nanos, _ e: Ev) { queue.push(max(t, now), e) }

    // MARK: - Setup

    /// The appliance's MTU (StackConfig's default): clients check every
    /// segment against it.
    var stackMTU: Int { StackConfig(mac: applianceMAC, interface: applianceIP).mtu }

    func makeNode(_ i: Int, role: Role) -> SimNode {
        var sc = StackConfig(mac: applianceMAC, interface: applianceIP)
        sc.isnKey = isnKey
        if params.tso { sc.tsoMaxBytes = StackConfig.tsoLimit }
        if options.sabotage.contains(.isnOutsideLog) { sc.sabotageISNSalt = UInt64(incarnations + 1) }
        let stack = try! Appliance.make(config: sc, services: [
            ServiceSpec(kind: "counter", port: 7000), ServiceSpec(kind: "echo", port: 7),
            ServiceSpec(kind: "udp-counter", port: 7001)])
        var rc = ReplicationConfig(role: role, nodeName: "n\(i)")
        rc.heartbeat = params.heartbeat
        rc.failoverTimeout = params.failoverTimeout
        rc.startAlone = params.startAlone
        rc.ownershipBound = params.arbiterLeaseTTL.map(Simulation.ownershipBound)
        rc.sabotage = options.sabotage.subtracting([.isnOutsideLog])
        incarnations += 1
        let n = SimNode(id: i, uid: incarnations, core: ReplicationCore(config: rc, stack: stack))
        n.driver = NodeDriver(core: n.core, keys: channelKeys)
        n.nonceRandom = SimRandom(seed: options.seed ^ 0x6e6f_6e63_6573_0000 &+ UInt64(n.uid))
        n.io = SimIO(sim: self, node: n)
        return n
    }

    func setup() {
        let p = params
        var isnR = rng.fork()
        isnKey = (isnR.next(), isnR.next())
        // The pair's shared secret (the channel's keys); the ISN key stays the seed's own.
        var secret: [UInt8] = []
        secret.appendBE64(isnKey.0); secret.appendBE64(isnKey.1)
        channelKeys = ChannelKeys(secret: secret)
        nodes = [makeNode(0, role: .primary), makeNode(1, role: .backup)]
        var hid = 0
        func addHost(_ kind: Host.Kind) {
            hosts.append(Host(sim: self, id: hid, kind: kind, rng: rng.fork())); hid += 1
        }
        for _ in 0..<p.counterClients { addHost(.counter) }
        for _ in 0..<p.echoClients { addHost(.echo) }
        for _ in 0..<p.udpClients { addHost(.udp) }
        auditor = Host(sim: self, id: hid, kind: .audit, rng: rng.fork())

        if tracing {
            traceLines.append("seed \(options.seed)\(options.sabotage.isEmpty ? "" : " sabotage \(options.sabotage.map(\.rawValue).sorted().joined(separator: ","))")")
            traceLines.append(contentsOf: p.description.split(separator: "\n").map { "  " + $0 })
        }
        hash.mix(options.seed)
        hash.mix(p.description)

        for n in nodes { startNode(n) }
        for h in hosts + [auditor!] { h.boot(at: rng.nanos(1 * nsPerMs, 60 * nsPerMs)) }

        for (i, c) in p.crashes.enumerated() { schedule(c.at, .crashCheck(i)) }
        for t in p.switchovers { schedule(t, .switchover) }
        for x in p.pauses {
            schedule(x.at, .pause(node: x.node, duration: min(x.duration, p.safetyEnd > x.at ? p.safetyEnd - x.at : 0)))
        }
        for x in p.partitions {
            let end = min(x.at + x.duration, p.safetyEnd)
            partitions.append((x.dirs, x.at, end))
            schedule(x.at, .faultMark("partition \(dirName(x.dirs)) until \(fmtTime(end))"))
            count("partition")
        }
        for x in p.spikes {
            let end = min(x.at + x.duration, p.safetyEnd)
            spikes.append((x.dir, x.at, end, x.extra))
            schedule(x.at, .faultMark("latency spike \(dirName([x.dir])) +\(fmtMs(x.extra)) until \(fmtTime(end))"))
            count("latency-spike")
        }
        if let b = p.channelBreak { schedule(b, .channelBreak) }
        for x in p.healthFaults {
            let end = min(x.at + x.duration, p.safetyEnd)
            guard end > x.at else { continue }
            schedule(x.at, .health(node: x.node, healthy: false, cable: x.cable))
            schedule(end, .health(node: x.node, healthy: true, cable: x.cable))
            if x.cable {
                partitions.append(([0, 1], x.at, end))
                schedule(x.at, .faultMark("cable pull n\(x.node): log channel cut until \(fmtTime(end))"))
            }
        }
        for x in p.arbiterOutages {
            schedule(x.at, .faultMark("arbiter unavailable until \(fmtTime(x.at + x.duration))"))
            count("arbiter-outage")
        }
        schedule(p.safetyEnd, .livenessStart)
        schedule(p.safetyEnd + p.livenessBound, .deadline)
    }

    func dirName(_ dirs: [Int]) -> String {
        dirs.count == 2 ? "both ways" : dirs[0] == 0 ? "n0->n1" : "n1->n0"
    }

    // MARK: - Main loop

    public func run() -> SimResult {
        setup()
        while violation == nil, phase != .finished, let (t, ev) = queue.pop() {
            now = t
            handle(ev)
            if phase == .settling { settle() }
        }
        if violation == nil && phase != .finished {
            fail("liveness", "the simulation ran out of events in phase \(phase)")
        }
        var failovers = 0, switchovers = 0
        for n in nodes + retired { failovers += Int(n.core.takeovers); switchovers += Int(n.core.switchovers) }
        hash.mix(now)
        if let v = violation { hash.mix(v.invariant) }
        stat("digests-compared", checker.digestsCompared)
        stat("entries-compared", checker.entriesCompared)
        stat("incr-completed", counter.incrCompleted)
        for n in nodes + retired {
            stat("standby-applied", Int(n.core.standbyApplied))
            stat("standby-skipped-old", Int(n.core.standbySkippedOld))
        }
        if tracing {
            traceLines.append(violation.map { "\(fmtTime(now)) RESULT FAIL \($0)" } ?? "\(fmtTime(now)) RESULT PASS")
        }
        return SimResult(seed: options.seed, violation: violation, simulatedTime: now, traceHash: hash.value,
                         faults: faults, failovers: failovers, switchovers: switchovers / 2, trace: traceLines,
                         parameters: params.description, stats: stats)
    }

    func handle(_ ev: Ev) {
        hash.mix(now)
        switch ev {
        case .nodeWake(let i, let token):
            let n = nodes[i]
            guard token == n.wakeToken else { return }
            n.wakeAt = nil
            guard n.alive, !n.paused else { return }
            hash.mix(UInt64(1 + i))
            wakeNode(n)
        case .nodeResume(let i, let uid):
            let n = nodes[i]
            guard n.uid == uid, n.alive, n.paused else { return }
            n.paused = false
            trace(n.name, "resumes (SIGCONT)")
            hash.mix(UInt64(10 + i))
            // What arrived while it was stopped is handled now.
            if let r = n.claimReply { n.claimReply = nil; continueClaim(n, r) }
            if n.alive, let r = n.checkReply { n.checkReply = nil; continueCheck(n, r) }
            if n.alive, let h = n.healthPending { n.healthPending = nil; setHealth(n, h) }
            if n.alive { scheduleWake(n, now) }
        case .arbiterArrive(let i, let e, let token):
            let answer: ArbiterAnswer
            if arbiterDown(now) {
                answer = .unavailable("store unreachable")
                count("arbiter-unavailable")
            } else if arbiter[e] == nil, let l = leaseBlocking(node: i) {
                answer = .unavailable("n\(l.node) holds the alone lease of epoch \(l.epoch)")
                count("lease-wait")
            } else if arbiter[e] == nil {
                arbiter[e] = i
                answer = .won("epoch-\(e) created")
                checker.claimGranted(self, node: nodes[i], epoch: e)
                leaseGranted(node: i, epoch: e)
            } else {
                answer = .lost("epoch-\(e) already claimed by n\(arbiter[e]!)")
            }
            trace("arbiter", "claim of epoch \(e) by n\(i): \(answer)")
            hash.mix(e); hash.mix(answer.hashTag)
            schedule(now + arbiterLatency(), .arbiterReply(node: i, epoch: e, answer: answer, token: token))
        case .arbiterReply(let i, let e, let answer, let token):
            let n = nodes[i]
            guard n.alive, let b = n.blockedClaim, b.token == token, b.epoch == e else { return }
            hash.mix(UInt64(20 + i))
            if n.paused { n.claimReply = answer; return }
            continueClaim(n, answer)
        case .checkArrive(let i, let e, let token):
            let answer: EpochCheck
            let top = arbiter.keys.max() ?? 0
            if arbiterDown(now) { answer = .unavailable("store unreachable") }
            else if top > e { answer = .superseded(epoch: top, detail: "epoch-\(top) owned by n\(arbiter[top]!)") }
            else { answer = leaseCheck(node: i, epoch: e) }
            schedule(now + arbiterLatency(), .checkReply(node: i, answer: answer, token: token))
        case .leaseRelease(let i, let uid, let e):
            leaseRelease(node: i, uid: uid, epoch: e)
        case .checkReply(let i, let answer, let token):
            let n = nodes[i]
            guard n.alive, n.checkToken == token else { return }
            if n.paused { n.checkReply = answer; return }
            continueCheck(n, answer)
        case .health(let i, let h, let cable):
            healthFault(i, healthy: h, cable: cable)
        case .chanPump(let c, let d, let token):
            pump(conns[c], d, token)
        case .connectArrive(let c):
            connectArrive(conns[c])
        case .connectResult(let c, let ok):
            connectResult(conns[c], ok: ok)
        case .chanReset(let c, let i):
            let conn = conns[c]
            guard conn.open[i], nodes[i].alive, nodes[i].uid == conn.uid[i] else { return }
            conn.rx[i].append(.reset)
            if nodes[i].peerConn == conn.id || authenticating(nodes[i], conn.id) { poke(nodes[i]) }
        case .atSwitch(let port, let f):
            hash.mix(bytes: f)
            switchFrame(from: port, f)
        case .atNode(let i, let f):
            let n = nodes[i]
            guard n.alive else { return }
            if n.tapQueue.count >= params.tapQueueLimit { stat("tap-queue-drops"); return }
            n.tapQueue.append(f)
            if n.tapPolled { poke(n) }
        case .atHost(let h, let f):
            hash.mix(bytes: f)
            host(h).receive(f)
        case .hostWake(let h, let token):
            let x = host(h)
            guard token == x.wakeToken else { return }
            x.wakeAt = nil
            x.timers()
            x.reschedule()
        case .crashCheck(let i):
            crashCheck(i)
        case .restart(let i):
            restartNode(i)
        case .switchover:
            requestSwitchover()
        case .pause(let i, let d):
            let n = nodes[i]
            guard n.alive, !n.paused, d > 0 else { return }
            n.paused = true
            count("pause")
            trace(n.name, "paused (SIGSTOP) for \(fmtMs(d)) [\(n.statusText)]")
            schedule(now + d, .nodeResume(i, n.uid))
        case .faultMark(let s):
            trace("fault", s)
            hash.mix(s)
        case .channelBreak:
            breakChannel()
        case .livenessStart:
            trace("phase", "liveness: faults stop; every client finishes and runs one more session")
            phase = .liveness
            for h in hosts { h.app.stopping = true; h.kick() }
        case .deadline:
            if phase != .finished {
                var stuck: [String] = []
                for h in hosts + [auditor!] where !h.app.done { stuck.append("\(h.name): \(h.app.status)") }
                let what = phase == .settling ? "the pair did not re-form and converge" : "clients not served: \(stuck.joined(separator: "; "))"
                fail("liveness", "\(what) within \(fmtMs(params.livenessBound)) after faults stopped [\(nodes.map { "\($0.name) \($0.statusText)" }.joined(separator: ", "))]")
            }
        }
    }

    func host(_ i: Int) -> Host { i < hosts.count ? hosts[i] : auditor }

    /// Called by the apps: every client finished.
    func clientsMaybeDone() {
        guard phase == .liveness, hosts.allSatisfy({ $0.app.done }) else { return }
        phase = .auditing
        trace("phase", "all clients done; auditing the counter (\(counter.incrCompleted) increments)")
        auditor.app.stopping = true
        auditor.kick()
    }

    func auditDone() {
        guard phase == .auditing else { return }
        counter.checkGapFree(self)
        phase = .settling
        trace("phase", "audit passed; waiting for the pair to converge")
        settle()
    }

    /// Settling: when both nodes run, the pair must re-form and reach the
    /// same index; then the final digests are compared.
    func settle() {
        guard phase == .settling, violation == nil else { return }
        let a = nodes[0], b = nodes[1]
        if !a.alive || !b.alive {
            // A node that stays down (no restarts in this run) cannot re-form the pair.
            if pendingRestarts == 0 { phase = .finished }
            return
        }
        let (p, f) = a.core.role == .primary ? (a, b) : (b, a)
        guard p.core.mode == .protected, f.core.mode == .backup,
              p.core.replica.appliedIndex == f.core.replica.appliedIndex, f.peerConn != nil else { return }
        checker.digestsCompared += 1
        if p.core.replica.digest != f.core.replica.digest {
            fail("replica-digest", "final state digests differ at index \(p.core.replica.appliedIndex)")
        }
        trace("phase", "pair converged at index \(p.core.replica.appliedIndex); digests equal")
        phase = .finished
    }

    // MARK: - Arbiter and channel conditions

    func arbiterLatency() -> Nanos { rng.nanos(params.arbiterLatencyMin, params.arbiterLatencyMax) }

    var partitions: [(dirs: [Int], from: Nanos, to: Nanos)] = []
    var spikes: [(dir: Int, from: Nanos, to: Nanos, extra: Nanos)] = []
    var pendingRestarts = 0

    func partitionedUntil(_ d: Int, _ t: Nanos) -> Nanos? {
        var until: Nanos? = nil
        var probe = t
        var changed = true
        while changed {
            changed = false
            for p in partitions where p.dirs.contains(d) && p.from <= probe && probe < p.to {
                if until == nil || p.to > until! { until = p.to; probe = p.to; changed = true }
            }
        }
        return until
    }

    func channelLatency(_ d: Int) -> Nanos {
        var l = params.channelLatency + (params.channelJitter > 0 ? rng.nanos(0, params.channelJitter) : 0)
        for s in spikes where s.dir == d && s.from <= now && now < s.to { l += s.extra }
        return l
    }
}

/// One node process: its `NodeDriver` and `ReplicationCore`, plus what the
/// simulated kernel holds for it (its connections, accept backlog, TAP
/// queue). A restarted node is a new `SimNode` (new `uid`) on the same port.
final class SimNode {
    let id: Int
    let uid: Int
    let name: String
    let core: ReplicationCore
    var alive = true
    var machineDown = false
    var paused = false
    var exitCode: Int32? = nil
    /// The node loop, exactly as the daemon runs it, and its simulated system calls.
    var driver: NodeDriver!
    var io: SimIO!
    // What the simulated kernel holds for this process.
    var peerConn: Int? = nil
    var probeConn: Int? = nil
    var backlog: [Int] = []
    var tapQueue = Queue<[UInt8]>()
    var tapPolled = false
    var wakeAt: Nanos? = nil
    var wakeToken: UInt64 = 0
    var sameTimeWakes = 0
    var lastWakeTime: Nanos = 0
    var pendingSwitchover = false
    /// The arbiter claim the loop is blocked in.
    var blockedClaim: (epoch: UInt64, token: UInt64)? = nil
    var claimReply: ArbiterAnswer? = nil
    var checkToken: UInt64 = 0
    var checkReply: EpochCheck? = nil
    /// A health change that reached the process while it was stopped.
    var healthPending: (healthy: Bool, reason: String)? = nil
    // Fault triggers.
    var crashArmed: SimParameters.CrashPlan? = nil
    var emitCountdown: Int? = nil
    var crashMachine = false
    // What this process read from the channel (decoded by the checker).
    var decoders: [Int: ChannelDecoder] = [:]
    /// Handshake nonces (see `SimIO.randomBytes`).
    var nonceRandom = SimRandom(seed: 0)

    init(id: Int, uid: Int, core: ReplicationCore) {
        self.id = id; self.uid = uid; self.core = core; name = "n\(id)"
    }

    var statusText: String {
        if !alive { return exitCode.map { "exited(\($0))" } ?? (machineDown ? "machine-crashed" : "crashed") }
        return "\(core.role) \(core.mode) epoch \(core.epoch) index \(core.replica.appliedIndex)\(paused ? " paused" : "")"
    }
}

/// Totals over many seeds (for `ftap sim` and the tests).
public struct SimSummary {
    public var seeds = 0
    public var failed: [SimResult] = []
    public var simulatedTime: Nanos = 0
    public var faults: [String: Int] = [:]
    public var failovers = 0
    public var switchovers = 0
    public var stats: [String: Int] = [:]
    public init() {}

    public mutating func add(_ r: SimResult) {
        seeds += 1
        if !r.passed { failed.append(r) }
        simulatedTime += r.simulatedTime
        failovers += r.failovers
        switchovers += r.switchovers
        for (k, v) in r.faults { faults[k, default: 0] += v }
        for (k, v) in r.stats { stats[k, default: 0] += v }
    }

    /// `crash-primary=3 pause=10 ...` in a fixed order.
    public var faultText: String {
        var parts: [String] = []
        for k in SimResult.faultKinds where (faults[k] ?? 0) > 0 { parts.append("\(k)=\(faults[k]!)") }
        for k in faults.keys.sorted() where !SimResult.faultKinds.contains(k) { parts.append("\(k)=\(faults[k]!)") }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }

    public var simulatedHours: Double { Double(simulatedTime) / 3.6e12 }
}

extension Simulation {
    /// Runs one seed.
    public static func run(seed: UInt64, sabotage: Set<Sabotage> = [], trace: Bool = false) -> SimResult {
        Simulation(options: SimOptions(seed: seed, sabotage: sabotage, trace: trace)).run()
    }
}
