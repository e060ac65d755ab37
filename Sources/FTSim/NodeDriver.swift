import FTReplication
import FTStack
import FTWire

/// The platform loop of `FTPlatform.Node.run`, step for step, on simulated
/// time. One loop iteration:
///   poll -> accept a peer -> read the peer (peerBytes / peerDown) -> perform
///   -> read the TAP (tapFrame, perform after each) -> tick -> flush -> perform
///   -> write pending channel output -> (top of loop) start a connect, choose
///   what to poll and the poll timeout.
/// The arbiter call inside `perform` blocks the iteration, as the daemon's
/// synchronous `Arbiter.claim` does; the iteration continues when the answer
/// arrives, with the iteration's (now stale) time for the steps after it.
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
        n.core.start(now: local(n, now), &n.pending)
        n.phase = .startPerform
        runNode(n)
    }

    func scheduleWake(_ n: SimNode, _ t: Nanos) {
        if let w = n.wakeAt, w <= t { return }
        n.wakeToken = nextToken()
        n.wakeAt = t
        schedule(t, .nodeWake(n.id, n.wakeToken))
    }

    /// An input became ready for this node (an fd it polls is readable).
    func poke(_ n: SimNode) {
        guard n.alive, !n.paused, n.blockedClaim == nil, n.phase == .idle else { return }
        scheduleWake(n, now + (params.schedDelayMax > 0 ? rng.nanos(0, params.schedDelayMax) : 0))
    }

    func peerReadable(_ n: SimNode) -> Bool {
        guard let c = n.peerConn else { return false }
        let conn = conns[c]
        return n.peerConnecting ? conn.resolved : !conn.rx[n.id].isEmpty
    }

    func ready(_ n: SimNode) -> Bool {
        !n.backlog.isEmpty || peerReadable(n) || (n.tapPolled && !n.tapQueue.isEmpty) || n.pendingSwitchover
    }

    /// poll(2) returned: run one loop iteration.
    func wakeNode(_ n: SimNode) {
        if n.lastWakeTime == now {
            n.sameTimeWakes += 1
            if n.sameTimeWakes > 10_000 {
                fail("busy-loop", "\(n.name) woke 10000 times at the same instant (\(n.statusText))")
                return
            }
        } else { n.lastWakeTime = now; n.sameTimeWakes = 0 }
        let t = local(n, now)
        n.iterT = t
        let peerReady = peerReadable(n)
        let peerAtPoll = n.peerConn
        n.iterTapReady = n.tapPolled && !n.tapQueue.isEmpty
        if !n.backlog.isEmpty { acceptPeer(n, now: t) }
        if let p = peerAtPoll, p == n.peerConn, peerReady { servicePeer(n, now: t) }
        guard n.alive else { return }
        if n.pendingSwitchover {
            // The admin endpoint's POST /switchover (Node.adminResponse).
            n.pendingSwitchover = false
            var admin: [Action] = []
            if let err = n.core.requestSwitchover(now: t, &admin) {
                trace(n.name, "switchover refused: \(err)")
            } else {
                trace(n.name, "switchover started at index \(n.core.replica.appliedIndex)")
            }
            n.pending += admin
        }
        n.phase = .perform1
        runNode(n)
    }

    /// Runs the iteration from where it stands until it ends or blocks.
    func runNode(_ n: SimNode) {
        while n.alive && violation == nil {
            switch n.phase {
            case .idle:
                return
            case .startPerform:
                guard perform(n) else { return }
                n.phase = .idle
                loopTop(n)
                return
            case .perform1:
                guard perform(n) else { return }
                if let c = n.emitCountdown, c <= 0 { crashNode(n, why: "crash after the acknowledgement, having released part of its output", machine: n.crashMachine); return }
                n.phase = .tap
            case .tap:
                if n.iterTapReady { readTap(n, now: n.iterT); guard n.alive, n.exitCode == nil else { return } }
                n.core.tick(now: n.iterT, &n.pending)
                n.core.flush(now: n.iterT, &n.pending)
                n.phase = .perform2
            case .perform2:
                guard perform(n) else { return }
                flushPeer(n)
                sampleDigest(n)
                n.phase = .idle
                loopTop(n)
                return
            }
        }
    }

    /// The top of the daemon's loop: connect if due, choose poll interests and timeout.
    func loopTop(_ n: SimNode) {
        guard n.alive else { return }
        let t = local(n, now)
        let core = n.core
        if core.role == .backup && core.mode == .waitingForPeer && n.peerConn == nil && t >= n.nextConnectAt {
            startConnect(n, now: t)
        }
        n.tapPolled = core.wantsTapInput || core.drainsTap
        var wake = core.nextWakeup(now: t)
        if core.role == .backup && core.mode == .waitingForPeer && n.peerConn == nil {
            wake = min(wake ?? n.nextConnectAt, n.nextConnectAt)
        }
        var timeoutMs: Nanos = 1000
        if let w = wake { timeoutMs = w <= t ? 0 : min(1000, (w - t + nsPerMs - 1) / nsPerMs) }
        scheduleWake(n, simTime(n, local: t + timeoutMs * nsPerMs))
        if ready(n) { poke(n) }
    }

    // MARK: Perform (Node.perform)

    /// Performs pending actions. False when the iteration cannot go on now
    /// (blocked in the arbiter call, exited, crashed).
    func perform(_ n: SimNode) -> Bool {
        while n.pendingIndex < n.pending.count {
            let a = n.pending[n.pendingIndex]
            n.pendingIndex += 1
            switch a {
            case .emit(let o):
                if let c = n.emitCountdown {
                    if c <= 0 { crashNode(n, why: "crash after the acknowledgement, before releasing all its output", machine: n.crashMachine); return false }
                    n.emitCountdown = c - 1
                }
                emit(n, o)
            case .shadow:
                stat("shadow-frames")
            case .send(let bytes):
                if n.peerConn != nil && !n.peerConnecting { n.peerOut.append(contentsOf: bytes) }
            case .closePeer(let reason):
                flushPeer(n)
                trace(n.name, "closes the log channel: \(reason)")
                dropPeer(n)
            case .claimEpoch(let e):
                let token = nextToken()
                n.blockedClaim = (e, token)
                let d = arbiterLatency()
                if d >= 50 * nsPerMs { count("slow-arbiter-claim") }
                trace(n.name, "claims epoch \(e) (blocks in the arbiter call)")
                schedule(now + d, .arbiterArrive(node: n.id, epoch: e, token: token))
                return false
            case .exit(let code, let reason):
                trace(n.name, "EXIT \(code): \(reason)")
                n.pending.removeAll(); n.pendingIndex = 0
                terminate(n, code: code, reason: reason)
                return false
            case .crash(let why):
                flushPeer(n)
                crashNode(n, why: why)
                return false
            case .applied(let e, let outputs):
                checker.applied(self, n, e, outputs)
            case .snapshotSent(let index, let bytes):
                trace(n.name, "snapshot at index \(index) (\(bytes) bytes) sent to the joining backup")
                stat("snapshots")
            case .log(let level, let msg):
                trace(n.name, "\(level): \(msg)")
                if level == .error && msg.hasPrefix("DIVERGENCE") { fail("core-divergence", "\(n.name): \(msg)") }
            }
            if violation != nil { return false }
        }
        n.pending.removeAll(keepingCapacity: true)
        n.pendingIndex = 0
        return true
    }

    func continueClaim(_ n: SimNode, won: Bool, detail: String) {
        guard let b = n.blockedClaim else { return }
        n.blockedClaim = nil
        trace(n.name, "arbiter answered: epoch \(b.epoch) \(won ? "won" : "LOST") (\(detail))")
        let before = n.core.takeovers
        n.core.arbiterAnswered(epoch: b.epoch, won: won, detail: detail, now: local(n, now), &n.pending)
        if n.core.takeovers > before {
            trace(n.name, "TAKEOVER: live in epoch \(n.core.epoch) at index \(n.core.replica.appliedIndex)")
        }
        if violation == nil && phase == .settling { settle() }
        runNode(n)
    }

    func emit(_ n: SimNode, _ o: OutputFrame) {
        stat("frames-emitted")
        checker.emitted(self, n, o)
        if tracing { trace(n.name, "emit #\(o.index) \(frameSummary(o.frame))") }
        hash.mix(bytes: o.frame)
        let f = o.frame
        schedule(now + params.nodeLinkLatency, .atSwitch(port: n.id, frame: f))
    }

    // MARK: TAP (Node.readTap)

    func readTap(_ n: SimNode, now t: Nanos) {
        for _ in 0..<256 {
            guard let f = n.tapQueue.popFirst() else { return }
            if n.core.drainsTap && !n.core.isLive { n.core.tapFrame(f, now: t, &n.pending); continue }
            n.core.tapFrame(f, now: t, &n.pending)
            if !n.pending.isEmpty {
                guard perform(n) else {
                    precondition(n.blockedClaim == nil, "tapFrame cannot claim an epoch")
                    return
                }
            }
            if !n.core.wantsTapInput { return }
        }
    }

    // MARK: Log channel endpoints (Node.acceptPeer/servicePeer/flushPeer/dropPeer)

    func startConnect(_ n: SimNode, now t: Nanos) {
        n.nextConnectAt = t + 200 * nsPerMs
        let c = ChanConn(id: conns.count, connector: n.id, acceptor: 1 - n.id)
        c.uid[n.id] = n.uid
        conns.append(c)
        n.peerConn = c.id
        n.peerConnecting = true
        trace(n.name, "connects to the peer (connection \(c.id))")
        schedule(now + channelLatency(n.id), .connectArrive(conn: c.id))
    }

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
            schedule(now + (a.machineDown ? 5_000 * nsPerMs : channelLatency(a.id)), .connectResult(conn: c.id, ok: false))
        }
    }

    func connectResult(_ c: ChanConn, ok: Bool) {
        let n = nodes[c.connector]
        guard n.alive, n.uid == c.uid[n.id] else { return }
        c.resolved = true
        c.refused = !ok
        if n.peerConn == c.id { poke(n) } else if ok { closeSide(c, n.id, fin: true) }
    }

    func acceptPeer(_ n: SimNode, now t: Nanos) {
        guard !n.backlog.isEmpty else { return }
        let c = conns[n.backlog.removeFirst()]
        guard c.open[n.id] else { return }
        if n.peerConn != nil {
            var bytes: [UInt8] = []
            ChannelCodec.encode(.reject(reason: "this node already has a peer connected"), into: &bytes)
            transmit(c, from: n.id, .bytes(bytes))
            closeSide(c, n.id, fin: true)
            trace(n.name, "refused a second peer connection")
            return
        }
        n.peerConn = c.id
        n.peerOut.removeAll()
        trace(n.name, "accepted the peer (connection \(c.id))")
        n.core.peerUp(now: t, &n.pending)
    }

    static let readBuffer = 1 << 18

    func servicePeer(_ n: SimNode, now t: Nanos) {
        guard let cid = n.peerConn else { return }
        let c = conns[cid]
        if n.peerConnecting {
            guard c.resolved else { return }
            if c.refused {
                trace(n.name, "connect failed: connection refused")
                n.peerConn = nil; n.peerConnecting = false
                return
            }
            n.peerConnecting = false
            n.peerOut.removeAll()
            trace(n.name, "connected to the peer (connection \(cid))")
            n.core.peerUp(now: t, &n.pending)
            return
        }
        while n.peerConn == cid {
            var buf: [UInt8] = []
            while buf.count < Simulation.readBuffer, let item = c.rx[n.id].first, case .bytes(let b) = item {
                let room = Simulation.readBuffer - buf.count
                if b.count <= room {
                    buf.append(contentsOf: b)
                    _ = c.rx[n.id].popFirst()
                } else {
                    buf.append(contentsOf: b[0..<room])
                    c.rx[n.id].replaceFirst(.bytes(Array(b[room...])))
                }
            }
            if !buf.isEmpty {
                let sawAck = observeChannel(n, cid, buf)
                let before = n.pending.count
                n.core.peerBytes(buf[...], now: t, &n.pending)
                armCrash(n, sawAck: sawAck, newActions: n.pending[before...])
                guard n.alive else { return }
                checker.followerRead(self, n, cid)
                if phase == .settling { settle() }
                if buf.count < Simulation.readBuffer { break }
                continue
            }
            guard let item = c.rx[n.id].first else { break }
            let why: String
            // A FIN comes only from a process that closed the channel or died;
            // the simulated resets model a network fault with both processes
            // alive, so they take the conservative path.
            var finFromPeer = true
            if case .reset = item { why = "Connection reset by peer"; finFromPeer = false } else { why = "peer closed the connection" }
            trace(n.name, "log channel: \(why)")
            dropPeer(n)
            n.core.peerDown(reason: why, peerClosed: finFromPeer, now: t, &n.pending)
            break
        }
    }

    func flushPeer(_ n: SimNode) {
        guard let cid = n.peerConn, !n.peerConnecting, !n.peerOut.isEmpty else { return }
        let bytes = n.peerOut
        n.peerOut.removeAll(keepingCapacity: true)
        hash.mix(bytes: bytes)
        transmit(conns[cid], from: n.id, .bytes(bytes))
    }

    func dropPeer(_ n: SimNode) {
        if let cid = n.peerConn { closeSide(conns[cid], n.id, fin: true) }
        n.peerConn = nil
        n.peerConnecting = false
        n.peerOut.removeAll()
    }

    // MARK: Channel transport

    func transmit(_ c: ChanConn, from d: Int, _ item: ChanItem) {
        guard !c.dead else { return }
        let at = max(c.lastAt[d], now + channelLatency(d))
        c.lastAt[d] = at
        c.inFlight[d].append((at, item))
        if c.pumpAt[d] == nil { schedulePump(c, d, at) }
    }

    func schedulePump(_ c: ChanConn, _ d: Int, _ at: Nanos) {
        c.pumpToken[d] += 1
        c.pumpAt[d] = at
        schedule(at, .chanPump(conn: c.id, dir: d, token: c.pumpToken[d]))
    }

    func pump(_ c: ChanConn, _ d: Int, _ token: UInt64) {
        guard token == c.pumpToken[d] else { return }
        c.pumpAt[d] = nil
        while let (at, item) = c.inFlight[d].first, at <= now {
            if let until = partitionedUntil(d, now) { schedulePump(c, d, until); return }
            _ = c.inFlight[d].popFirst()
            deliver(c, to: 1 - d, item)
        }
        if let (at, _) = c.inFlight[d].first { schedulePump(c, d, at) }
    }

    func deliver(_ c: ChanConn, to r: Int, _ item: ChanItem) {
        guard !c.dead, c.open[r], nodes[r].alive, nodes[r].uid == c.uid[r] else { return }
        c.rx[r].append(item)
        if nodes[r].peerConn == c.id { poke(nodes[r]) }
    }

    func closeSide(_ c: ChanConn, _ i: Int, fin: Bool) {
        guard c.open[i] else { return }
        c.open[i] = false
        c.rx[i].removeAll()
        if fin { transmit(c, from: i, .fin) }
    }

    func breakChannel() {
        guard let c = conns.last(where: { !$0.dead && ($0.open[0] || $0.open[1]) }) else { return }
        count("channel-reset")
        trace("fault", "log channel connection \(c.id) reset")
        // Everything in flight is lost and nothing sent from now on arrives;
        // each open end reads what its socket had already received, then
        // ECONNRESET, once the RST's latency has passed.
        c.dead = true
        for d in 0..<2 { c.inFlight[d].removeAll(); c.pumpAt[d] = nil; c.pumpToken[d] += 1 }
        for i in 0..<2 where c.open[i] {
            schedule(now + channelLatency(1 - i), .chanReset(conn: c.id, node: i))
        }
    }

    // MARK: Process death and restart

    func closeEverything(_ n: SimNode, fin: Bool) {
        for c in conns where (c.open[n.id] && c.uid[n.id] == n.uid) { closeSide(c, n.id, fin: fin) }
        for cid in n.backlog { closeSide(conns[cid], n.id, fin: fin) }
        n.backlog.removeAll()
        n.peerConn = nil
        n.peerOut.removeAll()
        n.tapQueue.removeAll()
        n.tapPolled = false
        n.pending.removeAll()
        n.wakeToken = nextToken()
    }

    func terminate(_ n: SimNode, code: Int32, reason: String) {
        n.alive = false
        n.exitCode = code
        closeEverything(n, fin: true)
        switch code {
        case 2:
            scheduleRestart(n, always: false)
        case 3:
            // Refused by the primary (it was busy, or still held a previous
            // channel): the operator or systemd starts it again.
            stat("joins-refused")
            scheduleRestart(n, always: true)
        default:
            fail("unexpected-exit", "\(n.name) exited with status \(code): \(reason)")
        }
    }

    func crashNode(_ n: SimNode, why: String, machine: Bool = false) {
        guard n.alive else { return }
        trace(n.name, "CRASH (\(machine ? "machine: port down, no FIN" : "process killed")): \(why)")
        n.alive = false
        n.machineDown = machine
        n.peerOut.removeAll()  // written only at the end of the iteration: lost
        closeEverything(n, fin: !machine)
        if machine {
            // The switch port goes down: the switch forgets what it learned there.
            for k in macTable.keys.sorted() where macTable[k] == n.id { macTable[k] = nil }
        }
        scheduleRestart(n, always: false)
    }

    func scheduleRestart(_ n: SimNode, always: Bool) {
        guard let r = params.restartDelay ?? (always ? (200 * nsPerMs, 1_000 * nsPerMs) : nil) else { return }
        pendingRestarts += 1
        schedule(now + rng.nanos(r.min, r.max), .restart(n.id))
    }

    /// A fresh process (after a reboot, with a new clock) starts as a backup
    /// and joins the running primary by state transfer.
    func restartNode(_ i: Int) {
        pendingRestarts -= 1
        let old = nodes[i]
        guard !old.alive else { return }
        if old.machineDown { clockOffset[i] = rng.nanos(1, 600) * 1_000_000_000 }
        let n = makeNode(i, role: .backup)
        retired.append(old)
        nodes[i] = n
        count("restart")
        trace(n.name, "RESTART as a fresh backup")
        startNode(n)
    }

    // MARK: Crash faults and switchover requests

    /// The current primary and backup when the pair is whole: a crash now
    /// leaves a node able to take over.
    var intactPair: (primary: SimNode, backup: SimNode)? {
        let a = nodes[0], b = nodes[1]
        guard a.alive, b.alive, a.blockedClaim == nil, b.blockedClaim == nil else { return nil }
        if a.core.mode == .protected && b.core.mode == .backup && b.core.inSync { return (a, b) }
        if b.core.mode == .protected && a.core.mode == .backup && a.core.inSync { return (b, a) }
        return nil
    }

    /// A backup still joining a live primary (not yet confirmed in sync): it
    /// is not needed for service, so crashing it is a single failure too.
    var joiningBackup: SimNode? {
        let a = nodes[0], b = nodes[1]
        for (p, j) in [(a, b), (b, a)] where p.alive && j.alive && p.blockedClaim == nil {
            let live = p.core.mode == .alone || p.core.mode == .syncing
            if live && j.core.role == .backup && !j.core.inSync && j.blockedClaim == nil { return j }
        }
        return nil
    }

    func crashCheck(_ i: Int) {
        let plan = params.crashes[i]
        guard phase == .safety else { count("crash-skipped"); return }
        if plan.node == 1 && plan.when == .randomTime && intactPair == nil, let j = joiningBackup {
            count("crash-joining-backup")
            crashNode(j, why: "fault: crash of a backup still joining (\(j.core.mode))", machine: plan.machine)
            return
        }
        guard let pair = intactPair, nodes.allSatisfy({ $0.crashArmed == nil && $0.emitCountdown == nil }) else {
            // Wait for a whole pair: the design survives one failure at a time.
            if now + 50 * nsPerMs < params.safetyEnd { schedule(now + 50 * nsPerMs, .crashCheck(i)) } else { count("crash-skipped") }
            return
        }
        let n = plan.node == 0 ? pair.primary : pair.backup
        switch plan.when {
        case .randomTime:
            count(plan.node == 0 ? "crash-primary" : "crash-backup")
            crashNode(n, why: "fault: \(plan)", machine: plan.machine)
        case .afterAck, .afterApply:
            trace("fault", "armed on \(n.name): \(plan)")
            n.crashArmed = plan
        }
    }

    /// After a peerBytes call: fire an armed crash if its moment has come.
    func armCrash(_ n: SimNode, sawAck: Bool, newActions: ArraySlice<Action>) {
        guard let plan = n.crashArmed else { return }
        guard phase == .safety, let pair = intactPair else {
            if phase != .safety { n.crashArmed = nil; count("crash-skipped") }
            return
        }
        switch plan.when {
        case .afterAck where sawAck && pair.primary === n:
            var emits = 0
            for a in newActions { if case .emit = a { emits += 1 } }
            n.crashArmed = nil
            n.crashMachine = plan.machine
            n.emitCountdown = rng.int(0...emits)
            count("crash-after-ack")
            trace("fault", "\(n.name) will crash after releasing \(n.emitCountdown!) of the \(emits) frames this acknowledgement released")
        case .afterApply where pair.backup === n:
            var applied = 0
            for a in newActions { if case .applied = a { applied += 1 } }
            guard applied > 0 else { return }
            n.crashArmed = nil
            count("crash-after-apply")
            crashNode(n, why: "fault: crash after applying \(applied) entries, before acknowledging them", machine: plan.machine)
        case .randomTime:
            n.crashArmed = nil
        default:
            break
        }
    }

    func requestSwitchover() {
        guard phase == .safety, let pair = intactPair, !pair.primary.paused else { return }
        count("switchover-request")
        trace("operator", "POST /switchover to \(pair.primary.name)")
        pair.primary.pendingSwitchover = true
        poke(pair.primary)
    }

    // MARK: Switch

    func switchFrame(from port: Int, _ f: [UInt8]) {
        guard f.count >= 14 else { return }
        let dst = MACAddress(bytes: f, at: 0), src = MACAddress(bytes: f, at: 6)
        if !src.isMulticast {
            if macTable[src.raw] != port {
                if tracing { trace("switch", "learns \(src) on \(portName(port))") }
                macTable[src.raw] = port
            }
        }
        if !dst.isMulticast, let out = macTable[dst.raw] {
            if out != port { forward(to: out, f) }
            return
        }
        // Broadcast, multicast or unknown unicast: flood.
        for out in 0..<(2 + hosts.count + 1) where out != port { forward(to: out, f) }
    }

    func portName(_ p: Int) -> String { p < 2 ? "port n\(p)" : "port \(host(p - 2).name)" }

    func forward(to port: Int, _ f: [UInt8]) {
        if port < 2 {
            let n = nodes[port]
            guard !n.machineDown else { return }
            schedule(now + params.nodeLinkLatency, .atNode(node: port, frame: f))
        } else {
            linkSend(port: port, toHost: true, f)
        }
    }

    /// A client link, either direction: latency, jitter, and in the safety
    /// phase loss, duplication and reordering.
    func linkSend(port: Int, toHost: Bool, _ f: [UInt8]) {
        let faulty = phase == .safety && now >= params.faultStart
        if faulty && rng.chance(params.lossRate) { count("frame-loss"); return }
        var t = now + params.linkLatency + (params.linkJitter > 0 ? rng.nanos(0, params.linkJitter) : 0)
        let key = port * 2 + (toHost ? 1 : 0)
        if faulty && rng.chance(params.reorderRate) {
            count("frame-reorder")
            t += rng.nanos(100_000, 5_000_000)
        } else {
            t = max(t, linkLast[key] ?? 0)
            linkLast[key] = t
        }
        let ev: Ev = toHost ? .atHost(host: port - 2, frame: f) : .atSwitch(port: port, frame: f)
        schedule(t, ev)
        if faulty && rng.chance(params.dupRate) {
            count("frame-dup")
            schedule(t + rng.nanos(0, 2_000_000), ev)
        }
    }
}

enum ChanItem { case bytes([UInt8]), fin, reset }

/// One TCP connection of the log channel: per direction, bytes in flight
/// (FIFO, delivered after latency, held while partitioned) and bytes
/// delivered but not yet read.
final class ChanConn {
    let id: Int
    let connector: Int, acceptor: Int
    var open = [true, true]
    var rx = [Queue<ChanItem>(), Queue<ChanItem>()]
    var inFlight = [Queue<(Nanos, ChanItem)>(), Queue<(Nanos, ChanItem)>()]
    var lastAt: [Nanos] = [0, 0]
    var pumpAt: [Nanos?] = [nil, nil]
    var pumpToken: [UInt64] = [0, 0]
    var resolved = false, refused = false
    var dead = false
    /// Which process (SimNode.uid) holds each end.
    var uid = [0, 0]
    init(id: Int, connector: Int, acceptor: Int) { self.id = id; self.connector = connector; self.acceptor = acceptor }
}
