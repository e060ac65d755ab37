import FTWire

// TCP output: segment generation, retransmission and persist timers, TIME-WAIT
// and connection teardown, segment emission (RFC 9293 3.8, RFC 6298).
extension Stack {
    // MARK: Output

    func output(_ t: TCB, now: Nanos, out: inout Frames) {
        switch t.state {
        case .established, .closeWait, .finWait1, .closing, .lastAck: break
        default:
            if t.ackNeeded { sendAck(t, out: &out) }
            return
        }
        let sackRecovering = t.inRecovery && t.sackOK && !t.sacked.isEmpty
        let inFlight = sackRecovering ? pipe(t) : 0
        var sentNow = 0
        while true {
            // Resending after a timeout (SND.NXT below SND.MAX): skip what the peer SACKed.
            if seqLT(t.sndNxt, t.sndMax), let r = t.sacked.first(where: { seqLE($0.left, t.sndNxt) && seqGT($0.right, t.sndNxt) }) {
                t.sndNxt = r.right
                continue
            }
            let offset = seqDiff(t.sndNxt, t.bufSeq)
            let unsent = t.sendBuf.count - offset
            // In SACK recovery new data is limited by cwnd - pipe (RFC 6675 section 5).
            let room = sackRecovering
                ? min(t.sndWnd - seqDiff(t.sndNxt, t.sndUna), t.cwnd - inFlight - sentNow)
                : min(t.sndWnd - seqDiff(t.sndNxt, t.sndUna),
                      t.cwnd - seqDiff(t.sndNxt, t.sndUna) + sackedBelow(t, t.sndNxt))
            if unsent > 0 {
                let full = t.segmentPayloadMax - sackOptionBytes(t)
                // New data, in recovery too, may leave as one super-segment
                // of whole segments (TSO, `StackConfig.tsoMaxBytes`); what
                // the windows allow decides its size exactly as it would
                // decide a train of single segments. (Outside recovery only,
                // 77 % of the frames on a 3 % lossy link were single
                // segments, each one TAP write.)
                let fresh = !seqLT(t.sndNxt, t.sndMax)
                let most = fresh && config.tsoMaxBytes > full ? config.tsoMaxBytes / full * full : full
                var len = min(most, unsent, room)
                if seqLT(t.sndNxt, t.sndMax), let r = t.sacked.first(where: { seqGT($0.left, t.sndNxt) }) {
                    len = min(len, seqDiff(r.left, t.sndNxt))
                }
                if len <= 0 { break }
                // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1): a
                // window-limited segment smaller than a full one and than half
                // the largest window the peer offered waits for more window,
                // unless nothing is in flight to bring an ACK.
                if len < full && len < unsent && len < t.maxSndWnd / 2
                    && t.outstanding > 0 && !seqLT(t.sndNxt, t.sndMax) { break }
                // A super-segment ends on a segment boundary unless it carries
                // the last bytes: no runt segment in the middle of a stream.
                if len > full && len < unsent { len -= len % full }
                let isLast = len == unsent
                var flags: TCPFlags = [.ack]
                if isLast { flags.insert(.psh) }
                emitSegment(t, seq: t.sndNxt, flags: flags, payload: t.sendBuf.slice(from: offset, length: len),
                            segmentSize: len > full ? full : 0, out: &out)
                if seqGT(t.sndNxt &+ UInt32(len), t.sndMax) {
                    if t.rttSeq == nil && t.sndNxt == t.sndMax { t.rttSeq = t.sndNxt &+ UInt32(len); t.rttStart = now }
                    t.sndMax = t.sndNxt &+ UInt32(len)
                } else {
                    counters.tcpRetransmits += 1
                }
                t.sndNxt = t.sndNxt &+ UInt32(len)
                sentNow += len
                if t.rtoDeadline == nil { t.rtoDeadline = now + t.rto }
                continue
            }
            if let fs = t.finSeq, t.sndNxt == fs {
                emitSegment(t, seq: fs, flags: [.fin, .ack], payload: [], out: &out)
                t.sndNxt = fs &+ 1
                if seqGT(t.sndNxt, t.sndMax) { t.sndMax = t.sndNxt } else { counters.tcpRetransmits += 1 }
                if t.state == .established { t.state = .finWait1 }
                if t.state == .closeWait { t.state = .lastAck }
                if t.rtoDeadline == nil { t.rtoDeadline = now + t.rto }
            }
            break
        }
        // Zero window with data waiting and nothing in flight: probe (RFC 9293 3.8.6.1).
        if t.unsentBytes > 0 && t.sndWnd == 0 && t.outstanding == 0 && t.persistDeadline == nil {
            t.persistDeadline = now + persistInterval(t)
            if t.zeroWindowSince == nil { t.zeroWindowSince = now }
        }
        if sentNow > 0 { scheduleTLP(t, now: now) }
        if t.ackNeeded { sendAck(t, out: &out) }
        // A window update when the service freed receive space the peer does not
        // know of: the window the peer last saw (up to the right edge we
        // advertised) is small, and the window we would advertise now, after
        // scaling, is larger than it and substantial. Comparing what would be
        // sent with what was sent keeps this from repeating an ACK just sent.
        let known = max(0, seqDiff(t.rcvAdvEdge, t.rcvNxt))
        let adv = min(currentReceiveWindow(t) >> Int(t.rcvScale), 65535) << Int(t.rcvScale)
        if known < t.sendMSS && adv > known && adv >= min(config.receiveBufferBytes / 2, 2 * t.sendMSS)
            && (t.state == .established || t.state == .finWait1 || t.state == .finWait2) {
            sendAck(t, out: &out)
        }
    }

