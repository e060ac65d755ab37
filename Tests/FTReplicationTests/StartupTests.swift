import XCTest
@testable import FTReplication
import FTStack
import FTTestSupport

/// Startup.swift: the same flags are right on every start.
final class StartupTests: XCTestCase {
    let history = EpochCheck.superseded(epoch: 3, detail: "epoch-3 owned by B")

    func testFreshArbiterRunsAsConfigured() {
        XCTAssertEqual(Startup.decide(role: .primary, newPair: false, arbiter: .current), .asConfigured)
        XCTAssertEqual(Startup.decide(role: .backup, newPair: false, arbiter: .current), .asConfigured)
        XCTAssertEqual(Startup.decide(role: .solo, newPair: true, arbiter: nil), .asConfigured)
    }

    func testArbiterWithHistoryMakesEitherRoleFollow() {
        for role in [Role.primary, .backup] {
            guard case .follow(let why) = Startup.decide(role: role, newPair: false, arbiter: history) else {
                return XCTFail("\(role) must follow on an arbiter with history")
            }
            XCTAssertTrue(why.contains("epoch 3") && why.contains("--new-pair"), why)
            let c = Startup.apply(.follow(reason: why), to: ReplicationConfig(role: role, nodeName: "A"))
            XCTAssertEqual(c.role, .backup)
        }
    }

    func testNewPairClaimsTheNextFreeEpochAndServesAlone() {
        XCTAssertEqual(Startup.decide(role: .backup, newPair: true, arbiter: history), .newPair(epoch: 4))
        XCTAssertEqual(Startup.decide(role: .primary, newPair: true, arbiter: .current), .newPair(epoch: 1))
        let c = Startup.apply(.newPair(epoch: 4), to: ReplicationConfig(role: .backup, nodeName: "B"))
        XCTAssertEqual(c.role, .primary)
        XCTAssertEqual(c.firstEpoch, 4)
        XCTAssertTrue(c.startAlone)

        // The driver claims epoch 4 and serves alone; the other node, started
        // with its usual flags (primary) on the same history, follows and joins.
        let b = MemoryNode(config: c, secret: testSecret, seed: 2)
        var now: Nanos = 1_000 * ms
        _ = b.driver.start(now: now, b.io)
        XCTAssertEqual(b.io.claims, [4])
        XCTAssertEqual(b.core.mode, .alone)
        XCTAssertEqual(b.core.epoch, 4)
        let plan = Startup.decide(role: .primary, newPair: false, arbiter: .superseded(epoch: 4, detail: "B"))
        let a = MemoryNode(config: Startup.apply(plan, to: ReplicationConfig(role: .primary, nodeName: "A")),
                           secret: testSecret, seed: 1)
        a.io.peer = b.io
        _ = a.driver.start(now: now, a.io)
        XCTAssertTrue(a.io.claims.isEmpty, "a follower claims nothing")
        for _ in 0..<40 {
            now += ms
            b.step(now)
            a.step(now)
        }
        XCTAssertEqual(a.core.mode, .backup, "\(a.io.logs)")
        XCTAssertEqual(a.core.epoch, 4)
        XCTAssertEqual(b.core.mode, .protected, "\(b.io.logs)")
        XCTAssertEqual(a.core.replica.digest, b.core.replica.digest)
        XCTAssertEqual(b.io.roleEvents, [.primary, .alone, .protected])
        XCTAssertEqual(a.io.roleEvents, [.backup])
    }
}

/// Two nodes that both follow (both restarted after a cold stop) meet, refuse
/// each other quietly, and keep waiting: neither serves, neither exits.
final class FollowersTests: XCTestCase {
    func testTwoFollowersWaitWithoutExitingOrServing() {
        let a = MemoryNode(.backup, name: "A", secret: testSecret, seed: 1)
        let b = MemoryNode(.backup, name: "B", secret: testSecret, seed: 2)
        a.io.peer = b.io
        b.io.peer = a.io
        var now: Nanos = 1_000 * ms
        _ = a.driver.start(now: now, a.io)
        _ = b.driver.start(now: now, b.io)
        for _ in 0..<200 {
            now += 10 * ms
            a.step(now)
            b.step(now)
        }
        for n in [a, b] {
            XCTAssertTrue(n.io.exits.isEmpty, "\(n.io.logs)")
            XCTAssertEqual(n.core.mode, .waitingForPeer)
            XCTAssertFalse(n.core.isLive)
            XCTAssertTrue(n.io.claims.isEmpty)
            XCTAssertTrue(n.io.roleEvents.isEmpty)
        }
        let met = [a, b].contains { $0.io.logged("waiting to join too") || $0.io.logged("peer cannot take this backup now") }
        XCTAssertTrue(met, "they did meet: \(a.io.logs.suffix(5)) \(b.io.logs.suffix(5))")
    }
}
