import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// Scripted-segment tests of loss recovery as a sender (RFC 6675 SACK
/// scoreboard, lost-retransmission detection, RFC 8985 tail loss probe) and
/// of the receiver's side (RFC 2018 block order, RFC 1122/5681 delayed ACKs,
/// RFC 7323 timestamps), issue 13.
final class TCPLossRecoveryTests: XCTestCase {

    /// A peer that negotiates SACK (and timestamps if asked) and can put
    /// SACK blocks and timestamps on what it sends.
    final class Peer {
        let c: Client
        var ts: UInt32? = nil
        /// The TSval of the last segment the server sent us (our TSecr).
        var tsEcr: UInt32 = 0
        var una: UInt32 = 0
        init(_ c: Client) { self.c = c }

        func frame(_ flags: TCPFlags, seq: UInt32? = nil, ack: UInt32? = nil, payload: [UInt8] = [],
                   sack: [(UInt32, UInt32)] = [], syn: Bool = false, mss: UInt16? = nil) -> [UInt8] {
            let stamp = ts.map { TCPTimestamps(value: $0, echo: tsEcr) }
            return FrameBuilder.tcp(ethSrc: c.mac, ethDst: applianceMAC, src: c.ip, dst: applianceAddress,
                                    srcPort: c.port, dstPort: c.serverPort, seq: seq ?? c.sndNxt,
                                    ack: flags.contains(.ack) ? (ack ?? c.rcvNxt) : 0, flags: flags, window: 65535,
                                    mss: mss, sackPermitted: syn, timestamps: stamp, sackBlocks: sack,
                                    payload: payload[...])
        }

        @discardableResult
        func send(_ flags: TCPFlags = [.ack], seq: UInt32? = nil, ack: UInt32? = nil, payload: [UInt8] = [],
                  sack: [(UInt32, UInt32)] = []) -> [Seg] {
            let f = frame(flags, seq: seq, ack: ack, payload: payload, sack: sack)
            if seq == nil { c.sndNxt = c.sndNxt &+ UInt32(payload.count) }
            let r = c.sendRaw(f)
            if let last = r.last?.tcp.timestamps { tsEcr = last.value }
            return r
        }

        /// SYN (SACK-permitted, MSS, timestamps if `ts` is set), SYN-ACK, ACK.
        @discardableResult
        func connect(mss: UInt16) throws -> Seg {
            c.sndNxt = c.isn
            let r = c.sendRaw(frame([.syn], seq: c.isn, syn: true, mss: mss))
            let sa = try XCTUnwrap(r.first)
            XCTAssertEqual(sa.flags, [.syn, .ack])
            c.serverISS = sa.seq
            c.rcvNxt = sa.seq &+ 1
            c.sndNxt = c.isn &+ 1
            una = sa.seq &+ 1
            if let t = sa.tcp.timestamps { tsEcr = t.value }
            XCTAssertTrue(send().isEmpty)
            return sa
        }
    }

    let data = [UInt8](repeating: 0x41, count: 1000)

    /// Echo: the client's 1000 bytes come back as ten 100-byte segments.
    func echoTen(_ h: Harness) throws -> (Peer, [Seg]) {
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        let r = p.send(payload: data)
        XCTAssertEqual(r.map { $0.payload.count }, Array(repeating: 100, count: 10))
        p.c.rcvNxt = p.una &+ 1000
        return (p, r)
    }

    // MARK: Sender: SACK scoreboard and recovery (RFC 6675)

