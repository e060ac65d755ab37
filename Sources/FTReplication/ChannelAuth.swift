import FTStack
import FTWire

// The driver's side of the channel's security (SecureChannel.swift does the
// cryptography): which connection may become the log channel, and when the
// core hears of it.
//
// * A node that connects authenticates on its channel before the core sees
//   it: `core.peerUp` only once the peer proved it holds the pair's secret.
// * A node that accepts keeps each new connection apart (`pendingPeers`,
//   at most `maxPendingPeers`, each for at most `handshakeTimeout`) until it
//   authenticated. Only then may it become the channel, so a stranger can
//   neither hold nor displace the peer slot.
// * From then on the core's messages travel sealed, and what the core reads
//   is only what opened: a forged, replayed or reordered record closes the
//   channel, as a lost channel does.

/// An accepted connection that has not authenticated yet.
struct PendingPeer {
    let connection: Int
    var secure: SecureChannel
    let deadline: Nanos
}

extension NodeDriver {
    /// Who this node says it is in the handshake (its role now).
    var identity: PeerIdentity { PeerIdentity(node: core.config.nodeName, role: core.role.rawValue) }

    /// The earliest time a handshake in progress runs out.
    var handshakeDeadline: Nanos? {
        var d = pendingPeers.map(\.deadline).min()
        if channel == .open && secure?.isEstablished != true { d = min(d ?? channelDeadline, channelDeadline) }
        return d
    }

    /// Accepted connections authenticating, as the platform polls them.
    public var pendingConnections: [Int] { pendingPeers.map(\.connection) }

    /// Closes every handshake that ran out of time.
    func expireHandshakes(_ io: NodeIO) {
        if pendingPeers.contains(where: { $0.deadline <= iterNow }) {
            for p in pendingPeers where p.deadline <= iterNow {
                io.refuse(p.connection, sending: [])
                noteRefusal("a log-channel connection did not authenticate within \(config.handshakeTimeout / nsPerMs) ms; closed it", io)
            }
            pendingPeers.removeAll { $0.deadline <= iterNow }
        }
        if channel == .open && secure?.isEstablished != true && iterNow >= channelDeadline {
            noteRefusal("the peer did not complete authentication within \(config.handshakeTimeout / nsPerMs) ms; closing and retrying", io)
            dropChannel(io)
        }
    }

    /// New connections wait apart until they authenticated.
    func acceptPeer(_ io: NodeIO) {
        for _ in 0..<config.maxPendingPeers {
            guard let c = io.accept() else { return }
            if pendingPeers.count >= config.maxPendingPeers {
                let oldest = pendingPeers.removeFirst()
                io.refuse(oldest.connection, sending: [])
                noteRefusal("more than \(config.maxPendingPeers) log-channel connections authenticating at once; closed the oldest", io)
            }
            var s = SecureChannel(side: .responder, keys: keys, local: identity, nonce: io.randomBytes(SecureChannel.nonceBytes))
            let hello = s.start()
            guard io.writePending(c, hello[...]) == hello.count else {
                io.refuse(c, sending: [])
                continue
            }
            pendingPeers.append(PendingPeer(connection: c, secure: s, deadline: iterNow + config.handshakeTimeout))
            io.log(.debug, "log channel: connection accepted; authenticating it")
        }
    }

    /// Reads every connection that is authenticating; promotes the first
    /// that succeeds to the log channel.
    func servicePending(_ io: NodeIO) {
        var i = 0
        while i < pendingPeers.count {
            if servicePending(at: i, io) { i += 1 } else { pendingPeers.remove(at: i) }
        }
    }

    /// False when the connection left the pending list (closed or promoted).
    func servicePending(at i: Int, _ io: NodeIO) -> Bool {
        let c = pendingPeers[i].connection
        for _ in 0..<4 {
            switch io.readPending(c, max: 4096) {
            case .wouldBlock:
                return true
            case .ended(let end):
                io.log(.debug, "an unauthenticated log-channel connection ended: \(end)")
                io.refuse(c, sending: [])
                return false
            case .data(let bytes):
                var reply: [UInt8] = [], plain: [UInt8] = []
                let done: Bool
                do { done = try pendingPeers[i].secure.receive(bytes, send: &reply, plain: &plain) } catch {
                    let f = error as! ChannelFailure
                    noteRefusal("refused a log-channel connection: \(f.reason)", io)
                    io.refuse(c, sending: f.notice)
                    return false
                }
                if !reply.isEmpty && io.writePending(c, reply[...]) != reply.count {
                    io.log(.debug, "a log-channel connection took only part of a handshake message; closed it")
                    io.refuse(c, sending: [])
                    return false
                }
                if done { promote(pendingPeers[i], plain: plain, io); return false }
            }
        }
        return true
    }

