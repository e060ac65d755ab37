import XCTest
import FTReplication
import FTServices
import FTStack
import FTWire
import FTTestSupport

/// Scripted reproductions of the replication bugs the simulator found
/// (see the seeds named in each test), driving the two cores of a `Pair`
/// step by step.
final class CoreRegressionTests: XCTestCase {
    /// Seeds 10, 59: a primary paused past the failure timeout resumes and
    /// reads an ack the backup sent before taking over. Releasing the output
    /// then would put frames on the wire after the new primary's.
    func testStaleAckDoesNotReleaseOutput() {
        for (delay, released) in [(10 * ms, true), (501 * ms, false)] {
            let d = Pair()
            XCTAssertEqual(d.primary.mode, .protected)
            let before = d.emitted["A"]!.filter { $0.index > 0 }.count
            d.clientSends(tcp(1000, 0, [.syn]))
            d.deliverToBackup()              // the backup applies and acks at once
            d.now += delay                  // ... but the primary reads the ack only now
            d.deliverToPrimary()
            let after = d.emitted["A"]!.filter { $0.index > 0 }.count
            if released {
                XCTAssertEqual(after, before + 1, "a timely ack releases the SYN-ACK")
                XCTAssertEqual(d.claims(by: "A"), [1])
            } else {
                XCTAssertEqual(after, before, "a stale ack must not release output")
                XCTAssertEqual(d.claims(by: "A"), [1, 2], "the primary asks the arbiter instead")
            }
        }
    }

    /// A primary paused during its gratuitous ARPs must not send the next one
    /// on resuming before it notices its backup may have replaced it.
    func testResumedPrimaryChecksItsPeerBeforeGARP() {
        let d = Pair()
        let garps = d.emitted["A"]!.count
        XCTAssertEqual(garps, 1, "first GARP when the pair forms")
        d.now += 600 * ms
        d.tick("A")
        XCTAssertEqual(d.emitted["A"]!.count, garps, "no GARP from a primary that has not heard its backup for 600 ms")
        XCTAssertEqual(d.claims(by: "A"), [1, 2])
    }

    /// Seed 4828: the log channel is reset; the backup reads the RST first and
    /// used to claim at once, while the primary (its RST delayed) still sent a
    /// GARP under its lease. A backup whose channel closes now takes over only
    /// once the primary has been silent for the failure timeout.
    func testBackupWaitsOutThePrimarysLeaseAfterTheChannelCloses() {
        let d = Pair()
        XCTAssertEqual(d.backup.mode, .backup)
        d.now += 20 * ms
        d.call("B") { $0.peerDown(reason: "Connection reset by peer", now: d.now, &$1) }
        XCTAssertEqual(d.claims(by: "B"), [], "no claim while the primary's lease may run")
        XCTAssertEqual(d.backup.nextWakeup(now: d.now), d.now + 480 * ms)
        d.now += 470 * ms
        d.tick("B")
        XCTAssertEqual(d.claims(by: "B"), [])
        d.now += 10 * ms
        d.tick("B")
        XCTAssertEqual(d.claims(by: "B"), [2], "silent for the failure timeout: take over")
    }

    /// Seed 9231: a connection to a primary serving alone that never says
    /// hello (the joining backup's machine died after the TCP handshake) must
    /// not block every later backup ("already has a peer connected") forever.
    func testSilentPeerIsDroppedAfterTheFailureTimeout() {
        let d = Pair(.started, startAlone: true)
        var closed = false
        var a: [Action] = []
        d.primary.peerUp(now: d.now, &a)
        d.now += 499 * ms
        a = []; d.primary.tick(now: d.now, &a)
        XCTAssertFalse(a.contains { if case .closePeer = $0 { return true }; return false })
        XCTAssertEqual(d.primary.nextWakeup(now: d.now), d.now + 1 * ms)
        d.now += 1 * ms
        a = []; d.primary.tick(now: d.now, &a)
        for x in a { if case .closePeer = x { closed = true } }
        XCTAssertTrue(closed, "the silent peer is dropped")
        XCTAssertFalse(d.primary.isPeerConnected)
        XCTAssertEqual(d.primary.mode, .alone, "and the primary serves on")
    }

    /// Seed 25: a backup that joined by state transfer loses its primary
    /// before the primary left `syncing` (the primary then continues alone
    /// without claiming). It must not claim the next epoch: two live nodes.
    func testUnconfirmedJoinerDoesNotTakeOver() {
        for confirmed in [false, true] {
            let d = Pair(.started, startAlone: true)
            XCTAssertEqual(d.primary.mode, .alone)
            d.call("A") { $0.tapFrame(tcp(1000, 0, [.syn], sport: 40001), now: d.now, &$1) }
            d.connect()
            XCTAssertEqual(d.primary.mode, .syncing)
            d.deliverToBackup()              // snapshot restored, the backup follows and acks
            XCTAssertEqual(d.backup.mode, .backup)
            if confirmed {
                d.deliverToPrimary()        // the ack reaches the primary: protected, confirms
                XCTAssertEqual(d.primary.mode, .protected)
                d.deliverToBackup()
            }
            d.call("B") { $0.peerDown(reason: "connection reset", now: d.now, &$1) }
            if confirmed {
                d.now += 500 * ms
                d.tick("B")
                XCTAssertEqual(d.claims(by: "B"), [2], "an in-sync backup takes over")
            } else {
                XCTAssertEqual(d.claims(by: "B"), [], "an unconfirmed joiner must not claim")
                XCTAssertEqual(d.exitCodes(of: "B"), [3])
                d.call("A") { $0.peerDown(reason: "connection reset", now: d.now, &$1) }
                XCTAssertEqual(d.primary.mode, .alone, "the syncing primary goes on alone")
            }
        }
    }
}