    func testScoreboardMergesBlocksAndIgnoresOnesOutsideTheWindow() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let u = p.una
        p.send(ack: u, sack: [(u &+ 300, u &+ 400), (u &+ 100, u &+ 200)])
        p.send(ack: u, sack: [(u &+ 200, u &+ 300), (u &- 500, u), (u &+ 900, u &+ 2000)])  // D-SACK below, beyond SND.MAX
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertEqual(t.sacked, [SeqRange(left: u &+ 100, right: u &+ 400)])
        // A cumulative ACK trims it.
        p.send(ack: u &+ 200)
        XCTAssertEqual(t.sacked, [SeqRange(left: u &+ 200, right: u &+ 400)])
    }

    /// An ACK that carries data is no RFC 5681 duplicate ACK, but its SACK
    /// blocks still reveal losses (RFC 6675): every hole is retransmitted,
    /// not only the first.
    func testSACKOnDataCarryingACKRetransmitsEveryLostHole() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let u = p.una
        let r = p.send(ack: u, payload: Array("x".utf8), sack: [(u &+ 100, u &+ 200), (u &+ 300, u &+ 1000)])
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertTrue(t.inRecovery)
        XCTAssertEqual(t.ssthresh, 700, "0.7 * FlightSize (CUBIC's decrease)")
        XCTAssertEqual(r.filter { $0.payload.count == 100 }.map(\.seq), [u, u &+ 200], "both holes, in order")
        XCTAssertEqual(r.last?.seq, u &+ 1000, "then the new data (the echoed x)")
        XCTAssertEqual(r.last?.text, "x")
        XCTAssertEqual(h.stack.counters.tcpSACKRetransmits, 2)
        XCTAssertEqual(h.stack.counters.tcpFastRetransmits, 1)
        // A full ACK ends recovery at ssthresh and empties the scoreboard.
        p.send(ack: u &+ 1001)
        XCTAssertFalse(t.inRecovery)
        XCTAssertEqual(t.cwnd, 700)
        XCTAssertTrue(t.sacked.isEmpty)
    }

    func testTooFewSACKedBytesDoNotStartRecovery() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let u = p.una
        // 200 bytes (two segments) above the hole: not more than (DupThresh - 1) * SMSS.
        XCTAssertTrue(p.send(ack: u, sack: [(u &+ 100, u &+ 300)]).isEmpty)
        XCTAssertFalse(try XCTUnwrap(h.tcb(p.c)).inRecovery)
        // A third segment: lost.
        XCTAssertEqual(p.send(ack: u, sack: [(u &+ 100, u &+ 400)]).map(\.seq), [u])
    }

    /// In recovery a hole with a single SACKed segment above it is lost
    /// too (a partial ACK revealed it): no waiting for the RTO.
    func testInRecoveryEveryHoleBelowSACKedDataIsLost() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let u = p.una
        XCTAssertEqual(p.send(ack: u, sack: [(u &+ 100, u &+ 400), (u &+ 500, u &+ 600)]).map(\.seq), [u, u &+ 400],
                       "u (lost by DupThresh), then 400 (in recovery)")
        // A partial ACK: the next hole, 600..<700, has one segment SACKed above it.
        let r = p.send(ack: u &+ 600, sack: [(u &+ 700, u &+ 800)])
        XCTAssertEqual(r.map(\.seq), [u &+ 600])
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
    }

    /// A retransmission that is lost too: data sent after it is SACKed while
    /// the hole stays, so it is sent again (no RTO).
    func testLostRetransmissionIsDetectedAndResent() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let u = p.una
        let r1 = p.send(ack: u, sack: [(u &+ 100, u &+ 1000)])
        XCTAssertEqual(r1.map(\.seq), [u])
        // The peer sends more: its echo goes out after the retransmission.
        let r2 = p.send(ack: u, payload: Array("yz".utf8), sack: [(u &+ 100, u &+ 1000)])
        XCTAssertEqual(r2.map(\.seq), [u &+ 1000])
        // The new data arrives, the retransmitted hole does not.
        let r3 = p.send(ack: u, sack: [(u &+ 100, u &+ 1002)])
        XCTAssertEqual(r3.map(\.seq), [u], "the hole again")
        XCTAssertEqual(h.stack.counters.tcpLostRetransmits, 1)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
    }

    /// A short flight: too few segments after the hole for DupThresh, so
    /// RACK's reordering window (SRTT / 4, at least 1 ms) declares it lost.
    func testHoleInShortFlightIsLostAfterTheReorderingWindow() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        XCTAssertEqual(p.send(payload: Array(data[0..<300])).count, 3)
        let u = p.una
        XCTAssertTrue(p.send(ack: u, sack: [(u &+ 100, u &+ 300)]).isEmpty, "two segments SACKed: not yet lost")
        XCTAssertEqual(h.stack.nextDeadline, h.now + 2_500_000, "SRTT / 4 = 2.5 ms")
        let r = h.advance(by: 2_500_000).segs
        XCTAssertEqual(r.map(\.seq), [u])
        XCTAssertEqual(h.stack.counters.tcpReorderTimeouts, 1)
        XCTAssertTrue(try XCTUnwrap(h.tcb(p.c)).inRecovery)
        p.send(ack: u &+ 300)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
    }

    /// A probe's answer that repeats known SACK blocks still starts recovery.
    func testProbeAnsweredWithKnownSACKBlocksStartsRecovery() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        p.send(payload: Array(data[0..<300]))
        let u = p.una
        // The last segment arrived, the first did not; the probe (a resend of the last) is reported again.
        p.send(ack: u, sack: [(u &+ 200, u &+ 300)])
        // (Before the reordering window passes, the probe timer is not the one due.)
        let t = try XCTUnwrap(h.tcb(p.c))
        t.tlpDeadline = nil
        t.tlpHigh = t.sndMax
        let r = p.send(ack: u, sack: [(u &+ 200, u &+ 300)])
        XCTAssertEqual(r.map(\.seq), [u, u &+ 100])
        XCTAssertTrue(t.inRecovery)
    }

    /// After a timeout the go-back-N resend skips what the peer SACKed.
    func testTimeoutResendSkipsSACKedData() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        XCTAssertEqual(p.send(payload: Array(data[0..<500])).count, 5)
        let u = p.una
        p.send(ack: u, sack: [(u &+ 100, u &+ 300)])
        let r = h.advance(by: sec).segs
        XCTAssertEqual(r.map(\.seq), [u])
        let r2 = p.send(ack: u &+ 100, sack: [(u &+ 100, u &+ 300)])
        XCTAssertEqual(r2.map(\.seq), [u &+ 300, u &+ 400], "SACKed 100..<300 not resent")
    }

    /// While the go-back-N resend after a timeout has not caught up with
    /// SND.MAX, SACKs do not start fast recovery (whose pipe would count
    /// the rewound segments as in flight and stop the resend).
    func testNoFastRecoveryWhileResendingAfterTimeout() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let u = p.una
        XCTAssertEqual(h.advance(by: sec).segs.map(\.seq), [u])
        let r = p.send(ack: u &+ 100, sack: [(u &+ 500, u &+ 1000)])
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertFalse(t.inRecovery)
        XCTAssertEqual(r.map(\.seq), [u &+ 100, u &+ 200], "slow start resends, two segments")
        XCTAssertEqual(p.send(ack: u &+ 300, sack: [(u &+ 500, u &+ 1000)]).map(\.seq), [u &+ 300, u &+ 400],
                       "then skips the SACKed 500..<1000")
        p.send(ack: u &+ 1000)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 1)
    }

    /// A timeout with a short segment outstanding and more data waiting
    /// (here for the peer's window) resends just that segment: resending
    /// unsent bytes too let the peer ACK past SND.MAX, which is dropped,
    /// and the connection hung (seen at 8 % loss).
    func testTimeoutResendsOnlyWhatWasSent() throws {
        let h = Harness()
        let c = h.client(serverPort: echoPort)
        let sa = try XCTUnwrap(c.connect(mss: 100))
        let una = sa.seq &+ 1
        let r = c.send([.ack], payload: [UInt8](repeating: 0x41, count: 300), window: 48)
        XCTAssertEqual(r.map { $0.payload.count }, [48])
        let rto = h.advance(by: sec).segs
        XCTAssertEqual(rto.map { $0.payload.count }, [48])
        XCTAssertEqual(rto.first?.seq, una)
        // Its ACK (with the window open) is taken, and the rest flows.
        c.rcvNxt = una &+ 48
        let more = c.send([.ack], window: 1000)
        XCTAssertEqual(h.info(c)?.sndUna, una &+ 48)
        XCTAssertEqual(more.first?.seq, una &+ 48)
    }

    // MARK: Tail loss probe (RFC 8985 section 7)

    /// Gives the connection an RTT sample of 10 ms.
    func sampleRTT(_ h: Harness, _ p: Peer) {
        let e = p.send(payload: Array("a".utf8))
        p.c.rcvNxt = p.c.rcvNxt &+ UInt32(e.first?.payload.count ?? 0)
        h.now += 10 * ms
        p.send()
        p.una = p.c.rcvNxt
    }

    func testLossProbeFiresAtTwoSRTTAndResendsTheLastSegment() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        XCTAssertNil(h.stack.nextDeadline)
        let t0 = h.now
        XCTAssertEqual(p.send(payload: Array(data[0..<500])).count, 5)
        let u = p.una
        XCTAssertEqual(h.stack.nextDeadline, t0 + 2 * 10 * ms + 2 * ms, "PTO = 2 SRTT + 2 ms")
        let probe = h.advance(to: t0 + 22 * ms).segs
        XCTAssertEqual(probe.map(\.seq), [u &+ 400])
        XCTAssertEqual(probe.first?.payload.count, 100)
        XCTAssertEqual(h.stack.counters.tcpLossProbes, 1)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
        XCTAssertEqual(h.stack.nextDeadline, h.now + 200 * ms, "then the RTO")
        // The probe's ACK: the first segment arrived, two did not, the probe did.
        let r = p.send(ack: u &+ 100, sack: [(u &+ 400, u &+ 500)])
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertTrue(t.inRecovery, "after a probe, holes below SACKed data are lost")
        XCTAssertEqual(r.first?.seq, u &+ 100)
        p.send(ack: u &+ 200, sack: [(u &+ 400, u &+ 500)])
        p.send(ack: u &+ 500)
        XCTAssertFalse(t.inRecovery)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
    }

    func testLossProbeWithOneSegmentInFlightWaitsForADelayedACK() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        let t0 = h.now
        p.send(payload: Array("bc".utf8))
        // max(2 SRTT, SRTT + 200 ms) + 2 ms, but never beyond the RTO (200 ms here).
        XCTAssertEqual(h.stack.nextDeadline, t0 + 200 * ms)
        XCTAssertEqual(h.advance(to: t0 + 200 * ms).segs.map(\.text), ["bc"])
    }

    func testNoLossProbeWithoutSACK() throws {
        let h = Harness()
        let c = h.client(serverPort: echoPort)
        c.connect(mss: 100)
        c.absorb(c.send("a"))
        h.now += 10 * ms
        c.ackAll()
        let t0 = h.now
        c.send([.ack], payload: Array(data[0..<300]))
        XCTAssertEqual(h.stack.nextDeadline, t0 + 200 * ms, "only the RTO")
    }

    /// In recovery, a retransmission not answered within 2 SRTT + 2 ms is
    /// sent again (RACK's reordering timer), instead of waiting for the RTO.
    func testUnansweredRetransmissionInRecoveryIsResentBeforeTheRTO() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        p.send(payload: data)
        let u = p.una
        XCTAssertEqual(p.send(ack: u, sack: [(u &+ 100, u &+ 1000)]).map(\.seq), [u])
        let t1 = h.now
        XCTAssertEqual(h.stack.nextDeadline, t1 + 22 * ms)
        XCTAssertEqual(h.advance(to: t1 + 22 * ms).segs.map(\.seq), [u], "the hole again")
        XCTAssertEqual(h.stack.counters.tcpLossProbes, 1)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
        p.send(ack: u &+ 1000)
        XCTAssertFalse(try XCTUnwrap(h.tcb(p.c)).inRecovery)
    }

    /// The recovery timer's resends do not restart the RTO: a peer gone
    /// silent in recovery still meets the RTO backoff and the reset.
    func testSilentPeerInRecoveryStillTimesOutAndIsReset() throws {
        var cfg = applianceConfig()
        cfg.maxRetransmits = 2
        let h = Harness(cfg)
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        p.send(payload: data)
        let u = p.una
        p.send(ack: u, sack: [(u &+ 100, u &+ 1000)])
        var steps = 0
        while let d = h.stack.nextDeadline, steps < 100 { h.advance(to: d); steps += 1 }
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 3)
        XCTAssertEqual(h.stack.counters.tcpResetsSent, 1)
        XCTAssertLessThanOrEqual(h.stack.counters.tcpLossProbes, 1 + 3, "a few recovery-timer resends, then the RTO")
    }

    /// Without an ACK the recovery timer resends at most three times, the
    /// interval doubling (22, 44, 88 ms here), and the RTO still fires on time.
    func testRecoveryTimerResendsBackOffAndStop() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        sampleRTT(h, p)
        p.send(payload: data)
        let u = p.una
        p.send(ack: u, sack: [(u &+ 100, u &+ 1000)])
        let t0 = h.now
        var resends: [Nanos] = []
        while let d = h.stack.nextDeadline, h.stack.counters.tcpTimeouts == 0 {
            let r = h.advance(to: d).segs
            if h.stack.counters.tcpTimeouts == 0 { XCTAssertEqual(r.map(\.seq), [u]); resends.append((d - t0) / ms) }
        }
        XCTAssertEqual(resends, [22, 66, 154], "22, then +44, +88")
        XCTAssertEqual(h.now - t0, 200 * ms, "the RTO, not pushed back by the resends")
    }

    // MARK: Receiver: SACK blocks, delayed ACKs

    func testSACKBlocksPutTheMostRecentSegmentFirst() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: discardPort))
        try p.connect(mss: 100)
        let s0 = p.c.sndNxt
        func blocks(_ off: UInt32) -> [SACKBlock] {
            let r = p.send(seq: s0 &+ off, payload: Array(data[0..<100]))
            XCTAssertEqual(r.count, 1, "out-of-order data is acknowledged at once")
            XCTAssertEqual(r.first?.ack, s0)
            return r.first?.tcp.sackBlocks ?? []
        }
        func b(_ l: UInt32, _ r: UInt32) -> SACKBlock { SACKBlock(left: s0 &+ l, right: s0 &+ r) }
        XCTAssertEqual(blocks(100), [b(100, 200)])
        XCTAssertEqual(blocks(300), [b(300, 400), b(100, 200)])
        XCTAssertEqual(blocks(500), [b(500, 600), b(100, 200), b(300, 400)])
        XCTAssertEqual(blocks(200), [b(100, 400), b(500, 600)], "the run that grew goes first")
    }

    func testDelayedACKAfterQuickACKsEverySecondSegmentOrTimer() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: discardPort))
        try p.connect(mss: 100)
        for _ in 0..<16 { XCTAssertEqual(p.send(payload: Array(data[0..<100])).count, 1, "quick ACKs") }
        // First segment after them: no ACK yet, a 40 ms timer.
        XCTAssertTrue(p.send(payload: Array(data[0..<100])).isEmpty)
        XCTAssertEqual(h.stack.nextDeadline, h.now + 40 * ms)
        // The second: ACK at once, for both.
        let two = p.send(payload: Array(data[0..<100]))
        XCTAssertEqual(two.map(\.ack), [p.c.sndNxt])
        XCTAssertNil(h.stack.nextDeadline)
        // A lone segment is acknowledged by the timer, on a tick.
        XCTAssertTrue(p.send(payload: Array(data[0..<100])).isEmpty)
        XCTAssertTrue(h.advance(by: 40 * ms - 1).isEmpty)
        XCTAssertEqual(h.advance(by: 1).segs.map(\.ack), [p.c.sndNxt])
        XCTAssertEqual(h.stack.counters.tcpDelayedAcks, 1)
        // A segment out of order is acknowledged at once, and so is the one filling the hole.
        let s = p.c.sndNxt
        XCTAssertEqual(p.send(seq: s &+ 100, payload: Array(data[0..<100])).count, 1)
        XCTAssertEqual(p.send(seq: s, payload: Array(data[0..<100])).map(\.ack), [s &+ 200])
    }

    func testOutOfOrderQueueIsBoundedInBytes() throws {
        var cfg = applianceConfig()
        cfg.receiveBufferBytes = 1000
        let h = Harness(cfg)
        let p = Peer(h.client(serverPort: discardPort))
        try p.connect(mss: 1000)
        let s0 = p.c.sndNxt
        p.send(seq: s0 &+ 100, payload: Array(data[0..<800]))
        p.send(seq: s0 &+ 150, payload: Array(data[0..<800]))  // overlaps: 1600 bytes held
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertLessThanOrEqual(t.ooo.reduce(0) { $0 + $1.data.count }, 1000)
        XCTAssertEqual(t.ooo.map(\.seq), [s0 &+ 100], "the furthest segment went")
        XCTAssertEqual(h.stack.counters.tcpOutOfOrderDropped, 1)
    }

    /// Slow start counts bytes with L = 2 SMSS (RFC 3465): an ACK of two
    /// segments opens cwnd by two.
    func testSlowStartGrowsByTwoSegmentsForADelayedACK() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertEqual(t.cwnd, 1000)
        p.send(ack: p.una &+ 200)
        XCTAssertEqual(t.cwnd, 1200)
        p.send(ack: p.una &+ 500)
        XCTAssertEqual(t.cwnd, 1400, "at most 2 SMSS per ACK")
    }

    /// Congestion avoidance counts bytes (RFC 3465 section 2.1, as Linux
    /// counts segments): an ACK of two segments (a delayed ACK) grows cwnd by
    /// SMSS * 2 SMSS / cwnd, twice the per-ACK SMSS * SMSS / cwnd.
    func testCongestionAvoidanceCountsBytesNotACKs() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let t = try XCTUnwrap(h.tcb(p.c))
        t.ssthresh = 500  // congestion avoidance, cwnd 1000, ten 100-byte segments in flight
        p.send(ack: p.una &+ 200)
        XCTAssertEqual(t.cwnd, 1020, "100 * 200 / 1000 (per ACK it would be 1010)")
        p.send(ack: p.una &+ 400)
        XCTAssertEqual(t.cwnd, 1039, "100 * 200 / 1020")
    }

    /// RFC 7661: an application-limited flight (far below cwnd) does not grow cwnd.
    func testCwndDoesNotGrowWhileApplicationLimited() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: 100)
        let t = try XCTUnwrap(h.tcb(p.c))
        for _ in 0..<5 {
            let r = p.send(payload: Array("ab".utf8))
            p.c.rcvNxt = p.c.rcvNxt &+ UInt32(r.first?.payload.count ?? 0)
            p.send()
        }
        XCTAssertEqual(t.cwnd, 1000, "2-byte flights never limited by a 1000-byte cwnd")
    }

    // MARK: Path model (BBR's bandwidth and min-RTT filters) and the loss response

    /// One round trip: from the first ACK with news to the ACK that passes
    /// the SND.MAX of that moment. Its rate is the bytes delivered over its
    /// log time; the RTT sample feeds the minimum.
    func testPathModelMeasuresADeliveryRateAndMinimumRTT() throws {
        let h = Harness()
        let (p, _) = try echoTen(h)
        let t = try XCTUnwrap(h.tcb(p.c))
        _ = h.advance(by: 1 * ms)
        p.send(ack: p.una &+ 200)  // RTT sample of the first segment: 1 ms; the round starts here
        XCTAssertEqual(t.path.minRTT, 1 * ms)
        XCTAssertEqual(t.path.rates, [], "no round has ended yet")
        _ = h.advance(by: 2 * ms)
        p.send(ack: p.una &+ 400, sack: [(p.una &+ 500, p.una &+ 1000)])  // SACKed bytes count as delivered
        XCTAssertEqual(t.path.rates, [], "SND.UNA has not passed the round's SND.MAX")
        p.send(ack: p.una &+ 1000)
        XCTAssertEqual(t.path.rates, [400_000], "800 bytes in 2 ms")
        XCTAssertEqual(t.path.bdp, 400, "400,000 B/s x 1 ms")
    }

    /// A loss leaves cwnd at two BDPs (at most cwnd itself) when that is more
    /// than CUBIC's 0.7, and counts it; a path model with less changes nothing.
    func testLossLeavesTwoBDPsOfCwndWhenThePathCarriedThem() throws {
        for (rate, want, held) in [(UInt64(1_000_000), 1000, UInt64(1)), (100_000, 700, 0)] {
            let h = Harness()
            let (p, _) = try echoTen(h)
            let t = try XCTUnwrap(h.tcb(p.c))
            t.path.rates = [rate]; t.path.minRTT = 1 * ms   // BDP 1000 or 100 bytes
            let u = p.una
            p.send(ack: u, payload: Array("x".utf8), sack: [(u &+ 100, u &+ 200), (u &+ 300, u &+ 1000)])
            XCTAssertTrue(t.inRecovery)
            XCTAssertEqual(t.ssthresh, want, "rate \(rate): max(0.7 x cwnd 1000, min(cwnd, 2 BDP))")
            XCTAssertEqual(t.cwnd, want)
            XCTAssertEqual(h.stack.counters.tcpLossWindowHeld, held)
        }
    }

    /// The filters: the highest of the last ten rounds' rates; the lowest RTT
    /// until it is ten seconds old, then the next sample, even a higher one.
    func testPathModelFiltersKeepTenRoundsAndTenSeconds() {
        var m = PathModel()
        var now: Nanos = 1_000 * ms
        var una: UInt32 = 1000
        m.delivered(0, sndUna: una, sndMax: una &+ 100, now: now)
        for i in 1...12 {
            now += 1 * ms; una &+= 100
            m.delivered(i * 100 + (i >= 2 ? 900 : 0), sndUna: una, sndMax: una &+ 100, now: now)
        }
        XCTAssertEqual(m.rates.count, PathModel.rounds)
        XCTAssertEqual(m.maxRate, 100_000, "round 2's 1,000,000 B/s is older than ten rounds")
        m.rtt(5 * ms, now: now)
        m.rtt(7 * ms, now: now + 1 * ms)
        XCTAssertEqual(m.minRTT, 5 * ms)
        m.rtt(7 * ms, now: now + PathModel.minRTTWindow + 1)
        XCTAssertEqual(m.minRTT, 7 * ms, "an expired minimum gives way")
        XCTAssertEqual(m.bdp, 700)
    }

    // MARK: Timestamps (RFC 7323)

    func testTimestampsFollowTheLogClockAndEchoTSRecent() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        p.ts = 777
        let sa = try p.connect(mss: 1460)
        let t = try XCTUnwrap(h.tcb(p.c))
        XCTAssertEqual(sa.tcp.timestamps, TCPTimestamps(value: UInt32(truncatingIfNeeded: h.now / ms) &+ t.iss, echo: 777))
        h.now += 5 * ms
        p.ts = 790
        let r = p.send(payload: [UInt8](repeating: 0x42, count: 3000))
        XCTAssertEqual(r.map { $0.payload.count }, [1448, 1448, 104], "MSS less the 12 option bytes")
        for s in r {
            XCTAssertEqual(s.tcp.timestamps?.echo, 790)
            XCTAssertEqual(s.tcp.timestamps?.value, UInt32(truncatingIfNeeded: h.now / ms) &+ t.iss)
            XCTAssertLessThanOrEqual(s.frame.count, 14 + 1500)
        }
    }

    func testSegmentsWithSACKAndTimestampsFitTheMTU() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        p.ts = 1
        try p.connect(mss: 1460)
        let s0 = p.c.sndNxt
        p.send(seq: s0 &+ 5000, payload: [1])  // a hole: every segment now carries a SACK block
        let r = p.send(payload: [UInt8](repeating: 0x43, count: 3000))
        XCTAssertFalse(r.isEmpty)
        for s in r {
            XCTAssertEqual(s.tcp.sackBlocks.count, 1)
            XCTAssertLessThanOrEqual(s.frame.count - 14, 1500, "\(s)")
        }
        XCTAssertEqual(r.first?.payload.count, 1448 - 12)
    }

    /// Karn's algorithm gives no sample after a timeout; the echoed
    /// timestamp does, and ends the backoff.
    func testEchoedTimestampAfterTimeoutEndsBackoff() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        p.ts = 1
        try p.connect(mss: 100)
        p.send(payload: Array("hello".utf8))
        let r = h.advance(by: sec).segs
        XCTAssertEqual(r.map(\.text), ["hello"])
        XCTAssertEqual(h.info(p.c)?.rto, 2 * sec)
        p.tsEcr = try XCTUnwrap(r.first?.tcp.timestamps?.value)
        h.now += 10 * ms
        p.c.rcvNxt = p.c.rcvNxt &+ 5
        p.send()
        XCTAssertEqual(h.info(p.c)?.rto, 200 * ms)
    }

    func testSYNACKRetransmissionRepeatsItsOptions() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        p.ts = 55
        let sa = try XCTUnwrap(p.c.sendRaw(p.frame([.syn], seq: p.c.isn, syn: true, mss: 1000)).first)
        let again = try XCTUnwrap(h.advance(by: sec).segs.first)
        XCTAssertEqual(again.flags, [.syn, .ack])
        XCTAssertEqual(again.seq, sa.seq)
        XCTAssertEqual(again.tcp.mss, sa.tcp.mss)
        XCTAssertEqual(again.tcp.sackPermitted, true)
        XCTAssertEqual(again.tcp.timestamps?.echo, 55)
        XCTAssertEqual(again.tcp.timestamps?.value, (sa.tcp.timestamps?.value ?? 0) &+ 1000, "1 s later")
    }

    // MARK: Determinism

    /// Two stacks fed the same lossy SACK/timestamp exchange emit the same bytes.
    func testLossRecoveryIsDeterministic() throws {
        func run() throws -> ([[UInt8]], UInt64) {
            let h = Harness()
            let p = Peer(h.client(serverPort: echoPort))
            p.ts = 9
            try p.connect(mss: 100)
            sampleRTT(h, p)
            let u = p.una
            p.send(payload: data)
            h.advance(by: 22 * ms)
            p.send(ack: u &+ 100, payload: [1, 2], sack: [(u &+ 300, u &+ 1000)])
            p.send(ack: u &+ 100, sack: [(u &+ 300, u &+ 1002)])
            h.advance(by: sec)
            p.send(ack: u &+ 1002)
            return (h.transcript, h.stack.digest)
        }
        let a = try run(), b = try run()
        XCTAssertEqual(a.0, b.0)
        XCTAssertEqual(a.1, b.1)
        XCTAssertGreaterThan(a.0.count, 10)
    }
}
