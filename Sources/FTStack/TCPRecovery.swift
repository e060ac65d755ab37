import FTWire

// TCP acknowledgement processing, RTT estimation (RFC 6298, RFC 7323
// timestamps), congestion control (RFC 5681, RFC 3465, RFC 7661, CUBIC's
// decrease factor) and SACK-based loss recovery (RFC 6675, RFC 8985-style
// lost-retransmission detection).
extension Stack {
    // MARK: Acknowledgements, RTT, congestion control

    /// SYN-ACK acknowledged: no data to release yet.
    func acknowledge(_ t: TCB, ack: UInt32, now: Nanos) {
        if let rs = t.rttSeq, seqGE(ack, rs) { rttSample(t, now - t.rttStart, now: now); t.rttSeq = nil }
        t.sndUna = ack
        if seqLT(t.sndNxt, ack) { t.sndNxt = ack }
        t.retries = 0
        t.rtoDeadline = t.outstanding > 0 ? now + t.rto : nil
    }

    func acknowledge(_ t: TCB, ack: UInt32, now: Nanos, out: inout Frames) {
        let acked = seqDiff(ack, t.sndUna)
        // Congestion window validation (RFC 7661, as Linux's
        // tcp_is_cwnd_limited): cwnd grows only while it limits the flight,
        // so that an application-limited phase (an echo waiting for its
        // client's data) does not inflate it, and a loss can then take 0.7
        // of cwnd itself as Linux does.
        let flightBefore = t.outstanding
        let cwndLimited = t.cwnd < t.ssthresh ? 2 * flightBefore >= t.cwnd : flightBefore + 3 * t.sendMSS >= t.cwnd
        // Release acknowledged bytes (the FIN occupies one sequence number past the data).
        let dataAcked = min(max(0, seqDiff(ack, t.bufSeq)), t.sendBuf.count)
        t.sendBuf.drop(dataAcked)
        t.bufSeq = t.bufSeq &+ UInt32(dataAcked)
        if let rs = t.rttSeq, seqGE(ack, rs) {
            rttSample(t, now - t.rttStart, now: now); t.rttSeq = nil
        } else if t.retries > 0, let e = tsEchoSample(t, now: now) {
            // Karn's algorithm leaves no sample after a timeout; the echoed
            // timestamp is one (RFC 7323 section 4.1), and it ends the backoff.
            rttSample(t, e, now: now)
        }
        t.path.acked += acked
        t.sndUna = ack
        if seqLT(t.sndNxt, ack) { t.sndNxt = ack }
        trimScoreboard(t)
        t.retries = 0
        t.dupAcks = 0
        // The probe episode ends when everything sent up to the probe is acknowledged.
        if let hi = t.tlpHigh, seqGE(ack, hi) { t.tlpHigh = nil }
        if t.inRecovery {
            if seqGE(ack, t.recover) {
                t.inRecovery = false
                t.cwnd = t.ssthresh
                t.sacked.removeAll()
            } else if t.sackOK && !t.sacked.isEmpty {
                // RFC 6675: the scoreboard (sackRecovery, run by the caller)
                // picks what to retransmit; cwnd stays at ssthresh.
            } else {
                // NewReno partial ACK: retransmit the next hole, deflate (RFC 6582 3.2).
                retransmitFirst(t, out: &out)
                t.cwnd = max(t.sendMSS, t.cwnd - acked + t.sendMSS)
            }
        } else if !cwndLimited {
            // Application-limited: keep cwnd.
        } else if t.cwnd < t.ssthresh {
            // Slow start with appropriate byte counting, L = 2 * SMSS (RFC
            // 3465, allowed by RFC 5681 3.1): an ACK for two segments (a
            // delayed ACK) grows cwnd by two, as Linux's tcp_slow_start does.
            t.cwnd += min(acked, 2 * t.sendMSS)
        } else {
            // Congestion avoidance by bytes acknowledged (RFC 3465 section
            // 2.1; Linux's tcp_cong_avoid_ai counts acknowledged segments):
            // one SMSS per cwnd of data acknowledged, however many ACKs
            // carry it. The per-ACK SMSS*SMSS/cwnd of RFC 5681 grows half
            // as fast against a peer that acknowledges every second segment
            // (Linux), which under random loss keeps cwnd, and so the
            // throughput of a loss-bound flow, about sqrt(2) lower.
            t.cwnd += max(1, t.sendMSS * min(acked, 2 * t.sendMSS) / max(1, t.cwnd))
        }
        t.cwnd = min(t.cwnd, TCB.maxCwnd)
        t.rtoDeadline = t.outstanding > 0 ? now + t.rto : nil
        scheduleTLP(t, now: now)
    }

    /// The RTT sample an echoed timestamp gives (RFC 7323 section 4.1), if any.
    func tsEchoSample(_ t: TCB, now: Nanos) -> Nanos? {
        guard t.tsOK, let e = inputTSEcr, e != 0 else { return nil }
        let d = Int32(bitPattern: tsValue(t, now: now) &- e)
        guard d >= 0 else { return nil }
        return Nanos(d) * nsPerMs
    }

