import XCTest
@testable import FTReplication
import FTStack
import FTTestSupport
import FTWire

private func message(_ m: ChannelMessage) -> [UInt8] {
    var b: [UInt8] = []
    ChannelCodec.encode(m, into: &b)
    return b
}

/// What a confused (or, before authentication, hostile) peer could do to the
/// core on an authenticated channel, and the bounds on what it declares.
final class HardeningTests: XCTestCase {

    /// A second hello on a protected primary's channel is ignored: the
    /// primary stays protected with its backup, and output still flows.
    func testSecondHelloDoesNotWedgeAProtectedPrimary() {
        let p = Pair()
        p.toPrimary += message(.hello(.init(node: "B", role: "backup", configDigest: p.primary.configDigest, appliedIndex: 0, epoch: 0)))
        p.deliver()
        XCTAssertEqual(p.primary.mode, .protected)
        XCTAssertTrue(p.primary.isPeerConnected)
        XCTAssertTrue(p.closes.isEmpty, "\(p.closes)")
        p.handshake()
        XCTAssertFalse(p.emittedByPrimary.isEmpty, "output is released after the backup's ack")
        XCTAssertEqual(p.primary.heldFrames, 0)
    }

    /// A backup whose digest differs tells the primary, which reports that
    /// it is not protected.
    func testDivergedBackupTellsThePrimary() {
        let p = Pair()
        p.establish()
        XCTAssertFalse(p.primary.backupDiverged)
        p.toBackup += message(.digest(index: p.backup.replica.appliedIndex, value: p.backup.replica.digest ^ 1))
        var logs: [String] = []
        var a: [Action] = []
        let bytes = p.toBackup; p.toBackup = []
        p.backup.peerBytes(bytes[...], now: p.now, &a)
        p.run(a, from: "B")
        a = []
        let up = p.toPrimary; p.toPrimary = []
        p.primary.peerBytes(up[...], now: p.now, &a)
        for case .log(_, let m) in a { logs.append(m) }
        XCTAssertTrue(p.backup.diverged)
        XCTAssertTrue(p.primary.backupDiverged)
        XCTAssertTrue(logs.contains { $0.contains("NOT protected") }, "\(logs)")
    }

    func testSnapshotSizeDeclarationsAreBounded() {
        var w = ByteWriter()
        w.u64(1); w.u64(1); w.u64(UInt64(ChannelCodec.maxSnapshotBytes) + 1); w.u64(0)
        var frame: [UInt8] = []
        frame.appendBE16(ChannelCodec.magic); frame.append(ChannelCodec.version); frame.append(8)
        frame.appendBE32(UInt32(w.bytes.count)); frame += w.bytes
        var d = ChannelDecoder()
        d.feed(frame)
        XCTAssertThrowsError(try d.next()) { e in
            guard case .malformed = e as? ChannelCodec.ProtocolError else { return XCTFail("\(e)") }
        }
    }

    /// Timestamps near the top of the clock would overflow timer arithmetic
    /// in the stack: refused on apply, on the leader and the follower alike,
    /// and in a snapshot.
    func testEntryTimestampsThatWouldOverflowAreRefused() {
        let r = Replica(stack: makeStack())
        var out = Frames()
        XCTAssertThrowsError(try r.apply(LogEntry(index: 1, epoch: 1, time: .max - 5, kind: .tick), out: &out)) { e in
            XCTAssertTrue("\(e)".contains("overflow"), "\(e)")
        }
        XCTAssertEqual(r.appliedIndex, 0)
        XCTAssertNoThrow(try r.apply(LogEntry(index: 1, epoch: 1, time: Replica.maxTime, kind: .tick), out: &out))

        let p = Pair()
        p.toBackup += message(.entries([LogEntry(index: p.backup.replica.appliedIndex + 1, epoch: 1, time: 1 << 63, kind: .tick)]))
        p.deliver()
        XCTAssertEqual(p.exitCodes(of: "B"), [5], "the backup refuses the log as inconsistent")

        var snap = Replica(stack: makeStack()).snapshot()
        snap.writeBE32(0xFFFF_FFFF, at: 8 + 8 + 8)  // last log time, high half
        XCTAssertThrowsError(try Replica(stack: makeStack()).restore(snap))
    }

    /// The leader never sends an entries message the receiver would refuse
    /// as too large: a big batch is split.
    func testEntriesBatchesStayWithinThePayloadLimit() throws {
        let p = Pair()
        let f = udpFrame(dstPort: udpCounterPort, payload: [UInt8](repeating: 0x41, count: 1400))
        let count = ChannelCodec.maxPayload / f.count + 500
        var a: [Action] = []
        for _ in 0..<count { p.primary.tapFrame(f, now: p.now, &a) }
        p.primary.flush(now: p.now, &a)
        var sends = 0, entries = 0
        for case .send(let b) in a {
            XCTAssertLessThanOrEqual(b.count, ChannelCodec.maxPayload + 8)
            var d = ChannelDecoder()
            d.feed(b)
            if case .entries(let es)? = try d.next() { sends += 1; entries += es.count }
        }
        XCTAssertGreaterThan(sends, 1, "the batch was not split")
        XCTAssertEqual(entries, count)
    }
}
