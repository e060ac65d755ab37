import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

final class TCPDataTests: XCTestCase {

    // MARK: counter

    func testIncrGetsOneWithCorrectSeqAck() throws {
        let h = Harness()
        let c = h.client()
        let sa = try XCTUnwrap(c.connect())
        let r = c.send("INCR\n")
        XCTAssertEqual(r.count, 1)
        let s = r[0]
        XCTAssertEqual(s.text, "1\n")
        XCTAssertEqual(s.seq, sa.seq &+ 1)
        XCTAssertEqual(s.ack, c.isn &+ 1 &+ 5)
        XCTAssertEqual(s.flags, [.psh, .ack])
        XCTAssertEqual(s.tcp.srcPort, 7000); XCTAssertEqual(s.tcp.dstPort, 43512)
        XCTAssertNil(s.tcp.mss); XCTAssertNil(s.tcp.windowScale)
        c.absorb(r)
        XCTAssertTrue(c.ackAll().isEmpty, "a pure ACK of our data needs no answer")
        XCTAssertEqual(h.info(c)?.sndUna, sa.seq &+ 3)
        XCTAssertEqual(h.info(c)?.sendQueued, 0)
    }

    func testCounterSemantics() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        XCTAssertEqual(c.request("GET\n").map(\.text), ["0\n"])
        XCTAssertEqual(c.request("INCR\n").map(\.text), ["1\n"])
        XCTAssertEqual(c.request("INCR\r\n").map(\.text), ["2\n"], "CRLF tolerated")
        XCTAssertEqual(c.request("GET\n").map(\.text), ["2\n"], "GET does not increment")
        XCTAssertEqual(c.request("FOO\n").map(\.text), ["ERR unknown command\n"])
        XCTAssertEqual(c.request("incr\n").map(\.text), ["ERR unknown command\n"], "case sensitive")
        XCTAssertEqual(c.request("\n").map(\.text), ["ERR unknown command\n"])
        XCTAssertEqual(h.info(c)?.state, .established, "unknown commands keep the connection open")
        // Several commands in one segment: one reply segment, in order.
        XCTAssertEqual(c.request("INCR\nINCR\nGET\n").map(\.text), ["3\n4\n4\n"])
        // A command split over segments.
        let part = c.request("IN")
        XCTAssertEqual(part.count, 1)
        XCTAssertTrue(part[0].payload.isEmpty, "only an ACK for a partial line")
        XCTAssertEqual(part[0].ack, c.sndNxt)
        XCTAssertEqual(c.request("CR\n").map(\.text), ["5\n"])
        c.ackAll()
        // The counter is shared by all connections.
        let d = h.client(port: 50000)
        d.connect()
        XCTAssertEqual(d.request("INCR\n").map(\.text), ["6\n"])
        XCTAssertEqual(c.receivedText, "0\n1\n2\n2\nERR unknown command\nERR unknown command\nERR unknown command\n3\n4\n4\n5\n")
    }

    func testLineTooLongReplyThenFIN() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        // Exactly 1024 bytes without a newline are still fine.
        let ok = c.request(String(repeating: "x", count: 1024))
        XCTAssertEqual(ok.count, 1); XCTAssertTrue(ok[0].payload.isEmpty)
        XCTAssertEqual(h.info(c)?.state, .established)
        // The 1025th byte is too many.
        let r = c.send("y")
        c.absorb(r)
        XCTAssertEqual(r.map(\.text).joined(), "ERR line too long\n")
        XCTAssertTrue(r.last?.flags.contains(.fin) ?? false, "then FIN: \(r)")
        XCTAssertEqual(h.info(c)?.state, .finWait1)
        XCTAssertEqual(c.receivedText, "ERR line too long\n")
    }

    // MARK: echo and discard

    func testEchoAndDiscard() throws {
        let h = Harness()
        let e = h.client(port: 1111, serverPort: 7)
        e.connect()
        XCTAssertEqual(e.request("hello, world").map(\.text), ["hello, world"])
        let bin: [UInt8] = (0..<256).map { UInt8($0) }
        let r = e.send([.psh, .ack], payload: bin)
        XCTAssertEqual(r.first?.payload, bin)
        let d = h.client(port: 2222, serverPort: 9)
        d.connect()
        let rd = d.send("thrown away")
        XCTAssertEqual(rd.count, 1)
        XCTAssertTrue(rd[0].payload.isEmpty)
        XCTAssertEqual(rd[0].ack, d.sndNxt)
        let svc = try XCTUnwrap(h.stack.streamServices[9] as? DiscardService)
        XCTAssertEqual(svc.bytesDiscarded, 11)
    }

    func testLargeEchoIsSegmentedByMSS() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect(mss: 1000)
        let data: [UInt8] = (0..<2500).map { UInt8(truncatingIfNeeded: $0 * 31) }
        let r = c.send([.ack], payload: data)
        XCTAssertEqual(r.map { $0.payload.count }, [1000, 1000, 500])
        XCTAssertEqual(r.map { $0.flags }, [[.ack], [.ack], [.psh, .ack]], "PSH on the last segment of the burst")
        c.absorb(r)
        XCTAssertEqual(c.received, data)
    }

    // MARK: Out of order

    func testOutOfOrderSegmentsAreReassembled() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        let base = c.sndNxt
        // Segment 2 first: a duplicate ACK for RCV.NXT, nothing echoed.
        let r2 = c.send([.psh, .ack], payload: Array("world".utf8), seq: base &+ 5)
        XCTAssertEqual(r2.count, 1)
        XCTAssertTrue(r2[0].payload.isEmpty)
        XCTAssertEqual(r2[0].ack, base)
        XCTAssertEqual(h.stack.counters.tcpOutOfOrderQueued, 1)
        // Then segment 1: everything is delivered, in order.
        let r1 = c.send([.psh, .ack], payload: Array("hello".utf8), seq: base)
        XCTAssertEqual(r1.map(\.text).joined(), "helloworld")
        XCTAssertEqual(r1.last?.ack, base &+ 10)
        XCTAssertEqual(h.info(c)?.rcvNxt, base &+ 10)
    }

    func testOutOfOrderWithOverlapsAndFIN() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        let b = c.sndNxt
        // "abcdefghij" arrives as [6,10)+FIN, [2,8), [0,4) — overlapping and out of order.
        XCTAssertEqual(c.send([.fin, .ack], payload: Array("ghij".utf8), seq: b &+ 6).first?.ack, b)
        XCTAssertEqual(c.send([.ack], payload: Array("cdefgh".utf8), seq: b &+ 2).first?.ack, b)
        let r = c.send([.ack], payload: Array("abcd".utf8), seq: b)
        XCTAssertEqual(r.filter { !$0.payload.isEmpty }.map(\.text).joined(), "abcdefghij")
        XCTAssertEqual(r.last?.ack, b &+ 11, "data and FIN acknowledged")
        XCTAssertTrue(r.contains { $0.flags.contains(.fin) }, "echo closes after the peer's FIN")
        XCTAssertEqual(h.info(c)?.state, .lastAck)
    }

    func testDuplicateAndOldSegmentsAreAckedNotRedelivered() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        let b = c.sndNxt
        XCTAssertEqual(c.request("abc").map(\.text), ["abc"])
        // The same segment again: only an ACK, nothing echoed twice.
        let dup = c.send([.psh, .ack], payload: Array("abc".utf8), seq: b)
        XCTAssertEqual(dup.count, 1)
        XCTAssertTrue(dup[0].payload.isEmpty)
        XCTAssertEqual(dup[0].ack, b &+ 3)
        // A partially new segment: only the new part is delivered.
        let part = c.send([.psh, .ack], payload: Array("bcdef".utf8), seq: b &+ 1)
        XCTAssertEqual(part.map(\.text).joined(), "def")
        XCTAssertEqual(part.last?.ack, b &+ 6)
    }

    // MARK: Window scaling

    func testWindowScaling() throws {
        let h = Harness()
        let c = h.client(serverPort: 9)
        let sa = try XCTUnwrap(c.connect(windowScale: 7))
        XCTAssertEqual(sa.tcp.windowScale, 7)
        XCTAssertEqual(sa.window, 65535)
        // Our window field is scaled: 256 KiB free >> 7 = 2048.
        let r = c.send("abc")
        XCTAssertEqual(r.first?.window, 2048)
        // The peer's window is applied scaled by its shift.
        c.ackAll(window: 10)
        XCTAssertEqual(h.info(c)?.peerWindow, 10 << 7)
        c.ackAll(window: 511)
        XCTAssertEqual(h.info(c)?.peerWindow, 511 << 7)
    }

    func testPeerWindowScaleIsCappedAt14() throws {
        let h = Harness()
        let c = h.client(serverPort: 9)
        c.connect(windowScale: 20)
        XCTAssertEqual(h.tcb(c)?.sndScale, 14)
        c.ackAll(window: 2)
        XCTAssertEqual(h.info(c)?.peerWindow, 2 << 14)
    }

    func testPeerWindowLimitsWhatWeSend() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        // The peer says it can take 3 bytes.
        let r = c.send("hello", window: 3)
        c.absorb(r)
        XCTAssertEqual(r.map(\.text).joined(), "hel")
        let r2 = c.ackAll(window: 3)
        c.absorb(r2)
        XCTAssertEqual(r2.map(\.text), ["lo"])
        XCTAssertEqual(c.receivedText, "hello")
    }

    // MARK: Receive-side flow control

    /// Echo with a peer that never acknowledges what we send: our send buffer
    /// fills, echo stops consuming, and our advertised window closes.
    func testAdvertisedWindowClosesWhenServiceCannotConsume() throws {
        var cfg = applianceConfig()
        cfg.sendBufferBytes = 1000
        cfg.receiveBufferBytes = 2000
        let h = Harness(cfg)
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect())
        XCTAssertEqual(sa.window, 2000)
        let chunk = [UInt8](repeating: 0x61, count: 250)
        var windows: [UInt16] = []
        var sent = 0
        while sent < 20 {
            let r = c.send([.ack], payload: chunk, ack: sa.seq &+ 1)  // never ack the echoed data
            sent += 1
            XCTAssertEqual(r.count, 1, "one segment per input (no duplicate window updates): \(r)")
            guard let w = r.last?.window else { break }
            windows.append(w)
            XCTAssertEqual(r.last?.ack, c.sndNxt)
            if w == 0 { break }
        }
        XCTAssertEqual(windows.last, 0, "window never closed: \(windows)")
        XCTAssertEqual(windows, [2000, 2000, 2000, 2000, 1750, 1500, 1250, 1000, 750, 500, 250, 0])
        XCTAssertEqual(h.info(c)?.receiveQueued, 2000)
        XCTAssertEqual(h.info(c)?.sendQueued, 1000)
        // More data beyond the closed window is not accepted; the ACK repeats RCV.NXT and window 0.
        let rcvNxt = c.sndNxt
        let extra = c.send([.ack], payload: chunk, ack: sa.seq &+ 1)
        XCTAssertEqual(extra.count, 1)
        XCTAssertEqual(extra[0].ack, rcvNxt)
        XCTAssertEqual(extra[0].window, 0)
        c.sndNxt = rcvNxt
        // Acknowledging our data lets echo drain the receive buffer: the window reopens.
        let open = c.send([.ack], ack: sa.seq &+ 1 &+ 1000)
        XCTAssertFalse(open.isEmpty)
        XCTAssertGreaterThan(open.last!.window, 0)
        XCTAssertEqual(open.map { $0.payload.count }.reduce(0, +), 1000, "echo refills the send buffer")
    }

    /// RFC 9293 3.10.7.4: with a zero receive window no data is acceptable, but
    /// the ACK field of a segment at RCV.NXT must still be processed.
    func testZeroReceiveWindowStillProcessesACKs() throws {
        var cfg = applianceConfig()
        cfg.sendBufferBytes = 500
        cfg.receiveBufferBytes = 500
        let h = Harness(cfg)
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect())
        let chunk = [UInt8](repeating: 0x62, count: 500)
        let r1 = c.send([.ack], payload: chunk, ack: sa.seq &+ 1)  // echoed, unacknowledged
        XCTAssertEqual(r1.map { $0.payload.count }, [500])
        let r2 = c.send([.ack], payload: chunk, ack: sa.seq &+ 1)  // fills the receive buffer
        XCTAssertEqual(r2.last?.window, 0)
        // A window probe carrying one new byte and an ACK of everything we sent.
        let probe = c.send([.ack], payload: [0x63], ack: sa.seq &+ 1 &+ 500)
        XCTAssertEqual(h.info(c)?.sndUna, sa.seq &+ 1 &+ 500, "the ACK in a zero-window probe was ignored")
        // Echo could then consume and send the next 500 bytes, opening the window.
        XCTAssertEqual(probe.map { $0.payload.count }.reduce(0, +), 500)
        XCTAssertEqual(probe.last?.ack, c.sndNxt &- 1, "the probe byte itself was outside the window")
    }

    /// When the service frees receive space the peer cannot know about, the
    /// stack announces it with one pure ACK (and not again).
    func testWindowUpdateWhenServiceFreesSpace() throws {
        final class Gate: StreamService {
            let kind = "gate"
            var open = false
            func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO) {}
            func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int {
                open ? data.count : 0
            }
            func peerClosed(_ id: ConnectionID, io: inout StreamIO) { io.close = true }
            func closed(_ id: ConnectionID) {}
            func encodeState(into w: inout ByteWriter) { w.bool(open) }
            func decodeState(from r: inout ByteReader) throws {}
        }
        var cfg = applianceConfig()
        cfg.receiveBufferBytes = 4000
        let h = Harness(cfg)
        let gate = Gate()
        h.stack.listen(port: 8000, gate)
        let c = h.client(serverPort: 8000)
        c.connect()
        for expected: UInt16 in [3000, 2000, 1000, 0] {
            let r = c.send([.ack], payload: [UInt8](repeating: 1, count: 1000))
            XCTAssertEqual(r.map(\.window), [expected])
        }
        // Nothing changes for the peer until the service consumes: no spontaneous updates.
        XCTAssertTrue(c.ackAll().isEmpty)
        gate.open = true
        let upd = c.ackAll()  // any segment lets the stack offer the data again
        XCTAssertEqual(upd.count, 1)
        XCTAssertEqual(upd.first?.flags, [.ack])
        XCTAssertEqual(upd.first?.window, 4000)
        XCTAssertEqual(upd.first?.ack, c.sndNxt)
        XCTAssertTrue(c.ackAll().isEmpty, "the update is not repeated")
    }

    func testOutOfOrderQueueIsBounded() throws {
        var cfg = applianceConfig()
        cfg.maxOutOfOrderSegments = 2
        let h = Harness(cfg)
        let c = h.client(serverPort: 7)
        c.connect()
        let b = c.sndNxt
        c.send([.ack], payload: Array("BB".utf8), seq: b &+ 2)
        c.send([.ack], payload: Array("CC".utf8), seq: b &+ 4)
        c.send([.ack], payload: Array("DD".utf8), seq: b &+ 6)  // dropped: queue full
        XCTAssertEqual(h.stack.counters.tcpOutOfOrderQueued, 2)
        XCTAssertEqual(h.stack.counters.tcpOutOfOrderDropped, 1)
        let r = c.send([.ack], payload: Array("AA".utf8), seq: b)
        XCTAssertEqual(r.map(\.text).joined(), "AABBCC")
        XCTAssertEqual(r.last?.ack, b &+ 6, "stops at the hole the dropped segment left")
    }

    func testSequenceNumberWraparound() throws {
        let h = Harness()
        let c = h.client(serverPort: 7, isn: 0xFFFF_FFF0)
        c.connect()
        XCTAssertEqual(c.sndNxt, 0xFFFF_FFF1)
        let r = c.send("0123456789abcdefghij")  // crosses 2^32
        XCTAssertEqual(r.map(\.text), ["0123456789abcdefghij"])
        XCTAssertEqual(r.first?.ack, 0x0000_0005)
        // Out of order across the wrap too.
        let b = c.sndNxt
        c.send([.ack], payload: Array("yz".utf8), seq: b &+ 2)
        XCTAssertEqual(c.send([.ack], payload: Array("wx".utf8), seq: b).map(\.text), ["wxyz"])
    }

    func testKeepaliveProbeGetsACK() throws {
        let h = Harness()
        let c = h.client()
        let sa = try XCTUnwrap(c.connect())
        // A keepalive: SEG.SEQ = RCV.NXT - 1, no data (RFC 9293 3.8.4).
        let r = c.send([.ack], seq: c.sndNxt &- 1)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.ack])
        XCTAssertEqual(r[0].ack, c.sndNxt)
        XCTAssertEqual(r[0].seq, sa.seq &+ 1)
        // With one garbage byte, as some stacks send.
        XCTAssertEqual(c.send([.ack], payload: [0], seq: c.sndNxt &- 1).map(\.ack), [c.sndNxt])
    }

    func testTooOldACKGetsChallengeACK() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect())
        // SEG.ACK below SND.UNA - MAX.SND.WND (RFC 5961 section 5).
        let r = c.send([.psh, .ack], payload: Array("x".utf8), ack: sa.seq &- 200_000)
        XCTAssertEqual(r.map(\.flags), [[.ack]])
        XCTAssertEqual(r.first?.ack, c.sndNxt &- 1, "the data is discarded")
        XCTAssertEqual(h.stack.counters.tcpChallengeAcks, 1)
    }
}