    // MARK: SACK-based loss recovery (RFC 6675) with RACK-style lost-retransmission detection

    /// Merges the peer's SACK blocks into the scoreboard (RFC 6675 Update()).
    /// Blocks outside (ack, SND.MAX] are ignored (D-SACKs, RFC 2883, and
    /// bogus ones). Returns whether anything was newly SACKed.
    @discardableResult
    func updateScoreboard(_ t: TCB, blocks: [SACKBlock], ack: UInt32) -> Bool {
        guard t.sackOK, !blocks.isEmpty else { return false }
        let floor = seqGT(ack, t.sndUna) && seqLE(ack, t.sndMax) ? ack : t.sndUna
        let before = t.sackedBytes
        var ranges = t.sacked
        for b in blocks {
            guard seqLT(b.left, b.right), seqGT(b.right, floor), seqLE(b.right, t.sndMax) else { continue }
            ranges.append(SeqRange(left: seqLT(b.left, floor) ? floor : b.left, right: b.right))
        }
        ranges.sort { seqLT($0.left, $1.left) || ($0.left == $1.left && seqLT($0.right, $1.right)) }
        var merged: [SeqRange] = []
        for r in ranges {
            if var last = merged.last, seqLE(r.left, last.right) {
                if seqGT(r.right, last.right) { last.right = r.right; merged[merged.count - 1] = last }
            } else {
                merged.append(r)
            }
        }
        // Bounded: the ranges nearest SND.UNA matter first for recovery.
        if merged.count > TCB.maxScoreboardRanges { merged.removeLast(merged.count - TCB.maxScoreboardRanges) }
        t.sacked = merged
        return t.sackedBytes > before
    }

    /// Drops what the cumulative ACK now covers.
    func trimScoreboard(_ t: TCB) {
        guard !t.sacked.isEmpty else { return }
        t.sacked.removeAll { seqLE($0.right, t.sndUna) }
        if let f = t.sacked.first, seqLT(f.left, t.sndUna) { t.sacked[0].left = t.sndUna }
        if seqLT(t.highRxt, t.sndUna) { t.highRxt = t.sndUna }
    }

    /// RFC 6675 IsLost(seq): more than (DupThresh - 1) * SMSS bytes, or
    /// DupThresh discontiguous ranges, SACKed above it. That decides when
    /// recovery starts. Once in recovery, or after a tail loss probe was
    /// answered with SACKs, anything unSACKed below SACKed data is lost: it
    /// was sent before what was delivered, and a LAN does not reorder
    /// (RACK, RFC 8985 6.2, with Linux's reordering window of about
    /// nothing). In a short flight (two segments after the hole) DupThresh
    /// alone would have left every later hole to the RTO.
    func isLost(_ t: TCB, _ seq: UInt32) -> Bool {
        var bytes = 0, ranges = 0
        for r in t.sacked.reversed() {
            guard seqGT(r.right, seq) else { break }
            bytes += seqDiff(r.right, seqGT(r.left, seq) ? r.left : seq)
            ranges += 1
        }
        if bytes == 0 { return false }
        if t.tlpHigh != nil || t.inRecovery { return true }
        return bytes > 2 * t.sendMSS || ranges >= 3
    }

    /// The first hole at or above `from` (start, length up to one segment):
    /// unSACKed sequence space below the highest SACKed byte.
    func nextHole(_ t: TCB, from: UInt32) -> (UInt32, Int)? {
        var s = seqLT(from, t.sndUna) ? t.sndUna : from
        for r in t.sacked {
            if seqLE(r.right, s) { continue }
            if seqLT(s, r.left) { return (s, min(seqDiff(r.left, s), t.segmentPayloadMax)) }
            s = r.right
        }
        return nil
    }

    /// RFC 6675 pipe: bytes in flight = outstanding - SACKed - lost and not
    /// yet retransmitted (holes below the highest SACK, above HighRxt, that IsLost).
    func pipe(_ t: TCB) -> Int {
        var lostNotResent = 0
        var s = seqLT(t.highRxt, t.sndUna) ? t.sndUna : t.highRxt
        while let (h, _) = nextHole(t, from: s) {
            guard isLost(t, h) else { break }
            let end = t.sacked.first { seqGT($0.left, h) }!.left
            lostNotResent += seqDiff(end, h)
            s = end
        }
        return max(0, t.outstanding - t.sackedBytes - lostNotResent)
    }

    /// RACK's reordering window (RFC 8985 section 6.2), by sequence: a hole
    /// below SACKed data that DupThresh has not declared lost (a short
    /// flight has too few segments after it) is declared lost once the
    /// window, SRTT / 4 but at least 1 ms, passes without it arriving. The
    /// loss-probe timer carries it: earlier than the probe, never later.
    func armReorderTimer(_ t: TCB, now: Nanos) {
        guard !t.inRecovery, t.hasRTT, t.outstanding > 0, !t.sacked.isEmpty, !seqLT(t.sndNxt, t.sndMax),
              nextHole(t, from: t.sndUna) != nil, t.state != .synReceived else { return }
        let d = now + max(t.srtt / 4, nsPerMs)
        if t.tlpDeadline.map({ d < $0 }) ?? true { t.tlpDeadline = d }
    }

