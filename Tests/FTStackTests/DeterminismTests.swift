import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// The stack is a pure function of its inputs: the same (time, frame) and
/// (time, advance) events give byte-identical outputs and the same digest.
final class DeterminismTests: XCTestCase {

    enum Event { case frame(Nanos, [UInt8]), advance(Nanos) }

    /// Drives a harness with a pseudo-random but reproducible workload: several
    /// clients on all three services, data, lost server segments (the client
    /// just does not see them), lost client ACKs, out-of-order delivery,
    /// resets, and timer advances. Returns the input events in order.
    func scriptedRun(_ h: Harness, seed: UInt64) -> [Event] {
        var events: [Event] = []
        var s = seed
        func rnd(_ n: Int) -> Int { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Int(s % UInt64(n)) }
        let services: [UInt16] = [7000, 7, 9]
        var clients: [Client] = []
        func send(_ f: [UInt8], _ c: Client) {
            events.append(.frame(h.now, f))
            let segs = c.sendRaw(f)
            if rnd(5) != 0 { c.absorb(segs) }  // 1 in 5: the client "loses" the answer
        }
        for i in 0..<6 {
            let c = h.client(port: UInt16(40000 + i), serverPort: services[i % 3], isn: UInt32(1000 * (i + 1)))
            let syn = c.frame([.syn], mss: UInt16(200 + 100 * i), windowScale: i % 2 == 0 ? 7 : nil)
            c.sndNxt = c.isn &+ 1
            events.append(.frame(h.now, syn))
            guard let sa = c.sendRaw(syn).first else { continue }
            c.rcvNxt = sa.seq &+ 1
            send(c.frame([.ack]), c)
            clients.append(c)
        }
        for step in 0..<400 {
            let c = clients[rnd(clients.count)]
            switch rnd(10) {
            case 0...4:
                let cmds = ["INCR\n", "GET\n", "hello world ", "INCR\nGET\n", "x\n", String(repeating: "q", count: 300)]
                let p = Array(cmds[rnd(cmds.count)].utf8)
                if rnd(8) == 0 {
                    // Out of order: the second half first.
                    let half = p.count / 2
                    send(c.frame([.ack], seq: c.sndNxt &+ UInt32(half), payload: Array(p[half...])), c)
                    send(c.frame([.psh, .ack], seq: c.sndNxt, payload: Array(p[..<half])), c)
                } else {
                    send(c.frame([.psh, .ack], payload: p), c)
                }
                c.sndNxt = c.sndNxt &+ UInt32(p.count)
            case 5, 6:
                if rnd(3) != 0 { send(c.frame([.ack]), c) }  // else the ACK is lost
            case 7:
                h.advance(by: Nanos(rnd(3000)) * ms)
                events.append(.advance(h.now))
            case 8:
                send(c.frame([.ack], window: UInt16(rnd(3) * 100)), c)
            default:
                if step % 50 == 0 { send(c.frame([.rst], seq: c.sndNxt &+ UInt32(rnd(3))), c) }
            }
        }
        for c in clients { send(c.frame([.fin, .ack]), c); c.sndNxt = c.sndNxt &+ 1 }
        for _ in 0..<20 {
            h.advance(by: 5 * sec)
            events.append(.advance(h.now))
            for c in clients where rnd(2) == 0 { send(c.frame([.ack]), c) }
        }
        return events
    }

    func replay(_ events: [Event], into h: Harness) {
        for e in events {
            switch e {
            case let .frame(t, f): h.now = t; h.input(f)
            case let .advance(t): h.advance(to: t)
            }
        }
    }

    func testSameInputsGiveByteIdenticalOutputsAndDigest() throws {
        let a = Harness()
        let events = scriptedRun(a, seed: 0x1234_5678_9ABC_DEF1)
        XCTAssertGreaterThan(a.transcript.count, 200, "the script should exercise the stack")
        XCTAssertGreaterThan(a.stack.counters.tcpRetransmits, 0)
        XCTAssertGreaterThan(a.stack.counters.tcpOutOfOrderQueued, 0)

        let b = Harness()
        replay(events, into: b)
        XCTAssertEqual(b.transcript.count, a.transcript.count)
        for (i, (x, y)) in zip(a.transcript, b.transcript).enumerated() where x != y {
            XCTFail("frame \(i) differs:\n  \(frameSummary(x))\n  \(frameSummary(y))")
            break
        }
        XCTAssertEqual(a.stack.digest, b.stack.digest)
        XCTAssertEqual(a.stack.counters, b.stack.counters)
        var wa = ByteWriter(), wb = ByteWriter()
        a.stack.encodeState(into: &wa); b.stack.encodeState(into: &wb)
        XCTAssertEqual(wa.bytes, wb.bytes)

        // A third run, comparing the digest after every event, not just at the end.
        let c = Harness(), d = Harness()
        for e in events.prefix(300) {
            replay([e], into: c); replay([e], into: d)
            XCTAssertEqual(c.stack.digest, d.stack.digest)
        }
    }

