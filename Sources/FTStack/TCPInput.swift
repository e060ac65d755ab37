import FTWire

/// Server-side TCP per RFC 9293 3.10.7 ("SEGMENT ARRIVES"), with RFC 5961
/// in-window RST/SYN checks, RFC 6528 ISNs, RFC 7323 window scaling.
extension Stack {

    func isn(for key: ConnKey, now: Nanos) -> UInt32 {
        var h = SipHash24(k0: config.isnKey.0, k1: config.isnKey.1)
        h.update(u32: config.ip.raw); h.update(u16: key.localPort)
        h.update(u32: key.remote.ip.raw); h.update(u16: key.remote.port)
        if config.sabotageISNSalt != 0 { h.update(u32: UInt32(truncatingIfNeeded: config.sabotageISNSalt)) }
        // M: a 4-microsecond counter on the log's clock (RFC 6528 section 3).
        return UInt32(truncatingIfNeeded: h.finalize()) &+ UInt32(truncatingIfNeeded: now / 4000)
    }

    func tcpInput(_ f: [UInt8], seg: TCPHeader, ip: IPv4Header, srcMAC: MACAddress, now: Nanos, out: inout Frames) {
        let key = ConnKey(remote: Endpoint(ip: ip.src, port: seg.srcPort), localPort: seg.dstPort)
        if let t = conns[key] {
            if t.state == .timeWait, seg.flags.contains(.syn), !seg.flags.contains(.ack), seqGT(seg.seq, t.rcvNxt) {
                // A new incarnation of the connection (RFC 9293 3.10.7.4 note, as RFC 6191 allows).
                remove(t)
            } else {
                segmentArrives(t, f, seg, srcMAC: srcMAC, now: now, out: &out)
                return
            }
        }
        listenInput(f, seg: seg, key: key, srcMAC: srcMAC, ip: ip, now: now, out: &out)
    }

    // MARK: LISTEN (or CLOSED when no service listens on the port)

    func listenInput(_ f: [UInt8], seg: TCPHeader, key: ConnKey, srcMAC: MACAddress, ip: IPv4Header,
                     now: Nanos, out: inout Frames) {
        if seg.flags.contains(.rst) { return }
        let segLen = UInt32(seg.payload.count) &+ (seg.flags.contains(.syn) ? 1 : 0) &+ (seg.flags.contains(.fin) ? 1 : 0)
        if streamServices[seg.dstPort] != nil, seg.flags.contains(.ack), !seg.flags.contains(.syn),
           let mss = validSynCookie(key: key, seg: seg, now: now) {
            acceptCookie(f, seg: seg, key: key, mss: mss, srcMAC: srcMAC, now: now, out: &out)
            return
        }
        guard streamServices[seg.dstPort] != nil, !seg.flags.contains(.ack) else {
            // CLOSED (no listener), or an ACK in LISTEN: RST (RFC 9293 3.10.7.1, 3.10.7.2 second check).
            sendReset(to: key, mac: srcMAC, seg: seg, segLen: segLen, out: &out)
            return
        }
        // LISTEN, fourth check: any other text or control without SYN is dropped.
        guard seg.flags.contains(.syn) else { return }
        if sourceAtLimit(key.remote.ip) {
            counters.tcpSourceLimited += 1
            sendReset(to: key, mac: srcMAC, seg: seg, segLen: segLen, out: &out)
            return
        }
        // Limits: refuse cleanly with RST when full.
        var live = 0, embryonic = 0
        for t in conns.values where t.state != .timeWait {
            live += 1
            if t.state == .synReceived { embryonic += 1 }
        }
        if live >= config.maxConnections {
            counters.tcpConnectionsRefused += 1
            sendReset(to: key, mac: srcMAC, seg: seg, segLen: segLen, out: &out)
            return
        }
        if embryonic >= config.synBacklog {
            // SYN backlog full (a SYN flood, RFC 4987): answer statelessly
            // with a SYN cookie instead of refusing.
            sendSynCookie(key: key, seg: seg, srcMAC: srcMAC, now: now, out: &out)
            return
        }
        evictTimeWaitIfNeeded()
        let peerMSS = Int(seg.mss ?? 536)
        let t = TCB(id: nextConnID, key: key, peerMAC: srcMAC, iss: isn(for: key, now: now), irs: seg.seq,
                    sendMSS: max(64, min(peerMSS, config.mss)), rto: config.rtoInitial)
        nextConnID += 1
        if let ws = seg.windowScale {
            t.sndScale = min(ws, 14)
            t.rcvScale = config.windowScale
        }
        t.sackOK = seg.sackPermitted
        if let ts = seg.timestamps {
            // RFC 7323 section 3.2: the SYN offered timestamps; we answer with ours.
            t.tsOK = true
            t.tsRecent = ts.value
            t.tsRecentTime = now
        }
        heard(t, now: now)
        t.sndWnd = Int(seg.window)  // the window in a SYN is never scaled
        t.maxSndWnd = t.sndWnd
        t.sndWl1 = seg.seq; t.sndWl2 = 0
        conns[key] = t
        sendSynAck(t, out: &out)
        t.rtoDeadline = now + t.rto
        // Data on a SYN is not accepted before the handshake completes; the
        // peer will retransmit it.
    }

