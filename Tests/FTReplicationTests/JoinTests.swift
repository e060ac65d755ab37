import XCTest
@testable import FTReplication
import FTServices
import FTStack
import FTWire
import FTTestSupport

/// Re-protection: state transfer to a late backup, and planned switchover.
final class JoinTests: XCTestCase {

    func testSnapshotRestoresTheCompleteState() throws {
        let p = Pair()
        p.establish()
        let snap = p.primary.replica.snapshot()
        let fresh = Replica(stack: makeStack())
        try fresh.restore(snap)
        XCTAssertEqual(fresh.digest, p.primary.replica.digest)
        XCTAssertEqual(fresh.appliedIndex, p.primary.replica.appliedIndex)
        XCTAssertEqual(fresh.stack.connectionCount, 1)
        // Both continue identically: the next entry yields the same frames.
        let next = LogEntry(index: fresh.appliedIndex + 1, epoch: 1, time: fresh.lastTime + ms, kind: .tick)
        var a = Frames(), b = Frames()
        try fresh.apply(next, out: &a)
        try p.primary.replica.apply(next, out: &b)
        XCTAssertEqual(a, b)
        XCTAssertEqual(fresh.digest, p.primary.replica.digest)
        // Corruption and truncation are rejected.
        var bad = snap; bad.removeLast()
        XCTAssertThrowsError(try Replica(stack: makeStack()).restore(bad))
        XCTAssertThrowsError(try Replica(stack: makeStack()).restore(Array(snap.prefix(12))))
    }

    /// Makes the pair's primary lose its backup and continue alone in epoch 2.
    func primaryAlone(_ p: Pair, file: StaticString = #filePath, line: UInt = #line) {
        p.call("A") { $0.peerDown(reason: "backup died", now: p.now, &$1) }
        XCTAssertEqual(p.claims.last?.node, "A", file: file, line: line)
        XCTAssertEqual(p.claims.last?.epoch, 2, file: file, line: line)
        p.answerClaim(of: "A", file: file, line: line)
        XCTAssertEqual(p.primary.mode, .alone, file: file, line: line)
    }

    /// Connects a fresh backup to the pair's primary and runs the join.
    func join(_ p: Pair) -> ReplicationCore {
        let late = ReplicationCore(config: ReplicationConfig(role: .backup, nodeName: "C"), stack: makeStack())
        var la: [Action] = []
        late.start(now: p.now, &la); late.peerUp(now: p.now, &la)
        var a: [Action] = []
        p.primary.peerUp(now: p.now, &a); p.run(a, from: "A")
        // Shuttle bytes between the primary and the joining backup until quiet.
        var toLate = p.toBackup; p.toBackup = []
        var toPrimary: [UInt8] = []
        for x in la { if case .send(let b) = x { toPrimary += b } }
        for _ in 0..<10 {
            if !toPrimary.isEmpty {
                a = []; p.primary.peerBytes(toPrimary[...], now: p.now, &a); p.primary.flush(now: p.now, &a); p.run(a, from: "A")
                toPrimary = []; toLate += p.toBackup; p.toBackup = []
            }
            if !toLate.isEmpty {
                la = []; late.peerBytes(toLate[...], now: p.now, &la); late.flush(now: p.now, &la); toLate = []
                for x in la { if case .send(let b) = x { toPrimary += b } }
                lateActions += la
            }
        }
        return late
    }
    var lateActions: [Action] = []

    func testLateBackupJoinsByStateTransferAndThePairIsProtectedAgain() {
        let p = Pair()
        p.establish()
        primaryAlone(p)
        let late = join(p)
        XCTAssertEqual(late.mode, .backup)
        XCTAssertEqual(late.epoch, 2)
        XCTAssertEqual(late.replica.appliedIndex, p.primary.replica.appliedIndex)
        XCTAssertEqual(late.replica.digest, p.primary.replica.digest)
        XCTAssertEqual(p.primary.mode, .protected, "once the backup acknowledged the snapshot index")
        // The output rule is back: a new SYN's SYN-ACK waits for the new backup.
        let before = p.emittedByPrimary.count
        p.clientSends(tcp(5000, 0, [.syn], sport: 40001))
        XCTAssertEqual(p.emittedByPrimary.count, before)
        XCTAssertFalse(p.toBackup.isEmpty)
    }

