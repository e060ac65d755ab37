import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

final class TCPHandshakeTests: XCTestCase {

    // MARK: CLOSED ports

    func testSYNToClosedPortGetsRSTACK() throws {
        let h = Harness()
        let c = h.client(serverPort: 1234)
        let r = c.sendRaw(c.frame([.syn], mss: 1460))
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.rst, .ack])
        XCTAssertEqual(r[0].seq, 0)
        XCTAssertEqual(r[0].ack, c.isn &+ 1)
        XCTAssertEqual(r[0].tcp.srcPort, 1234)
        XCTAssertEqual(r[0].eth.dst, clientMAC)
        XCTAssertEqual(h.stack.counters.tcpResetsSent, 1)
        XCTAssertEqual(h.stack.connectionCount, 0)

        // SYN with data: the RST acknowledges SYN + data.
        let r2 = c.sendRaw(c.frame([.syn], payload: [1, 2, 3, 4]))
        XCTAssertEqual(r2.first?.ack, c.isn &+ 5)
        // FIN without ACK: SEG.SEQ + SEG.LEN.
        let r3 = c.sendRaw(c.frame([.fin], seq: 500))
        XCTAssertEqual(r3.first?.ack, 501)
    }

    func testACKToClosedPortGetsBareRSTAndRSTGetsNothing() {
        let h = Harness()
        let c = h.client(serverPort: 1234)
        let r = c.sendRaw(c.frame([.ack], seq: 77, ack: 0xABCD_0000))
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.rst])
        XCTAssertEqual(r[0].seq, 0xABCD_0000, "<SEQ=SEG.ACK><CTL=RST>")
        XCTAssertTrue(c.sendRaw(c.frame([.rst], seq: 5)).isEmpty)
        XCTAssertTrue(c.sendRaw(c.frame([.rst, .ack], seq: 5, ack: 9)).isEmpty)
    }

    /// RFC 9293 3.10.7.2: in LISTEN, an ACK gets a RST, but a segment with
    /// neither SYN nor ACK (e.g. a bare FIN or data) is dropped silently.
    func testListenStateDropsSegmentsWithoutSYNOrACK() {
        let h = Harness()
        let c = h.client(serverPort: 7000)
        XCTAssertTrue(c.sendRaw(c.frame([.fin], seq: 5)).isEmpty)
        XCTAssertTrue(c.sendRaw(c.frame([.psh], seq: 5, payload: [1])).isEmpty)
        XCTAssertTrue(c.sendRaw(c.frame([], seq: 5)).isEmpty)
        let r = c.sendRaw(c.frame([.ack], seq: 5, ack: 1234))
        XCTAssertEqual(r.map(\.flags), [[.rst]])
        XCTAssertEqual(r.first?.seq, 1234)
        // SYN-ACK to a listener: it carries an ACK, so RST <SEQ=SEG.ACK>.
        let r2 = c.sendRaw(c.frame([.syn, .ack], seq: 5, ack: 99))
        XCTAssertEqual(r2.map(\.flags), [[.rst]])
        XCTAssertEqual(r2.first?.seq, 99)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    // MARK: Handshake

    func testHandshakeWithOptions() throws {
        let h = Harness()
        let c = h.client()
        let syn = c.frame([.syn], window: 64240, mss: 1400, windowScale: 7)
        c.sndNxt = c.isn &+ 1
        let r = c.sendRaw(syn)
        XCTAssertEqual(r.count, 1)
        let sa = r[0]
        XCTAssertEqual(sa.flags, [.syn, .ack])
        XCTAssertEqual(sa.ack, c.isn &+ 1)
        XCTAssertEqual(sa.tcp.mss, 1460, "MTU 1500 - 40")
        XCTAssertEqual(sa.tcp.windowScale, 7)
        XCTAssertEqual(sa.window, 65535, "the window in a SYN is never scaled; 256 KiB is clamped")
        XCTAssertEqual(sa.ip.src, applianceAddress); XCTAssertEqual(sa.ip.dst, clientIP)
        XCTAssertEqual(sa.eth.src, applianceMAC); XCTAssertEqual(sa.eth.dst, clientMAC)
        XCTAssertEqual(sa.ip.ttl, 64)
        XCTAssertEqual(h.stack.connections.first?.state, .synReceived)
        XCTAssertEqual(h.stack.counters.tcpConnectionsAccepted, 0)
        XCTAssertEqual(h.tcb(c)?.sendMSS, 1400)

        c.serverISS = sa.seq; c.rcvNxt = sa.seq &+ 1
        XCTAssertTrue(c.send([.ack]).isEmpty)
        let info = try XCTUnwrap(h.info(c))
        XCTAssertEqual(info.state, .established)
        XCTAssertEqual(info.sndUna, sa.seq &+ 1)
        XCTAssertEqual(info.sndNxt, sa.seq &+ 1)
        XCTAssertEqual(info.rcvNxt, c.isn &+ 1)
        XCTAssertEqual(info.peerWindow, 65535 << 7, "the ACK's window is scaled by the peer's shift")
        XCTAssertEqual(h.stack.counters.tcpConnectionsAccepted, 1)
        XCTAssertEqual(info.id, 1)
    }

    func testHandshakeWithoutWindowScaleOrMSS() throws {
        let h = Harness()
        let c = h.client()
        let sa = try XCTUnwrap(c.connect(mss: nil, windowScale: nil))
        XCTAssertNil(sa.tcp.windowScale, "no scaling unless the peer offers it")
        XCTAssertEqual(sa.tcp.mss, 1460)
        XCTAssertEqual(h.tcb(c)?.sendMSS, 536, "RFC 9293 default send MSS")
        XCTAssertEqual(h.tcb(c)?.rcvScale, 0)
        XCTAssertEqual(h.info(c)?.peerWindow, 65535, "unscaled")
        // Our window field is then the plain byte count, clamped to 65535.
        let r = c.send("x", flags: [.psh, .ack])
        XCTAssertEqual(r.first?.window, 65535)
    }

    func testRetransmittedSYNRepeatsSYNACKAndBadACKGetsRST() throws {
        let h = Harness()
        let c = h.client()
        let first = c.sendRaw(c.frame([.syn], mss: 1460))
        let again = c.sendRaw(c.frame([.syn], mss: 1460))
        XCTAssertEqual(again.count, 1)
        XCTAssertEqual(again[0].flags, [.syn, .ack])
        XCTAssertEqual(again[0].seq, first[0].seq)
        XCTAssertEqual(h.stack.connectionCount, 1)
        // An ACK that does not acknowledge our SYN: RST <SEQ=SEG.ACK>, connection stays.
        c.sndNxt = c.isn &+ 1
        let bad = c.send([.ack], ack: first[0].seq &+ 5)
        XCTAssertEqual(bad.count, 1)
        XCTAssertTrue(bad[0].flags.contains(.rst))
        XCTAssertEqual(bad[0].seq, first[0].seq &+ 5)
        XCTAssertEqual(h.info(c)?.state, .synReceived)
        // The right ACK still completes the handshake.
        c.rcvNxt = first[0].seq &+ 1
        XCTAssertTrue(c.send([.ack]).isEmpty)
        XCTAssertEqual(h.info(c)?.state, .established)
    }

    func testHandshakeACKCarryingDataIsDelivered() throws {
        let h = Harness()
        let c = h.client()
        let sa = c.sendRaw(c.frame([.syn], mss: 1460))[0]
        c.sndNxt = c.isn &+ 1; c.rcvNxt = sa.seq &+ 1
        let r = c.send("INCR\n")
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].text, "1\n")
        XCTAssertEqual(r[0].ack, c.isn &+ 6)
    }

    func testSYNACKRetransmittedThenGivenUp() throws {
        var cfg = applianceConfig()
        cfg.synAckRetries = 3
        let h = Harness(cfg)
        let c = h.client()
        let t0 = h.now
        let sa = c.sendRaw(c.frame([.syn], mss: 1460))[0]
        XCTAssertTrue(h.advance(to: t0 + sec - 1).isEmpty)
        var times: [Nanos] = []
        while let d = h.stack.nextDeadline {
            let out = h.advance(to: d).segs
            if out.isEmpty { break }
            XCTAssertEqual(out.count, 1)
            XCTAssertEqual(out[0].flags, [.syn, .ack])
            XCTAssertEqual(out[0].seq, sa.seq)
            XCTAssertEqual(out[0].tcp.mss, 1460)
            times.append(d - t0)
        }
        XCTAssertEqual(times, [1 * sec, 3 * sec, 7 * sec], "exponential backoff from the 1 s initial RTO")
        XCTAssertEqual(h.stack.connectionCount, 0, "given up after synAckRetries")
        XCTAssertEqual(h.stack.counters.tcpResetsSent, 0, "no RST for an embryonic connection")
    }

    // MARK: ISN (RFC 6528)

    func testISNIsDeterministicAndKeyed() throws {
        func synAckSeq(_ cfg: StackConfig, port: UInt16 = 43512, at t: Nanos = 1_000 * sec) -> UInt32 {
            let h = Harness(cfg)
            h.now = t
            let c = h.client(port: port)
            return c.sendRaw(c.frame([.syn], mss: 1460))[0].seq
        }
        let a = synAckSeq(applianceConfig()), b = synAckSeq(applianceConfig())
        XCTAssertEqual(a, b, "same config, tuple and time: same ISN")
        var other = applianceConfig()
        other.isnKey = (1, 2)
        XCTAssertNotEqual(synAckSeq(other), a, "a different key gives a different ISN")
        XCTAssertNotEqual(synAckSeq(applianceConfig(), port: 43513), a, "a different tuple gives a different ISN")
        // The clock component advances one per 4 microseconds.
        XCTAssertEqual(synAckSeq(applianceConfig(), at: 1_000 * sec + 4_000_000), a &+ 1000)
    }

    // MARK: Limits

    func testMaxConnectionsRefusesWithRST() throws {
        var cfg = applianceConfig()
        cfg.maxConnections = 2
        let h = Harness(cfg)
        h.client(port: 1001).connect()
        h.client(port: 1002).connect()
        let third = h.client(port: 1003)
        let r = third.sendRaw(third.frame([.syn], mss: 1460))
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.rst, .ack])
        XCTAssertEqual(r[0].ack, third.isn &+ 1)
        XCTAssertEqual(h.stack.counters.tcpConnectionsRefused, 1)
        XCTAssertEqual(h.stack.connectionCount, 2)
    }

    /// A full SYN backlog answers with a stateless SYN cookie (RFC 4987),
    /// not a connection; completing a handshake frees a backlog slot.
    func testSynBacklogFullAnswersWithCookieAndFreesOnEstablish() throws {
        var cfg = applianceConfig()
        cfg.synBacklog = 2
        let h = Harness(cfg)
        let a = h.client(port: 1001), b = h.client(port: 1002), c = h.client(port: 1003)
        let saA = a.sendRaw(a.frame([.syn], mss: 1460))
        XCTAssertEqual(saA.first?.flags, [.syn, .ack])
        XCTAssertEqual(b.sendRaw(b.frame([.syn], mss: 1460)).first?.flags, [.syn, .ack])
        XCTAssertEqual(c.sendRaw(c.frame([.syn], mss: 1460)).first?.flags, [.syn, .ack], "a cookie")
        XCTAssertEqual(h.stack.counters.tcpSynCookiesSent, 1)
        XCTAssertEqual(h.stack.connectionCount, 2, "no state for the cookie")
        XCTAssertEqual(h.stack.counters.tcpConnectionsRefused, 0)
        // Completing A's handshake frees a backlog slot.
        a.sndNxt = a.isn &+ 1; a.rcvNxt = saA[0].seq &+ 1
        a.send([.ack])
        XCTAssertEqual(h.info(a)?.state, .established)
        XCTAssertEqual(c.sendRaw(c.frame([.syn], mss: 1460)).first?.flags, [.syn, .ack])
        XCTAssertEqual(h.stack.connectionCount, 3)
    }

    func testSYNCookieACKEstablishesTheConnection() throws {
        var cfg = applianceConfig()
        cfg.synBacklog = 0
        let h = Harness(cfg)
        let c = h.client(port: 1003, serverPort: 7)
        let sa = try XCTUnwrap(c.sendRaw(c.frame([.syn], mss: 1400)).first)
        XCTAssertEqual(sa.flags, [.syn, .ack])
        XCTAssertNil(sa.tcp.windowScale); XCTAssertFalse(sa.tcp.sackPermitted); XCTAssertNil(sa.tcp.timestamps)
        XCTAssertEqual(h.stack.connectionCount, 0)
        // The same SYN again gets the same cookie (no state, same log slot).
        XCTAssertEqual(c.sendRaw(c.frame([.syn], mss: 1400)).first?.seq, sa.seq)
        // Its ACK, carrying data, creates the connection with the MSS the cookie kept.
        h.now += 30 * sec
        c.sndNxt = c.isn &+ 1; c.rcvNxt = sa.seq &+ 1
        let r = c.send("hello")
        XCTAssertEqual(r.map(\.text), ["hello"])
        XCTAssertEqual(h.info(c)?.state, .established)
        XCTAssertEqual(h.tcb(c)?.sendMSS, 1380, "1400 rounded down to the cookie's table")
        XCTAssertEqual(h.stack.counters.tcpSynCookiesAccepted, 1)
        XCTAssertEqual(h.stack.counters.tcpConnectionsAccepted, 1)
    }

    func testForgedOrExpiredSYNCookieGetsRST() throws {
        var cfg = applianceConfig()
        cfg.synBacklog = 0
        let h = Harness(cfg)
        let c = h.client(port: 1003, serverPort: 7)
        let sa = try XCTUnwrap(c.sendRaw(c.frame([.syn], mss: 1460)).first)
        // A wrong cookie (ISN + 8 keeps the slot and MSS bits).
        let forged = c.sendRaw(c.frame([.ack], seq: c.isn &+ 1, ack: sa.seq &+ 9))
        XCTAssertEqual(forged.map(\.flags), [[.rst]])
        // The right cookie, three slots (over 128 s) later.
        h.now += 3 * 64 * sec
        let late = c.sendRaw(c.frame([.ack], seq: c.isn &+ 1, ack: sa.seq &+ 1))
        XCTAssertEqual(late.map(\.flags), [[.rst]])
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertEqual(h.stack.counters.tcpSynCookiesAccepted, 0)
    }

    /// Cookies depend on the ISN key and log time only: two stacks agree.
    func testSYNCookiesAreDeterministic() throws {
        var cfg = applianceConfig()
        cfg.synBacklog = 0
        let h1 = Harness(cfg), h2 = Harness(cfg)
        let s1 = h1.client(port: 1003).sendRaw(h1.client(port: 1003).frame([.syn], mss: 1460))
        let s2 = h2.client(port: 1003).sendRaw(h2.client(port: 1003).frame([.syn], mss: 1460))
        XCTAssertEqual(s1.map(\.frame), s2.map(\.frame))
        cfg.isnKey = (7, 8)
        let h3 = Harness(cfg)
        let s3 = h3.client(port: 1003).sendRaw(h3.client(port: 1003).frame([.syn], mss: 1460))
        XCTAssertNotEqual(s1.first?.seq, s3.first?.seq, "keyed")
    }

    func testTimeWaitDoesNotCountAgainstMaxConnections() throws {
        var cfg = applianceConfig()
        cfg.maxConnections = 1
        let h = Harness(cfg)
        let a = h.client(port: 1001, serverPort: 7)
        a.connect()
        // Server-initiated close is impossible with echo, so use counter's "line too long".
        let b = h.client(port: 1002)
        let rb = b.sendRaw(b.frame([.syn], mss: 1460))
        XCTAssertEqual(rb.first?.flags, [.rst, .ack], "full")
        // Close A from the client side: FIN -> server FIN -> ACK -> A is gone (LAST-ACK path).
        a.absorb(a.send([.fin, .ack]))
        a.ackAll()
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertNotNil(b.connect())
        // Put B into TIME-WAIT (server closes first), then a new client fits.
        b.absorb(b.send(String(repeating: "A", count: 1100)))
        b.ackAll()
        b.absorb(b.send([.fin, .ack]))
        XCTAssertEqual(h.info(b)?.state, .timeWait)
        XCTAssertNotNil(h.client(port: 1003).connect())
    }

    func testTimeWaitAcceptsNewIncarnationSYN() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        c.absorb(c.send(String(repeating: "A", count: 1100)))  // server closes
        c.ackAll()
        c.absorb(c.send([.fin, .ack]))
        XCTAssertEqual(h.info(c)?.state, .timeWait)
        let oldID = h.info(c)!.id
        // A SYN above the old RCV.NXT opens a new connection.
        let r = c.sendRaw(c.frame([.syn], seq: c.sndNxt &+ 100_000, mss: 1460))
        XCTAssertEqual(r.map(\.flags), [[.syn, .ack]])
        XCTAssertEqual(h.info(c)?.state, .synReceived)
        XCTAssertGreaterThan(h.info(c)!.id, oldID)
        // An old SYN in TIME-WAIT only gets an ACK.
        let h2 = Harness()
        let d = h2.client()
        d.connect()
        d.absorb(d.send(String(repeating: "A", count: 1100)))
        d.ackAll()
        d.absorb(d.send([.fin, .ack]))
        let r2 = d.sendRaw(d.frame([.syn], seq: d.isn, mss: 1460))
        XCTAssertEqual(r2.map(\.flags), [[.ack]])
        XCTAssertEqual(h2.info(d)?.state, .timeWait)
    }
}
