import FTWire

// TCP output: segment generation, retransmission and persist timers, TIME-WAIT
// and connection teardown, segment emission (RFC 9293 3.8, RFC 6298).
extension Stack {
    // MARK: Output

    func output(_ t: TCB, now: Nanos, out: inout [[UInt8]]) {
        switch t.state {
        case .established, .closeWait, .finWait1, .closing, .lastAck: break
        default:
            if t.ackNeeded { sendAck(t, out: &out) }
            return
        }
        while true {
            let offset = seqDiff(t.sndNxt, t.bufSeq)
            let unsent = t.sendBuf.count - offset
            let window = min(t.sndWnd, t.cwnd)
            let room = window - seqDiff(t.sndNxt, t.sndUna)
            if unsent > 0 {
                let len = min(t.sendMSS, unsent, room)
                if len <= 0 { break }
                // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1): a
                // window-limited segment smaller than a full one and than half
                // the largest window the peer offered waits for more window,
                // unless nothing is in flight to bring an ACK.
                if len < t.sendMSS && len < unsent && len < t.maxSndWnd / 2 && t.outstanding > 0 { break }
                let isLast = len == unsent
                var flags: TCPFlags = [.ack]
                if isLast { flags.insert(.psh) }
                emitSegment(t, seq: t.sndNxt, flags: flags, payload: t.sendBuf.slice(from: offset, length: len), out: &out)
                if seqGT(t.sndNxt &+ UInt32(len), t.sndMax) {
                    if t.rttSeq == nil && t.sndNxt == t.sndMax { t.rttSeq = t.sndNxt &+ UInt32(len); t.rttStart = now }
                    t.sndMax = t.sndNxt &+ UInt32(len)
                } else {
                    counters.tcpRetransmits += 1
                }
                t.sndNxt = t.sndNxt &+ UInt32(len)
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
        }
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

    func retransmitFirst(_ t: TCB, out: inout [[UInt8]]) {
        counters.tcpRetransmits += 1
        let offset = seqDiff(t.sndUna, t.bufSeq)
        let avail = t.sendBuf.count - offset
        if avail > 0 {
            let len = min(t.sendMSS, avail)
            emitSegment(t, seq: t.sndUna, flags: [.ack, .psh], payload: t.sendBuf.slice(from: offset, length: len), out: &out)
        } else if let fs = t.finSeq, t.sndUna == fs {
            emitSegment(t, seq: fs, flags: [.fin, .ack], payload: [], out: &out)
        }
    }

    // MARK: Timers

    func fireTimers(_ t: TCB, now: Nanos, out: inout [[UInt8]]) {
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
                t.ssthresh = max(t.outstanding / 2, 2 * t.sendMSS)
                t.cwnd = t.sendMSS
                t.inRecovery = false
                t.dupAcks = 0
                t.sndNxt = t.sndUna  // go back: resend from the first unacknowledged byte
                retransmitFirst(t, out: &out)
                let offset = seqDiff(t.sndUna, t.bufSeq)
                let avail = t.sendBuf.count - offset
                t.sndNxt = t.sndUna &+ UInt32(min(t.sendMSS, max(0, avail)))
                if avail == 0, let fs = t.finSeq, t.sndUna == fs { t.sndNxt = fs &+ 1 }
            }
            t.rtoDeadline = now + t.rto
        }
        if let d = t.persistDeadline, d <= now {
            t.persistDeadline = nil
            if t.sndWnd == 0 && t.unsentBytes > 0 && t.outstanding == 0 {
                t.persistUnanswered += 1
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

    func emitSegment(_ t: TCB, seq: UInt32, flags: TCPFlags, payload: ArraySlice<UInt8>, out: inout [[UInt8]]) {
        let w = currentReceiveWindow(t)
        let scaled = min(w >> Int(t.rcvScale), 65535)
        t.lastAdvWindow = scaled << Int(t.rcvScale)
        let edge = t.rcvNxt &+ UInt32(t.lastAdvWindow)
        if seqGT(edge, t.rcvAdvEdge) { t.rcvAdvEdge = edge }
        t.ackNeeded = false
        counters.tcpSegmentsOut += 1
        out.append(FrameBuilder.tcp(ethSrc: config.mac, ethDst: t.peerMAC, src: config.ip, dst: t.key.remote.ip,
                                    srcPort: t.key.localPort, dstPort: t.key.remote.port, seq: seq, ack: t.rcvNxt,
                                    flags: flags, window: UInt16(scaled), sackBlocks: sackBlocks(t),
                                    payload: payload, ttl: config.ttl, ipID: nextIPID()))
    }

    /// RFC 2018 blocks for the out-of-order queue (contiguous runs merged),
    /// the run nearest RCV.NXT first, at most four (no timestamps option).
    func sackBlocks(_ t: TCB) -> [(UInt32, UInt32)] {
        guard t.sackOK, !t.ooo.isEmpty else { return [] }
        var blocks: [(UInt32, UInt32)] = []
        for s in t.ooo {
            let end = s.seq &+ UInt32(s.data.count)
            if let last = blocks.last, seqLE(s.seq, last.1) {
                if seqGT(end, last.1) { blocks[blocks.count - 1].1 = end }
            } else {
                if blocks.count == 4 { break }
                blocks.append((s.seq, end))
            }
        }
        return blocks.filter { seqLT($0.0, $0.1) }
    }

    func sendAck(_ t: TCB, out: inout [[UInt8]]) {
        if t.state == .synReceived { sendSynAck(t, out: &out); return }
        emitSegment(t, seq: t.sndNxt, flags: [.ack], payload: [], out: &out)
    }

    func sendSynAck(_ t: TCB, out: inout [[UInt8]]) {
        let w = min(currentReceiveWindow(t), 65535)
        t.lastAdvWindow = w
        t.rcvAdvEdge = t.rcvNxt &+ UInt32(w)
        counters.tcpSegmentsOut += 1
        out.append(FrameBuilder.tcp(ethSrc: config.mac, ethDst: t.peerMAC, src: config.ip, dst: t.key.remote.ip,
                                    srcPort: t.key.localPort, dstPort: t.key.remote.port, seq: t.iss, ack: t.rcvNxt,
                                    flags: [.syn, .ack], window: UInt16(w), mss: UInt16(config.mss),
                                    windowScale: t.sndScale > 0 || t.rcvScale > 0 ? t.rcvScale : nil,
                                    sackPermitted: t.sackOK,
                                    ttl: config.ttl, ipID: nextIPID()))
    }

    /// RST for a segment that has no connection (RFC 9293 3.10.7.1).
    func sendReset(to key: ConnKey, mac: MACAddress, seg: TCPHeader, segLen: UInt32, out: inout [[UInt8]]) {
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
    func sendReset(seq: UInt32, t: TCB, out: inout [[UInt8]]) {
        counters.tcpResetsSent += 1
        counters.tcpSegmentsOut += 1
        out.append(FrameBuilder.tcp(ethSrc: config.mac, ethDst: t.peerMAC, src: config.ip, dst: t.key.remote.ip,
                                    srcPort: t.key.localPort, dstPort: t.key.remote.port, seq: seq, ack: t.rcvNxt,
                                    flags: [.rst, .ack], window: 0, ttl: config.ttl, ipID: nextIPID()))
    }
}
