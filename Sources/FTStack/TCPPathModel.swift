import FTWire

/// The sender's model of the path, after BBR's (Cardwell et al., "BBR:
/// Congestion-Based Congestion Control", ACM Queue 2016): the highest
/// delivery rate of the last `rounds` round trips and the lowest RTT of the
/// last `minRTTWindow` of log time. Their product is the bandwidth-delay
/// product (BDP), the data the path holds without a queue.
///
/// What it is for: a loss-based sender takes every loss as congestion. On a
/// link that drops 3 % of frames at random that is a loss every round trip,
/// and CUBIC's 0.7 decrease at each one keeps cwnd far below what the path
/// delivers (measured here before this model: ftap's echo at 3 % loss was
/// 0.16-0.27 of the kernel's BBR echo, while a build that never decreased
/// cwnd moved 25-50 % more data). With the model, a loss leaves cwnd at
/// `cwndGain` BDPs if that is more than CUBIC's 0.7 (capped at cwnd itself):
/// a loss cannot push the sender below what the path demonstrably carried,
/// BBR's own cwnd target. Real congestion still shows: the queue it builds
/// raises RTT, not the minimum, and the delivery rate stops growing, so the
/// floor stays at two BDPs of the uncongested path.
///
/// Everything here is computed from logged facts (ACKs, SACK blocks and
/// the log time they arrived at), in integers, so both replicas agree; the
/// model is part of the connection's replicated state (`TCB.schema`).
struct PathModel: Equatable {
    /// BBR's bandwidth filter window, in round trips.
    static let rounds = 10
    /// BBR's min-RTT filter window.
    static let minRTTWindow: Nanos = 10_000 * nsPerMs
    /// BBR's cwnd gain: two BDPs absorb delayed and stretched ACKs.
    static let cwndGain = 2

    /// Bytes cumulatively acknowledged since the connection began.
    var acked: Int = 0
    /// The round trip being measured ends when SND.UNA reaches `roundEnd`
    /// (SND.MAX when it began, at `roundStart`, with `roundDelivered` bytes
    /// delivered then). `roundStart == nil`: no round yet.
    var roundEnd: UInt32 = 0
    var roundStart: Nanos? = nil
    var roundDelivered: Int = 0
    /// Delivery rates (bytes per second) of the last `rounds` round trips, oldest first.
    var rates: [UInt64] = []
    /// The lowest RTT sample of the filter window (0: none yet) and when it was taken.
    var minRTT: Nanos = 0
    var minRTTStamp: Nanos = 0

    var maxRate: UInt64 { rates.max() ?? 0 }

    /// Bandwidth (highest rate) times minimum RTT, in bytes; 0 until both exist.
    var bdp: Int {
        let rate = maxRate
        guard rate > 0, minRTT > 0 else { return 0 }
        let (hi, lo) = rate.multipliedFullWidth(by: minRTT)
        let perSecond: UInt64 = 1_000_000_000
        // More than 2^64 ns * bytes/s: beyond any window; cap below.
        guard hi < perSecond else { return TCB.maxCwnd }
        let (q, _) = perSecond.dividingFullWidth((hi, lo))
        return Int(min(q, UInt64(TCB.maxCwnd)))
    }

    /// An RTT sample (RFC 6298's, Karn-valid) taken at `now`.
    mutating func rtt(_ r: Nanos, now: Nanos) {
        guard r > 0 else { return }
        if minRTT == 0 || r <= minRTT || now &- minRTTStamp > Self.minRTTWindow {
            minRTT = r
            minRTTStamp = now
        }
    }

    /// After an ACK that moved SND.UNA or SACKed something new: `delivered`
    /// is every byte the peer holds (acknowledged plus SACKed). A round trip
    /// ends when SND.UNA passes the SND.MAX of its start; its delivery rate
    /// is the bytes delivered over its length.
    mutating func delivered(_ delivered: Int, sndUna: UInt32, sndMax: UInt32, now: Nanos) {
        guard let start = roundStart else {
            roundStart = now; roundEnd = sndMax; roundDelivered = delivered
            return
        }
        guard seqGE(sndUna, roundEnd) else { return }
        let bytes = delivered - roundDelivered
        if now > start && bytes > 0 {
            let (hi, lo) = UInt64(bytes).multipliedFullWidth(by: 1_000_000_000)
            let (q, _) = (now - start).dividingFullWidth((hi, lo))
            rates.append(q)
            if rates.count > Self.rounds { rates.removeFirst(rates.count - Self.rounds) }
        }
        roundStart = now; roundEnd = sndMax; roundDelivered = delivered
    }

}

extension TCB {
    /// The model's part of the replicated state ("FTS5").
    func pathSchema<C: StateCoder>(_ c: inout C) throws(C.Failure) {
        try c.field(&path.acked); try c.field(&path.roundEnd); try c.field(&path.roundStart)
        try c.field(&path.roundDelivered)
        var n = path.rates.count
        try c.count(&n, max: PathModel.rounds, what: "path rate count")
        if C.isDecoding { path.rates = Array(repeating: 0, count: n) }
        for i in 0..<n { try c.field(&path.rates[i]) }
        try c.field(&path.minRTT); try c.field(&path.minRTTStamp)
    }
}

extension Stack {
    /// Feeds the path model after an ACK with news (see `PathModel`).
    func samplePath(_ t: TCB, now: Nanos) {
        t.path.delivered(t.path.acked + t.sackedBytes, sndUna: t.sndUna, sndMax: t.sndMax, now: now)
    }

    /// The window a loss leaves (the new ssthresh): `decreased`, the loss-based
    /// answer, unless the path model's `cwndGain` BDPs (at most cwnd) are
    /// more; never below two segments.
    func windowAfterLoss(_ t: TCB, decreased: Int) -> Int {
        let held = min(t.cwnd, PathModel.cwndGain * t.path.bdp)
        if held > decreased { counters.tcpLossWindowHeld += 1 }
        return max(decreased, held, 2 * t.sendMSS)
    }
}