    /// Loss detection and retransmission from the scoreboard (RFC 6675
    /// sections 5 and 5.1), run on every ACK that moves SND.UNA or SACKs
    /// something new. Enters recovery when SND.UNA IsLost; in recovery
    /// sends holes (then new data) while pipe < cwnd.
    func sackRecovery(_ t: TCB, now: Nanos, fromTimer: Bool = false, out: inout Frames) {
        guard t.sackOK, !t.sacked.isEmpty, t.state != .synReceived else { return }
        // After a timeout everything unSACKed is being resent from SND.NXT
        // (go-back-N, skipping SACKed ranges) until SND.NXT is back at
        // SND.MAX: no fast recovery meanwhile (Linux's Loss state). Its pipe
        // would count the rewound segments as in flight and block sending.
        if seqLT(t.sndNxt, t.sndMax) && !t.inRecovery { return }
        if seqLT(t.highRxt, t.sndUna) { t.highRxt = t.sndUna }
        if !t.inRecovery {
            guard isLost(t, t.sndUna) else { return }
            // Enter recovery: multiplicative decrease, once per window of data.
            t.inRecovery = true
            t.recover = t.sndMax
            // Multiplicative decrease by CUBIC's beta, 0.7, of cwnd (which
            // only grows while it limits the flight), Linux's default, but
            // not below what the path model says the path carries.
            t.ssthresh = windowAfterLoss(t, decreased: max(t.cwnd * 7 / 10, 2 * t.sendMSS))
            t.cwnd = t.ssthresh
            t.highRxt = t.sndUna
            t.rxtSndMax = t.sndMax
            t.rttSeq = nil
            t.tlpDeadline = nil
            counters.tcpFastRetransmits += 1
        } else if seqGT(t.highRxt, t.sndUna), let top = t.sacked.last, seqGT(top.right, t.rxtSndMax),
                  let (h, _) = nextHole(t, from: t.sndUna), seqLT(h, t.highRxt) {
            // Lost retransmission: data sent after our retransmissions was
            // SACKed while a retransmitted hole is still missing (RFC 8985's
            // rule, by sequence: we keep no per-segment send times). Resend.
            t.highRxt = t.sndUna
            t.rxtSndMax = t.sndMax
            counters.tcpLostRetransmits += 1
        }
        defer { t.tlpHigh = nil }
        var sent = 0
        // On entry the first lost segment goes out whatever pipe says (RFC 6675 section 5, step 4.3).
        var force = t.highRxt == t.sndUna && t.rxtSndMax == t.sndMax
        while force || t.cwnd - pipe(t) >= t.segmentPayloadMax {
            force = false
            // (1) a lost hole above HighRxt; new data is output()'s (rule 2).
            if let (h, len) = nextHole(t, from: t.highRxt), isLost(t, h) {
                emitData(t, seq: h, length: len, out: &out)
                counters.tcpRetransmits += 1
                counters.tcpSACKRetransmits += 1
                t.highRxt = h &+ UInt32(len)
                t.rxtSndMax = t.sndMax
                sent += 1
                continue
            }
            break
        }
        if sent > 0 && !fromTimer {
            // Only an ACK (progress) restarts the timers: resends by the
            // recovery timer itself leave the RTO running, so a peer that
            // went silent still meets the RTO, its backoff and the limit.
            t.rtoDeadline = now + t.rto
            scheduleRecoveryTimer(t, now: now)
        }
        // New data, limited by cwnd - pipe rather than cwnd - outstanding.
        output(t, now: now, out: &out)
    }

    /// RFC 6298 section 2 and 3.
    func rttSample(_ t: TCB, _ r: Nanos, now: Nanos) {
        t.path.rtt(r, now: now)
        if !t.hasRTT {
            t.srtt = r; t.rttvar = r / 2; t.hasRTT = true
        } else {
            let diff = t.srtt > r ? t.srtt - r : r - t.srtt
            t.rttvar = (3 * t.rttvar + diff) / 4
            t.srtt = (7 * t.srtt + r) / 8
        }
        let g: Nanos = nsPerMs
        t.rto = min(config.rtoMax, max(config.rtoMin, t.srtt + max(g, 4 * t.rttvar)))
    }

    /// RFC 5681 section 3.2: fast retransmit on the third duplicate ACK.
    func duplicateAck(_ t: TCB, now: Nanos, out: inout Frames) {
        t.dupAcks += 1
        if t.dupAcks == 3 && !t.inRecovery {
            t.ssthresh = windowAfterLoss(t, decreased: max(t.outstanding / 2, 2 * t.sendMSS))
            t.cwnd = t.ssthresh + 3 * t.sendMSS
            t.inRecovery = true
            t.recover = t.sndMax
            t.rttSeq = nil
            counters.tcpFastRetransmits += 1
            retransmitFirst(t, out: &out)
            t.rtoDeadline = now + t.rto
        } else if t.dupAcks > 3 && t.inRecovery {
            t.cwnd += t.sendMSS
        }
    }
}
