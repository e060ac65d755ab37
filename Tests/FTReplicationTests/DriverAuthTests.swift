import XCTest
@testable import FTReplication
import FTStack
import FTTestSupport
import FTWire

private func message(_ m: ChannelMessage, version: UInt8 = ChannelCodec.version) -> [UInt8] {
    var b: [UInt8] = []
    ChannelCodec.encode(m, into: &b)
    b[2] = version
    return b
}

/// The log channel's security as the node loop runs it (ChannelAuth.swift):
/// whole drivers over in-memory connections, with strangers played by the test.
final class DriverAuthTests: XCTestCase {

    func testPairJoinsOverTheAuthenticatedChannel() {
        let p = DriverPair()
        p.run()
        XCTAssertEqual(p.a.core.mode, .protected)
        XCTAssertEqual(p.b.core.mode, .backup)
        XCTAssertTrue(p.a.io.logged("peer B (backup) connected and authenticated"), "\(p.a.io.logs)")
        XCTAssertTrue(p.b.io.logged("connected to the peer A (primary), authenticated"), "\(p.b.io.logs)")
    }

    func testWrongSecretNeverJoinsAndBothLogsSayWhy() {
        let p = DriverPair(backupSecret: [UInt8](repeating: 0x22, count: 32))
        p.run(20, step: 50 * ms)
        XCTAssertEqual(p.a.core.mode, .waitingForPeer)
        XCTAssertEqual(p.b.core.mode, .waitingForPeer)
        XCTAssertFalse(p.a.core.isPeerConnected)
        XCTAssertTrue(p.a.io.logged("failed authentication: it does not hold this pair's secret"), "\(p.a.io.logs)")
        XCTAssertTrue(p.b.io.logged("do not share the same secret"), "\(p.b.io.logs)")
        XCTAssertTrue(p.b.io.exits.isEmpty, "a refusal on an unauthenticated connection must not stop the backup")
    }

    /// Strangers that connect and say nothing, or speak either version,
    /// neither hold nor displace the peer slot: the real backup joins, and
    /// keeps its channel while they go on connecting.
    func testStrangersCannotHoldOrDisplaceThePeerSlot() {
        let p = DriverPair()
        var strangers: [End] = []
        func stranger(_ bytes: [UInt8]) {
            let (mine, theirs) = connection()
            mine.send(bytes)
            p.a.io.backlog.append(theirs)
            strangers.append(mine)
        }
        let hello = ChannelMessage.hello(.init(node: "B", role: "backup", configDigest: p.a.core.configDigest, appliedIndex: 0, epoch: 0))
        for i in 0..<6 { stranger(i % 2 == 0 ? [] : message(hello, version: 1)) }
        p.a.step(p.now)  // the strangers are accepted first
        XCTAssertLessThanOrEqual(p.a.io.pendingCount, p.a.driver.config.maxPendingPeers, "pending connections are bounded")
        p.run()
        XCTAssertEqual(p.a.core.mode, .protected, "\(p.a.io.logs)")
        XCTAssertEqual(p.b.core.mode, .backup)
        // More strangers while protected: v2 hello with a bogus proof, old hellos, silence.
        for round in 0..<5 {
            stranger(message(hello))
            stranger(message(hello, version: 1))
            stranger([])
            var fake = SecureChannel(side: .initiator, keys: ChannelKeys(secret: [UInt8](repeating: 9, count: 32)),
                                     local: PeerIdentity(node: "B", role: "backup"), nonce: [UInt8](repeating: UInt8(round + 1), count: 32))
            stranger(fake.start())
            p.run(3)
        }
        p.run(12, step: 100 * ms)  // past the handshake deadline
        XCTAssertEqual(p.a.core.mode, .protected)
        XCTAssertTrue(p.a.core.isPeerConnected)
        XCTAssertEqual(p.a.io.pendingCount, 0, "every stranger was closed")
        XCTAssertTrue(strangers.allSatisfy { $0.inbound.closed })
        XCTAssertTrue(p.a.io.logged("version 1"), "an old hello is refused with the versions named")
        // The old-version stranger got a version-1 reject it understands.
        XCTAssertNotNil(strangers[1].inbound.bytes.firstRange(of: [0x46, 0x54, 1, 3]), "no version-1 reject")
        // Still protected: output flows after the backup's ack.
        XCTAssertTrue(p.a.io.exits.isEmpty && p.b.io.exits.isEmpty)
    }