    func persistInterval(_ t: TCB) -> Nanos {
        let base = max(t.rto, config.rtoMin)
        return min(config.rtoMax, base << Nanos(min(t.persistBackoff, 16)))
    }

    /// Resends the segment at SND.UNA (or the FIN); returns its payload length.
    @discardableResult
    func retransmitFirst(_ t: TCB, out: inout Frames) -> Int {
        counters.tcpRetransmits += 1
        let offset = seqDiff(t.sndUna, t.bufSeq)
        let avail = t.sendBuf.count - offset
        if avail > 0 {
            var len = min(t.segmentPayloadMax - sackOptionBytes(t), avail)
            // Never past SND.MAX: bytes never sent are new data, for output()
            // to send within the windows. Resending them here would let the
            // peer ACK beyond SND.MAX, an ACK we must drop (RFC 9293 3.10.7.4),
            // and a connection whose retransmission grew past SND.MAX while
            // cwnd kept output() from catching up was stuck for good.
            let sent = seqDiff(t.sndMax, t.sndUna)
            if sent > 0 { len = min(len, sent) }
            if let r = t.sacked.first, seqGT(r.left, t.sndUna) { len = min(len, seqDiff(r.left, t.sndUna)) }
            emitSegment(t, seq: t.sndUna, flags: [.ack, .psh], payload: t.sendBuf.slice(from: offset, length: len), out: &out)
            return len
        } else if let fs = t.finSeq, t.sndUna == fs {
            emitSegment(t, seq: fs, flags: [.fin, .ack], payload: [], out: &out)
        }
        return 0
    }

    /// SACKed bytes below `seq`: not in flight (they left the network), so
    /// they do not count against cwnd, as in Linux's packets_in_flight.
    func sackedBelow(_ t: TCB, _ seq: UInt32) -> Int {
        var n = 0
        for r in t.sacked {
            if !seqLT(r.left, seq) { break }
            n += seqDiff(seqLT(r.right, seq) ? r.right : seq, r.left)
        }
        return n
    }

    /// Sends `length` bytes of the send buffer from `seq` (a retransmission).
    func emitData(_ t: TCB, seq: UInt32, length: Int, out: inout Frames) {
        let offset = seqDiff(seq, t.bufSeq)
        let len = min(length, t.sendBuf.count - offset, t.segmentPayloadMax - sackOptionBytes(t))
        guard offset >= 0, len > 0 else { return }
        emitSegment(t, seq: seq, flags: [.ack], payload: t.sendBuf.slice(from: offset, length: len), out: &out)
    }

