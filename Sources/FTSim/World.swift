import FTReplication
import FTStack
import FTWire

/// The simulated world around the nodes: the log channel's TCP-like
/// transport, process death and restart, crash faults and switchover
/// requests, and the learning switch.
extension Simulation {

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
        if nodes[r].peerConn == c.id || nodes[r].probeConn == c.id || authenticating(nodes[r], c.id) { poke(nodes[r]) }
    }

    /// An accepted connection the node's driver is authenticating (it polls it).
    func authenticating(_ n: SimNode, _ cid: Int) -> Bool { n.driver?.pendingConnections.contains(cid) ?? false }

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
        // Connections its kernel accepted but the process did not: closing the
        // listening socket resets them.
        for cid in n.backlog where conns[cid].open[n.id] {
            closeSide(conns[cid], n.id, fin: false)
            if fin { transmit(conns[cid], from: n.id, .reset) }
        }
        for c in conns where (c.open[n.id] && c.uid[n.id] == n.uid) {
            // The kernel of a process that exits with unread data in a socket
            // answers RST instead of FIN (RFC 2525, 2.17).
            let unread = c.rx[n.id].all.contains { if case .bytes = $0 { return true } else { return false } }
            if fin && unread {
                closeSide(c, n.id, fin: false)
                transmit(c, from: n.id, .reset)
                stat("reset-on-exit")
            } else {
                closeSide(c, n.id, fin: fin)
            }
        }
        n.backlog.removeAll()
        n.peerConn = nil
        n.probeConn = nil
        n.tapQueue.removeAll()
        n.tapPolled = false
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
            count("crash-backup-after-apply")
            crashNode(n, why: "fault: crash after applying \(applied) entries (their receipt already acknowledged)", machine: plan.machine)
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
            if params.mirror, out < 2, dst == applianceMAC, 1 - out != port {
                count("frame-mirrored")
                forward(to: 1 - out, f)
            }
            return
        }
        // Broadcast, multicast or unknown unicast: flood.
        for out in 0..<(2 + hosts.count + 1) where out != port { forward(to: out, f) }
    }

    func portName(_ p: Int) -> String { p < 2 ? "port n\(p)" : "port \(host(p - 2).name)" }

    func forward(to port: Int, _ f: [UInt8]) {
        if port < 2 {
            let n = nodes[port]
            guard !n.machineDown, !portDown[port] else { return }
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
    var resolved = false, refused = false, timedOut = false
    var dead = false
    /// Which process (SimNode.uid) holds each end.
    var uid = [0, 0]
    init(id: Int, connector: Int, acceptor: Int) { self.id = id; self.connector = connector; self.acceptor = acceptor }
}
