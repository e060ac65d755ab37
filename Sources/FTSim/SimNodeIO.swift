import FTReplication
import FTStack
import FTWire

/// A simulated node process: the real `NodeDriver` (the same loop `ftap run`
/// runs) on the simulator's clock, TAP queue, log channel and arbiter. This
/// file holds only the system calls, as the world model answers them; every
/// decision is the driver's.
final class SimIO: NodeIO {
    unowned let sim: Simulation
    unowned let n: SimNode
    /// The last channel read carried an acknowledgement (for crash-after-ack faults).
    var sawAck = false
    /// The connection the bytes being handled came from.
    var readConn: Int? = nil
    init(sim: Simulation, node: SimNode) { self.sim = sim; self.n = node }

    var halted: Bool { !n.alive || sim.violation != nil }

    func readTap() -> TapRead { n.tapQueue.popFirst().map { .frame($0) } ?? .empty }

    func writeTap(_ o: OutputFrame) {
        if let c = n.emitCountdown {
            if c <= 0 {
                sim.crashNode(n, why: "crash after the acknowledgement, before releasing all its output", machine: n.crashMachine)
                return
            }
            n.emitCountdown = c - 1
        }
        sim.checkAloneLease(n)
        sim.emit(n, o)
    }

    func shadow(_ o: OutputFrame) { sim.stat("shadow-frames") }

    func connect() -> Bool {
        n.peerConn = openConnection("connects to the peer")
        return true
    }

    /// A new TCP connection from this node to the other one's port.
    func openConnection(_ what: String) -> Int {
        let c = ChanConn(id: sim.conns.count, connector: n.id, acceptor: 1 - n.id)
        c.uid[n.id] = n.uid
        sim.conns.append(c)
        sim.trace(n.name, "\(what) (connection \(c.id))")
        sim.schedule(sim.now + sim.channelLatency(n.id), .connectArrive(conn: c.id))
        return c.id
    }

    func connectOutcome() -> ConnectOutcome {
        guard let cid = n.peerConn else { return .failed("no connection") }
        let c = sim.conns[cid]
        return outcome(c)
    }

    func outcome(_ c: ChanConn) -> ConnectOutcome {
        guard c.resolved else { return .pending }
        if c.timedOut { return .failed("connection timed out") }
        return c.refused ? .refused : .connected
    }

    func startProbe() -> Bool {
        n.probeConn = openConnection("probes the peer's port")
        return true
    }

    func probeStatus() -> ProbeStatus {
        guard let cid = n.probeConn else { return .failed("no probe") }
        let c = sim.conns[cid]
        switch outcome(c) {
        case .pending: return .pending
        case .refused: return .refused
        case .failed(let why): return .failed(why)
        case .connected:
            switch c.rx[n.id].first {
            case nil: return .pending
            case .reset?: return .resetAfterConnect
            case .bytes?, .fin?: return .answered
            }
        }
    }

    func closeProbe() {
        if let cid = n.probeConn { sim.closeSide(sim.conns[cid], n.id, fin: true) }
        n.probeConn = nil
    }

    func accept() -> Int? {
        guard !n.backlog.isEmpty else { return nil }
        let c = sim.conns[n.backlog.removeFirst()]
        return c.open[n.id] ? c.id : nil
    }

    func refuse(_ connection: Int, sending bytes: [UInt8]) {
        let c = sim.conns[connection]
        sim.transmit(c, from: n.id, .bytes(bytes))
        sim.closeSide(c, n.id, fin: true)
    }

    func adopt(_ connection: Int) { n.peerConn = connection }

    func readChannel(max: Int) -> ChannelRead {
        guard let cid = n.peerConn else { return .wouldBlock }
        return read(cid, max: max)
    }

    func readPending(_ connection: Int, max: Int) -> ChannelRead { read(connection, max: max) }