    /// Arms the tail loss probe (RFC 8985 section 7.2): PTO = 2 * SRTT, at
    /// least SRTT + 200 ms (the worst-case delayed ACK) when one segment is
    /// in flight, plus 2 ms (Linux's TCP_TIMEOUT_MIN, two jiffies: a floor
    /// for LAN RTTs of microseconds), never beyond the RTO. Only with SACK,
    /// an RTT sample, outside recovery and with data in flight.
    func scheduleTLP(_ t: TCB, now: Nanos) {
        if t.inRecovery { return }  // the recovery timer (`scheduleRecoveryTimer`) is in charge
        guard t.sackOK, t.hasRTT, t.outstanding > 0, t.retries == 0, t.tlpHigh == nil,
              t.state != .synReceived else {
            t.tlpDeadline = nil; return
        }
        var pto = 2 * t.srtt
        if t.outstanding <= t.sendMSS { pto = max(pto, t.srtt + 200 * nsPerMs) }
        pto += 2 * nsPerMs
        t.tlpDeadline = now + min(pto, t.rto)
    }

    /// In SACK recovery the same timer checks the retransmissions: one not
    /// acknowledged (cumulatively or by SACK) within 2 * SRTT + 2 ms of being
    /// sent is taken as lost and the holes are sent again. This is RACK's
    /// reordering timer (RFC 8985 section 6.3) without per-segment send
    /// times: in recovery the peer holds out-of-order data, so it ACKs at
    /// once (no delayed ACK to wait for), and a lost retransmission no
    /// longer waits for the RTO (200 ms at least, and doubling).
    func scheduleRecoveryTimer(_ t: TCB, now: Nanos, resend: Bool = false) {
        guard t.inRecovery, t.sackOK, t.hasRTT else { return }
        if !resend { t.recoveryResends = 0 }
        let base = 2 * t.srtt + 2 * nsPerMs
        t.tlpDeadline = now + min(base << Nanos(t.recoveryResends), t.rto)
    }

    /// Resends by the recovery timer without an ACK in between: a few, with
    /// the interval doubling, then only the RTO. At 8 % loss a retransmission
    /// and its one resend are both lost about once per 1 MB; each further
    /// round costs a few milliseconds, the RTO at least 200.
    static let maxRecoveryResends = 3

    /// RFC 8985 section 7.3: send one new segment if the windows allow,
    /// else retransmit the last one; its ACK (with SACK) reveals the tail's
    /// losses, which `isLost` then treats as lost.
    func sendLossProbe(_ t: TCB, now: Nanos, out: inout Frames) {
        counters.tcpLossProbes += 1
        let unsent = t.unsentBytes
        if unsent > 0 && t.sndNxt == t.sndMax && t.sndWnd - t.outstanding > 0 {
            let len = min(t.segmentPayloadMax - sackOptionBytes(t), unsent, t.sndWnd - t.outstanding)
            emitSegment(t, seq: t.sndNxt, flags: [.ack, .psh], payload: t.sendBuf.slice(from: seqDiff(t.sndNxt, t.bufSeq), length: len), out: &out)
            t.sndNxt = t.sndNxt &+ UInt32(len)
            t.sndMax = t.sndNxt
        } else {
            // The last segment sent: its final bytes (and the FIN if sent with nothing after).
            let dataEnd = t.bufSeq &+ UInt32(t.sendBuf.count)
            let end = seqLT(t.sndMax, dataEnd) ? t.sndMax : dataEnd
            let len = min(t.segmentPayloadMax - sackOptionBytes(t), seqDiff(end, t.sndUna))
            if len > 0 {
                emitData(t, seq: end &- UInt32(len), length: len, out: &out)
            } else if let fs = t.finSeq, seqGT(t.sndMax, fs) {
                emitSegment(t, seq: fs, flags: [.fin, .ack], payload: [], out: &out)
            }
            counters.tcpRetransmits += 1
        }
        t.tlpHigh = t.sndMax
        t.tlpDeadline = nil
        t.rtoDeadline = now + t.rto
    }

    // MARK: Timers