    // MARK: SYN cookies (RFC 4987 section 3.6)

    /// MSS values a cookie can carry (3 bits), as Linux's msstab plus two.
    static let cookieMSS: [UInt16] = [536, 1024, 1200, 1300, 1380, 1440, 1460, 8960]
    /// A cookie's time slot: 64 s of log time. Cookies of the current and
    /// the previous slot are accepted (64 to 128 s).
    static let cookieSlot: Nanos = 64_000 * nsPerMs

    /// ISS = slot (5 bits) | keyed hash (24 bits) | MSS index (3 bits). The
    /// hash covers the config's ISN key (so only we can make one), the
    /// connection, the peer's ISN and the slot; everything comes from the
    /// log (the time is the SYN's log time), so every replica computes the
    /// same cookie and none keeps state for it.
    func synCookie(key: ConnKey, irs: UInt32, slot: UInt64, mssIndex: Int) -> UInt32 {
        var h = SipHash24(k0: config.isnKey.0 ^ 0x7379_6e63_6f6f_6b69, k1: config.isnKey.1)
        h.update(u32: config.ip.raw); h.update(u16: key.localPort)
        h.update(u32: key.remote.ip.raw); h.update(u16: key.remote.port)
        h.update(u32: irs); h.update(u32: UInt32(truncatingIfNeeded: slot)); h.update(u16: UInt16(mssIndex))
        let mac = UInt32(truncatingIfNeeded: h.finalize()) & 0x00FF_FFFF
        return (UInt32(truncatingIfNeeded: slot & 31) << 27) | (mac << 3) | UInt32(mssIndex)
    }

    func sendSynCookie(key: ConnKey, seg: TCPHeader, srcMAC: MACAddress, now: Nanos, out: inout Frames) {
        let peerMSS = seg.mss ?? 536
        let want = min(Int(peerMSS), config.mss)
        let idx = Self.cookieMSS.lastIndex { Int($0) <= want } ?? 0
        let iss = synCookie(key: key, irs: seg.seq, slot: now / Self.cookieSlot, mssIndex: idx)
        counters.tcpSynCookiesSent += 1
        counters.tcpSegmentsOut += 1
        // No window scale, SACK or timestamps: nothing to remember them in.
        out.append(FrameBuilder.tcp(ethSrc: config.mac, ethDst: srcMAC, src: config.ip, dst: key.remote.ip,
                                    srcPort: key.localPort, dstPort: key.remote.port, seq: iss, ack: seg.seq &+ 1,
                                    flags: [.syn, .ack], window: UInt16(min(config.receiveBufferBytes, 65535)),
                                    mss: UInt16(config.mss), ttl: config.ttl, ipID: nextIPID()))
    }

    /// The MSS a cookie ACK carries, if `ack - 1` is our cookie of this or
    /// the previous slot for this connection and the peer's ISN (`seq - 1`).
    func validSynCookie(key: ConnKey, seg: TCPHeader, now: Nanos) -> Int? {
        let c = seg.ack &- 1
        let idx = Int(c & 7)
        let slotNow = now / Self.cookieSlot
        for slot in [slotNow, slotNow &- 1] where slot <= slotNow && UInt32(truncatingIfNeeded: slot & 31) == c >> 27 {
            if synCookie(key: key, irs: seg.seq &- 1, slot: slot, mssIndex: idx) == c {
                return min(Int(Self.cookieMSS[idx]), config.mss)
            }
        }
        return nil
    }

