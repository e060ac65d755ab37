import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// Scripted-segment tests of what keeps TCP bounded on real networks
/// (issue 13): path MTU discovery (RFC 1191, validated as RFC 5927 4.1
/// asks), PAWS (RFC 7323 5.3), keepalive (RFC 1122 4.2.3.6), the idle and
/// zero-window limits (RFC 6429), the per-source limit, and a go-live whose
/// clock is far ahead of the log.
final class TCPLimitsTests: XCTestCase {
    typealias Peer = TCPLossRecoveryTests.Peer

    /// An echo connection holding `n` echoed, unacknowledged bytes.
    func echoUnacked(_ h: Harness, n: Int, mss: UInt16 = 1460) throws -> (Peer, [Seg]) {
        let p = Peer(h.client(serverPort: echoPort))
        try p.connect(mss: mss)
        let r = p.send(payload: [UInt8](repeating: 0x50, count: n))
        XCTAssertFalse(r.isEmpty)
        return (p, r)
    }

    /// "Fragmentation needed" from a router, quoting `seg`'s IP header and
    /// the first 8 bytes of its TCP header.
    func fragNeeded(quoting seg: Seg, mtu: UInt16, seq: UInt32? = nil) -> [UInt8] {
        var quote = Array(seg.frame[14..<(14 + 20 + 8)])
        if let seq { quote.replaceSubrange(24..<28, with: [UInt8(seq >> 24), UInt8(seq >> 16 & 0xFF), UInt8(seq >> 8 & 0xFF), UInt8(seq & 0xFF)]) }
        return icmpFrame(type: 3, code: 4, rest: UInt32(mtu), body: quote, src: IPv4Address(10, 0, 0, 254))
    }

    // MARK: Path MTU (RFC 1191)

    func testFragmentationNeededLowersMSSAndResendsInSegmentsThatFit() throws {
        let h = Harness()
        let (p, r) = try echoUnacked(h, n: 5000)
        XCTAssertEqual(r.first?.payload.count, 1460)
        let una = r[0].seq
        let out = h.input(fragNeeded(quoting: r[0], mtu: 1400)).segs
        XCTAssertEqual(h.stack.counters.tcpPMTUUpdates, 1)
        XCTAssertEqual(h.tcb(p.c)?.sendMSS, 1360)
        XCTAssertFalse(out.isEmpty, "the data in flight is resent at once")
        XCTAssertEqual(out.first?.seq, una)
        for s in out { XCTAssertLessThanOrEqual(s.frame.count - 14, 1400, "\(s)") }
        XCTAssertEqual(out.first?.payload.count, 1360)
        // Everything goes through in the smaller segments.
        var got = 0
        for s in out where s.seq == una &+ UInt32(got) { got += s.payload.count }
        p.c.rcvNxt = una &+ UInt32(got)
        let more = p.send()
        for s in more { XCTAssertLessThanOrEqual(s.frame.count - 14, 1400) }
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
    }

    func testFragmentationNeededOutsideTheUnacknowledgedDataIsIgnored() throws {
        let h = Harness()
        let (p, r) = try echoUnacked(h, n: 3000)
        let t = try XCTUnwrap(h.tcb(p.c))
        // A sequence number never sent, and one already acknowledged.
        XCTAssertTrue(h.input(fragNeeded(quoting: r[0], mtu: 1000, seq: t.sndMax)).isEmpty)
        XCTAssertTrue(h.input(fragNeeded(quoting: r[0], mtu: 1000, seq: t.sndUna &- 1)).isEmpty)
        // No such connection (another port in the quote).
        var other = fragNeeded(quoting: r[0], mtu: 1000)
        other[14 + 20 + 8 + 20 + 2] ^= 0xFF
        var c = InternetChecksum(); other[14 + 20 + 2] = 0; other[14 + 20 + 3] = 0
        c.add(other, (14 + 20)..<other.count); other.writeBE16(c.value, at: 14 + 20 + 2)
        XCTAssertTrue(h.input(other).isEmpty)
        XCTAssertEqual(h.stack.counters.icmpErrorsIgnored, 3)
        XCTAssertEqual(h.stack.counters.tcpPMTUUpdates, 0)
        XCTAssertEqual(t.sendMSS, 1460)
        // A larger MTU never raises the MSS.
        XCTAssertTrue(h.input(fragNeeded(quoting: r[0], mtu: 9000)).isEmpty)
        XCTAssertEqual(t.sendMSS, 1460)
    }

