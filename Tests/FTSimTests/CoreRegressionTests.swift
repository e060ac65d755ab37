import XCTest
import FTReplication
import FTServices
import FTStack
import FTWire

/// Scripted reproductions of the replication bugs the simulator found
/// (see the seeds named in each test), driving two cores by hand.
final class CoreRegressionTests: XCTestCase {
    static let ms: Nanos = 1_000_000
    let mac = MACAddress("02:00:00:00:00:10")!
    let iface = IPv4Interface("10.0.0.100/24")!

    func core(_ role: Role, _ name: String, startAlone: Bool = false) -> ReplicationCore {
        var sc = StackConfig(mac: mac, interface: iface)
        sc.isnKey = (1, 2)
        let stack = try! Appliance.make(config: sc, services: [ServiceSpec(kind: "counter", port: 7000)])
        var rc = ReplicationConfig(role: role, nodeName: name)
        rc.startAlone = startAlone
        return ReplicationCore(config: rc, stack: stack)
    }

    func syn(_ port: UInt16) -> [UInt8] {
        FrameBuilder.tcp(ethSrc: MACAddress("02:00:00:00:01:01")!, ethDst: mac, src: IPv4Address(10, 0, 0, 1),
                         dst: iface.address, srcPort: port, dstPort: 7000, seq: 1000, ack: 0, flags: [.syn],
                         window: 65535, mss: 1460)
    }

    /// Two cores and the bytes in flight between them.
    final class Duo {
        let p: ReplicationCore, b: ReplicationCore
        var now: Nanos = 1_000 * CoreRegressionTests.ms
        var toB: [UInt8] = [], toP: [UInt8] = []
        var emits: [String: [OutputFrame]] = ["P": [], "B": []]
        var claims: [String: [UInt64]] = ["P": [], "B": []]
        var exits: [String: [Int32]] = ["P": [], "B": []]
        init(_ p: ReplicationCore, _ b: ReplicationCore) { self.p = p; self.b = b }

        func run(_ a: [Action], _ who: String) {
            for x in a {
                switch x {
                case .emit(let o): emits[who]!.append(o)
                case .send(let bytes): if who == "P" { toB += bytes } else { toP += bytes }
                case .claimEpoch(let e): claims[who]!.append(e)
                case .exit(let code, _): exits[who]!.append(code)
                default: break
                }
            }
        }
        func call(_ who: String, _ f: (ReplicationCore, inout [Action]) -> Void) {
            var a: [Action] = []
            f(who == "P" ? p : b, &a)
            run(a, who)
        }
        func deliverToB() { let x = toB; toB = []; call("B") { $0.peerBytes(x[...], now: now, &$1); $0.flush(now: now, &$1) } }
        func deliverToP() { let x = toP; toP = []; call("P") { $0.peerBytes(x[...], now: now, &$1); $0.flush(now: now, &$1) } }

        /// Starts both and forms the pair (or, with startAlone, lets the backup join by snapshot).
        func form() {
            call("P") { $0.start(now: now, &$1) }
            call("P") { $0.arbiterAnswered(epoch: 1, won: true, detail: "", now: now, &$1) }
            call("B") { $0.start(now: now, &$1) }
        }
        func connect() {
            call("P") { $0.peerUp(now: now, &$1) }
            call("B") { $0.peerUp(now: now, &$1) }
            deliverToP()
        }
    }

    /// Seeds 10, 59: a primary paused past the failure timeout resumes and
    /// reads an ack the backup sent before taking over. Releasing the output
    /// then would put frames on the wire after the new primary's.
    func testStaleAckDoesNotReleaseOutput() {
        for (delay, released) in [(10 * Self.ms, true), (501 * Self.ms, false)] {
            let d = Duo(core(.primary, "P"), core(.backup, "B"))
            d.form(); d.connect(); d.deliverToB()
            XCTAssertEqual(d.p.mode, .protected)
            let before = d.emits["P"]!.filter { $0.index > 0 }.count
            d.call("P") { $0.tapFrame(syn(40000), now: d.now, &$1); $0.flush(now: d.now, &$1) }
            d.deliverToB()                   // the backup applies and acks at once
            d.now += delay                   // ... but the primary reads the ack only now
            d.deliverToP()
            let after = d.emits["P"]!.filter { $0.index > 0 }.count
            if released {
                XCTAssertEqual(after, before + 1, "a timely ack releases the SYN-ACK")
                XCTAssertEqual(d.claims["P"]!, [1])
            } else {
                XCTAssertEqual(after, before, "a stale ack must not release output")
                XCTAssertEqual(d.claims["P"]!, [1, 2], "the primary asks the arbiter instead")
            }
        }
    }

