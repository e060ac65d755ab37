import XCTest
import FTReplication
import FTStack
import FTTestSupport

/// The health rules and the arbiter's three answers (Health.swift).
final class HealthTests: XCTestCase {

    /// The primary loses its uplink while its backup is healthy: it hands
    /// over through the planned-switchover path, nothing lost.
    func testUnhealthyPrimaryHandsOverToHealthyBackup() {
        let p = Pair()
        p.establish()
        XCTAssertEqual(p.backup.peerHealthy, true, "health is exchanged at the handshake")
        p.setHealth("A", false, reason: "uplink upA down")
        p.deliver()
        XCTAssertEqual(p.claims(by: "B"), [2], "the backup claims the next epoch after the handover entry")
        p.answerClaim(of: "B")
        p.deliver()
        XCTAssertEqual(p.backup.role, .primary)
        XCTAssertEqual(p.backup.mode, .protected)
        XCTAssertEqual(p.primary.mode, .backup, "the old primary follows")
        XCTAssertEqual(p.primary.switchovers, 1)
        XCTAssertTrue(p.exits.isEmpty)
    }

    /// Both unhealthy: the current primary stays.
    func testBothUnhealthyPrimaryStays() {
        let p = Pair()
        p.setHealth("B", false)
        p.deliver()
        XCTAssertEqual(p.primary.peerHealthy, false)
        p.setHealth("A", false)
        p.deliver()
        XCTAssertEqual(p.primary.mode, .protected)
        XCTAssertTrue(p.claims(by: "B").isEmpty)
        XCTAssertNotNil(p.call("A") { core, a in XCTAssertNotNil(core.requestSwitchover(now: p.now, &a)) })
    }

    /// An unhealthy backup whose primary goes silent does not claim; it claims
    /// as soon as it is healthy again.
    func testUnhealthyBackupDefersItsClaim() {
        let p = Pair()
        p.setHealth("B", false)
        p.toPrimary = []
        p.now += 600 * ms  // past the failover timeout, nothing heard from A
        p.tick("B")
        XCTAssertEqual(p.backup.mode, .claiming(epoch: 2))
        XCTAssertTrue(p.claims(by: "B").isEmpty, "an unhealthy node never claims")
        p.setHealth("B", true)
        XCTAssertEqual(p.claims(by: "B"), [2])
        p.answerClaim(of: "B")
        XCTAssertTrue(p.backup.isLive)
    }

    /// A primary that loses its backup while unhealthy does not claim (the
    /// healthy backup will), and holds its output.
    func testUnhealthyPrimaryLosingBackupDoesNotClaim() {
        let p = Pair()
        p.setHealth("B", false)  // so that A does not hand over to B
        p.deliver()
        p.setHealth("A", false)
        p.toBackup = []
        p.call("A") { $0.peerDown(reason: "cable pulled", now: p.now, &$1) }
        XCTAssertEqual(p.primary.mode, .claiming(epoch: 2))
        XCTAssertEqual(p.claims(by: "A"), [1], "no claim of epoch 2 while unhealthy")
        XCTAssertFalse(p.primary.isLive)
    }

    /// An operator switchover to a backup that reports itself unhealthy is refused.
    func testSwitchoverToUnhealthyBackupRefused() {
        let p = Pair()
        p.setHealth("B", false)
        p.deliver()
        var err: String? = nil
        p.call("A") { core, a in err = core.requestSwitchover(now: p.now, &a) }
        XCTAssertEqual(err, "the backup reports itself unhealthy; not handing over to it")
        XCTAssertEqual(p.primary.mode, .protected)
    }

    /// An arbiter that cannot answer is retried with backoff; the node never exits for it.
    func testUnavailableArbiterIsRetriedNotFatal() {
        let p = Pair()
        p.toPrimary = []
        p.now += 600 * ms
        p.tick("B")
        XCTAssertEqual(p.claims(by: "B"), [2])
        p.answerClaim(of: "B", .unavailable("EIO"))
        XCTAssertTrue(p.exits.isEmpty)
        XCTAssertEqual(p.backup.mode, .claiming(epoch: 2))
        XCTAssertEqual(p.backup.arbiterUnavailable, 1)
        p.now += 49 * ms; p.tick("B")
        XCTAssertEqual(p.claims(by: "B"), [2], "no retry before the backoff")
        p.now += 1 * ms; p.tick("B")
        XCTAssertEqual(p.claims(by: "B"), [2, 2], "retried after 50 ms")
        p.answerClaim(of: "B", .unavailable("EIO"))
        p.now += 99 * ms; p.tick("B")
        XCTAssertEqual(p.claims(by: "B").count, 2, "backoff doubles")
        p.now += 1 * ms; p.tick("B")
        XCTAssertEqual(p.claims(by: "B").count, 3)
        p.answerClaim(of: "B")
        XCTAssertTrue(p.backup.isLive)
        XCTAssertTrue(p.exits.isEmpty)
    }