    func fireTimers(_ t: TCB, now: Nanos, out: inout Frames) {
        if let d = t.timeWaitDeadline, d <= now { remove(t); return }
        if let d = t.finWait2Deadline, d <= now, t.state == .finWait2 { remove(t); return }
        if let d = t.rtoDeadline, d <= now {
            t.retries += 1
            counters.tcpTimeouts += 1
            let limit = t.state == .synReceived ? config.synAckRetries : config.maxRetransmits
            if t.retries > limit {
                if t.state != .synReceived { sendReset(seq: t.sndMax, t: t, out: &out) }
                remove(t)
                return
            }
            t.rto = min(config.rtoMax, t.rto * 2)
            t.rttSeq = nil  // Karn's algorithm
            if t.state == .synReceived {
                sendSynAck(t, out: &out)
            } else {
                // CUBIC's decrease of cwnd (Linux's tcp_enter_loss), not
                // RFC 5681's FlightSize / 2: after the collapse to one
                // segment, slow start climbs back to 0.7 of where it was,
                // or to what the path model says the path carries.
                t.ssthresh = windowAfterLoss(
                    t, decreased: max(min(t.cwnd, max(t.outstanding, 2 * t.sendMSS)) * 7 / 10, 2 * t.sendMSS))
                t.cwnd = t.sendMSS
                t.inRecovery = false
                t.dupAcks = 0
                t.tlpHigh = nil
                t.tlpDeadline = nil
                // RFC 6675 section 5.1 / RFC 2018 section 8: the peer may have
                // reneged on what it SACKed. Keep the scoreboard for the first
                // timeout (Linux does too); forget it when timeouts repeat.
                if t.retries >= 2 { t.sacked.removeAll() }
                t.highRxt = t.sndUna
                t.sndNxt = t.sndUna  // go back: resend from the first unacknowledged byte
                let len = retransmitFirst(t, out: &out)
                t.sndNxt = t.sndUna &+ UInt32(len)
                let avail = t.sendBuf.count - seqDiff(t.sndUna, t.bufSeq)
                if avail == 0, let fs = t.finSeq, t.sndUna == fs { t.sndNxt = fs &+ 1 }
            }
            t.rtoDeadline = now + t.rto
        }
        if let d = t.tlpDeadline, d <= now {
            t.tlpDeadline = nil
            if t.outstanding > 0 && t.state != .synReceived {
                if !t.inRecovery && nextHole(t, from: t.sndUna) != nil {
                    // The reordering window passed with a hole below SACKed
                    // data: it is lost (RFC 8985 6.2), recovery starts.
                    counters.tcpReorderTimeouts += 1
                    t.tlpHigh = t.sndMax
                    sackRecovery(t, now: now, out: &out)
                } else if !t.inRecovery {
                    sendLossProbe(t, now: now, out: &out)
                } else if !t.sacked.isEmpty {
                    // Retransmissions unanswered: send the holes again.
                    counters.tcpLossProbes += 1
                    t.highRxt = t.sndUna
                    t.rxtSndMax = t.sndMax
                    sackRecovery(t, now: now, fromTimer: true, out: &out)
                } else {
                    // Nothing SACKed: resend the first unacknowledged segment
                    // (its ACK, or the lack of one, decides what follows).
                    counters.tcpLossProbes += 1
                    retransmitFirst(t, out: &out)
                }
                if t.inRecovery && t.recoveryResends < Self.maxRecoveryResends {
                    t.recoveryResends += 1
                    scheduleRecoveryTimer(t, now: now, resend: true)
                }
            }
        }
        if let d = t.idleDeadline, d <= now, !fireIdleTimer(t, now: now, out: &out) { return }
        if let d = t.delAckDeadline, d <= now {
            t.delAckDeadline = nil
            if t.unackedSegments > 0 || t.ackNeeded {
                counters.tcpDelayedAcks += 1
                sendAck(t, out: &out)
            }
        }
        if let d = t.persistDeadline, d <= now {
            t.persistDeadline = nil
            if t.sndWnd == 0 && t.unsentBytes > 0 && t.outstanding == 0 {
                t.persistUnanswered += 1
                if zeroWindowExpired(t, now: now) {
                    counters.tcpZeroWindowResets += 1
                    sendReset(seq: t.sndMax, t: t, out: &out)
                    remove(t)
                    return
                }
                if t.persistUnanswered > config.maxRetransmits {
                    sendReset(seq: t.sndMax, t: t, out: &out)
                    remove(t)
                    return
                }
                counters.tcpZeroWindowProbes += 1
                // An old sequence number elicits an ACK carrying the current window.
                emitSegment(t, seq: t.sndUna &- 1, flags: [.ack], payload: [], out: &out)
                t.persistBackoff += 1
                t.persistDeadline = now + persistInterval(t)
            }
        }
    }

