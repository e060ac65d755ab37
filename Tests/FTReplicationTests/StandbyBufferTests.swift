import XCTest
import FTWire
import FTStack
import FTReplication
import FTTestSupport

/// The standby buffer: what a backup keeps of the frames reaching its own
/// TAP (a switch mirror of the primary's port), matched against the log,
/// and applied at go-live.
final class StandbyBufferTests: XCTestCase {
    let ms: Nanos = 1_000_000
    func f(_ n: UInt8, size: Int = 60) -> [UInt8] { [UInt8](repeating: n, count: size) }

    func testMirrorCopyFirstThenLogged() {
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.arrived(f(1), unicastToUs: true, now: 0)
        b.arrived(f(2), unicastToUs: true, now: 1)
        b.wasLogged(f(1), now: 2)
        XCTAssertEqual(b.count, 1)
        XCTAssertEqual(b.matched, 1)
        XCTAssertEqual(b.takeAll(now: 3).map(\.frame), [f(2)], "only the frame the log does not cover")
        XCTAssertEqual(b.count, 0)
        XCTAssertEqual(b.bytes, 0)
    }

    /// A buffer whose mirror is running: one copy arrived and was matched.
    func mirrored() -> StandbyBuffer {
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.arrived(f(0), unicastToUs: true, now: 0)
        b.wasLogged(f(0), now: 0)
        return b
    }

    func testNothingIsHashedOrWaitsWhileNoCopiesArrive() {
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.wasLogged(f(1), now: 0)
        XCTAssertEqual(b.waitingLogged, 0, "no mirror: logged frames are not recorded")
        b = mirrored()
        b.wasLogged(f(1), now: 1)
        XCTAssertEqual(b.waitingLogged, 1)
        b.wasLogged(f(2), now: 2 * 1000 * ms)
        XCTAssertEqual(b.waitingLogged, 1, "copies stopped a window ago: nothing more is recorded")
    }

    func testLoggedFirstThenMirrorCopy() {
        var b = mirrored()
        b.wasLogged(f(1), now: 0)
        b.arrived(f(1), unicastToUs: true, now: 1)
        b.arrived(f(2), unicastToUs: true, now: 2)
        XCTAssertEqual(b.waitingLogged, 0)
        XCTAssertEqual(b.takeAll(now: 3).map(\.frame), [f(2)])
    }

    func testFramesThePrimaryNeverGotAreRetiredWhenAMuchLaterOneIsLogged() {
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.arrived(f(1), unicastToUs: true, now: 0)
        b.arrived(f(2), unicastToUs: true, now: 30 * ms)
        b.arrived(f(3), unicastToUs: true, now: 31 * ms)
        b.wasLogged(f(2), now: 32 * ms)  // the primary's queue dropped frame 1
        XCTAssertEqual(b.unlogged, 1)
        XCTAssertEqual(b.takeAll(now: 40 * ms).map(\.frame), [f(3)])
    }

    func testSlightReorderingLosesNothing() {
        // Two clients on two CPUs: the mirror and the primary may see two
        // close frames in opposite orders.
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.arrived(f(1), unicastToUs: true, now: 0)
        b.arrived(f(2), unicastToUs: true, now: 1 * ms)
        b.arrived(f(3), unicastToUs: true, now: 2 * ms)
        b.wasLogged(f(2), now: 3 * ms)
        XCTAssertEqual(b.unlogged, 0, "frame 1 is within the horizon: it may still be logged")
        b.wasLogged(f(1), now: 3 * ms)
        XCTAssertEqual(b.takeAll(now: 4 * ms).map(\.frame), [f(3)])
        XCTAssertEqual(b.matched, 2)
    }

    func testLoggedFramesWhoseCopiesNeverCameAreRetired() {
        var b = mirrored()
        b.wasLogged(f(1), now: 0)  // the mirror lost this copy
        b.wasLogged(f(2), now: 30 * ms)
        b.arrived(f(2), unicastToUs: true, now: 31 * ms)
        XCTAssertEqual(b.waitingLogged, 0, "matching 2 retires 1, much older, as well")
        b.arrived(f(1), unicastToUs: true, now: 32 * ms)  // not waiting any more: kept
        XCTAssertEqual(b.takeAll(now: 33 * ms).map(\.frame), [f(1)])
    }

