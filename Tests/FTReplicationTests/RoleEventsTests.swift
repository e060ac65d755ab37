import XCTest
@testable import FTReplication
import FTTestSupport

/// Role and mode changes as the driver reports them (RoleEvents.swift): the
/// events --notify-script, the log, the metrics and systemd are told.
final class RoleEventsTests: XCTestCase {

    func testJoinSwitchoverAndPeerLoss() {
        let p = DriverPair()
        p.run()
        XCTAssertEqual(p.a.io.roleEvents, [.primary, .protected])
        XCTAssertEqual(p.b.io.roleEvents, [.backup])
        XCTAssertEqual(p.a.io.roleChanges.first?.epoch, 1)

        // Planned switchover: A follows, B serves epoch 2 with A as its backup.
        XCTAssertNil(p.a.driver.requestSwitchover(now: p.now))
        p.run(10)
        XCTAssertEqual(p.a.io.roleEvents, [.primary, .protected, .backup])
        XCTAssertEqual(p.b.io.roleEvents, [.backup, .primary, .protected])
        XCTAssertEqual(p.b.io.roleChanges.last?.epoch, 2)

        // A's process dies (its channel closes): B serves alone.
        p.a.io.halted = true
        p.a.io.closeChannel()
        p.run(10)
        XCTAssertEqual(p.b.io.roleEvents, [.backup, .primary, .protected, .alone])

        // SIGTERM: stopping, once.
        p.b.driver.signal(terminate: true, number: 15, p.b.io)
        p.b.driver.shutdown(p.b.io)
        XCTAssertEqual(p.b.io.roleEvents.last, .stopping)
        XCTAssertEqual(p.b.io.roleEvents.filter { $0 == .stopping }.count, 1)
    }

    func testFailoverMakesTheBackupPrimaryInTheNextEpoch() {
        let p = DriverPair()
        p.run()
        p.a.io.halted = true
        p.a.io.closeChannel()
        p.run(10)
        XCTAssertEqual(p.b.io.roleEvents, [.backup, .primary, .alone])
        XCTAssertEqual(p.b.io.roleChanges.last?.epoch, 2)
        XCTAssertEqual(p.b.io.claims, [2])
    }

    /// Claims answered later, as in the daemon: the events do not change.
    func testAsynchronousClaims() {
        let p = DriverPair()
        p.run()
        p.a.io.claimsPending = true
        p.b.io.claimsPending = true
        // B (backup) dies: A claims epoch 2 and, once answered, serves alone.
        p.b.io.halted = true
        p.b.io.closeChannel()
        p.run(5)
        XCTAssertEqual(p.a.io.claims.last, 2)
        XCTAssertEqual(p.a.core.mode, .claiming(epoch: 2))
        XCTAssertEqual(p.a.io.roleEvents, [.primary, .protected], "nothing while the claim is in flight")
        _ = p.a.driver.arbiterAnswered(.won("test"), now: p.now, p.a.io)
        XCTAssertEqual(p.a.io.roleEvents, [.primary, .protected, .alone])

        // A backup taking over: backup until the arbiter answers, then primary and alone.
        let q = DriverPair()
        q.run()
        q.b.io.claimsPending = true
        q.a.io.halted = true
        q.a.io.closeChannel()
        q.run(5)
        XCTAssertEqual(q.b.core.mode, .claiming(epoch: 2))
        XCTAssertEqual(q.b.io.roleEvents, [.backup])
        _ = q.b.driver.arbiterAnswered(.won("test"), now: q.now, q.b.io)
        XCTAssertEqual(q.b.io.roleEvents, [.backup, .primary, .alone])
    }

    /// A node serving alone learns that another holds a higher epoch: it exits 2.
    func testLostEpochThenStopping() {
        let p = DriverPair()
        p.run()
        p.b.io.halted = true
        p.b.io.closeChannel()
        p.run(5)
        XCTAssertEqual(p.a.core.mode, .alone)
        p.a.io.epochAnswer = .superseded(epoch: 7, detail: "epoch-7 owned by B")
        p.run(10, step: 100 * ms)  // the re-check runs every half failover timeout
        XCTAssertEqual(p.a.driver.exitCode, 2)
        XCTAssertEqual(p.a.io.roleEvents, [.primary, .protected, .alone, .lostEpoch, .stopping])
    }

    func testHealthChangesAreEventsAndNothingRepeats() {
        let p = DriverPair()
        p.run()
        _ = p.b.driver.healthChanged(false, reason: "uplink down", now: p.now, p.b.io)
        p.run(3)
        _ = p.b.driver.healthChanged(true, reason: "", now: p.now, p.b.io)
        p.run(3)
        XCTAssertEqual(p.b.io.roleEvents, [.backup, .unhealthy, .healthy])
        XCTAssertEqual(p.a.io.roleEvents, [.primary, .protected], "the peer's health is not this node's event")
    }
}