    /// A primary paused during its gratuitous ARPs must not send the next one
    /// on resuming before it notices its backup may have replaced it.
    func testResumedPrimaryChecksItsPeerBeforeGARP() {
        let d = Duo(core(.primary, "P"), core(.backup, "B"))
        d.form(); d.connect(); d.deliverToB()
        let garps = d.emits["P"]!.count
        XCTAssertEqual(garps, 1, "first GARP when the pair forms")
        d.now += 600 * Self.ms
        d.call("P") { $0.tick(now: d.now, &$1) }
        XCTAssertEqual(d.emits["P"]!.count, garps, "no GARP from a primary that has not heard its backup for 600 ms")
        XCTAssertEqual(d.claims["P"]!, [1, 2])
    }

    /// Seed 4828: the log channel is reset; the backup reads the RST first and
    /// used to claim at once, while the primary (its RST delayed) still sent a
    /// GARP under its lease. A backup whose channel closes now takes over only
    /// once the primary has been silent for the failure timeout.
    func testBackupWaitsOutThePrimarysLeaseAfterTheChannelCloses() {
        let d = Duo(core(.primary, "P"), core(.backup, "B"))
        d.form(); d.connect(); d.deliverToB()
        XCTAssertEqual(d.b.mode, .backup)
        d.now += 20 * Self.ms
        d.call("B") { $0.peerDown(reason: "Connection reset by peer", now: d.now, &$1) }
        XCTAssertEqual(d.claims["B"]!, [], "no claim while the primary's lease may run")
        XCTAssertEqual(d.b.nextWakeup(now: d.now), d.now + 480 * Self.ms)
        d.now += 470 * Self.ms
        d.call("B") { $0.tick(now: d.now, &$1) }
        XCTAssertEqual(d.claims["B"]!, [])
        d.now += 10 * Self.ms
        d.call("B") { $0.tick(now: d.now, &$1) }
        XCTAssertEqual(d.claims["B"]!, [2], "silent for the failure timeout: take over")
    }

    /// Seed 9231: a connection to a primary serving alone that never says
    /// hello (the joining backup's machine died after the TCP handshake) must
    /// not block every later backup ("already has a peer connected") forever.
    func testSilentPeerIsDroppedAfterTheFailureTimeout() {
        let d = Duo(core(.primary, "P", startAlone: true), core(.backup, "B"))
        d.form()
        var closed = false
        var a: [Action] = []
        d.p.peerUp(now: d.now, &a)
        d.now += 499 * Self.ms
        a = []; d.p.tick(now: d.now, &a)
        XCTAssertFalse(a.contains { if case .closePeer = $0 { return true }; return false })
        XCTAssertEqual(d.p.nextWakeup(now: d.now), d.now + 1 * Self.ms)
        d.now += 1 * Self.ms
        a = []; d.p.tick(now: d.now, &a)
        for x in a { if case .closePeer = x { closed = true } }
        XCTAssertTrue(closed, "the silent peer is dropped")
        XCTAssertFalse(d.p.isPeerConnected)
        XCTAssertEqual(d.p.mode, .alone, "and the primary serves on")
    }

    /// Seed 25: a backup that joined by state transfer loses its primary
    /// before the primary left `syncing` (the primary then continues alone
    /// without claiming). It must not claim the next epoch: two live nodes.
    func testUnconfirmedJoinerDoesNotTakeOver() {
        for confirmed in [false, true] {
            let d = Duo(core(.primary, "P", startAlone: true), core(.backup, "B"))
            d.form()
            XCTAssertEqual(d.p.mode, .alone)
            d.call("P") { $0.tapFrame(syn(40001), now: d.now, &$1) }
            d.connect()
            XCTAssertEqual(d.p.mode, .syncing)
            d.deliverToB()                   // snapshot restored, the backup follows and acks
            XCTAssertEqual(d.b.mode, .backup)
            if confirmed {
                d.deliverToP()               // the ack reaches the primary: protected, confirms
                XCTAssertEqual(d.p.mode, .protected)
                d.deliverToB()
            }
            d.call("B") { $0.peerDown(reason: "connection reset", now: d.now, &$1) }
            if confirmed {
                d.now += 500 * Self.ms
                d.call("B") { $0.tick(now: d.now, &$1) }
                XCTAssertEqual(d.claims["B"]!, [2], "an in-sync backup takes over")
            } else {
                XCTAssertEqual(d.claims["B"]!, [], "an unconfirmed joiner must not claim")
                XCTAssertEqual(d.exits["B"]!, [3])
                d.call("P") { $0.peerDown(reason: "connection reset", now: d.now, &$1) }
                XCTAssertEqual(d.p.mode, .alone, "the syncing primary goes on alone")
            }
        }
    }
}