    func enterTimeWait(_ t: TCB, now: Nanos) {
        t.state = .timeWait
        t.rtoDeadline = nil; t.persistDeadline = nil; t.finWait2Deadline = nil
        t.timeWaitDeadline = now + 2 * config.msl
        t.sendBuf.removeAll(); t.rcvBuf.removeAll(); t.ooo.removeAll()
        notifyClosed(t)
    }

    func notifyClosed(_ t: TCB) {
        guard !t.serviceClosed else { return }
        t.serviceClosed = true
        if t.serviceOpened { streamServices[t.key.localPort]?.closed(t.id) }
    }

    func remove(_ t: TCB) {
        notifyClosed(t)
        conns[t.key] = nil
    }

    // MARK: Segment emission

    /// Emits one segment, or with `segmentSize` > 0 a super-segment whose
    /// payload the kernel (or `TCPSegmentation.split`) cuts into segments of
    /// that size, each with the same header and options.
    func emitSegment(_ t: TCB, seq: UInt32, flags: TCPFlags, payload: ArraySlice<UInt8>, segmentSize: Int = 0,
                     out: inout Frames) {
        let w = currentReceiveWindow(t)
        let scaled = min(w >> Int(t.rcvScale), 65535)
        t.lastAdvWindow = scaled << Int(t.rcvScale)
        let edge = t.rcvNxt &+ UInt32(t.lastAdvWindow)
        if seqGT(edge, t.rcvAdvEdge) { t.rcvAdvEdge = edge }
        t.ackNeeded = false
        t.unackedSegments = 0
        t.delAckDeadline = nil
        t.lastAckSent = t.rcvNxt
        let segments = segmentSize > 0 ? (payload.count + segmentSize - 1) / segmentSize : 1
        counters.tcpSegmentsOut += UInt64(segments)
        let frame = FrameBuilder.tcp(ethSrc: config.mac, ethDst: t.peerMAC, src: config.ip, dst: t.key.remote.ip,
                                     srcPort: t.key.localPort, dstPort: t.key.remote.port, seq: seq, ack: t.rcvNxt,
                                     flags: flags, window: UInt16(scaled), timestamps: timestamps(t),
                                     sackBlocks: sackBlocks(t), payload: payload, ttl: config.ttl, ipID: nextIPID(),
                                     partialChecksum: segments > 1)
        if segments > 1 {
            ipID &+= UInt16(truncatingIfNeeded: segments - 1)  // the kernel numbers the segments id, id+1, ...
            out.append(frame, segmentSize: segmentSize)
        } else {
            out.append(frame)
        }
    }

    /// RFC 7323: TSval is the log clock in milliseconds (a tick within the
    /// RFC's 1 ms..1 s range) plus the connection's ISS as offset. The log
    /// clock is the same on every replica and never goes back on a new
    /// primary, so neither do our TSvals.
    func tsValue(_ t: TCB, now: Nanos) -> UInt32 {
        UInt32(truncatingIfNeeded: now / nsPerMs) &+ t.iss
    }

    func timestamps(_ t: TCB) -> TCPTimestamps? {
        t.tsOK ? TCPTimestamps(value: tsValue(t, now: clock), echo: t.tsRecent) : nil
    }

    /// Option bytes our SACK blocks take on the next segment (0 without).
    func sackOptionBytes(_ t: TCB) -> Int {
        let n = sackBlocks(t).count
        return n == 0 ? 0 : 4 + 8 * min(n, t.tsOK ? 3 : 4)
    }

