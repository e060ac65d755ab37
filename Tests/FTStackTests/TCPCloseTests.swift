import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// RST and SYN handling on synchronized connections (RFC 5961) and the
/// closing state machine (RFC 9293 3.6).
final class TCPCloseTests: XCTestCase {

    // MARK: RST (RFC 5961 section 3)

    func testExactRSTResetsConnection() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertTrue(c.send([.rst], seq: c.sndNxt).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertEqual(h.stack.counters.tcpResetsReceived, 1)
        // RST|ACK works the same way.
        let d = h.client(port: 5000)
        d.connect()
        XCTAssertTrue(d.send([.rst, .ack], seq: d.sndNxt).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testInWindowRSTGetsChallengeACK() throws {
        let h = Harness()
        let c = h.client()
        let sa = try XCTUnwrap(c.connect())
        let r = c.send([.rst], seq: c.sndNxt &+ 100)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.ack])
        XCTAssertEqual(r[0].seq, sa.seq &+ 1)
        XCTAssertEqual(r[0].ack, c.sndNxt, "the challenge ACK carries RCV.NXT")
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertEqual(h.info(c)?.state, .established)
        XCTAssertEqual(h.stack.counters.tcpChallengeAcks, 1)
        XCTAssertEqual(h.stack.counters.tcpResetsReceived, 0)
    }

    func testOutOfWindowRSTIsIgnored() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        XCTAssertTrue(c.send([.rst], seq: c.sndNxt &+ 10_000_000).isEmpty)
        XCTAssertTrue(c.send([.rst], seq: c.sndNxt &- 1).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertEqual(h.stack.counters.tcpChallengeAcks, 0)
        XCTAssertEqual(c.request("INCR\n").map(\.text), ["1\n"], "still usable")
    }