    /// A valid cookie ACK: the connection is created as if its SYN had been
    /// kept, and the ACK (with any data) is processed as in SYN-RECEIVED.
    func acceptCookie(_ f: [UInt8], seg: TCPHeader, key: ConnKey, mss: Int, srcMAC: MACAddress, now: Nanos,
                      out: inout Frames) {
        var live = 0
        for t in conns.values where t.state != .timeWait { live += 1 }
        let limited = sourceAtLimit(key.remote.ip)
        guard live < config.maxConnections, !limited else {
            if limited { counters.tcpSourceLimited += 1 } else { counters.tcpConnectionsRefused += 1 }
            sendReset(to: key, mac: srcMAC, seg: seg, segLen: UInt32(seg.payload.count), out: &out)
            return
        }
        evictTimeWaitIfNeeded()
        counters.tcpSynCookiesAccepted += 1
        let t = TCB(id: nextConnID, key: key, peerMAC: srcMAC, iss: seg.ack &- 1, irs: seg.seq &- 1,
                    sendMSS: max(64, mss), rto: config.rtoInitial)
        nextConnID += 1
        t.sndWnd = Int(seg.window)
        t.maxSndWnd = t.sndWnd
        t.sndWl1 = seg.seq &- 1
        t.lastAckSent = t.rcvNxt
        t.rcvAdvEdge = t.rcvNxt &+ UInt32(min(config.receiveBufferBytes, 65535))
        heard(t, now: now)
        conns[key] = t
        segmentArrives(t, f, seg, srcMAC: srcMAC, now: now, out: &out)
    }

    /// Keeps TIME-WAIT connections bounded: beyond `maxConnections` of them,
    /// the one expiring first (then the smallest key) goes.
    func evictTimeWaitIfNeeded() {
        var tw: [TCB] = []
        for t in conns.values where t.state == .timeWait { tw.append(t) }
        guard tw.count >= config.maxConnections else { return }
        tw.sort { ($0.timeWaitDeadline ?? 0, $0.key) < ($1.timeWaitDeadline ?? 0, $1.key) }
        remove(tw[0])
    }

    // MARK: Synchronized states