    func testEqualFramesAreMatchedInOrder() {
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.arrived(f(7), unicastToUs: false, now: 0)
        b.arrived(f(7), unicastToUs: false, now: 1)
        b.wasLogged(f(7), now: 2)
        XCTAssertEqual(b.takeAll(now: 3).map(\.frame), [f(7)], "one of the two equal frames is still uncovered")
    }

    func testTimeAndByteBounds() {
        var b = StandbyBuffer(window: 100 * ms, maxBytes: 1000)
        b.arrived(f(1), unicastToUs: true, now: 0)
        b.arrived(f(2), unicastToUs: true, now: 150 * ms)
        XCTAssertEqual(b.expired, 1, "older than the window")
        for n in 3...40 { b.arrived(f(UInt8(n), size: 100), unicastToUs: true, now: 150 * ms) }
        XCTAssertLessThanOrEqual(b.bytes, 1000)
        XCTAssertEqual(b.count, 10)
        XCTAssertEqual(b.takeAll(now: 150 * ms).map(\.frame).first, f(31, size: 100), "the newest frames survive")
        b.arrived(f(1), unicastToUs: true, now: 200 * ms)
        XCTAssertTrue(b.takeAll(now: 400 * ms).map(\.frame).isEmpty, "go-live drops frames older than the window too")
    }

    func testOffKeepsNothing() {
        var b = StandbyBuffer(window: 0, maxBytes: 1 << 20)
        b.arrived(f(1), unicastToUs: true, now: 0)
        XCTAssertEqual(b.count, 0)
        XCTAssertEqual(b.received, 0)
    }

    func testReceivingClientFrames() {
        var b = StandbyBuffer(window: 1000 * ms, maxBytes: 1 << 20)
        b.arrived(f(1), unicastToUs: false, now: 0)
        XCTAssertFalse(b.receivingClientFrames(now: 0, recent: 2000 * ms), "broadcasts are not client traffic copies")
        b.arrived(f(2), unicastToUs: true, now: 10 * ms)
        XCTAssertTrue(b.receivingClientFrames(now: 20 * ms, recent: 2000 * ms))
        XCTAssertFalse(b.receivingClientFrames(now: 3000 * ms, recent: 2000 * ms))
    }

    // MARK: Through the replication core

    /// The client's second INCR reached the standby (mirrored) but the
    /// primary died before logging it. The new primary answers it at
    /// go-live, without waiting for the client to retransmit, and applies
    /// the first INCR only once.
    func pairWhereThePrimaryDiesWithAnUnloggedRequest(standbyWindow: Nanos? = nil) -> (Pair, UInt32) {
        let p = Pair(standbyWindow: standbyWindow)
        let syn = tcp(1000, 0, [.syn])
        p.clientSends(syn, to: "B")  // mirror copies reach the standby first...
        p.clientSends(syn); p.deliver()  // ...then the primary logs the original
        let iss = parseTCP(p.emittedByPrimary.last!.frame)!.0.seq
        for frame in [tcp(1001, iss &+ 1, [.ack]), tcp(1001, iss &+ 1, [.ack, .psh], "INCR\n")] {
            p.clientSends(frame); p.deliver()  // this time the log is first
            p.clientSends(frame, to: "B")
        }
        // The reply "1\n" was released; the client acknowledges it and sends the next INCR,
        // which only the standby's copy survives.
        let second = tcp(1006, iss &+ 3, [.ack, .psh], "INCR\n")
        p.clientSends(second, to: "B")
        XCTAssertEqual(p.backup.standby.count, standbyWindow == 0 ? 0 : 1, "only the unlogged request is kept")
        p.now += 10 * ms
        p.call("B") { $0.peerDown(reason: "test", now: p.now, &$1) }
        p.now += 600 * ms
        p.tick("B")
        p.answerClaim(of: "B")
        XCTAssertEqual(p.backup.mode, .alone)
        return (p, iss)
    }