    func testDifferentScriptsDiverge() {
        let a = Harness(), b = Harness()
        _ = scriptedRun(a, seed: 1)
        _ = scriptedRun(b, seed: 2)
        XCTAssertNotEqual(a.stack.digest, b.stack.digest)
    }

    func testDigestTracksState() throws {
        let a = Harness(), b = Harness()
        XCTAssertEqual(a.stack.digest, b.stack.digest, "fresh stacks agree")
        let d0 = a.stack.digest
        XCTAssertEqual(a.stack.digest, d0, "reading the digest does not change it")

        // A counter-only change (a ping) changes the digest.
        let ping = icmpFrame(type: 8, rest: 1, body: [])
        a.input(ping)
        let d1 = a.stack.digest
        XCTAssertNotEqual(d1, d0)

        // A connection changes it; so do data, the service's state and time.
        let c = a.client()
        c.connect()
        let d2 = a.stack.digest
        XCTAssertNotEqual(d2, d1)
        c.absorb(c.send("INCR\n"))
        let d3 = a.stack.digest
        XCTAssertNotEqual(d3, d2)
        a.advance(by: sec)  // retransmission timer fires
        XCTAssertNotEqual(a.stack.digest, d3)
        let d4 = a.stack.digest
        a.advance(by: 1)  // nothing due: no change
        XCTAssertEqual(a.stack.digest, d4)

        // The same sequence on b gives the same digest; one more INCR does not.
        b.input(ping)
        let cb = b.client()
        cb.connect()
        cb.absorb(cb.send("INCR\n"))
        b.advance(by: sec)
        b.advance(by: 1)
        XCTAssertEqual(b.stack.digest, a.stack.digest)
        cb.absorb(cb.send("INCR\n"))
        XCTAssertNotEqual(b.stack.digest, a.stack.digest)

        // Service state alone (the UDP/TCP shared counter) is covered.
        let x = Harness(), y = Harness()
        let svc = try XCTUnwrap(x.stack.streamServices[7000] as? CounterService)
        _ = svc.counter.increment()
        XCTAssertNotEqual(x.stack.digest, y.stack.digest)
    }

    func testDifferentConfigSameInputsSameOutputsExceptISN() {
        // Sanity: the ISN key is the only secret; two stacks with different keys
        // produce different SYN-ACK sequence numbers for the same input.
        var cfg = applianceConfig()
        cfg.isnKey = (42, 43)
        let a = Harness(), b = Harness(cfg)
        let ca = a.client(), cb = b.client()
        let sa = ca.sendRaw(ca.frame([.syn], mss: 1460)).first
        let sb = cb.sendRaw(cb.frame([.syn], mss: 1460)).first
        XCTAssertNotNil(sa); XCTAssertNotNil(sb)
        XCTAssertNotEqual(sa?.seq, sb?.seq)
        XCTAssertEqual(sa?.ack, sb?.ack)
    }

    /// State transfer: a fresh stack restored from another's encodeState has
    /// the same digest and then behaves identically on the same inputs.
    func testSnapshotRestoreContinuesIdentically() throws {
        let a = Harness()
        let events = scriptedRun(a, seed: 77)
        // Replay a prefix into a second harness, snapshot it mid-flight.
        let cut = events.count / 2
        let src = Harness()
        replay(Array(events[..<cut]), into: src)
        XCTAssertGreaterThan(src.stack.connectionCount, 0)
        var w = ByteWriter()
        src.stack.encodeState(into: &w)
        let dst = Harness()
        var r = ByteReader(w.bytes)
        try dst.stack.restoreState(from: &r)
        XCTAssertEqual(r.remaining, 0)
        XCTAssertEqual(dst.stack.digest, src.stack.digest)
        XCTAssertEqual(dst.stack.connections, src.stack.connections)
        // Both continue with the rest of the script: byte-identical outputs.
        let n0 = src.transcript.count
        dst.now = src.now
        replay(Array(events[cut...]), into: src)
        replay(Array(events[cut...]), into: dst)
        XCTAssertEqual(Array(src.transcript[n0...]), dst.transcript)
        XCTAssertEqual(src.stack.digest, dst.stack.digest)
        XCTAssertEqual(src.stack.digest, a.stack.digest)
    }

    func testSnapshotRejectsGarbageAndTruncation() throws {
        let a = Harness()
        _ = scriptedRun(a, seed: 5)
        var w = ByteWriter()
        a.stack.encodeState(into: &w)
        for n in stride(from: 0, to: w.bytes.count, by: max(1, w.bytes.count / 97)) {
            var r = ByteReader(Array(w.bytes[0..<n]))
            XCTAssertThrowsError(try Harness().stack.restoreState(from: &r), "prefix \(n)")
        }
        var bad = w.bytes; bad[0] ^= 0xFF
        var r = ByteReader(bad)
        XCTAssertThrowsError(try Harness().stack.restoreState(from: &r))
        // A stack with other services refuses the snapshot.
        var r2 = ByteReader(w.bytes)
        XCTAssertThrowsError(try Harness(services: ["echo:7000", "echo:7", "discard:9"]).stack.restoreState(from: &r2))
    }
}
