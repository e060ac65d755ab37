import FTWire

// What keeps TCP within bounds on real networks: path MTU discovery (RFC
// 1191, validated as RFC 5927 asks), PAWS (RFC 7323 section 5), keepalive
// and the idle limit (RFC 1122 4.2.3.6), the zero-window limit (RFC 6429)
// and the per-source connection limit.
extension Stack {
    // MARK: Path MTU (RFC 1191)

    /// An ICMP destination unreachable for one of our datagrams. Only
    /// "fragmentation needed" is used, and only when it quotes a TCP segment
    /// of a synchronized connection whose sequence number lies in SND.UNA ..
    /// SND.MAX (RFC 5927 section 4.1: an off-path host cannot guess it). The
    /// connection's MSS drops to the reported MTU less 40 (never below
    /// `minPathMTU`), and everything in flight is sent again in the smaller
    /// segments at once, without reducing cwnd (the network did not drop it
    /// for congestion; Linux's tcp_simple_retransmit). Like every frame,
    /// the ICMP message reached the stack through the log.
    func icmpError(_ f: [UInt8], ip: IPv4Header, now: Nanos, out: inout Frames) {
        guard let e = try? ICMPError.parse(f, ip: ip) else { counters.malformed += 1; return }
        guard e.isFragmentationNeeded, e.quotedProto == IPProtocol.tcp, e.quotedSrc == config.ip else {
            counters.icmpErrorsIgnored += 1; return
        }
        let key = ConnKey(remote: Endpoint(ip: e.quotedDst, port: e.quotedDstPort), localPort: e.quotedSrcPort)
        guard let t = conns[key], t.state != .synReceived, t.state != .timeWait,
              seqGE(e.quotedSeq, t.sndUna), seqLT(e.quotedSeq, t.sndMax) else {
            counters.icmpErrorsIgnored += 1; return
        }
        let reported = e.nextHopMTU != 0 ? Int(e.nextHopMTU) : ICMPError.plateau(below: Int(e.quotedTotalLength))
        let mss = max(reported, config.minPathMTU) - 40
        guard mss < t.sendMSS else { counters.icmpErrorsIgnored += 1; return }
        counters.tcpPMTUUpdates += 1
        t.sendMSS = mss
        guard t.outstanding > 0 else { return }
        // Resend from SND.UNA (skipping SACKed ranges) in segments that fit.
        t.sndNxt = t.sndUna
        t.inRecovery = false
        t.dupAcks = 0
        t.tlpHigh = nil
        t.tlpDeadline = nil
        t.highRxt = t.sndUna
        t.rttSeq = nil  // Karn: the resent data gives no sample
        output(t, now: now, out: &out)
        if t.rtoDeadline == nil { t.rtoDeadline = now + t.rto }
    }

    // MARK: PAWS (RFC 7323 section 5.3)

    /// TS.Recent stays valid for 24 days of idleness (RFC 7323 5.5).
    static let tsRecentLifetime: Nanos = 24 * 86_400_000 * nsPerMs

    /// R1: a segment (not RST) whose TSval is older than TS.Recent is a
    /// stale duplicate from a previous wrap of the sequence space: it is
    /// not acceptable, and is answered with an ACK.
    func failsPAWS(_ t: TCB, _ seg: TCPHeader, now: Nanos) -> Bool {
        guard t.tsOK, t.state != .synReceived, !seg.flags.contains(.rst), let ts = seg.timestamps,
              seqLT(ts.value, t.tsRecent) else { return false }
        if now - t.tsRecentTime > Self.tsRecentLifetime {
            t.tsRecent = ts.value  // TS.Recent too old to compare with
            t.tsRecentTime = now
            return false
        }
        return true
    }

    // MARK: Keepalive and idle limit (RFC 1122 4.2.3.6)

    /// The peer sent an acceptable segment: idle timers start over.
    func heard(_ t: TCB, now: Nanos) {
        t.lastHeard = now
        t.keepaliveSent = 0
        armIdleTimer(t)
    }

    func armIdleTimer(_ t: TCB) {
        var d: Nanos? = nil
        if config.idleTimeout > 0 { d = t.lastHeard + config.idleTimeout }
        if config.keepaliveIdle > 0 {
            let k = t.lastHeard + config.keepaliveIdle + Nanos(t.keepaliveSent) * config.keepaliveInterval
            d = min(d ?? k, k)
        }
        t.idleDeadline = d
    }

    /// Runs the idle limit and keepalive; returns false if the connection is gone.
    func fireIdleTimer(_ t: TCB, now: Nanos, out: inout Frames) -> Bool {
        t.idleDeadline = nil
        guard t.state != .synReceived, t.state != .timeWait else { return true }
        if config.idleTimeout > 0 && now >= t.lastHeard + config.idleTimeout {
            counters.tcpIdleResets += 1
            sendReset(seq: t.sndMax, t: t, out: &out)
            remove(t)
            return false
        }
        if config.keepaliveIdle > 0 && now >= t.lastHeard + config.keepaliveIdle
            + Nanos(t.keepaliveSent) * config.keepaliveInterval {
            if t.outstanding > 0 || t.unsentBytes > 0 || (t.state != .established && t.state != .closeWait) {
                // Data in flight has its own timers; look again an interval later.
                t.idleDeadline = now + config.keepaliveInterval
                return true
            }
            if t.keepaliveSent >= config.keepaliveProbes {
                counters.tcpKeepaliveResets += 1
                sendReset(seq: t.sndMax, t: t, out: &out)
                remove(t)
                return false
            }
            // SND.UNA - 1 with no data: the peer must answer with an ACK.
            counters.tcpKeepaliveProbes += 1
            emitSegment(t, seq: t.sndUna &- 1, flags: [.ack], payload: [], out: &out)
            t.keepaliveSent += 1
        }
        armIdleTimer(t)
        return true
    }

    // MARK: Zero window (RFC 6429)

    /// The persist timer fired with the peer's window still closed: past
    /// `zeroWindowTimeout` since it closed, the connection is reset.
    func zeroWindowExpired(_ t: TCB, now: Nanos) -> Bool {
        guard config.zeroWindowTimeout > 0, let since = t.zeroWindowSince else { return false }
        return now - since >= config.zeroWindowTimeout
    }

    // MARK: Per-source limit

    /// Whether `source` already holds `maxConnectionsPerSource` connections.
    func sourceAtLimit(_ source: IPv4Address) -> Bool {
        guard config.maxConnectionsPerSource > 0 else { return false }
        var n = 0
        for t in conns.values where t.key.remote.ip == source && t.state != .timeWait { n += 1 }
        return n >= config.maxConnectionsPerSource
    }
}

extension Stack {
    /// Whether a connection (any state) exists for this remote endpoint and
    /// local port. Read-only: the SYN admission (FTReplication's
    /// `SynAdmission`) uses it to learn which sources are real.
    public func hasConnection(remoteIP: UInt32, remotePort: UInt16, localPort: UInt16) -> Bool {
        conns[ConnKey(remote: Endpoint(ip: IPv4Address(raw: remoteIP), port: remotePort), localPort: localPort)] != nil
    }
}