    func testRSTInSynReceivedRemovesEmbryonicConnection() throws {
        let h = Harness()
        let c = h.client()
        c.sendRaw(c.frame([.syn], mss: 1460))
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertTrue(c.sendRaw(c.frame([.rst], seq: c.isn &+ 1)).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    // MARK: SYN on a synchronized connection (RFC 5961 section 4)

    func testSYNOnEstablishedConnectionGetsChallengeACK() throws {
        let h = Harness()
        let c = h.client()
        let sa = try XCTUnwrap(c.connect())
        for seq in [c.sndNxt, c.sndNxt &+ 1000, c.sndNxt &+ 0x4000_0000, c.isn] {
            let r = c.sendRaw(c.frame([.syn], seq: seq, mss: 1460))
            XCTAssertEqual(r.count, 1, "seq \(seq)")
            XCTAssertEqual(r[0].flags, [.ack])
            XCTAssertEqual(r[0].seq, sa.seq &+ 1)
            XCTAssertEqual(r[0].ack, c.sndNxt)
        }
        XCTAssertEqual(h.info(c)?.state, .established)
        XCTAssertEqual(h.info(c)?.id, 1)
        XCTAssertGreaterThanOrEqual(h.stack.counters.tcpChallengeAcks, 2)
        XCTAssertEqual(c.request("INCR\n").map(\.text), ["1\n"])
    }

    // MARK: ACK acceptability (RFC 9293 / RFC 5961 section 5)

    func testACKForUnsentDataIsAnsweredAndDropped() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        let sa = try XCTUnwrap(c.connect())
        let r = c.send([.psh, .ack], payload: Array("hi".utf8), ack: sa.seq &+ 1000)
        XCTAssertEqual(r.map(\.flags), [[.ack]])
        XCTAssertEqual(r.first?.ack, c.sndNxt &- 2, "the data was not accepted")
        XCTAssertEqual(h.info(c)?.rcvNxt, c.sndNxt &- 2)
    }

    // MARK: Passive close

    func testPeerFINThenServiceCloses() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        XCTAssertEqual(c.request("bye").map(\.text), ["bye"])
        c.ackAll()
        let r = c.send([.fin, .ack])
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.fin, .ack], "echo closes when the peer does; our FIN carries the ACK of theirs")
        XCTAssertEqual(r[0].ack, c.sndNxt)
        XCTAssertEqual(h.info(c)?.state, .lastAck)
        c.absorb(r)
        XCTAssertTrue(c.ackAll().isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertNil(h.stack.nextDeadline)
    }

    func testCloseWaitHoldsUntilDataIsSent() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        // Data and FIN while our peer's window is closed: echo's reply and FIN wait.
        let r = c.send("tail", flags: [.fin, .psh, .ack], window: 0)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.ack])
        XCTAssertEqual(r[0].ack, c.sndNxt)
        XCTAssertEqual(h.info(c)?.state, .closeWait)
        // Window opens: data then FIN, LAST-ACK.
        let open = c.ackAll(window: 1000)
        XCTAssertEqual(open.map(\.text).joined(), "tail")
        XCTAssertTrue(open.last?.flags.contains(.fin) ?? false)
        XCTAssertEqual(h.info(c)?.state, .lastAck)
        c.absorb(open)
        c.ackAll()
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testCounterClosesAfterPeerFIN() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        let r = c.send("INCR\n", flags: [.fin, .psh, .ack])
        c.absorb(r)
        XCTAssertEqual(r.map(\.text).joined(), "1\n")
        XCTAssertTrue(r.last?.flags.contains(.fin) ?? false)
        XCTAssertEqual(h.info(c)?.state, .lastAck)
        c.ackAll()
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testLastAckFINIsRetransmitted() throws {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        let t0 = h.now
        let fin = c.send([.fin, .ack])
        XCTAssertEqual(fin.first?.flags, [.fin, .ack])
        let r = h.advance(to: t0 + sec).segs
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].flags, [.fin, .ack])
        XCTAssertEqual(r[0].seq, fin[0].seq)
        c.absorb(r)
        c.ackAll()
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    // MARK: Active close

    func testServerInitiatedCloseThroughTimeWait() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        let r = c.send(String(repeating: "z", count: 1100))
        c.absorb(r)
        XCTAssertEqual(c.receivedText, "ERR line too long\n")
        XCTAssertEqual(h.info(c)?.state, .finWait1)
        XCTAssertTrue(c.rcvNxt == h.info(c)!.sndNxt, "client saw data and FIN")
        // ACK of data and FIN: FIN-WAIT-2.
        XCTAssertTrue(c.ackAll().isEmpty)
        XCTAssertEqual(h.info(c)?.state, .finWait2)
        // Data in FIN-WAIT-2 is acknowledged (and discarded: the service closed).
        let d = c.send("more\n")
        XCTAssertEqual(d.count, 1)
        XCTAssertTrue(d[0].payload.isEmpty)
        XCTAssertEqual(d[0].ack, c.sndNxt)
        // Peer FIN: ACK it, TIME-WAIT.
        let t0 = h.now
        let f = c.send([.fin, .ack])
        XCTAssertEqual(f.map(\.flags), [[.ack]])
        XCTAssertEqual(f.first?.ack, c.sndNxt)
        XCTAssertEqual(h.info(c)?.state, .timeWait)
        XCTAssertEqual(h.stack.nextDeadline, t0 + 2 * h.stack.config.msl)
        // A retransmitted FIN in TIME-WAIT is acknowledged again and restarts the timer.
        h.now = t0 + 10 * sec
        let again = c.send([.fin, .ack], seq: c.sndNxt &- 1)
        XCTAssertEqual(again.map(\.flags), [[.ack]])
        XCTAssertEqual(h.stack.nextDeadline, t0 + 10 * sec + 2 * h.stack.config.msl)
        // Removed after 2 MSL.
        XCTAssertTrue(h.advance(to: t0 + 10 * sec + 2 * h.stack.config.msl - 1).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertTrue(h.advance(to: t0 + 10 * sec + 2 * h.stack.config.msl).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testFinWait2TimesOut() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        c.absorb(c.send(String(repeating: "z", count: 1100)))
        c.ackAll()
        XCTAssertEqual(h.info(c)?.state, .finWait2)
        let t0 = h.now
        XCTAssertEqual(h.stack.nextDeadline, t0 + h.stack.config.finWait2Timeout)
        h.advance(to: t0 + h.stack.config.finWait2Timeout - 1)
        XCTAssertEqual(h.stack.connectionCount, 1)
        XCTAssertTrue(h.advance(to: t0 + h.stack.config.finWait2Timeout).isEmpty)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testSimultaneousClose() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        let r = c.send(String(repeating: "z", count: 1100))
        XCTAssertEqual(h.info(c)?.state, .finWait1)
        let data = try XCTUnwrap(r.first { !$0.payload.isEmpty })
        let ourFin = try XCTUnwrap(r.first { $0.flags.contains(.fin) })
        // The peer acknowledges the data but not our FIN, and sends its own FIN.
        c.absorb([data])
        XCTAssertEqual(c.rcvNxt, ourFin.seq)
        let a = c.send([.fin, .ack])
        XCTAssertEqual(h.info(c)?.state, .closing)
        XCTAssertEqual(a.count, 1)
        XCTAssertEqual(a[0].ack, c.sndNxt, "their FIN acknowledged")
        // Now our FIN is acknowledged: TIME-WAIT.
        c.absorb([ourFin])
        let t0 = h.now
        XCTAssertTrue(c.ackAll().isEmpty)
        XCTAssertEqual(h.info(c)?.state, .timeWait)
        h.advance(to: t0 + 2 * h.stack.config.msl)
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    func testFINWait1ReceivingFINAndACKTogetherGoesToTimeWait() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        c.absorb(c.send(String(repeating: "z", count: 1100)))
        let r = c.send([.fin, .ack])  // acknowledges our FIN too
        XCTAssertEqual(r.map(\.flags), [[.ack]])
        XCTAssertEqual(h.info(c)?.state, .timeWait)
    }

    func testServiceSeesOpenAndCloseExactlyOnce() throws {
        final class Recorder: StreamService {
            let kind = "recorder"
            var events: [String] = []
            func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO) { events.append("open \(id) \(remote)") }
            func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int {
                events.append("data \(id) \(data.count)")
                if data.contains(UInt8(ascii: "!")) { io.abort = true }
                return data.count
            }
            func peerClosed(_ id: ConnectionID, io: inout StreamIO) { events.append("peerClosed \(id)"); io.close = true }
            func closed(_ id: ConnectionID) { events.append("closed \(id)") }
            func encodeState(into w: inout ByteWriter) {}
            func decodeState(from r: inout ByteReader) throws {}
        }
        let h = Harness()
        let rec = Recorder()
        h.stack.listen(port: 8000, rec)
        // An embryonic connection that never completes is never opened nor closed.
        let e = h.client(port: 999, serverPort: 8000)
        e.sendRaw(e.frame([.syn], mss: 1460))
        e.sendRaw(e.frame([.rst], seq: e.isn &+ 1))
        // Normal life.
        let c = h.client(port: 1000, serverPort: 8000)
        c.connect()
        c.send("abc")
        c.absorb(c.send([.fin, .ack]))
        c.ackAll()
        // Abort: the service asks for a reset.
        let d = h.client(port: 1001, serverPort: 8000)
        d.connect()
        let r = d.send("boom!")
        XCTAssertEqual(r.count, 1)
        XCTAssertTrue(r[0].flags.contains(.rst))
        XCTAssertEqual(h.stack.connectionCount, 0)
        XCTAssertEqual(rec.events, [
            "open 2 10.0.0.1:1000", "data 2 3", "peerClosed 2", "closed 2",
            "open 3 10.0.0.1:1001", "data 3 5", "closed 3",
        ])
    }

    /// An unacceptable segment with the client's address but another MAC must
    /// not redirect our frames: otherwise any LAN host could learn the exact
    /// sequence numbers from the ACK and defeat RFC 5961.
    func testUnacceptableSegmentDoesNotChangePeerMAC() throws {
        let h = Harness()
        let c = h.client()
        c.connect()
        let attacker = MACAddress("02:00:00:00:00:66")!
        let spoofed = h.client(mac: attacker)  // same IP and port, other MAC
        for f in [spoofed.frame([.ack], seq: c.sndNxt &+ 5_000_000, ack: c.rcvNxt),
                  spoofed.frame([.rst], seq: c.sndNxt &+ 100),
                  spoofed.frame([.syn], seq: c.sndNxt, mss: 1460)] {
            let out = h.input(f).segs
            XCTAssertEqual(out.count, 1, "each gets an ACK or a challenge ACK")
            for s in out { XCTAssertEqual(s.eth.dst, clientMAC, "answer leaked to \(s.eth.dst)") }
        }
        let r = c.request("INCR\n")
        XCTAssertEqual(r.map(\.text), ["1\n"])
        XCTAssertEqual(r.first?.eth.dst, clientMAC)
        // An acceptable segment from a new MAC (the client moved) is followed.
        let moved = h.client(mac: attacker)
        moved.sndNxt = c.sndNxt; moved.rcvNxt = c.rcvNxt
        let r2 = moved.send("GET\n")
        XCTAssertEqual(r2.first?.eth.dst, attacker)
    }
}
