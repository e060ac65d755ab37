import FTStack
import FTWire

/// The replication protocol of one node as a pure state machine: inputs are
/// TAP frames, channel bytes, peer connect/close, arbiter answers, operator
/// requests and the local monotonic time; outputs are `Action`s. It owns the
/// replica. `role` starts as configured and changes on takeover (backup →
/// primary) and on a planned switchover (both ways).
public final class ReplicationCore {
    public let config: ReplicationConfig
    public let replica: Replica
    public let configDigest: UInt64
    public private(set) var role: Role
    public private(set) var mode: Mode
    public private(set) var epoch: UInt64 = 0
    public private(set) var clock = LogClock()

    // Leader side.
    var decoder = ChannelDecoder()
    var sendBatch: [LogEntry] = []
    var held = FIFO<OutputFrame>()
    /// Entries streamed and not yet acknowledged, with the local time they were logged.
    var unacked = FIFO<(index: UInt64, bytes: Int, at: Nanos)>()
    var unackedBytes = 0
    public private(set) var ackedIndex: UInt64 = 0
    var lastDigestAt: Nanos = 0
    var lastDigestIndex: UInt64 = 0
    var snapshotsSent = 0

    // Follower side.
    var ackDue = false
    public private(set) var diverged = false
    public private(set) var digestChecks: UInt64 = 0
    public private(set) var divergences: UInt64 = 0
    var snap: (index: UInt64, epoch: UInt64, total: Int, digest: UInt64, bytes: [UInt8])? = nil
    var handoverPending = false
    /// The primary confirmed this follower holds everything whose output it
    /// released: set by a plain welcome (or, after a state transfer, by the
    /// welcome sent when the primary leaves `syncing`) and on handing over.
    /// Only an in-sync follower may take over.
    public private(set) var inSync = false
    /// The channel to our primary closed: take over at this time (local),
    /// once every lease the primary could hold has expired.
    var takeoverAt: Nanos? = nil

    // Both.
    var peerConnected = false
    var lastHeard: Nanos = 0
    var lastSent: Nanos = 0
    var garpLeft = 0
    var garpNext: Nanos = 0
    /// While a backup watches us, a GARP is safe only until it could have
    /// given up on us: failoverTimeout after the last message it must have
    /// received to be able to take over (welcome, go-live entry, in-sync
    /// confirmation). A GARP from a process resumed after a pause later than
    /// that could pull the MAC back from the new primary.
    var garpUntil: Nanos = .max
    var faultCount = 0
    public private(set) var ignoredFrames: UInt64 = 0
    public private(set) var discardedWhileNotLive: UInt64 = 0
    /// Frames a former primary read on its TAP after handing over and passed
    /// to the new primary (the switch still sent them to its port).
    public private(set) var forwardedFrames: UInt64 = 0
    var forwardUntil: Nanos = 0
    var checkpoints = FIFO<(index: UInt64, digest: UInt64)>()
    public private(set) var takeovers: UInt64 = 0
    public private(set) var switchovers: UInt64 = 0
    public private(set) var joinsServed: UInt64 = 0

    public init(config: ReplicationConfig, stack: Stack) {
        self.config = config
        self.replica = Replica(stack: stack)
        var w = ByteWriter()
        stack.config.encode(into: &w)
        stack.encodeState(into: &w)  // services and ports are part of the empty state
        configDigest = SipHash24.hash(k0: 1, k1: 2, w.bytes)
        role = config.role
        switch config.role {
        case .solo: mode = .alone; epoch = 1
        case .primary, .backup: mode = .waitingForPeer
        }
    }

    /// First actions after start: the primary claims epoch 1 so that two
    /// nodes started as primary cannot both serve.
    public func start(now: Nanos, _ a: inout [Action]) {
        clock.resume(lastLogged: 0, localNow: now)
        lastHeard = now; lastSent = now
        switch role {
        case .solo:
            a.append(.log(.notice, "solo: live, no replication"))
            startGARP(now: now, &a)
        case .primary:
            mode = .claiming(epoch: 1)
            a.append(.claimEpoch(1))
        case .backup:
            a.append(.log(.info, "backup: connecting to its peer"))
        }
    }

