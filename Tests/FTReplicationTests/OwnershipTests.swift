import XCTest
import FTReplication
import FTStack
import FTTestSupport

/// An alone node under a leasing arbiter (etcd) stops once it cannot prove
/// its epoch for the arbiter's bound (Ownership.swift); without a bound (the
/// file arbiter) nothing changes.
final class OwnershipTests: XCTestCase {
    let bound: Nanos = 1_800 * ms

    /// B takes over (claim asked at `asked`) and serves alone; returns `asked`.
    func takeOver(_ p: Pair) -> Nanos {
        p.toPrimary = []
        p.now += 600 * ms
        p.tick("B")
        XCTAssertEqual(p.claims(by: "B"), [2])
        let asked = p.now
        p.now += 40 * ms  // the arbiter's answer takes a while
        p.answerClaim(of: "B")
        XCTAssertEqual(p.backup.mode, .alone)
        return asked
    }

    /// Every check unanswered: B stops at exactly asked + bound, not before,
    /// and emits nothing after.
    func testAloneNodeStopsWhenTheLeaseCannotBeRenewed() {
        let p = Pair(ownershipBound: bound)
        let asked = takeOver(p)
        var checks = 0
        while p.now + 50 * ms < asked + bound {
            p.now += 50 * ms
            p.tick("B")
            if p.checks.filter({ $0.node == "B" }).count > checks {
                checks += 1
                p.call("B") { $0.epochChecked(.unavailable("etcd unreachable"), now: p.now, &$1) }
            }
            XCTAssertEqual(p.backup.mode, .alone, "still proven at \(p.now - asked)")
        }
        XCTAssertGreaterThanOrEqual(checks, 4, "checked at least every bound/4 (\(checks) checks)")
        XCTAssertEqual(p.backup.nextWakeup(now: p.now).map { $0 <= asked + bound }, true, "the loop wakes up at the bound")
        p.now = asked + bound
        p.tick("B")
        XCTAssertEqual(p.backup.mode, .stopped)
        XCTAssertEqual(p.exitCodes(of: "B"), [2])
        XCTAssertTrue(p.exits.last!.reason.contains("could not renew its arbiter lease"), p.exits.last!.reason)
        let n = p.emitted["B"]!.count
        p.now += 100 * ms; p.tick("B")
        XCTAssertEqual(p.emitted["B"]!.count, n)
    }

    /// The loop resumes late (a long iteration, a pause) past the bound and a
    /// client frame is read before any tick: nothing is emitted for it, the
    /// node stops. Before the bound the same frame is answered.
    func testFrameAfterTheBoundIsNotAnswered() {
        let p = Pair(ownershipBound: bound)
        let asked = takeOver(p)
        let ping = icmpFrame(type: 8, rest: 0x0001_0001, body: [1, 2, 3])
        p.now = asked + bound - 1
        let n0 = p.emittedByBackup.count
        p.clientSends(ping, to: "B")
        XCTAssertEqual(p.emittedByBackup.count, n0 + 1, "answered while proven")
        p.now = asked + bound
        p.clientSends(ping, to: "B")
        XCTAssertEqual(p.emittedByBackup.count, n0 + 1, "nothing emitted after the bound")
        XCTAssertEqual(p.backup.mode, .stopped)
        XCTAssertEqual(p.exitCodes(of: "B"), [2])
    }

    /// A renewal proves ownership from the time it was ASKED, however late the answer.
    func testRenewalCountsFromTheRequest() {
        let p = Pair(ownershipBound: bound)
        let asked = takeOver(p)
        p.now += 300 * ms
        p.tick("B")
        let checkAsked = p.now
        XCTAssertEqual(p.checks.last?.node, "B")
        p.now += 1_000 * ms  // a slow answer
        p.call("B") { $0.epochChecked(.current, now: p.now, &$1) }
        XCTAssertGreaterThan(checkAsked + bound, asked + bound)
        // Later checks go unanswered (in flight): B must stop at checkAsked + bound.
        p.now = checkAsked + bound - 1
        p.tick("B")
        XCTAssertEqual(p.backup.mode, .alone)
        p.now = checkAsked + bound
        p.tick("B")
        XCTAssertEqual(p.backup.mode, .stopped, "the answer's arrival time extends nothing")
    }

    /// Renewed in time, the node serves on indefinitely.
    func testRenewedLeaseKeepsServing() {
        let p = Pair(ownershipBound: bound)
        _ = takeOver(p)
        for _ in 0..<100 {
            p.now += 100 * ms
            let before = p.checks.count
            p.tick("B")
            if p.checks.count > before { p.call("B") { $0.epochChecked(.current, now: p.now, &$1) } }
        }
        XCTAssertEqual(p.backup.mode, .alone)
        XCTAssertTrue(p.exits.isEmpty)
    }

    /// A node that emits only with a backup gives its lease up: the primary
    /// after its epoch-1 claim (waiting for the backup, then protected).
    func testProtectedPrimaryReleasesItsLease() {
        let p = Pair(ownershipBound: bound)
        XCTAssertEqual(p.primary.mode, .protected)
        p.tick("A")
        XCTAssertEqual(p.releases.map(\.node), ["A"])
        XCTAssertEqual(p.releases.map(\.epoch), [1])
        // A primary serving alone keeps it, proven from its first claim (the
        // simulator found the epoch-1 claim counted from time 0: a node whose
        // clock read more than the bound stopped at once).
        let q = Pair(.started, startAlone: true, ownershipBound: bound)
        q.tick("A")
        XCTAssertEqual(q.primary.mode, .alone)
        XCTAssertTrue(q.releases.isEmpty)
        q.now += bound - 1
        q.tick("A")
        XCTAssertEqual(q.primary.mode, .alone, "proven until the epoch-1 claim's time + bound")
        XCTAssertTrue(q.exits.isEmpty)
    }

    /// The file arbiter (no bound): an alone node with an unreachable arbiter
    /// serves on, and no lease is ever released.
    func testWithoutBoundNothingChanges() {
        let p = Pair()
        _ = takeOver(p)
        for _ in 0..<100 {
            p.now += 100 * ms
            let before = p.checks.count
            p.tick("B")
            if p.checks.count > before { p.call("B") { $0.epochChecked(.unavailable("down"), now: p.now, &$1) } }
        }
        XCTAssertEqual(p.backup.mode, .alone)
        XCTAssertTrue(p.exits.isEmpty)
        XCTAssertTrue(p.releases.isEmpty)
    }
}