    func writePending(_ connection: Int, _ bytes: ArraySlice<UInt8>) -> Int {
        sim.transmit(sim.conns[connection], from: n.id, .bytes(Array(bytes)))
        return bytes.count
    }

    /// Handshake nonces: a stream of their own, so the simulation's other
    /// choices for a seed do not depend on how many handshakes ran.
    func randomBytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let v = n.nonceRandom.next()
            for s in stride(from: 0, to: 64, by: 8) where out.count < count { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
        }
        return out
    }

    func read(_ cid: Int, max: Int) -> ChannelRead {
        let c = sim.conns[cid]
        var buf: [UInt8] = []
        while buf.count < max, let item = c.rx[n.id].first, case .bytes(let b) = item {
            let room = max - buf.count
            if b.count <= room {
                buf.append(contentsOf: b)
                _ = c.rx[n.id].popFirst()
            } else {
                buf.append(contentsOf: b[0..<room])
                c.rx[n.id].replaceFirst(.bytes(Array(b[room...])))
            }
        }
        if !buf.isEmpty { return .data(buf[...]) }
        switch c.rx[n.id].first {
        case .fin?: return .ended(.eof)
        case .reset?: return .ended(.reset)
        default: return .wouldBlock
        }
    }

    func writeChannel(_ bytes: ArraySlice<UInt8>) -> Int {
        guard let cid = n.peerConn else { return 0 }
        sim.hash.mix(bytes: Array(bytes))
        sim.transmit(sim.conns[cid], from: n.id, .bytes(Array(bytes)))
        return bytes.count
    }

    func closeChannel() {
        if let cid = n.peerConn { sim.closeSide(sim.conns[cid], n.id, fin: true) }
        n.peerConn = nil
    }

    func claim(epoch e: UInt64) -> ArbiterCall<ArbiterAnswer> {
        if !n.core.healthy { sim.fail("claim-while-unhealthy", "\(n.name) claimed epoch \(e) while unhealthy (\(n.core.healthReason))") }
        let token = sim.nextToken()
        n.blockedClaim = (e, token)
        let d = sim.arbiterLatency()
        if d >= 50 * nsPerMs { sim.count("slow-arbiter-claim") }
        sim.trace(n.name, "claims epoch \(e)")
        sim.schedule(sim.now + d, .arbiterArrive(node: n.id, epoch: e, token: token))
        return .pending
    }

    func releaseOwnership(epoch e: UInt64) {
        sim.schedule(sim.now + sim.arbiterLatency(), .leaseRelease(node: n.id, uid: n.uid, epoch: e))
    }

    func checkEpoch(_ e: UInt64) -> ArbiterCall<EpochCheck> {
        n.checkToken = sim.nextToken()
        sim.schedule(sim.now + sim.arbiterLatency(), .checkArrive(node: n.id, epoch: e, token: n.checkToken))
        return .pending
    }

    func applied(_ e: LogEntry, outputs: [[UInt8]]) { sim.checker.applied(sim, n, e, outputs) }

    func snapshotSent(index: UInt64, bytes: Int) {
        sim.trace(n.name, "snapshot at index \(index) (\(bytes) bytes) sent to the joining backup")
        sim.stat("snapshots")
    }

    func log(_ level: LogLevel, _ msg: String) {
        sim.trace(n.name, "\(level): \(msg)")
        if level == .error && msg.hasPrefix("DIVERGENCE") { sim.fail("core-divergence", "\(n.name): \(msg)") }
    }

    func exit(code: Int32, reason: String) {
        sim.trace(n.name, "EXIT \(code): \(reason)")
        sim.terminate(n, code: code, reason: reason)
    }

    func crash(_ why: String) { sim.crashNode(n, why: why) }

    func serviceOperator(_ driver: NodeDriver, now t: Nanos) {
        guard n.pendingSwitchover else { return }
        // The admin endpoint's POST /switchover.
        n.pendingSwitchover = false
        if let err = driver.requestSwitchover(now: t) {
            sim.trace(n.name, "switchover refused: \(err)")
        } else {
            sim.trace(n.name, "switchover started at index \(n.core.replica.appliedIndex)")
        }
    }

    func willHandleChannelBytes(_ bytes: ArraySlice<UInt8>) {
        readConn = n.peerConn
        guard let cid = n.peerConn else { return }
        sawAck = sim.observeChannel(n, cid, Array(bytes))
    }

    func didHandleChannelBytes(_ bytes: ArraySlice<UInt8>, actions: ArraySlice<Action>) {
        guard let cid = readConn else { return }
        sim.armCrash(n, sawAck: sawAck, newActions: actions)
        guard n.alive else { return }
        sim.checker.followerRead(sim, n, cid)
        if sim.phase == .settling { sim.settle() }
    }
}