    func testFragmentationNeededIsClampedToTheMinimumPathMTUAndUsesPlateaus() throws {
        let h = Harness()
        let (p, r) = try echoUnacked(h, n: 3000)
        h.input(fragNeeded(quoting: r[0], mtu: 100))
        XCTAssertEqual(h.tcb(p.c)?.sendMSS, 552 - 40, "never below minPathMTU")
        // An old router (MTU 0): the plateau below the quoted length (1500 -> 1492).
        let h2 = Harness()
        let (p2, r2) = try echoUnacked(h2, n: 3000)
        h2.input(fragNeeded(quoting: r2[0], mtu: 0))
        XCTAssertEqual(h2.tcb(p2.c)?.sendMSS, 1492 - 40)
    }

    func testICMPErrorParsesTheQuote() throws {
        let h = Harness()
        let (_, r) = try echoUnacked(h, n: 2000)
        let f = fragNeeded(quoting: r[0], mtu: 1400)
        let ip = try IPv4Header.parse(f, at: 14)
        let e = try ICMPError.parse(f, ip: ip)
        XCTAssertTrue(e.isFragmentationNeeded)
        XCTAssertEqual(e.nextHopMTU, 1400)
        XCTAssertEqual(e.quotedSrc, applianceAddress)
        XCTAssertEqual(e.quotedSrcPort, echoPort)
        XCTAssertEqual(e.quotedSeq, r[0].seq)
        XCTAssertEqual(Int(e.quotedTotalLength), r[0].frame.count - 14)
        XCTAssertThrowsError(try ICMPError.parse(Array(f.dropLast(1)), ip: ip))
        XCTAssertEqual(ICMPError.plateau(below: 1500), 1492)
        XCTAssertEqual(ICMPError.plateau(below: 60), 68)
    }

    // MARK: PAWS (RFC 7323 5.3)