    /// RFC 2018 blocks for the out-of-order queue (contiguous runs merged).
    /// Section 4: the first block holds the most recently received segment;
    /// the others follow nearest RCV.NXT first. At most three with
    /// timestamps (the 40 option bytes), four without.
    func sackBlocks(_ t: TCB) -> [(UInt32, UInt32)] {
        guard t.sackOK, !t.ooo.isEmpty else { return [] }
        var runs: [(UInt32, UInt32)] = []
        for s in t.ooo {
            let end = s.seq &+ UInt32(s.data.count)
            if let last = runs.last, seqLE(s.seq, last.1) {
                if seqGT(end, last.1) { runs[runs.count - 1].1 = end }
            } else {
                runs.append((s.seq, end))
            }
        }
        runs = runs.filter { seqLT($0.0, $0.1) }
        if let recent = t.lastOOOSeq, let i = runs.firstIndex(where: { seqLE($0.0, recent) && seqLT(recent, $0.1) }), i > 0 {
            let r = runs.remove(at: i)
            runs.insert(r, at: 0)
        }
        return Array(runs.prefix(t.tsOK ? 3 : 4))
    }

    func sendAck(_ t: TCB, out: inout Frames) {
        if t.state == .synReceived { sendSynAck(t, out: &out); return }
        emitSegment(t, seq: t.sndNxt, flags: [.ack], payload: [], out: &out)
    }

    func sendSynAck(_ t: TCB, out: inout Frames) {
        let w = min(currentReceiveWindow(t), 65535)
        t.lastAdvWindow = w
        t.rcvAdvEdge = t.rcvNxt &+ UInt32(w)
        t.lastAckSent = t.rcvNxt
        counters.tcpSegmentsOut += 1
        out.append(FrameBuilder.tcp(ethSrc: config.mac, ethDst: t.peerMAC, src: config.ip, dst: t.key.remote.ip,
                                    srcPort: t.key.localPort, dstPort: t.key.remote.port, seq: t.iss, ack: t.rcvNxt,
                                    flags: [.syn, .ack], window: UInt16(w), mss: UInt16(config.mss),
                                    windowScale: t.sndScale > 0 || t.rcvScale > 0 ? t.rcvScale : nil,
                                    sackPermitted: t.sackOK, timestamps: timestamps(t),
                                    ttl: config.ttl, ipID: nextIPID()))
    }

    /// RST for a segment that has no connection (RFC 9293 3.10.7.1).
    func sendReset(to key: ConnKey, mac: MACAddress, seg: TCPHeader, segLen: UInt32, out: inout Frames) {
        counters.tcpResetsSent += 1
        let frame: [UInt8]
        if seg.flags.contains(.ack) {
            frame = FrameBuilder.tcp(ethSrc: config.mac, ethDst: mac, src: config.ip, dst: key.remote.ip,
                                     srcPort: key.localPort, dstPort: key.remote.port, seq: seg.ack, ack: 0,
                                     flags: [.rst], window: 0, ttl: config.ttl, ipID: nextIPID())
        } else {
            frame = FrameBuilder.tcp(ethSrc: config.mac, ethDst: mac, src: config.ip, dst: key.remote.ip,
                                     srcPort: key.localPort, dstPort: key.remote.port, seq: 0, ack: seg.seq &+ segLen,
                                     flags: [.rst, .ack], window: 0, ttl: config.ttl, ipID: nextIPID())
        }
        out.append(frame)
    }

    /// RST on a synchronized connection. Callers pass SND.MAX, the highest
    /// sequence number sent: `sndNxt` is rewound for go-back-N after a timeout.
    func sendReset(seq: UInt32, t: TCB, out: inout Frames) {
        counters.tcpResetsSent += 1
        counters.tcpSegmentsOut += 1
        out.append(FrameBuilder.tcp(ethSrc: config.mac, ethDst: t.peerMAC, src: config.ip, dst: t.key.remote.ip,
                                    srcPort: t.key.localPort, dstPort: t.key.remote.port, seq: seq, ack: t.rcvNxt,
                                    flags: [.rst, .ack], window: 0, ttl: config.ttl, ipID: nextIPID()))
    }
}