    func testCorruptSnapshotChunkIsDetectedAndTheJoinRetried() {
        let p = Pair(fault: FaultPlan("corrupt-snapshot:1"))
        p.establish()
        primaryAlone(p)
        let first = join(p)
        XCTAssertEqual(first.mode, .waitingForPeer, "the corrupted chunk fails its checksum")
        XCTAssertTrue(lateActions.contains { if case .closePeer = $0 { return true }; return false })
        XCTAssertEqual(first.replica.appliedIndex, 0, "nothing of the bad snapshot was applied")
        p.call("A") { $0.peerDown(reason: "closed by joiner", now: p.now, &$1) }
        XCTAssertEqual(p.primary.mode, .alone)
        let second = join(p)
        XCTAssertEqual(second.mode, .backup)
        XCTAssertEqual(second.replica.digest, p.primary.replica.digest)
    }

    func testPlannedSwitchoverHandsTheRoleOverWithoutStateTransfer() {
        let p = Pair()
        let iss = p.establish()
        var a: [Action] = []
        XCTAssertNil(p.primary.requestSwitchover(now: p.now, &a)); p.run(a, from: "A")
        XCTAssertEqual(p.primary.role, .backup, "everything was acknowledged, so the handover entry goes at once")
        p.deliver()
        XCTAssertEqual(p.claims.last?.node, "B"); XCTAssertEqual(p.claims.last?.epoch, 2)
        p.answerClaim(of: "B")
        XCTAssertEqual(p.backup.role, .primary)
        XCTAssertEqual(p.backup.mode, .protected)
        XCTAssertEqual(p.garps.last, "B")
        p.deliver()  // B's first entry of epoch 2 (go-live) reaches A
        XCTAssertEqual(p.primary.replica.appliedIndex, p.backup.replica.appliedIndex)
        // The next request goes to B, whose reply waits for A's ack.
        var f: [Action] = []
        p.backup.tapFrame(tcp(1006, iss &+ 3, [.ack, .psh], "INCR\n"), now: p.now, &f)
        p.backup.flush(now: p.now, &f)
        let bytesToA = f.compactMap { if case .send(let b) = $0 { return b }; return nil }.flatMap { $0 }
        p.run(f.filter { if case .send = $0 { return false }; return true }, from: "B")
        XCTAssertTrue(p.emittedByBackup.compactMap { parseTCP($0.frame) }.allSatisfy { $0.1.isEmpty }, "held until A acks")
        a = []; p.primary.peerBytes(bytesToA[...], now: p.now, &a); p.primary.flush(now: p.now, &a); p.run(a, from: "A")
        p.deliver()
        let replies = p.emittedByBackup.compactMap { parseTCP($0.frame) }.filter { !$0.1.isEmpty }
        XCTAssertEqual(replies.last?.1, Array("2\n".utf8))
        XCTAssertEqual(p.primary.replica.digest, p.backup.replica.digest)
        XCTAssertTrue(p.emittedByPrimary.compactMap { parseTCP($0.frame) }.filter { $0.1 == Array("2\n".utf8) }.isEmpty,
                      "the old primary emits nothing after handing over")
    }

    func testBackupWithStateIsRefused() {
        let p = Pair()
        primaryAlone(p)
        var bytes: [UInt8] = []
        ChannelCodec.encode(.hello(.init(node: "X", role: "backup", configDigest: p.primary.configDigest, appliedIndex: 7, epoch: 1)), into: &bytes)
        var a: [Action] = []
        p.primary.peerUp(now: p.now, &a); p.primary.peerBytes(bytes[...], now: p.now, &a)
        XCTAssertTrue(a.contains { if case .closePeer = $0 { return true }; return false })
        XCTAssertEqual(p.primary.mode, .alone)
    }

    func testSwitchoverNeedsAProtectedPrimary() {
        let p = Pair()
        var a: [Action] = []
        XCTAssertNotNil(p.backup.requestSwitchover(now: p.now, &a))
        primaryAlone(p)
        XCTAssertNotNil(p.primary.requestSwitchover(now: p.now, &a))
    }
}