    func segmentArrives(_ t: TCB, _ f: [UInt8], _ seg: TCPHeader, srcMAC: MACAddress, now: Nanos, out: inout Frames) {
        var seq = seg.seq
        var payload = seg.payload
        var fin = seg.flags.contains(.fin)
        let syn = seg.flags.contains(.syn)
        let segLen = payload.count + (syn ? 1 : 0) + (fin ? 1 : 0)
        inputTSEcr = seg.flags.contains(.ack) ? seg.timestamps?.echo : nil

        // A retransmitted SYN while we are in SYN-RECEIVED: repeat the SYN-ACK.
        if t.state == .synReceived, syn, !seg.flags.contains(.ack), seg.seq == t.irs {
            sendSynAck(t, out: &out)
            return
        }

        // PAWS (RFC 7323 5.3 R1) comes before the sequence number check.
        if failsPAWS(t, seg, now: now) {
            counters.tcpPAWSDropped += 1
            sendAck(t, out: &out)
            return
        }

        // 1. Sequence number check (RFC 9293 3.10.7.4, first).
        let wnd = receiveWindowForAcceptance(t)
        if !acceptable(t, seq: seq, len: segLen, wnd: wnd) {
            if wnd == 0 && seq == t.rcvNxt && !syn && !seg.flags.contains(.rst) {
                // "If the RCV.WND is zero, no segments will be acceptable, but
                // special allowance should be made to accept valid ACKs": a
                // segment at RCV.NXT (e.g. a one-byte window probe) has its
                // text dropped but its ACK and window processed, and is answered
                // with an ACK.
                payload = payload.lowerBound..<payload.lowerBound
                fin = false
                t.ackNeeded = true
            } else {
                if !seg.flags.contains(.rst) {
                    if t.state == .timeWait, fin { t.timeWaitDeadline = now + 2 * config.msl }
                    sendAck(t, out: &out)
                }
                return
            }
        }

        // RFC 7323 section 4.3 (3): remember the TSval to echo when the
        // segment covers Last.ACK.sent (the one our next ACK acknowledges).
        if t.tsOK, let ts = seg.timestamps, seqLE(seq, t.lastAckSent), !seg.flags.contains(.rst) {
            if seqGE(ts.value, t.tsRecent) || t.state == .synReceived { t.tsRecent = ts.value; t.tsRecentTime = now }
        }

        // 2. RST (RFC 5961 section 3): exact match resets, in-window gets a challenge ACK.
        if seg.flags.contains(.rst) {
            if seq == t.rcvNxt {
                counters.tcpResetsReceived += 1
                remove(t)
            } else {
                counters.tcpChallengeAcks += 1
                sendAck(t, out: &out)
            }
            return
        }

        // 3. SYN in a synchronized state (RFC 5961 section 4): challenge ACK.
        if syn {
            counters.tcpChallengeAcks += 1
            sendAck(t, out: &out)
            return
        }

        // The segment passed the sequence, RST and SYN checks: only now may it
        // move where we send (the peer's MAC can change, e.g. a router
        // failover). Earlier, any LAN host could redirect our ACKs, and with
        // them the exact sequence numbers RFC 5961 keeps from off-path hosts.
        t.peerMAC = srcMAC
        heard(t, now: now)

        // 4. ACK processing.
        guard seg.flags.contains(.ack) else { return }
        let ack = seg.ack
        if t.state == .synReceived {
            guard seqLT(t.sndUna, ack), seqLE(ack, t.sndMax) else {
                sendReset(seq: ack, t: t, out: &out)
                return
            }
            t.state = .established
            counters.tcpConnectionsAccepted += 1
            // RFC 6298 (5.7): if the SYN-ACK timed out and the RTO in use is
            // below 3 s, data transmission starts with an RTO of 3 s.
            let fallback: Nanos = 3000 * nsPerMs
            if t.retries > 0 && config.rtoInitial < fallback { t.rto = min(config.rtoMax, fallback) }
            t.sndWnd = Int(seg.window) << Int(t.sndScale)
            t.maxSndWnd = max(t.maxSndWnd, t.sndWnd)
            t.sndWl1 = seq; t.sndWl2 = ack
            acknowledge(t, ack: ack, now: now)
            var io = StreamIO()
            t.serviceOpened = true
            if let svc = streamServices[t.key.localPort] { svc.opened(t.id, remote: t.key.remote, io: &io) }
            apply(io, t, now: now, out: &out)
            if conns[t.key] !== t { return }
        } else {
            // RFC 5961 section 5: ACK must be within [SND.UNA - MAX.SND.WND, SND.NXT].
            if seqGT(ack, t.sndMax) {
                sendAck(t, out: &out)
                return
            }
            if seqLT(ack, t.sndUna &- UInt32(truncatingIfNeeded: t.maxSndWnd)) {
                counters.tcpChallengeAcks += 1
                sendAck(t, out: &out)
                return
            }
            let peerWindow = Int(seg.window) << Int(t.sndScale)
            let sndUnaBefore = t.sndUna
            let newSACK = updateScoreboard(t, blocks: seg.sackBlocks, ack: ack)
            if seqGT(ack, t.sndUna) {
                acknowledge(t, ack: ack, now: now, out: &out)
                samplePath(t, now: now)
                if t.sackOK { sackRecovery(t, now: now, out: &out) }
            } else if t.sackOK && !t.sacked.isEmpty {
                if newSACK { samplePath(t, now: now) }
                // RFC 6675: with SACK, an ACK (with or without data) that
                // reports SACKed data is what drives loss detection; one that
                // repeats known blocks still answers a loss probe.
                if (newSACK || t.tlpHigh != nil || t.inRecovery) && t.outstanding > 0 {
                    sackRecovery(t, now: now, out: &out)
                }
            } else if ack == t.sndUna, segLen == 0, peerWindow == t.sndWnd, t.outstanding > 0 {
                duplicateAck(t, now: now, out: &out)
            }
            if t.sackOK {
                armReorderTimer(t, now: now)
                // In recovery every ACK that brings news restarts the recovery timer.
                if t.inRecovery && (newSACK || seqGT(ack, sndUnaBefore)) { scheduleRecoveryTimer(t, now: now) }
            }
            // Window update (SND.WL1/WL2 rule).
            if seqLT(t.sndWl1, seq) || (t.sndWl1 == seq && seqLE(t.sndWl2, ack)) {
                let opened = peerWindow > t.sndWnd
                t.sndWnd = peerWindow
                t.maxSndWnd = max(t.maxSndWnd, peerWindow)
                t.sndWl1 = seq; t.sndWl2 = ack
                if t.sndWnd > 0 { t.persistDeadline = nil; t.persistBackoff = 0; t.zeroWindowSince = nil }
                if opened { t.persistUnanswered = 0 }
            }
            t.persistUnanswered = 0
            switch t.state {
            case .finWait1 where t.finAcked:
                t.state = .finWait2
                t.finWait2Deadline = now + config.finWait2Timeout
            case .closing where t.finAcked:
                enterTimeWait(t, now: now)
            case .lastAck where t.finAcked:
                remove(t)
                return
            case .timeWait:
                if fin {
                    t.timeWaitDeadline = now + 2 * config.msl
                    sendAck(t, out: &out)
                }
                return
            default: break
            }
        }

        // 5. Segment text (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 only).
        if !payload.isEmpty || fin {
            // Trim what we already have.
            let already = seqDiff(t.rcvNxt, seq)
            if already > 0 {
                if already >= payload.count {
                    let finAlso = fin && already == payload.count
                    payload = payload.upperBound..<payload.upperBound
                    if !finAlso { fin = false }
                    seq = t.rcvNxt
                } else {
                    payload = (payload.lowerBound + already)..<payload.upperBound
                    seq = t.rcvNxt
                }
            }
            // Trim what is beyond the window.
            let room = max(0, wnd - seqDiff(seq, t.rcvNxt))
            if payload.count > room {
                payload = payload.lowerBound..<(payload.lowerBound + room)
                fin = false
            }
            switch t.state {
            case .established, .finWait1, .finWait2:
                if seq == t.rcvNxt {
                    let hadOOO = !t.ooo.isEmpty
                    if !payload.isEmpty {
                        t.rcvBuf.append(contentsOf: f[payload])
                        t.rcvNxt = t.rcvNxt &+ UInt32(payload.count)
                    }
                    if fin { receiveFin(t, now: now) }
                    drainOutOfOrder(t, now: now)
                    if payload.isEmpty || fin || hadOOO || t.peerFin {
                        // A duplicate, a FIN, or a segment that fills (part of) a
                        // gap: acknowledge at once (RFC 5681 section 4.2).
                        t.ackNeeded = true
                    } else {
                        // In-order data: delayed ACK (RFC 1122 4.2.3.2, RFC 5681
                        // 4.2): at least every second segment, else within
                        // `StackConfig.delayedAck`, on a logged tick. Anything
                        // we send meanwhile carries the ACK.
                        t.unackedSegments += 1
                        if t.quickAcks > 0 {
                            // Quick-ACK mode at the start of a connection, as
                            // Linux (TCP_MAX_QUICKACKS, 16): the peer's slow
                            // start and first RTT samples need every ACK.
                            t.quickAcks -= 1
                            t.ackNeeded = true
                        } else if t.unackedSegments >= 2 || payload.count > config.mss {
                            // Every second segment, or at once for a super-segment
                            // (offload: the client's TSO or GRO) of several.
                            t.ackNeeded = true
                        } else if t.delAckDeadline == nil {
                            t.delAckDeadline = now + StackConfig.delayedAck
                        }
                    }
                } else {
                    if !payload.isEmpty || fin {
                        queueOutOfOrder(t, seq: seq, data: Array(f[payload]), fin: fin)
                    }
                    // Out of order: an immediate ACK with SACK blocks (RFC 5681 4.2, RFC 2018 4).
                    t.ackNeeded = true
                }
            case .synReceived, .closeWait, .closing, .lastAck, .timeWait:
                // Text after the peer's FIN, or before the handshake completed: ignored.
                break
            }
        }

        deliver(t, now: now, out: &out)
        if conns[t.key] !== t { return }
        output(t, now: now, out: &out)
    }