    /// A backup waiting for its primary connects to a stranger, which
    /// answers with well-formed welcomes (old and new version) and closes:
    /// the backup must neither join nor take over.
    func testForgedWelcomeDoesNotHijackAWaitingBackup() {
        let b = MemoryNode(.backup, name: "B", secret: testSecret, seed: 2)
        var now: Nanos = 1_000 * ms
        _ = b.driver.start(now: now, b.io)
        for forged in [message(.welcome(epoch: 1, snapshot: false), version: 1),
                       message(.welcome(epoch: 1, snapshot: false)),
                       SecureChannel.frame(SecureChannel.helloType, [1] + [UInt8](repeating: 3, count: 32))
                           + message(.welcome(epoch: 1, snapshot: false))] {
            var far: End? = nil
            b.io.connectHook = { far = $0 }
            now += 300 * ms
            b.step(now)
            guard let f = far else { return XCTFail("the backup did not connect") }
            f.send(forged)
            f.close()
            for _ in 0..<3 { now += 10 * ms; b.step(now) }
            XCTAssertEqual(b.core.mode, .waitingForPeer)
            XCTAssertEqual(b.core.epoch, 0)
        }
        now += 2_000 * ms
        b.step(now)
        XCTAssertTrue(b.io.claims.isEmpty, "the backup claimed an epoch on a forged welcome")
        XCTAssertTrue(b.io.exits.isEmpty)
        XCTAssertFalse(b.core.isLive)
    }

    /// A connection that never completes the handshake is closed at its deadline.
    func testUnfinishedHandshakeIsClosedAtTheDeadline() {
        let p = DriverPair()
        let (mine, theirs) = connection()
        p.a.io.backlog.append(theirs)
        p.a.step(p.now)
        XCTAssertEqual(p.a.io.pendingCount, 1)
        XCTAssertFalse(mine.inbound.closed)
        p.now += p.a.driver.config.handshakeTimeout
        p.a.step(p.now)
        XCTAssertEqual(p.a.io.pendingCount, 0)
        XCTAssertTrue(mine.inbound.closed)
        XCTAssertTrue(p.a.io.logged("did not authenticate within"))
    }

    /// Bytes injected into an authenticated channel (a forged ack to the
    /// primary, a forged handover record to the backup, a replayed record)
    /// never reach the core: the channel closes instead.
    func testForgedAckForgedHandoverAndReplayedRecordsCloseTheChannel() {
        // Forged plaintext ack to the primary.
        let p = DriverPair()
        p.run()
        XCTAssertEqual(p.a.core.mode, .protected)
        let acked = p.a.core.ackedIndex
        p.b.io.channel!.send(message(.ack(index: 1_000)))
        p.a.step(p.now + ms)
        XCTAssertEqual(p.a.core.ackedIndex, acked, "a forged ack released output")
        XCTAssertTrue(p.a.io.logged("closing the log channel"), "\(p.a.io.logs)")

        // A forged record (right header, random body) to the backup: no handover.
        let q = DriverPair()
        q.run()
        var forged = SecureChannel.header(SecureChannel.recordType, 40)
        forged += [UInt8](repeating: 0xEE, count: 40)
        q.a.io.channel!.send(forged)
        q.b.step(q.now + ms)
        XCTAssertTrue(q.b.io.claims.isEmpty, "a forged record made the backup claim")
        XCTAssertTrue(q.b.io.logged("failed authentication (forged, replayed, reordered or corrupted)"), "\(q.b.io.logs)")

        // A replayed record: the primary's last heartbeat, delivered twice.
        let r = DriverPair()
        r.run()
        r.now += 60 * ms
        r.a.step(r.now)  // a heartbeat is due
        let pipe = r.b.io.channel!.inbound
        XCTAssertFalse(pipe.bytes.isEmpty)
        let record = pipe.bytes
        r.b.step(r.now)
        XCTAssertFalse(r.b.io.logged("failed authentication"))
        pipe.bytes = record
        r.b.step(r.now + ms)
        XCTAssertTrue(r.b.io.logged("failed authentication (forged, replayed, reordered or corrupted)"), "\(r.b.io.logs)")
    }
}
