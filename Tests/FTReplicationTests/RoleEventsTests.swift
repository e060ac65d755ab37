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