    func receiveWindowForAcceptance(_ t: TCB) -> Int {
        max(currentReceiveWindow(t), seqDiff(t.rcvAdvEdge, t.rcvNxt))
    }

    func currentReceiveWindow(_ t: TCB) -> Int { max(0, config.receiveBufferBytes - t.rcvBuf.count) }

    /// RFC 9293 3.10.7.4 segment acceptability table.
    func acceptable(_ t: TCB, seq: UInt32, len: Int, wnd: Int) -> Bool {
        let rn = t.rcvNxt
        let edge = rn &+ UInt32(truncatingIfNeeded: wnd)
        if len == 0 {
            if wnd == 0 { return seq == rn }
            // An empty segment exactly at the right edge is accepted, as Linux
            // and BSD do: a peer that filled our window past a hole sends such
            // ACKs, and dropping them loses their acknowledgement.
            return seqLE(rn, seq) && seqLE(seq, edge)
        }
        if wnd == 0 { return false }
        let last = seq &+ UInt32(len) &- 1
        return (seqLE(rn, seq) && seqLT(seq, edge)) || (seqLE(rn, last) && seqLT(last, edge))
            || (seqLT(seq, rn) && seqGE(last, edge))  // covers the whole window
    }

    func receiveFin(_ t: TCB, now: Nanos) {
        t.rcvNxt = t.rcvNxt &+ 1
        t.peerFin = true
        t.ooo.removeAll()
        switch t.state {
        case .synReceived, .established: t.state = .closeWait
        case .finWait1:
            if t.finAcked { enterTimeWait(t, now: now) } else { t.state = .closing }
        case .finWait2: enterTimeWait(t, now: now)
        default: break
        }
    }