extension Simulation {

    // MARK: Clocks

    /// The node's monotonic clock at simulated time `t`.
    func local(_ n: SimNode, _ t: Nanos) -> Nanos {
        let ppm = params.clockPPM[n.id]
        let drift = Int64(t) * ppm / 1_000_000
        return Nanos(Int64(clockOffset[n.id]) + Int64(t) + drift)
    }

    /// The first simulated time >= now at which the node's clock reads `w`.
    func simTime(_ n: SimNode, local w: Nanos) -> Nanos {
        let off = clockOffset[n.id]
        guard w > off else { return now }
        let ppm = params.clockPPM[n.id]
        var t = Nanos(Int64(w - off) * 1_000_000 / (1_000_000 + ppm))
        while local(n, t) < w { t += 1 }
        while t > 0 && local(n, t - 1) >= w { t -= 1 }
        return max(t, now)
    }

    // MARK: Start and wakeups

    func startNode(_ n: SimNode) {
        trace(n.name, "start as \(n.core.config.role) (process \(n.uid))")
        progressed(n, n.driver.start(now: local(n, now), n.io))
        initialHealth(n)
    }

    func scheduleWake(_ n: SimNode, _ t: Nanos) {
        if let w = n.wakeAt, w <= t { return }
        n.wakeToken = nextToken()
        n.wakeAt = t
        schedule(t, .nodeWake(n.id, n.wakeToken))
    }

    /// An input became ready for this node (an fd it polls is readable).
    func poke(_ n: SimNode) {
        guard n.alive, !n.paused else { return }
        scheduleWake(n, now + (params.schedDelayMax > 0 ? rng.nanos(0, params.schedDelayMax) : 0))
    }

    func peerReadable(_ n: SimNode) -> Bool {
        guard let c = n.peerConn else { return false }
        let conn = conns[c]
        return n.driver.channel == .connecting ? conn.resolved : !conn.rx[n.id].isEmpty
    }

    func probeReady(_ n: SimNode) -> Bool {
        guard let cid = n.probeConn else { return false }
        let c = conns[cid]
        return c.resolved && (c.refused || !c.rx[n.id].isEmpty)
    }

    /// An accepted connection that is authenticating has input.
    func pendingReadable(_ n: SimNode) -> Bool {
        n.driver.pendingConnections.contains { !conns[$0].rx[n.id].isEmpty }
    }

    func ready(_ n: SimNode) -> Bool {
        !n.backlog.isEmpty || peerReadable(n) || (n.tapPolled && !n.tapQueue.isEmpty) || n.pendingSwitchover
            || probeReady(n) || pendingReadable(n)
    }

    /// poll(2) returned: run one loop iteration of the driver.
    func wakeNode(_ n: SimNode) {
        if n.lastWakeTime == now {
            n.sameTimeWakes += 1
            if n.sameTimeWakes > 10_000 {
                fail("busy-loop", "\(n.name) woke 10000 times at the same instant (\(n.statusText))")
                return
            }
        } else { n.lastWakeTime = now; n.sameTimeWakes = 0 }
        let ready = Readiness(listen: !n.backlog.isEmpty, channel: peerReadable(n),
                              tap: n.tapPolled && !n.tapQueue.isEmpty, probe: probeReady(n), pending: pendingReadable(n))
        progressed(n, n.driver.iterate(now: local(n, now), ready: ready, n.io))
    }