    /// True when the platform should read frames from the TAP and pass them in.
    /// False under backpressure (the kernel queue and TCP absorb it).
    public var wantsTapInput: Bool {
        switch mode {
        case .alone: return true
        case .protected, .syncing: return unacked.count < config.maxLagEntries && unackedBytes < config.maxLagBytes
        default: return false
        }
    }

    /// True when frames arriving on the TAP should be read and discarded
    /// (a backup's TAP never drives its replica).
    public var drainsTap: Bool { !isLive }

    /// The node may emit frames.
    public var isLive: Bool {
        switch mode {
        case .alone, .protected, .syncing, .handingOver: return true
        default: return false
        }
    }
    /// The node leads the log (assigns indexes) and the output rule applies.
    var protectsOutput: Bool { mode == .protected || mode == .handingOver }
    /// Entries are streamed to a follower.
    var streams: Bool { mode == .protected || mode == .handingOver || mode == .syncing }

    /// Entries sent to the backup and not yet acknowledged.
    public var lagEntries: Int { unacked.count }
    public var lagBytes: Int { unackedBytes }
    /// Frames produced and held by the output rule.
    public var heldFrames: Int { held.count }
    public var isPeerConnected: Bool { peerConnected }

    // MARK: - TAP input

    public func tapFrame(_ f: [UInt8], now: Nanos, _ a: inout [Action]) {
        guard mode == .alone || mode == .protected || mode == .syncing else {
            // Right after a planned switchover the switch may still deliver
            // frames for the appliance here, until the new primary's GARP
            // moves the MAC: pass them on instead of losing them.
            if shouldForward(f, now: now) {
                forwardedFrames += 1
                send(.forward(frame: f), now: now, &a)
                return
            }
            discardedWhileNotLive += 1; return
        }
        guard replica.stack.classify(f) == .accept else { ignoredFrames += 1; return }
        let entry = LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                             kind: .frame, payload: f)
        append(entry, now: now, &a)
        if mode == .protected, let fp = config.fault, fp.point == .unacked, carriesPayload(f) {
            faultCount += 1
            if faultCount == fp.count {
                flush(now: now, &a)
                a.append(.crash("fault hook \(fp): inbound entry \(entry.index) sent, not yet acknowledged"))
            }
        }
    }

    /// Applies a new entry as leader: to the replica, to the channel, outputs held or released.
    func append(_ entry: LogEntry, now: Nanos, _ a: inout [Action]) {
        var out: [[UInt8]] = []
        do { try replica.apply(entry, out: &out) } catch {
            fatal("cannot apply own entry: \(error)", &a); return
        }
        noteCheckpoint(entry)
        a.append(.applied(entry, outputs: out))
        if streams {
            sendBatch.append(entry)
            unacked.append((entry.index, entry.encodedSize, now))
            unackedBytes += entry.encodedSize
        }
        if protectsOutput && !config.sabotage.contains(.releaseWithoutAck) {
            for f in out { held.append(OutputFrame(frame: f, index: entry.index, time: entry.time, producedAt: now)) }
        } else {
            for f in out { release(OutputFrame(frame: f, index: entry.index, time: entry.time), &a) }
        }
    }

    func release(_ f: OutputFrame, _ a: inout [Action]) {
        let hook = config.fault.flatMap { fp -> FaultPlan? in
            (fp.point == .afterRelease || fp.point == .beforeRelease) && carriesPayload(f.frame) ? fp : nil
        }
        if let fp = hook {
            faultCount += 1
            if faultCount == fp.count && fp.point == .beforeRelease {
                a.append(.crash("fault hook \(fp): reply acknowledged by the backup, not yet released"))
                return
            }
        }
        a.append(.emit(f))
        if let fp = hook, faultCount == fp.count, fp.point == .afterRelease {
            a.append(.crash("fault hook \(fp): reply released"))
        }
    }

    func carriesPayload(_ f: [UInt8]) -> Bool {
        guard let ip = try? IPv4Header.parse(f, at: 14) else { return false }
        if ip.proto == IPProtocol.tcp, let t = try? TCPHeader.parse(f, ip: ip, verifyChecksum: false) { return !t.payload.isEmpty }
        if ip.proto == IPProtocol.udp { return ip.payload.count > 8 }
        return false
    }

    // MARK: - Time

    /// Fires due work: stack timers (as logged ticks), heartbeats, failure
    /// detection, GARP repeats, digest checks.
    public func tick(now: Nanos, _ a: inout [Action]) {
        if isLive && mode != .handingOver, let d = replica.stack.nextDeadline, clock.toLocal(d) <= now {
            let t = clock.stamp(localNow: now)
            if d <= t { append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: t, kind: .tick), now: now, &a) }
        }
        if garpLeft > 0 && now >= garpNext && isLive && now >= garpUntil {
            garpLeft = 0  // too late: our backup may have replaced us (see garpUntil)
        }
        if garpLeft > 0 && now >= garpNext && isLive {
            a.append(.emit(OutputFrame(frame: ARPPacket.gratuitous(mac: replica.stack.config.mac, ip: replica.stack.config.ip),
                                       index: 0, time: clock.last)))
            garpLeft -= 1
            garpNext = now + config.garpInterval
        }
        if peerConnected && !watchesPeer && since(lastHeard, now) >= config.failoverTimeout {
            // A peer connected but the handshake (hello/welcome) never came:
            // drop it, or this node would refuse every later peer for good.
            a.append(.log(.warning, "peer connected but silent for \(Double(since(lastHeard, now)) / 1e6) ms in mode \(mode); closing the channel"))
            a.append(.closePeer(reason: "handshake timed out"))
            peerConnected = false
        }
        if let t = takeoverAt, mode == .backup, now >= t {
            takeoverAt = nil
            peerFailed("log channel closed and the primary silent for the failure timeout", now: now, &a)
        }
        if peerConnected && watchesPeer {
            if since(lastHeard, now) >= config.failoverTimeout {
                peerFailed("no message from the peer for \(Double(since(lastHeard, now)) / 1e6) ms", now: now, &a)
            } else if since(lastSent, now) >= config.heartbeat {
                send(.heartbeat, now: now, &a)
            }
        }
        if mode == .protected && replica.appliedIndex != lastDigestIndex && since(lastDigestAt, now) >= config.digestInterval {
            flush(now: now, &a)
            lastDigestAt = now
            lastDigestIndex = replica.appliedIndex
            send(.digest(index: replica.appliedIndex, value: replica.digest), now: now, &a)
        }
    }

    var watchesPeer: Bool {
        switch mode {
        case .protected, .backup, .syncing, .handingOver, .joining: return true
        default: return false
        }
    }

    /// When `tick` next has work, in local time.
    public func nextWakeup(now: Nanos) -> Nanos? {
        var w: Nanos? = nil
        func consider(_ x: Nanos) { w = w.map { min($0, x) } ?? x }
        if isLive && mode != .handingOver, let d = replica.stack.nextDeadline { consider(clock.toLocal(d)) }
        if garpLeft > 0 && isLive { consider(garpNext) }
        if peerConnected && watchesPeer {
            consider(lastHeard + config.failoverTimeout)
            consider(lastSent + config.heartbeat)
        }
        if let t = takeoverAt, mode == .backup { consider(t) }
        if peerConnected && !watchesPeer { consider(lastHeard + config.failoverTimeout) }
        if mode == .protected && replica.appliedIndex != lastDigestIndex { consider(lastDigestAt + config.digestInterval) }
        return w
    }

    /// Sends what was batched during this loop iteration (entries, ack).
    public func flush(now: Nanos, _ a: inout [Action]) {
        if !sendBatch.isEmpty {
            send(.entries(sendBatch), now: now, &a)
            sendBatch.removeAll(keepingCapacity: true)
        }
        if ackDue {
            ackDue = false
            send(.ack(index: replica.appliedIndex), now: now, &a)
        }
    }

    func send(_ m: ChannelMessage, now: Nanos, _ a: inout [Action]) {
        var bytes: [UInt8] = []
        ChannelCodec.encode(m, into: &bytes)
        a.append(.send(bytes))
        lastSent = now
    }

    // MARK: - Peer channel

    /// A channel to the peer is up (a backup connected to us, or we connected to our peer).
    public func peerUp(now: Nanos, _ a: inout [Action]) {
        peerConnected = true
        decoder = ChannelDecoder()
        lastHeard = now
        if role == .backup && mode == .waitingForPeer {
            send(.hello(.init(node: config.nodeName, role: "backup", configDigest: configDigest,
                              appliedIndex: replica.appliedIndex, epoch: epoch)), now: now, &a)
        }
    }

    /// The channel closed or failed.
    /// The channel closed or failed. `peerClosed`: the peer's kernel ended the
    /// connection (FIN or RST), which on the direct log link means the peer
    /// process died or closed the channel itself, and it closes the channel
    /// only on its way to claiming an epoch: it emits nothing more in this
    /// epoch, so a backup may take over at once. Otherwise (a local error, a
    /// channel that may be half open) the peer may still be live under its
    /// leases, and the backup waits out the failure timeout first.
    public func peerDown(reason: String, peerClosed: Bool = false, now: Nanos, _ a: inout [Action]) {
        guard peerConnected else { return }
        peerConnected = false
        switch mode {
        case .backup where !peerClosed && inSync && !diverged && since(lastHeard, now) < config.failoverTimeout:
            // The primary may still be running (a reset seen first here, a
            // half-open channel) and, by its leases, emitting until
            // failoverTimeout after we last heard from it: take over only then
            // (tick), so that two nodes never emit at the same time.
            takeoverAt = lastHeard + config.failoverTimeout
            a.append(.log(.warning, "log channel closed (\(reason)); taking over in \(Double(config.failoverTimeout - since(lastHeard, now)) / 1e6) ms"))
        case .protected, .backup, .handingOver:
            peerFailed("log channel closed: \(reason)", now: now, &a)
        case .syncing:
            dropJoiningBackup("channel closed: \(reason)", &a)
        case .joining:
            snap = nil
            mode = .waitingForPeer
            a.append(.log(.warning, "state transfer interrupted (\(reason)); will retry joining"))
        case .waitingForPeer where role == .backup:
            a.append(.log(.warning, "connection to primary lost before joining: \(reason)"))
        default:
            a.append(.log(.info, "peer channel closed: \(reason)"))
        }
    }

    public func peerBytes(_ bytes: ArraySlice<UInt8>, now: Nanos, _ a: inout [Action]) {
        guard peerConnected else { return }
        lastHeard = now
        decoder.feed(bytes)
        while peerConnected {
            let m: ChannelMessage?
            do { m = try decoder.next() } catch {
                a.append(.log(.error, "rejecting peer: \(error)"))
                a.append(.closePeer(reason: "\(error)"))
                peerDown(reason: "\(error)", now: now, &a)
                return
            }
            guard let m else { break }
            handle(m, now: now, &a)
        }
    }

    func refuse(_ node: String, _ reason: String, now: Nanos, _ a: inout [Action]) {
        a.append(.log(.warning, "refusing backup \(node): \(reason)"))
        send(.reject(reason: reason), now: now, &a)
        a.append(.closePeer(reason: "refused"))
        peerConnected = false
    }

    func handle(_ m: ChannelMessage, now: Nanos, _ a: inout [Action]) {
        switch m {
        case .hello(let h):
            guard role != .backup else { return refuse(h.node, "this node is a backup itself", now: now, &a) }
            guard role != .solo else { return refuse(h.node, "this node runs solo and takes no backup", now: now, &a) }
            guard h.configDigest == configDigest else {
                return refuse(h.node, "appliance configuration differs (MAC, IP, services, ISN key or stack limits must match)", now: now, &a)
            }
            guard h.appliedIndex == 0 else {
                return refuse(h.node, "backup has state (index \(h.appliedIndex)); restart it fresh to join by state transfer", now: now, &a)
            }
            if mode == .waitingForPeer && replica.appliedIndex == 0 {
                send(.welcome(epoch: epoch, snapshot: false), now: now, &a)
                mode = .protected
                a.append(.log(.notice, "backup \(h.node) joined at epoch \(epoch): protected, serving"))
                startGARP(now: now, &a)
            } else if mode == .alone {
                startStateTransfer(to: h.node, now: now, &a)
            } else {
                refuse(h.node, "this primary is \(mode) and cannot take a backup now", now: now, &a)
            }
        case .welcome(let e, let withSnapshot):
            if role == .backup && mode == .backup && !withSnapshot {
                inSync = true  // the joining primary caught up with us: protected
                a.append(.log(.notice, "the primary confirmed this backup is in sync at epoch \(e)"))
                return
            }
            guard role == .backup, mode == .waitingForPeer else { return }
            epoch = e
            inSync = !withSnapshot
            if withSnapshot {
                mode = .joining
                a.append(.log(.notice, "joining primary at epoch \(e) by state transfer"))
            } else {
                mode = .backup
                a.append(.log(.notice, "joined primary as backup at epoch \(e)"))
            }
        case .reject(let r):
            guard role == .backup else { return }
            mode = .stopped
            a.append(.exit(code: 3, reason: "primary refused this backup: \(r)"))
        case .snapshotBegin(let index, let e, let total, let digest):
            guard mode == .joining else { return }
            snap = (index, e, total, digest, [])
            snap!.bytes.reserveCapacity(total)
        case .snapshotChunk(let offset, let data, let checksum):
            guard mode == .joining, snap != nil else { return }
            guard offset == UInt64(snap!.bytes.count), snap!.bytes.count + data.count <= snap!.total,
                  SipHash24.hash(k0: offset, k1: 0x736e_6170, data) == checksum else {
                return snapshotFailed("chunk at offset \(offset) failed its checksum or is out of place", now: now, &a)
            }
            snap!.bytes += data
        case .snapshotEnd:
            guard mode == .joining, let s = snap else { return }
            guard s.bytes.count == s.total else { return snapshotFailed("snapshot ended after \(s.bytes.count) of \(s.total) bytes", now: now, &a) }
            do { try replica.restore(s.bytes) } catch {
                return snapshotFailed("snapshot rejected: \(error)", now: now, &a)
            }
            guard replica.appliedIndex == s.index, replica.digest == s.digest else {
                return snapshotFailed("restored state does not match the primary's digest", now: now, &a)
            }
            snap = nil
            epoch = max(epoch, s.epoch)
            mode = .backup
            ackDue = true
            a.append(.log(.notice, "restored snapshot at log index \(s.index) (\(s.total) bytes, digest \(hex(s.digest))); following the primary"))
        case .entries(let es):
            guard mode == .backup else { return }
            for e in es {
                var out: [[UInt8]] = []
                do { try replica.apply(e, out: &out) } catch {
                    fatal("log from primary is inconsistent: \(error)", &a); return
                }
                epoch = max(epoch, e.epoch)
                noteCheckpoint(e)
                a.append(.applied(e, outputs: out))
                for f in out { a.append(.shadow(OutputFrame(frame: f, index: e.index, time: e.time))) }
                if e.kind == .handover { handoverPending = true }
            }
            ackDue = true
            if handoverPending { takeHandover(now: now, &a) }
        case .ack(let i):
            guard streams else { return }
            acknowledge(i, now: now, &a)
        case .digest(let i, let v):
            guard mode == .backup else { return }
            digestChecks += 1
            if i == replica.appliedIndex {
                let mine = replica.digest
                if mine != v {
                    diverged = true
                    divergences += 1
                    a.append(.log(.error, "DIVERGENCE at index \(i): primary digest \(hex(v)), backup \(hex(mine)); this backup will refuse to go live"))
                }
            } else {
                a.append(.log(.warning, "digest for index \(i) arrived at index \(replica.appliedIndex); not compared"))
            }
        case .forward(let f):
            if mode == .alone || mode == .protected || mode == .syncing { tapFrame(f, now: now, &a) }
        case .heartbeat:
            break
        }
    }

    func shouldForward(_ f: [UInt8], now: Nanos) -> Bool {
        guard mode == Mode.backup, peerConnected, now < forwardUntil, f.count >= 14 else { return false }
        let unicastToUs: Bool = MACAddress(bytes: f, at: 0) == replica.stack.config.mac
        guard unicastToUs else { return false }
        return replica.stack.classify(f) == FrameDisposition.accept
    }

    func noteCheckpoint(_ e: LogEntry) {
        guard config.checkpointEvery > 0,
              e.index % config.checkpointEvery == 0 || e.kind == .goLive || e.kind == .handover else { return }
        checkpoints.append((e.index, replica.digest))
    }

    /// The digest taken right after entry `index` was applied, if one was due.
    public func takeCheckpoint(index: UInt64) -> UInt64? {
        while let c = checkpoints.first, c.index < index { _ = checkpoints.popFirst() }
        guard let c = checkpoints.first, c.index == index else { return nil }
        _ = checkpoints.popFirst()
        return c.digest
    }

    func acknowledge(_ index: UInt64, now: Nanos, _ a: inout [Action]) {
        if index > ackedIndex {
            ackedIndex = min(index, replica.appliedIndex)
            var loggedAt: Nanos? = nil
            while let u = unacked.first, u.index <= ackedIndex {
                _ = unacked.popFirst()
                unackedBytes -= u.bytes
                loggedAt = u.at
            }
            // An ack is a lease: the backup received the entry no earlier than we
            // logged it, so it cannot take over (by silence) before that time plus
            // failoverTimeout. A later ack (it sat in our socket buffer while this
            // process was paused, or was delayed) may come from a backup that is
            // live by now: releasing would put output on the wire after it.
            if protectsOutput, let t = loggedAt, since(t, now) >= config.failoverTimeout - config.failoverTimeout / 64 {
                peerFailed("acknowledgement of entry \(ackedIndex) arrived \(Double(since(t, now)) / 1e6) ms after it was logged", now: now, &a)
                return
            }
            // The output rule: release only what the acknowledged entries produced.
            while let h = held.first, h.index <= ackedIndex {
                _ = held.popFirst()
                release(h, &a)
                if case .crash = a.last { return }
            }
        }
        if mode == .syncing && index >= replica.appliedIndex {
            mode = .protected
            lastDigestAt = now
            // Tell the backup: from now on it may take over (it holds every
            // entry whose output was released while syncing).
            send(.welcome(epoch: epoch, snapshot: false), now: now, &a)
            garpUntil = min(garpUntil, now + config.failoverTimeout - config.failoverTimeout / 64)
            a.append(.log(.notice, "backup caught up at log index \(ackedIndex): protected again (epoch \(epoch))"))
        }
        if mode == .handingOver { tryHandover(now: now, &a) }
    }

    // MARK: - Join by state transfer (leader side)

    /// Takes a snapshot between two entries and streams it in checksummed
    /// chunks; every later entry follows it on the same channel.
    func startStateTransfer(to node: String, now: Nanos, _ a: inout [Action]) {
        send(.welcome(epoch: epoch, snapshot: true), now: now, &a)
        let bytes = replica.snapshot()
        let index = replica.appliedIndex
        send(.snapshotBegin(index: index, epoch: epoch, totalBytes: bytes.count, digest: Replica.digest(ofSnapshot: bytes)), now: now, &a)
        snapshotsSent += 1
        let corrupt = config.fault.map { $0.point == .corruptSnapshot && $0.count == snapshotsSent } ?? false
        var offset = 0
        let step = max(1024, config.snapshotChunkBytes)
        while offset < bytes.count || offset == 0 {
            let end = min(bytes.count, offset + step)
            var chunk = Array(bytes[offset..<end])
            let sum = SipHash24.hash(k0: UInt64(offset), k1: 0x736e_6170, chunk)
            if corrupt && offset == 0 && !chunk.isEmpty {
                chunk[chunk.count / 2] ^= 0x40
                a.append(.log(.warning, "fault hook \(config.fault!): corrupting the first snapshot chunk"))
            }
            send(.snapshotChunk(offset: UInt64(offset), data: chunk, checksum: sum), now: now, &a)
            offset = end
            if bytes.isEmpty { break }
        }
        send(.snapshotEnd, now: now, &a)
        a.append(.snapshotSent(index: index, bytes: bytes.count))
        mode = .syncing
        ackedIndex = index
        unacked.removeAll(); unackedBytes = 0
        joinsServed += 1
        a.append(.log(.notice, "backup \(node) joining: snapshot at log index \(index) (\(bytes.count) bytes) sent; serving alone until it catches up"))
    }

    func dropJoiningBackup(_ why: String, _ a: inout [Action]) {
        mode = .alone
        unacked.removeAll(); unackedBytes = 0
        sendBatch.removeAll()
        a.append(.log(.warning, "joining backup lost (\(why)); serving alone"))
    }

    func snapshotFailed(_ why: String, now: Nanos, _ a: inout [Action]) {
        snap = nil
        mode = .waitingForPeer
        a.append(.log(.error, "state transfer failed: \(why); closing the channel and retrying the join"))
        a.append(.closePeer(reason: "state transfer failed"))
        peerConnected = false
    }

    // MARK: - Planned switchover

    /// Operator request: hand the primary role to the in-sync backup. Returns
    /// an error message when the pair cannot switch now.
    public func requestSwitchover(now: Nanos, _ a: inout [Action]) -> String? {
        guard role == .primary, mode == .protected else {
            return "switchover needs a protected primary (this node is \(role), \(mode))"
        }
        mode = .handingOver
        a.append(.log(.notice, "switchover requested: input paused until the backup has acknowledged index \(replica.appliedIndex)"))
        flush(now: now, &a)
        tryHandover(now: now, &a)
        return nil
    }

    func tryHandover(now: Nanos, _ a: inout [Action]) {
        guard mode == .handingOver, held.isEmpty, ackedIndex == replica.appliedIndex else { return }
        let e = LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now), kind: .handover)
        append(e, now: now, &a)
        flush(now: now, &a)
        role = .backup
        mode = .backup
        inSync = true
        forwardUntil = now + config.failoverTimeout
        unacked.removeAll(); unackedBytes = 0
        garpLeft = 0
        switchovers += 1
        a.append(.log(.notice, "handed over at log index \(e.index) (epoch \(epoch)); now following as backup"))
    }

    /// The backup applied a handover entry: claim the next epoch and lead.
    func takeHandover(now: Nanos, _ a: inout [Action]) {
        handoverPending = false
        guard mode == .backup else { return }
        flush(now: now, &a)  // acknowledge the handover entry before leading
        mode = .claiming(epoch: epoch + 1)
        a.append(.log(.notice, "handover received at log index \(replica.appliedIndex): claiming epoch \(epoch + 1)"))
        claim(epoch + 1, now: now, &a)
    }

    // MARK: - Failure handling and takeover

    func peerFailed(_ why: String, now: Nanos, _ a: inout [Action]) {
        a.append(.log(.warning, "peer failed: \(why)"))
        if peerConnected { a.append(.closePeer(reason: why)); peerConnected = false }
        switch mode {
        case .backup:
            if diverged {
                mode = .stopped
                a.append(.exit(code: 4, reason: "primary failed but this backup's state diverged; refusing to go live"))
                return
            }
            if !inSync {
                // Joined by state transfer and the primary never said it caught
                // up: it was still releasing output we may not hold, and it goes
                // on alone without claiming. Taking over here would be a split
                // brain; our state is partial, so only a fresh join can follow.
                mode = .stopped
                a.append(.exit(code: 3, reason: "primary lost before this backup caught up (join incomplete); restart it to join again"))
                return
            }
            mode = .claiming(epoch: epoch + 1)
            a.append(.log(.notice, "claiming epoch \(epoch + 1) to take over at log index \(replica.appliedIndex)"))
            claim(epoch + 1, now: now, &a)
        case .protected, .handingOver:
            mode = .claiming(epoch: epoch + 1)
            a.append(.log(.notice, "claiming epoch \(epoch + 1) to continue without backup (\(held.count) frames held)"))
            claim(epoch + 1, now: now, &a)
        case .syncing:
            dropJoiningBackup(why, &a)
        case .joining:
            snapshotFailed("primary went silent during state transfer", now: now, &a)
        default:
            break
        }
    }

    func claim(_ e: UInt64, now: Nanos, _ a: inout [Action]) {
        if config.sabotage.contains(.skipArbiter) {
            arbiterAnswered(epoch: e, won: true, detail: "SABOTAGE: arbiter skipped", now: now, &a)
        } else {
            a.append(.claimEpoch(e))
        }
    }

    /// The arbiter's answer to `claimEpoch`.
    public func arbiterAnswered(epoch claimed: UInt64, won: Bool, detail: String, now: Nanos, _ a: inout [Action]) {
        guard case .claiming(let e) = mode, e == claimed else { return }
        guard won else {
            mode = .stopped
            let n = held.count
            held.removeAll()
            a.append(.exit(code: 2, reason: "lost epoch \(claimed) to another node (\(detail)); \(n) held frames discarded, emitting nothing"))
            return
        }
        epoch = claimed
        if role == .primary && claimed == 1 && replica.appliedIndex == 0 {
            if config.startAlone {
                mode = .alone
                a.append(.log(.notice, "claimed epoch 1; serving alone until a backup joins"))
                startGARP(now: now, &a)
            } else {
                mode = .waitingForPeer
                a.append(.log(.notice, "claimed epoch 1; waiting for the backup before serving"))
            }
            return
        }
        clock.resume(lastLogged: replica.lastTime, localNow: now)
        if role == .backup && peerConnected {
            // Planned switchover: the old primary follows us on the same channel.
            role = .primary
            mode = .protected
            ackedIndex = replica.appliedIndex
            lastDigestAt = now
            append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                            kind: .goLive, payload: [0]), now: now, &a)
            flush(now: now, &a)
            switchovers += 1
            a.append(.log(.notice, "PRIMARY in epoch \(epoch) at log index \(replica.appliedIndex) by planned switchover; protected"))
            startGARP(now: now, &a)
        } else if role == .backup {
            // Takeover: first entry of the new epoch retransmits unacknowledged data at once.
            role = .primary
            mode = .alone
            takeovers += 1
            append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                            kind: .goLive, payload: [1]), now: now, &a)
            a.append(.log(.notice, "LIVE in epoch \(epoch) at log index \(replica.appliedIndex) (took over from the primary)"))
            startGARP(now: now, &a)
        } else {
            // The primary lost its backup: release what was held and go on alone.
            mode = .alone
            takeovers += 1
            var n = 0
            while let h = held.popFirst() { release(h, &a); n += 1 }
            unacked.removeAll(); unackedBytes = 0
            a.append(.log(.notice, "alone in epoch \(epoch): backup lost, \(n) held frames released"))
        }
    }

    func startGARP(now: Nanos, _ a: inout [Action]) {
        garpLeft = config.sabotage.contains(.skipGARP) ? 0 : config.garpCount
        if garpLeft > 0 {
            a.append(.log(.notice, "gratuitous ARP: \(garpLeft) x \(replica.stack.config.ip) is-at \(replica.stack.config.mac), every \(config.garpInterval / nsPerMs) ms (epoch \(epoch))"))
        }
        garpNext = now
        garpUntil = protectsOutput ? now + config.failoverTimeout - config.failoverTimeout / 64 : .max
        tick(now: now, &a)
    }

    func fatal(_ why: String, _ a: inout [Action]) {
        mode = .stopped
        a.append(.exit(code: 5, reason: why))
    }
}
