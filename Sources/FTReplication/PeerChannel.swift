import FTStack
import FTWire

// The peer channel: connect, close, and every message, dispatched to the
// rule it concerns.
extension ReplicationCore {
    /// A channel to the peer is up (a backup connected to us, or we connected to our peer).
    public func peerUp(now: Nanos, _ a: inout [Action]) {
        peerConnected = true
        helloTaken = false
        pendingHello = nil
        decoder = ChannelDecoder()
        lastHeard = now
        if role == .backup && mode == .waitingForPeer {
            send(.hello(.init(node: config.nodeName, role: "backup", configDigest: configDigest,
                              appliedIndex: replica.appliedIndex, epoch: epoch, arbiter: config.arbiterIdentity,
                              heartbeat: config.heartbeat, failoverTimeout: config.failoverTimeout)), now: now, &a)
        }
    }

    /// The channel closed or failed. `peerClosed`: the peer process ended the
    /// connection (FIN; a reset is not proof, see PeerProbe.swift), which on
    /// the direct log link means it died or closed the channel itself, and it closes the channel
    /// only on its way to claiming an epoch: it emits nothing more in this
    /// epoch, so a backup may take over at once. Otherwise (a local error, a
    /// channel that may be half open) the peer may still be live under its
    /// leases, and the backup waits out the failure timeout first.
    public func peerDown(reason: String, peerClosed: Bool = false, now: Nanos, _ a: inout [Action]) {
        guard peerConnected else { return }
        applyReceived(now: now, &a)
        peerConnected = false
        pendingHello = nil
        switch mode {
        case .backup where !peerClosed && inSync && !diverged && since(lastHeard, now) < config.failoverTimeout:
            // The primary may still be running (a reset seen first here, a
            // half-open channel) and, by its leases, emitting until
            // failoverTimeout after we last heard from it: take over only then
            // (tick), so that two nodes never emit at the same time.
            state = .backup(takeoverAt: lastHeard + config.failoverTimeout)
            a.append(.log(.warning, "log channel closed (\(reason)); taking over in \(Double(config.failoverTimeout - since(lastHeard, now)) / 1e6) ms"))
        case .protected, .backup, .handingOver:
            peerFailed("log channel closed: \(reason)", now: now, &a)
        case .syncing:
            dropJoiningBackup("channel closed: \(reason)", &a)
        case .joining:
            state = .waitingForPeer
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
        // Every other message is handled on top of the entries before it.
        if !received.isEmpty, !m.isEntries { applyReceived(now: now, &a) }
        switch m {
        case .hello(let h):
            // One hello per channel. A second one (a confused or hostile peer)
            // is ignored: refusing it would drop the channel while a
            // protected primary keeps holding output for this backup.
            guard !helloTaken else {
                a.append(.log(.warning, "ignoring a second hello from \(h.node) on the same log channel"))
                return
            }
            helloTaken = true
            if case .claiming(let e) = state, e == config.firstEpoch, role == .primary, replica.appliedIndex == 0 {
                // A fresh primary still waiting for epoch 1 (the claim runs
                // beside the loop): answer once the arbiter has.
                pendingHello = h
                a.append(.log(.info, "backup \(h.node) connected while epoch \(config.firstEpoch) is being claimed; answering once the arbiter has"))
                return
            }
            if role == .backup && mode == .waitingForPeer {
                // Both nodes wait for a primary (Startup.swift): not an error, quietly.
                a.append(.log(.debug, "peer \(h.node) is waiting to join too: no primary yet"))
                send(.reject(reason: TransientRefusal.notPrimary), now: now, &a)
                a.append(.closePeer(reason: "no primary yet"))
                peerConnected = false
                return
            }
            guard role != .backup else { return refuse(h.node, TransientRefusal.notPrimary, now: now, &a) }
            guard role != .solo else { return refuse(h.node, "this node runs solo and takes no backup", now: now, &a) }
            guard h.configDigest == configDigest else {
                return refuse(h.node, "appliance configuration differs (MAC, IP, services, ISN key or stack limits must match)", now: now, &a)
            }
            guard h.arbiter == config.arbiterIdentity else {
                return refuse(h.node, "the two nodes use different arbiter stores (this primary's is '\(config.arbiterIdentity)', "
                              + "the backup's '\(h.arbiter)'): both could win the same epoch; give both the same --arbiter", now: now, &a)
            }
            guard h.heartbeat == config.heartbeat, h.failoverTimeout == config.failoverTimeout else {
                return refuse(h.node, "timing differs (this primary: --heartbeat-ms \(config.heartbeat / nsPerMs), "
                              + "--failover-timeout-ms \(config.failoverTimeout / nsPerMs); the backup: \(h.heartbeat / nsPerMs), "
                              + "\(h.failoverTimeout / nsPerMs)); both nodes need the same values", now: now, &a)
            }
            guard h.appliedIndex == 0 else {
                return refuse(h.node, "backup has state (index \(h.appliedIndex)); restart it fresh to join by state transfer", now: now, &a)
            }
            if mode == .waitingForPeer && replica.appliedIndex == 0 {
                backupDiverged = false
                send(.welcome(epoch: epoch, snapshot: false), now: now, &a)
                announceHealth(now: now, &a)
                state = .protected
                a.append(.log(.notice, "backup \(h.node) joined at epoch \(epoch): protected, serving"))
                startGARP(now: now, &a)
                evaluateHealth(now: now, &a)
            } else if mode == .alone {
                startStateTransfer(to: h.node, now: now, &a)
                announceHealth(now: now, &a)
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
            announceHealth(now: now, &a)
            if withSnapshot {
                state = .joining(nil)
                a.append(.log(.notice, "joining primary at epoch \(e) by state transfer"))
            } else {
                state = .backup(takeoverAt: nil)
                a.append(.log(.notice, "joined primary as backup at epoch \(e)"))
            }
        case .reject(let r):
            guard role == .backup else { return }
            if mode == .waitingForPeer && TransientRefusal.all.contains(r) {
                // The peer is no primary (yet): keep retrying, do not exit.
                a.append(.log(.debug, "peer cannot take this backup now (\(r)); retrying"))
                a.append(.closePeer(reason: "peer refused for now: \(r)"))
                peerConnected = false
                return
            }
            state = .stopped
            a.append(.exit(code: 3, reason: "primary refused this backup: \(r)"))
        case .snapshotBegin(let index, let e, let total, let digest):
            snapshotBegan(index: index, epoch: e, total: total, digest: digest)
        case .snapshotChunk(let offset, let data, let checksum):
            snapshotChunk(offset: offset, data: data, checksum: checksum, now: now, &a)
        case .snapshotEnd:
            snapshotEnded(now: now, &a)
        case .entries(let es):
            guard mode == .backup, !es.isEmpty else { return }
            // Held, not applied yet: the driver writes the acknowledgement
            // first (`takeReceiptAck`), then applies (`applyReceived`).
            received += es
            ackDue = true
        case .ack(let i):
            guard streams else { return }
            acknowledge(i, now: now, &a)
        case .digest(let i, let v):
            guard mode == .backup else { return }
            digestChecks += 1
            if i == replica.appliedIndex {
                let mine = replica.digest
                if mine != v {
                    if !diverged { send(.diverged(index: i), now: now, &a) }  // the primary reports itself unprotected
                    diverged = true
                    divergences += 1
                    a.append(.log(.error, "DIVERGENCE at index \(i): primary digest \(hex(v)), backup \(hex(mine)); this backup will refuse to go live"))
                }
            } else {
                a.append(.log(.warning, "digest for index \(i) arrived at index \(replica.appliedIndex); not compared"))
            }
        case .forward(let f):
            if takesInput { tapFrame(f, now: now, &a) }
        case .diverged(let i):
            guard role == .primary, !backupDiverged else { return }
            backupDiverged = true
            a.append(.log(.error, "the backup reports its state diverged at index \(i): it will refuse to take over, so this primary is NOT protected; restart the backup fresh to rejoin"))
        case .heartbeat:
            break
        case .health(let h, let reason):
            peerHealth(h, reason: reason, now: now, &a)
        }
    }
}

// Acknowledging on receipt. The output rule asks that the backup hold an
// entry before the primary releases what the entry produced, not that it
// applied it: an entry this process holds is applied before anything else
// it does (the next message, a channel end, a takeover), and if the process
// dies in between, it dies with or without the apply. So a backup
// acknowledges a batch as soon as it decoded it, and applies it after the
// acknowledgement is on its way; the primary's hold no longer includes the
// backup's apply time (measured: the backup applies a 32-entry batch in
// about as long as the primary took to log it).
extension ReplicationCore {
    /// Entries received and not yet applied (the backup acknowledged them or is about to).
    public var unappliedEntries: Int { received.count }

    /// The acknowledgement of every entry received so far, encoded, if one is
    /// owed and entries wait to be applied; the driver writes it before
    /// `applyReceived`. Nil otherwise (`flush` sends the usual one).
    public func takeReceiptAck(now: Nanos) -> [UInt8]? {
        guard ackDue, let last = received.last, mode == .backup else { return nil }
        ackDue = false
        var bytes: [UInt8] = []
        ChannelCodec.encode(.ack(index: last.index), into: &bytes)
        lastSent = now
        return bytes
    }

    /// Applies the entries received, in order (a follower's replica follows the log).
    public func applyReceived(now: Nanos, _ a: inout [Action]) {
        guard !received.isEmpty else { return }
        let es = received
        received.removeAll(keepingCapacity: true)
        guard mode == .backup else { return }
        var handover = false
        for e in es {
            var out = Frames()
            do { try replica.apply(e, out: &out) } catch {
                fatal("log from primary is inconsistent: \(error)", &a); return
            }
            epoch = max(epoch, e.epoch)
            noteCheckpoint(e)
            a.append(.applied(e, outputs: out.frames))
            for o in OutputFrame.of(out, index: e.index, time: e.time) { a.append(.shadow(o)) }
            if e.kind == .handover { handover = true }
            if e.kind.isFrame { standby.wasLogged(e.payload, now: now) }
        }
        if handover { takeHandover(now: now, &a) }
    }
}

extension ChannelMessage {
    var isEntries: Bool { if case .entries = self { return true } else { return false } }
}