    /// A node serving alone re-checks its epoch and stops when a higher one exists.
    func testAloneNodeStopsWhenSuperseded() {
        let p = Pair()
        p.toPrimary = []
        p.now += 600 * ms
        p.tick("B")
        p.answerClaim(of: "B")
        XCTAssertEqual(p.backup.mode, .alone)
        p.now += 250 * ms
        p.tick("B")
        XCTAssertEqual(p.checks.last?.node, "B")
        XCTAssertEqual(p.checks.last?.epoch, 2)
        p.call("B") { $0.epochChecked(.current, now: p.now, &$1) }
        XCTAssertEqual(p.backup.mode, .alone)
        p.now += 250 * ms
        p.tick("B")
        XCTAssertEqual(p.checks.filter { $0.node == "B" }.count, 2, "checked again within half a failover timeout")
        p.call("B") { $0.epochChecked(.superseded(epoch: 3, detail: "epoch-3 owned by C"), now: p.now, &$1) }
        XCTAssertEqual(p.backup.mode, .stopped)
        XCTAssertEqual(p.exitCodes(of: "B"), [2])
        let n = p.emitted["B"]!.count
        p.now += 100 * ms; p.tick("B")
        XCTAssertEqual(p.emitted["B"]!.count, n, "a superseded node emits nothing")
    }

    /// While the new primary waits for the arbiter after a handover, the old
    /// one keeps hearing from it and does not take over.
    func testHandoverClaimKeepsTheOldPrimaryQuiet() {
        let p = Pair()
        p.call("A") { core, a in XCTAssertNil(core.requestSwitchover(now: p.now, &a)) }
        p.deliver()
        XCTAssertEqual(p.claims(by: "B"), [2])
        p.answerClaim(of: "B", .unavailable("EROFS"))
        for _ in 0..<20 { p.advance(by: 50 * ms) }  // 1 s, twice the failover timeout
        XCTAssertEqual(p.primary.mode, .backup, "the old primary still follows")
        XCTAssertTrue(p.claims(by: "A") == [1], "the old primary did not claim")
        XCTAssertEqual(p.claims(by: "B").count, 2, "retried after the backoff; the retry is in flight")
        p.answerClaim(of: "B")
        p.deliver()
        XCTAssertEqual(p.backup.mode, .protected)
        XCTAssertEqual(p.primary.mode, .backup)
        XCTAssertTrue(p.exits.isEmpty)
    }

    /// A node that becomes unhealthy while its handover claim is in flight
    /// hands the role back as soon as it is primary.
    func testUnhealthyDuringHandoverClaimHandsBack() {
        let p = Pair()
        p.call("A") { core, a in XCTAssertNil(core.requestSwitchover(now: p.now, &a)) }
        p.deliver()
        XCTAssertEqual(p.claims(by: "B"), [2])
        p.setHealth("B", false)
        p.deliver()
        p.answerClaim(of: "B")
        p.deliver()
        XCTAssertEqual(p.claims(by: "A"), [1, 3], "A claims the next epoch after B handed back")
        p.answerClaim(of: "A")
        p.deliver()
        XCTAssertEqual(p.primary.role, .primary)
        XCTAssertEqual(p.primary.mode, .protected)
        XCTAssertEqual(p.backup.mode, .backup)
    }

    /// A handover that reaches a node already unhealthy: it closes the
    /// channel instead of claiming, and the old primary takes the service back.
    func testHandoverReceivedWhileUnhealthyIsGivenBack() {
        let p = Pair()
        p.call("A") { core, a in XCTAssertNil(core.requestSwitchover(now: p.now, &a)) }
        p.setHealth("B", false)  // before B applies the handover entry
        p.deliverToBackup()
        XCTAssertTrue(p.claims(by: "B").isEmpty)
        XCTAssertEqual(p.closes.last?.node, "B")
        p.toPrimary = []
        p.call("A") { $0.peerDown(reason: "peer closed the connection", peerClosed: true, now: p.now, &$1) }
        XCTAssertEqual(p.claims(by: "A"), [1, 2])
        p.answerClaim(of: "A")
        XCTAssertTrue(p.primary.isLive)
    }