    func queueOutOfOrder(_ t: TCB, seq: UInt32, data: [UInt8], fin: Bool) {
        let s = OOOSegment(seq: seq, data: data, fin: fin)
        if let i = t.ooo.firstIndex(where: { $0.seq == seq }) {
            if t.ooo[i].end != s.end && seqGT(s.end, t.ooo[i].end) { t.ooo[i] = s }
            t.lastOOOSeq = seq
            return
        }
        if t.ooo.count >= config.maxOutOfOrderSegments {
            // Full: keep the segments closest to RCV.NXT, which fill the hole first.
            guard let last = t.ooo.last, seqGT(last.seq, seq) else { counters.tcpOutOfOrderDropped += 1; return }
            t.ooo.removeLast()
            counters.tcpOutOfOrderDropped += 1
        }
        let i = t.ooo.firstIndex(where: { seqGT($0.seq, seq) }) ?? t.ooo.count
        t.ooo.insert(s, at: i)
        t.lastOOOSeq = seq
        counters.tcpOutOfOrderQueued += 1
        // Bounded in bytes too: overlapping segments could otherwise hold
        // many copies of the window. Beyond the receive buffer, the segments
        // furthest from RCV.NXT go.
        var bytes = t.ooo.reduce(0) { $0 + $1.data.count }
        while bytes > config.receiveBufferBytes, let last = t.ooo.last {
            bytes -= last.data.count
            t.ooo.removeLast()
            counters.tcpOutOfOrderDropped += 1
        }
    }

    func drainOutOfOrder(_ t: TCB, now: Nanos) {
        while let s = t.ooo.first, seqLE(s.seq, t.rcvNxt), !t.peerFin {
            t.ooo.removeFirst()
            let skip = seqDiff(t.rcvNxt, s.seq)
            if skip < s.data.count {
                t.rcvBuf.append(contentsOf: s.data[skip...])
                t.rcvNxt = t.rcvNxt &+ UInt32(s.data.count - skip)
                if s.fin { receiveFin(t, now: now) }
            } else if skip == s.data.count && s.fin {
                receiveFin(t, now: now)
            }
        }
    }

    // MARK: Delivery to the service

    func deliver(_ t: TCB, now: Nanos, out: inout Frames) {
        guard let svc = streamServices[t.key.localPort] else { return }
        guard t.state != .synReceived else { return }
        if !t.rcvBuf.isEmpty {
            if t.finQueued {
                t.rcvBuf.removeAll()  // the service closed: further input is discarded
            } else {
                var io = StreamIO()
                let space = max(0, config.sendBufferBytes - t.sendBuf.count)
                let n = svc.receive(t.id, t.rcvBuf.all, sendSpace: space, io: &io)
                t.rcvBuf.drop(min(max(0, n), t.rcvBuf.count))
                apply(io, t, now: now, out: &out)
                if conns[t.key] !== t { return }
            }
        }
        if t.peerFin && t.rcvBuf.isEmpty && !t.peerCloseNotified {
            t.peerCloseNotified = true
            var io = StreamIO()
            if !t.finQueued { svc.peerClosed(t.id, io: &io) }
            apply(io, t, now: now, out: &out)
        }
    }

    func apply(_ io: StreamIO, _ t: TCB, now: Nanos, out: inout Frames) {
        if io.abort {
            sendReset(seq: t.sndMax, t: t, out: &out)
            remove(t)
            return
        }
        if !io.output.isEmpty && !t.finQueued { t.sendBuf.append(contentsOf: io.output) }
        if io.close { t.finQueued = true }
    }
}
