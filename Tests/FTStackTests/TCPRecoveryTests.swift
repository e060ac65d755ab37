import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// Retransmission (RFC 6298), fast retransmit / NewReno (RFC 5681, 6582) and
/// zero-window probing (RFC 9293 3.8.6.1).
final class TCPRecoveryTests: XCTestCase {

    func testRetransmissionAfterRTOWithExponentialBackoff() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        let t0 = h.now
        let first = c.send("INCR\n")
        XCTAssertEqual(first.map(\.text), ["1\n"])
        XCTAssertEqual(h.stack.nextDeadline, t0 + sec, "initial RTO is 1 s")
        XCTAssertTrue(h.advance(to: t0 + sec - 1).isEmpty, "not before the RTO")
        let r1 = h.advance(to: t0 + sec).segs
        XCTAssertEqual(r1.count, 1)
        XCTAssertEqual(r1[0].seq, first[0].seq)
        XCTAssertEqual(r1[0].text, "1\n")
        XCTAssertEqual(r1[0].ack, first[0].ack)
        // Second retransmission after twice the RTO.
        XCTAssertTrue(h.advance(to: t0 + 3 * sec - 1).isEmpty)
        let r2 = h.advance(to: t0 + 3 * sec).segs
        XCTAssertEqual(r2.map(\.text), ["1\n"])
        XCTAssertEqual(h.stack.nextDeadline, t0 + 7 * sec)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 2)
        XCTAssertEqual(h.stack.counters.tcpRetransmits, 2)
        XCTAssertEqual(h.info(c)?.rto, 4 * sec)
        // The ACK stops the timer; the counter did not increment again.
        c.absorb(r2)
        c.ackAll()
        XCTAssertNil(h.stack.nextDeadline)
        XCTAssertEqual(c.request("GET\n").map(\.text), ["1\n"])
    }

    func testConnectionResetAfterMaxRetransmits() throws {
        var cfg = applianceConfig()
        cfg.maxRetransmits = 3
        let h = Harness(cfg)
        let c = h.client()
        c.connect()
        let t0 = h.now
        let first = c.send("INCR\n")
        var events: [(Nanos, [Seg])] = []
        while let d = h.stack.nextDeadline {
            events.append((d - t0, h.advance(to: d).segs))
        }
        XCTAssertEqual(events.map(\.0), [1 * sec, 3 * sec, 7 * sec, 15 * sec])
        for (_, segs) in events.dropLast() {
            XCTAssertEqual(segs.count, 1)
            XCTAssertEqual(segs.first?.text, "1\n")
            XCTAssertEqual(segs.first?.seq, first[0].seq)
        }
        let last = try XCTUnwrap(events.last?.1)
        XCTAssertEqual(last.count, 1)
        XCTAssertTrue(last[0].flags.contains(.rst), "RST after giving up: \(last)")
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertEqual(h.stack.counters.tcpResetsSent, 1)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 4)
        // The counter service saw the connection close (its partial-line table is empty).
        let svc = try XCTUnwrap(h.stack.streamServices[7000] as? CounterService)
        XCTAssertTrue(svc.partial.isEmpty)
    }

    func testDefaultRetransmitScheduleHonoursRTOMax() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        let t0 = h.now
        c.send("INCR\n")
        var times: [Nanos] = []
        var gotRST = false
        while let d = h.stack.nextDeadline {
            let segs = h.advance(to: d).segs
            if segs.contains(where: { $0.flags.contains(.rst) }) { gotRST = true } else { times.append((d - t0) / sec) }
        }
        // RTOs 1, 2, 4, 8, 16, 32, then capped at 60 s; 10 retransmissions, then RST.
        XCTAssertEqual(times, [1, 3, 7, 15, 31, 63, 123, 183, 243, 303])
        XCTAssertTrue(gotRST)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testRTTSampleSetsRTO() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        c.absorb(c.send("INCR\n"))
        h.now += 100 * ms
        c.ackAll()
        // First sample R = 100 ms: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR = 300 ms.
        XCTAssertEqual(h.info(c)?.rto, 300 * ms)
        c.absorb(c.send("INCR\n"))
        h.now += 10 * ms
        c.ackAll()
        // RTTVAR = 3/4*50 + 1/4*90 = 60, SRTT = 7/8*100 + 1/8*10 = 88.75 -> RTO = 328.75 ms.
        XCTAssertEqual(h.info(c)?.rto, 328_750_000)
        // Tiny RTTs are floored at rtoMin (200 ms).
        for _ in 0..<30 { c.absorb(c.send("GET\n")); h.now += 1000; c.ackAll() }
        XCTAssertEqual(h.info(c)?.rto, 200 * ms)
    }

    func testFastRetransmitOnThirdDuplicateACKAndNewRenoRecovery() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect(mss: 100))
        let una = sa.seq &+ 1
        let r = c.send([.ack], payload: [UInt8](repeating: 0x41, count: 500))
        XCTAssertEqual(r.map { $0.payload.count }, [100, 100, 100, 100, 100])
        XCTAssertEqual(r.map(\.seq), (0..<5).map { una &+ UInt32($0 * 100) })
        // Three duplicate ACKs (same ack, same window, no data).
        XCTAssertTrue(c.send([.ack], ack: una).isEmpty)
        XCTAssertTrue(c.send([.ack], ack: una).isEmpty)
        let fr = c.send([.ack], ack: una)
        XCTAssertEqual(fr.count, 1)
        XCTAssertEqual(fr.first?.seq, una)
        XCTAssertEqual(fr.first?.payload.count, 100)
        XCTAssertEqual(h.stack.counters.tcpFastRetransmits, 1)
        let t = try XCTUnwrap(h.tcb(c))
        XCTAssertTrue(t.inRecovery)
        XCTAssertEqual(t.ssthresh, 250, "max(FlightSize / 2, 2 * SMSS)")
        // A fourth duplicate does not retransmit again.
        XCTAssertTrue(c.send([.ack], ack: una).filter { !$0.payload.isEmpty && $0.seq == una }.isEmpty)
        // A partial ACK retransmits the next hole at once (RFC 6582).
        let partial = c.send([.ack], ack: una &+ 200)
        XCTAssertTrue(partial.contains { $0.seq == una &+ 200 && $0.payload.count == 100 }, "\(partial)")
        XCTAssertTrue(t.inRecovery)
        // A full ACK ends recovery with cwnd = ssthresh.
        c.send([.ack], ack: una &+ 500)
        XCTAssertFalse(t.inRecovery)
        XCTAssertEqual(t.cwnd, 250)
        XCTAssertNil(h.stack.nextDeadline)
    }

    func testWindowUpdateOrDataIsNotADuplicateACK() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect(mss: 100))
        let una = sa.seq &+ 1
        c.send([.ack], payload: [UInt8](repeating: 0x41, count: 300))
        // Same ACK but carrying data, or changing the window: not duplicates (RFC 5681 section 2).
        c.send([.ack], payload: [0x42], ack: una)
        c.send([.ack], ack: una, window: 60000)
        c.send([.ack], ack: una, window: 50000)
        XCTAssertEqual(h.stack.counters.tcpFastRetransmits, 0)
        XCTAssertEqual(h.tcb(c)?.dupAcks, 0)
    }

    // MARK: Zero window

    func testZeroWindowProbeAndReopen() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect())
        let t0 = h.now
        // The peer closes its window while sending us data to echo.
        let r = c.send("hello", window: 0)
        XCTAssertEqual(r.count, 1)
        XCTAssertTrue(r[0].payload.isEmpty, "nothing sent into a zero window")
        XCTAssertEqual(r[0].ack, c.sndNxt)
        XCTAssertEqual(h.info(c)?.sendQueued, 5)
        XCTAssertEqual(h.stack.nextDeadline, t0 + sec, "persist timer")
        XCTAssertTrue(h.advance(to: t0 + sec - 1).isEmpty)
        let p1 = h.advance(to: t0 + sec).segs
        XCTAssertEqual(p1.count, 1)
        XCTAssertTrue(p1[0].payload.isEmpty)
        XCTAssertEqual(p1[0].seq, sa.seq, "probe with SND.UNA - 1 elicits an ACK")
        XCTAssertEqual(h.stack.counters.tcpZeroWindowProbes, 1)
        // Still closed: the probes back off.
        XCTAssertTrue(c.ackAll(window: 0).isEmpty)
        XCTAssertEqual(h.stack.nextDeadline, t0 + 3 * sec)
        XCTAssertEqual(h.advance(to: t0 + 3 * sec).segs.count, 1)
        XCTAssertEqual(h.stack.counters.tcpZeroWindowProbes, 2)
        XCTAssertEqual(h.stack.connectionCount, 1)
        // The window opens: the data flows and probing stops.
        let open = c.ackAll(window: 1000)
        XCTAssertEqual(open.map(\.text), ["hello"])
        XCTAssertEqual(open.first?.seq, sa.seq &+ 1)
        c.absorb(open)
        c.ackAll(window: 1000)
        XCTAssertNil(h.stack.nextDeadline)
    }

    /// RFC 1122 4.2.2.17, with the zero-window limit (RFC 6429) off.
    func testZeroWindowPeerThatKeepsAnsweringIsNotReset() throws {
        var cfg = applianceConfig()
        cfg.maxRetransmits = 2
        cfg.zeroWindowTimeout = 0
        let h = Harness(cfg)
        let c = h.client(serverPort: 7)
        c.connect()
        c.send("hello", window: 0)
        for _ in 0..<10 {
            let d = try XCTUnwrap(h.stack.nextDeadline)
            XCTAssertEqual(h.advance(to: d).segs.count, 1)
            c.ackAll(window: 0)  // answers every probe
        }
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertEqual(h.stack.counters.tcpZeroWindowProbes, 10)
        // A silent peer is eventually reset.
        while let d = h.stack.nextDeadline { h.advance(to: d) }
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertEqual(h.stack.counters.tcpResetsSent, 1)
    }

    // MARK: Takeover

    func testRetransmitAllResendsOutstandingAndResetsBackoff() throws {
        let h = Harness()
        let a = h.client(port: 1001)
        a.connect()
        let sa = a.send("INCR\n")
        h.advance(by: sec)
        h.advance(by: 2 * sec)
        XCTAssertEqual(h.tcb(a)?.retries, 2)
        let b = h.client(port: 1002)
        b.connect()
        var out = Frames()
        h.stack.retransmitAll(now: h.now, out: &out)
        let segs = out.wireFrames.segs
        XCTAssertEqual(segs.count, 2)
        XCTAssertEqual(segs[0].tcp.dstPort, 1001)
        XCTAssertEqual(segs[0].text, "1\n")
        XCTAssertEqual(segs[0].seq, sa[0].seq)
        XCTAssertEqual(segs[1].tcp.dstPort, 1002)
        XCTAssertEqual(segs[1].flags, [.ack], "idle connection: a window advertisement")
        XCTAssertEqual(h.tcb(a)?.retries, 0)
    }

    func testTimeoutGoesBackAndSlowStarts() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect(mss: 100))
        let una = sa.seq &+ 1
        XCTAssertEqual(c.send([.ack], payload: [UInt8](repeating: 0x41, count: 500)).count, 5)
        // RTO: only the first segment is resent, cwnd collapses to one segment.
        let r = h.advance(by: sec).segs
        XCTAssertEqual(r.map(\.seq), [una])
        XCTAssertEqual(h.tcb(c)?.cwnd, 100)
        XCTAssertEqual(h.tcb(c)?.ssthresh, 350, "0.7 of min(cwnd 1000, flight 500), as Linux's CUBIC")
        // Its ACK grows cwnd to two segments: the next two are resent.
        let r2 = c.send([.ack], ack: una &+ 100)
        XCTAssertEqual(r2.map(\.seq), [una &+ 100, una &+ 200])
        XCTAssertEqual(h.stack.counters.tcpRetransmits, 3)
        let r3 = c.send([.ack], ack: una &+ 300)
        XCTAssertEqual(r3.map(\.seq), [una &+ 300, una &+ 400])
        c.send([.ack], ack: una &+ 500)
        XCTAssertNil(h.stack.nextDeadline)
        XCTAssertEqual(h.info(c)?.sendQueued, 0)
    }

    /// After a timeout SND.NXT is rewound for go-back-N, but a RST must carry
    /// the highest sequence number sent (RFC 9293 SND.NXT), or a peer that
    /// received everything would find it out of window and ignore it.
    func testGiveUpRSTCarriesHighestSequenceSent() throws {
        var cfg = applianceConfig()
        cfg.maxRetransmits = 2
        let h = Harness(cfg)
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect(mss: 100))
        XCTAssertEqual(c.send([.ack], payload: [UInt8](repeating: 0x41, count: 500)).count, 5)
        var last: [Seg] = []
        while let d = h.stack.nextDeadline { last = h.advance(to: d).segs }
        XCTAssertEqual(last.count, 1)
        XCTAssertTrue(last[0].flags.contains(.rst))
        XCTAssertEqual(last[0].seq, sa.seq &+ 1 &+ 500)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    /// RFC 6298 (5.7): after a SYN-ACK timeout with an RTO below 3 s, data
    /// transmission starts with RTO = 3 s (not the backed-off 2 s).
    func testRTOIsThreeSecondsAfterSYNACKTimeout() throws {
        let h = Harness()
        let c = h.client()
        let sa = c.sendRaw(c.frame([.syn], mss: 1460))[0]
        XCTAssertEqual(h.advance(by: sec).segs.map(\.flags), [[.syn, .ack]])
        c.sndNxt = c.isn &+ 1; c.rcvNxt = sa.seq &+ 1
        c.send([.ack])
        XCTAssertEqual(h.info(c)?.rto, 3 * sec)
        let t0 = h.now
        c.send("INCR\n")
        XCTAssertEqual(h.stack.nextDeadline, t0 + 3 * sec)
        // Without a SYN-ACK timeout the initial 1 s stands (see the other tests).
        let d = h.client(port: 50001)
        d.connect()
        XCTAssertEqual(h.info(d)?.rto, sec)
    }
}