    func testTakeoverAppliesTheRequestThePrimaryNeverLogged() {
        let (p, iss) = pairWhereThePrimaryDiesWithAnUnloggedRequest()
        let replies = p.emittedByBackup.compactMap { parseTCP($0.frame) }.filter { !$0.1.isEmpty }
        XCTAssertTrue(replies.contains { $0.1 == Array("2\n".utf8) && $0.0.seq == iss &+ 3 },
                      "the new primary answers the second INCR at once: \(replies.map { String(decoding: $0.1, as: UTF8.self) })")
        XCTAssertFalse(replies.contains { $0.1 == Array("3\n".utf8) }, "no request applied twice")
        XCTAssertEqual(p.backup.standbyApplied, 1)
        // GARP first: the buffered requests' replies follow the MAC's move.
        let firstGARP = p.emitted["B"]!.firstIndex { isGARP($0.frame) }!
        let reply = p.emitted["B"]!.firstIndex { parseTCP($0.frame)?.1 == Array("2\n".utf8) }!
        XCTAssertLessThan(firstGARP, reply)
    }

    func testWithoutTheBufferTheRequestWaitsForTheClient() {
        let (p, _) = pairWhereThePrimaryDiesWithAnUnloggedRequest(standbyWindow: 0)
        let replies = p.emittedByBackup.compactMap { parseTCP($0.frame) }.filter { !$0.1.isEmpty }
        XCTAssertFalse(replies.contains { $0.1 == Array("2\n".utf8) })
        XCTAssertEqual(p.backup.standbyApplied, 0)
    }

    /// A copy whose bytes differ from the logged original (a retransmission
    /// with another IP ID) is not matched; at go-live the stack recognises it
    /// as data already received and it is skipped, so no duplicate ACK goes out.
    func testOldDataInTheBufferIsSkippedAtGoLive() {
        let p = Pair()
        let iss = p.handshake()
        p.clientSends(tcp(1001, iss &+ 1, [.ack, .psh], "INCR\n")); p.deliver()
        let retransmission = tcpFrame(seq: 1001, ack: iss &+ 1, flags: [.ack, .psh], payload: Array("INCR\n".utf8), ipID: 99)
        p.clientSends(retransmission, to: "B")
        XCTAssertEqual(p.backup.standby.count, 1)
        p.now += 10 * ms
        p.call("B") { $0.peerDown(reason: "test", now: p.now, &$1) }
        p.now += 600 * ms
        p.tick("B")
        let before = p.emittedByBackup.count
        p.answerClaim(of: "B")
        XCTAssertEqual(p.backup.standbySkippedOld, 1)
        XCTAssertEqual(p.backup.standbyApplied, 0)
        let pureACKs = p.emittedByBackup[before...].compactMap { parseTCP($0.frame) }.filter { $0.1.isEmpty && $0.0.flags == [.ack] }
        XCTAssertTrue(pureACKs.isEmpty, "no duplicate ACK for data the log held")
        XCTAssertFalse(p.emittedByBackup.compactMap { parseTCP($0.frame) }.contains { $0.1 == Array("2\n".utf8) })
    }

    /// Frames kept before a planned handover are not applied: the old primary
    /// forwards what its TAP still gets.
    func testHandoverForgetsTheBuffer() {
        let p = Pair()
        p.handshake()
        p.clientSends(arpFrame(target: applianceAddress), to: "B")
        XCTAssertEqual(p.backup.standby.count, 1)
        p.call("A") { _ = $0.requestSwitchover(now: p.now, &$1) }
        p.deliver()
        p.answerClaim(of: "B"); p.deliver()
        XCTAssertEqual(p.backup.mode, .protected)
        XCTAssertEqual(p.backup.standby.count, 0)
        XCTAssertEqual(p.backup.standbyApplied, 0)
    }
}