    /// Claims run beside the loop, so a backup's hello can reach a fresh
    /// primary before the arbiter answered epoch 1: it is answered then, not
    /// refused (seen in the benchmark: the backup exited 3).
    func testHelloDuringTheFirstClaimIsAnsweredAfterIt() {
        let now: Nanos = 1_000 * ms
        let a = ReplicationCore(config: ReplicationConfig(role: .primary, nodeName: "X"), stack: makeStack())
        let b = ReplicationCore(config: ReplicationConfig(role: .backup, nodeName: "Y"), stack: makeStack())
        var aa: [Action] = [], ba: [Action] = []
        a.start(now: now, &aa)
        XCTAssertEqual(a.mode, .claiming(epoch: 1))
        b.start(now: now, &ba)
        a.peerUp(now: now, &aa); b.peerUp(now: now, &ba)
        let hello = ba.compactMap { if case .send(let x) = $0 { return x } else { return nil } }.flatMap { $0 }
        aa = []
        a.peerBytes(hello[...], now: now, &aa)
        XCTAssertFalse(aa.contains { if case .exit = $0 { return true } else { return false } })
        XCTAssertFalse(aa.contains { if case .closePeer = $0 { return true } else { return false } }, "not refused")
        aa = []
        a.arbiterAnswered(epoch: 1, answer: .won("test"), now: now, &aa)
        XCTAssertEqual(a.mode, .protected, "the held hello is answered once epoch 1 is won")
        let welcome = aa.compactMap { if case .send(let x) = $0 { return x } else { return nil } }.flatMap { $0 }
        ba = []
        b.peerBytes(welcome[...], now: now, &ba)
        XCTAssertEqual(b.mode, .backup)
        XCTAssertTrue(b.inSync)
    }

    /// The backup's hello, as the primary sees it, for configurations that differ.
    func refusal(primary pc: ReplicationConfig, backup bc: ReplicationConfig) -> [Action] {
        let now: Nanos = 1_000 * ms
        let a = ReplicationCore(config: pc, stack: makeStack())
        let b = ReplicationCore(config: bc, stack: makeStack())
        var aa: [Action] = [], ba: [Action] = []
        a.start(now: now, &aa)
        a.arbiterAnswered(epoch: 1, answer: .won("test"), now: now, &aa)
        b.start(now: now, &ba)
        a.peerUp(now: now, &aa); b.peerUp(now: now, &ba)
        let hello = ba.compactMap { if case .send(let x) = $0 { return x } else { return nil } }.flatMap { $0 }
        aa = []
        a.peerBytes(hello[...], now: now, &aa)
        XCTAssertEqual(a.mode, .waitingForPeer, "refused: the pair did not form")
        return aa
    }

    func refusalText(_ actions: [Action]) -> String {
        actions.compactMap { if case .log(_, let m) = $0, m.hasPrefix("refusing backup") { return m } else { return nil } }
            .joined(separator: "\n")
    }

    /// Two nodes that do not share an arbiter store could both win an epoch:
    /// refused at hello, naming both stores.
    func testDifferentArbiterStoresAreRefused() {
        var pc = ReplicationConfig(role: .primary, nodeName: "A"); pc.arbiterIdentity = "file-aaaa"
        var bc = ReplicationConfig(role: .backup, nodeName: "B"); bc.arbiterIdentity = "file-bbbb"
        let t = refusalText(refusal(primary: pc, backup: bc))
        XCTAssertTrue(t.contains("different arbiter stores") && t.contains("file-aaaa") && t.contains("file-bbbb"), t)
    }

    /// A backup with another failover timeout (or heartbeat) is refused at hello.
    func testDifferentTimingIsRefused() {
        let pc = ReplicationConfig(role: .primary, nodeName: "A")
        var bc = ReplicationConfig(role: .backup, nodeName: "B"); bc.failoverTimeout = 300 * ms
        let t = refusalText(refusal(primary: pc, backup: bc))
        XCTAssertTrue(t.contains("timing differs") && t.contains("500") && t.contains("300"), t)
    }
}