    func testOldTimestampIsDroppedWithAnACK() throws {
        let h = Harness()
        let p = Peer(h.client(serverPort: echoPort))
        p.ts = 1000
        try p.connect(mss: 1460)
        p.ts = 1010
        let ok = p.send(payload: Array("fresh".utf8))
        XCTAssertEqual(ok.first?.payload, Array("fresh".utf8))
        p.c.rcvNxt = p.c.rcvNxt &+ 5
        p.ts = 900  // a stale duplicate from an earlier wrap
        let r = p.send(payload: Array("stale".utf8))
        XCTAssertEqual(h.stack.counters.tcpPAWSDropped, 1)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r.first?.payload.count, 0)
        XCTAssertEqual(r.first?.ack, p.c.sndNxt &- 5, "the stale data is not acknowledged")
        XCTAssertEqual(h.tcb(p.c)?.tsRecent, 1010)
        // A RST with an old timestamp is not subject to PAWS (it goes to the RST checks).
        p.ts = 901
        p.send([.rst, .ack], seq: p.c.sndNxt &- 5)
        XCTAssertNil(h.tcb(p.c))
    }

    // MARK: Keepalive and idle limit (RFC 1122 4.2.3.6)

    func testKeepaliveProbesASilentPeerThenResets() throws {
        var cfg = applianceConfig()
        cfg.keepaliveIdle = 10_000 * ms; cfg.keepaliveInterval = 1_000 * ms; cfg.keepaliveProbes = 2
        let h = Harness(cfg)
        let c = h.client()
        c.connect()
        c.request("INCR\n"); c.ackAll()
        XCTAssertTrue(h.advance(by: 9_999 * ms).isEmpty)
        let p1 = h.advance(by: 1 * ms).segs
        XCTAssertEqual(p1.count, 1)
        XCTAssertEqual(p1.first?.seq, c.rcvNxt &- 1, "SND.UNA - 1, no data")
        XCTAssertEqual(p1.first?.payload.count, 0)
        // The peer answers: the idle period starts over.
        c.ackAll()
        XCTAssertTrue(h.advance(by: 9_999 * ms).isEmpty)
        XCTAssertEqual(h.advance(by: 1 * ms).segs.count, 1)
        XCTAssertEqual(h.advance(by: 1_000 * ms).segs.count, 1)
        let last = h.advance(by: 1_000 * ms).segs
        XCTAssertEqual(last.map(\.flags), [[.rst, .ack]])
        XCTAssertNil(h.tcb(c))
        XCTAssertEqual(h.stack.counters.tcpKeepaliveProbes, 3)
        XCTAssertEqual(h.stack.counters.tcpKeepaliveResets, 1)
    }

    func testIdleTimeoutResetsAndIsOffByDefault() throws {
        var cfg = applianceConfig()
        cfg.idleTimeout = 30_000 * ms
        let h = Harness(cfg)
        let c = h.client()
        c.connect()
        h.advance(by: 29_000 * ms)
        c.request("INCR\n"); c.ackAll()
        XCTAssertTrue(h.advance(by: 29_999 * ms).isEmpty)
        XCTAssertNotNil(h.tcb(c))
        XCTAssertEqual(h.advance(by: 1 * ms).segs.map(\.flags), [[.rst, .ack]])
        XCTAssertNil(h.tcb(c))
        XCTAssertEqual(h.stack.counters.tcpIdleResets, 1)

        let off = Harness()
        let d = off.client()
        d.connect()
        XCTAssertNil(off.stack.nextDeadline, "no idle timer by default")
        off.advance(by: 86_400_000 * ms)
        XCTAssertNotNil(off.tcb(d))
    }

    // MARK: Zero window (RFC 6429)

    func testPeerThatNeverReopensItsWindowIsResetThoughItAnswersProbes() throws {
        var cfg = applianceConfig()
        cfg.zeroWindowTimeout = 5_000 * ms
        let h = Harness(cfg)
        let c = h.client(serverPort: echoPort)
        c.connect()
        XCTAssertTrue(c.send("x", window: 0).allSatisfy { $0.payload.isEmpty }, "nothing goes into a zero window")
        var probes = 0, reset = false
        for _ in 0..<40 {
            let out = h.advance(by: 500 * ms).segs
            if out.contains(where: { $0.flags.contains(.rst) }) { reset = true; break }
            probes += out.count
            if !out.isEmpty { c.ackAll(window: 0) }  // answered, window still closed
        }
        XCTAssertTrue(reset)
        XCTAssertGreaterThan(probes, 1)
        XCTAssertLessThanOrEqual(h.now - 1_000 * sec, 9_000 * ms)
        XCTAssertEqual(h.stack.counters.tcpZeroWindowResets, 1)
        XCTAssertNil(h.tcb(c))
    }

    func testWindowThatReopensClearsTheZeroWindowLimit() throws {
        var cfg = applianceConfig()
        cfg.zeroWindowTimeout = 5_000 * ms
        let h = Harness(cfg)
        let c = h.client(serverPort: echoPort)
        c.connect()
        c.send("x", window: 0)
        h.advance(by: 4_000 * ms)
        let r = c.ackAll(window: 1000)
        XCTAssertEqual(r.first?.text, "x")
        XCTAssertNil(h.tcb(c)?.zeroWindowSince)
        c.absorb(r)
        c.send("y", window: 0)
        h.advance(by: 4_000 * ms)
        XCTAssertNotNil(h.tcb(c), "the limit counts from the latest closing")
    }

    // MARK: Per-source limit

    func testConnectionsPerSourceAreLimited() throws {
        var cfg = applianceConfig()
        cfg.maxConnectionsPerSource = 2
        let h = Harness(cfg)
        h.client(port: 1001).connect()
        h.client(port: 1002).connect()
        let third = h.client(port: 1003)
        let r = third.sendRaw(third.frame([.syn], mss: 1460))
        XCTAssertEqual(r.map(\.flags), [[.rst, .ack]])
        XCTAssertEqual(h.stack.counters.tcpSourceLimited, 1)
        XCTAssertNotNil(h.client(port: 1003, ip: IPv4Address(10, 0, 0, 77)).connect(), "another source still connects")
    }

    /// With the backlog full, SYNs get cookies and hold nothing: the
    /// limit then applies when the cookie's ACK would create the connection.
    func testPerSourceLimitAppliesToCookieConnections() throws {
        var cfg = applianceConfig()
        cfg.maxConnectionsPerSource = 1
        cfg.synBacklog = 0  // every SYN is answered with a cookie
        let h = Harness(cfg)
        // Two SYNs from one source while it holds nothing: two cookies.
        let clients = [h.client(port: 2001), h.client(port: 2002)]
        for c in clients {
            let sa = try XCTUnwrap(c.sendRaw(c.frame([.syn], mss: 1460)).first)
            XCTAssertEqual(sa.flags, [.syn, .ack])
            c.sndNxt = c.isn &+ 1
            c.rcvNxt = sa.seq &+ 1
        }
        XCTAssertEqual(h.stack.counters.tcpSynCookiesSent, 2)
        XCTAssertEqual(h.stack.connectionCount, 0, "cookies hold no state")
        // The first ACK creates the connection; the second would exceed the limit.
        XCTAssertTrue(clients[0].send([.ack]).isEmpty)
        XCTAssertEqual(clients[1].send([.ack]).map(\.flags), [[.rst]])
        XCTAssertEqual(h.stack.counters.tcpSynCookiesAccepted, 1)
        XCTAssertEqual(h.stack.counters.tcpSourceLimited, 1)
        XCTAssertEqual(h.stack.connectionCount, 1)
    }

    // MARK: Go-live with a clock ahead of the log

    func testGoLiveFarAheadFiresNoTimerForTheGap() throws {
        var cfg = applianceConfig()
        cfg.idleTimeout = 120_000 * ms
        func scenario(goLive: Bool) throws -> (Harness, Peer, [Seg], [[UInt8]]) {
            let h = Harness(cfg)
            let p = Peer(h.client(serverPort: echoPort))
            p.ts = 5
            try p.connect(mss: 1460)
            let r = p.send(payload: [UInt8](repeating: 1, count: 100))
            var out = Frames()
            let later = h.now + 3_600_000 * ms  // the new primary's clock: an hour ahead
            h.now = later
            if goLive {
                h.stack.goLive(now: later, previous: later - 3_600_000 * ms, retransmit: true, out: &out)
            } else {
                h.stack.advanceTime(to: later, out: &out)
            }
            return (h, p, r, out.wireFrames)
        }
        // Without the freeze the hour counts: the idle limit resets the connection.
        let (plain, pp, _, _) = try scenario(goLive: false)
        XCTAssertNil(plain.tcb(pp.c))
        XCTAssertEqual(plain.stack.counters.tcpIdleResets, 1)

        let (h, p, r, out) = try scenario(goLive: true)
        XCTAssertNotNil(h.tcb(p.c))
        XCTAssertEqual(h.stack.counters.tcpIdleResets, 0)
        XCTAssertEqual(h.stack.counters.tcpTimeouts, 0)
        let resent = out.segs
        XCTAssertEqual(resent.count, 1, "go-live resends the unacknowledged segment once")
        XCTAssertEqual(resent.first?.seq, r.first?.seq)
        XCTAssertEqual(resent.first?.tcp.timestamps?.value, r.first?.tcp.timestamps?.value, "TSval does not jump")
        let d = try XCTUnwrap(h.stack.nextDeadline)
        XCTAssertGreaterThan(d, h.now, "no timer is overdue after go-live")
        // The idle limit still works, in the appliance's time.
        h.advance(by: 119_000 * ms)
        XCTAssertNotNil(h.tcb(p.c))
        h.advance(by: 1_000 * ms)
        XCTAssertNil(h.tcb(p.c))
    }
}