    /// After the driver ran: a finished iteration goes back to poll.
    func progressed(_ n: SimNode, _ p: LoopProgress) {
        guard p == .completed, n.alive, violation == nil else { return }
        if let c = n.emitCountdown, c <= 0 {
            crashNode(n, why: "crash after the acknowledgement, having released part of its output", machine: n.crashMachine)
            return
        }
        sampleDigest(n)
        loopTop(n)
    }

    /// The top of the loop: the driver connects if due and says what to poll until when.
    func loopTop(_ n: SimNode) {
        guard n.alive else { return }
        let plan = n.driver.plan(now: local(n, now), n.io)
        n.tapPolled = plan.tap
        scheduleWake(n, simTime(n, local: plan.wakeAt))
        if ready(n) { poke(n) }
    }

    func continueClaim(_ n: SimNode, _ answer: ArbiterAnswer) {
        guard let b = n.blockedClaim else { return }
        n.blockedClaim = nil
        trace(n.name, "arbiter answered: epoch \(b.epoch) \(answer)")
        let before = n.core.takeovers
        let p = n.driver.arbiterAnswered(answer, now: local(n, now), n.io)
        if n.core.takeovers > before {
            trace(n.name, "TAKEOVER: live in epoch \(n.core.epoch) at index \(n.core.replica.appliedIndex)")
        }
        if violation == nil && phase == .settling { settle() }
        progressed(n, p)
    }

    func emit(_ n: SimNode, _ o: OutputFrame) {
        stat("frames-emitted")
        checker.emitted(self, n, o)
        if tracing { trace(n.name, "emit #\(o.index) \(frameSummary(o.frame))") }
        hash.mix(bytes: o.frame)
        if portDown[n.id] { stat("frames-lost-on-down-port"); return }
        // A super-segment leaves the TAP as the kernel's TSO cuts it.
        if o.segmentSize > 0 { stat("super-segments-emitted") }
        let frames = o.segmentSize > 0 ? TCPSegmentation.split(o.frame, segmentSize: o.segmentSize) : [o.frame]
        for f in frames { schedule(now + params.nodeLinkLatency, .atSwitch(port: n.id, frame: f)) }
    }

    // MARK: Log channel connections

    func connectArrive(_ c: ChanConn) {
        let a = nodes[c.acceptor]
        // A SYN of a connection already reset: the connector's kernel answers
        // the SYN-ACK with RST, and the embryonic connection is never accepted.
        if c.dead {
            schedule(now + channelLatency(c.acceptor), .connectResult(conn: c.id, ok: false))
            return
        }
        if a.alive {
            c.uid[a.id] = a.uid
            a.backlog.append(c.id)
            schedule(now + channelLatency(a.id), .connectResult(conn: c.id, ok: true))
            poke(a)
        } else {
            c.open = [false, false]
            // A dead process's kernel answers RST; a dead machine does not, and
            // the connect fails with ETIMEDOUT (after 5 s here; Linux: ~2 min).
            c.timedOut = a.machineDown
            schedule(now + (a.machineDown ? 5_000 * nsPerMs : channelLatency(a.id)), .connectResult(conn: c.id, ok: false))
        }
    }

    func connectResult(_ c: ChanConn, ok: Bool) {
        let n = nodes[c.connector]
        guard n.alive, n.uid == c.uid[n.id] else { return }
        c.resolved = true
        c.refused = !ok
        if n.peerConn == c.id || n.probeConn == c.id { poke(n) } else if ok { closeSide(c, n.id, fin: true) }
    }

}