    /// An accepted connection authenticated: it becomes the log channel, if
    /// the slot is free.
    func promote(_ p: PendingPeer, plain: [UInt8], _ io: NodeIO) {
        var s = p.secure
        let who = s.peer.map { "\($0.node) (\($0.role))" } ?? "?"
        if channel != .none {
            // One peer at a time: tell the newcomer why, then close.
            var m: [UInt8] = [], bytes: [UInt8] = []
            ChannelCodec.encode(.reject(reason: TransientRefusal.busy), into: &m)
            s.seal(m, into: &bytes)
            io.refuse(p.connection, sending: bytes)
            io.log(.warning, "refused a second peer connection (from \(who), authenticated)")
            return
        }
        io.adopt(p.connection)
        channel = .open
        secure = s
        out.removeAll(); outHead = 0
        io.log(.info, "peer \(who) connected and authenticated")
        core.peerUp(now: iterNow, &pending)
        if !plain.isEmpty { deliver(plain, io) }
    }

    /// The channel we connected: start authenticating.
    func startHandshake(_ io: NodeIO) {
        var s = SecureChannel(side: .initiator, keys: keys, local: identity, nonce: io.randomBytes(SecureChannel.nonceBytes))
        out.append(contentsOf: s.start())
        secure = s
        channelDeadline = iterNow + config.handshakeTimeout
        io.log(.debug, "connected to the peer; authenticating")
        flushChannel(io)
    }

    /// Bytes read from the channel through its security layer: the plaintext
    /// for the core, or nil when the channel was closed.
    func unseal(_ bytes: ArraySlice<UInt8>, _ io: NodeIO) -> [UInt8]? {
        var reply: [UInt8] = [], plain: [UInt8] = []
        let wasUp = secure!.isEstablished
        let done: Bool
        do { done = try secure!.receive(bytes, send: &reply, plain: &plain) } catch {
            let f = error as! ChannelFailure
            if wasUp {
                io.log(.error, "closing the log channel: \(f.reason)")
                dropChannel(io)
                core.peerDown(reason: f.reason, now: iterNow, &pending)
            } else {
                noteRefusal("log channel: \(f.reason)", io)
                out.append(contentsOf: f.notice)
                flushChannel(io)
                dropChannel(io)
            }
            return nil
        }
        out.append(contentsOf: reply)
        if done {
            let who = secure!.peer.map { "\($0.node) (\($0.role))" } ?? "?"
            io.log(.info, "connected to the peer \(who), authenticated")
            flushChannel(io)
            core.peerUp(now: iterNow, &pending)
        }
        return plain
    }

    /// Authenticated plaintext to the core.
    func deliver(_ plain: [UInt8], _ io: NodeIO) {
        io.willHandleChannelBytes(plain[...])
        let before = pending.count
        core.peerBytes(plain[...], now: iterNow, &pending)
        // A backup acknowledges entries on receipt (PeerChannel.swift): the
        // acknowledgement goes out before they are applied.
        if let ack = core.takeReceiptAck(now: iterNow) {
            if channel == .open && secure?.isEstablished == true { secure!.seal(ack, into: &out); flushChannel(io) }
            core.applyReceived(now: iterNow, &pending)
        }
        io.didHandleChannelBytes(plain[...], actions: pending[before...])
    }

    /// Logs a refused or failed connection at warning level: at most five
    /// per 10 s, the rest at debug level and counted (a stranger retrying
    /// must not flood the log).
    func noteRefusal(_ reason: String, _ io: NodeIO) {
        if iterNow >= refusals.since + 10_000 * nsPerMs {
            if refusals.quiet > 0 {
                io.log(.warning, "\(refusals.quiet) more log-channel connections refused in the last 10 s (logged at debug level)")
            }
            refusals = (iterNow, 0, 0)
        }
        refusals.logged += 1
        if refusals.logged > 5 {
            refusals.quiet += 1
            io.log(.debug, reason)
        } else {
            io.log(.warning, reason)
        }
    }
}
