import XCTest
@testable import FTReplication
import FTServices
import FTStack
import FTWire
// Re-exported so that every file of this target sees the shared appliance
// constants and frame builders (RecordingTests uses them without importing).
import FTTestSupport

final class ReplicationTests: XCTestCase {

    func testChannelCodecRoundTripsEveryMessage() throws {
        let msgs: [ChannelMessage] = [
            .hello(.init(node: "b", role: "backup", configDigest: 7, appliedIndex: 0, epoch: 0)),
            .welcome(epoch: 3, snapshot: true), .reject(reason: "no"), .ack(index: 99), .heartbeat,
            .digest(index: 5, value: 0xdead_beef),
            .entries([LogEntry(index: 1, epoch: 1, time: 5, kind: .frame, payload: [1, 2, 3]),
                      LogEntry(index: 2, epoch: 1, time: 6, kind: .tick)]),
        ]
        var bytes: [UInt8] = []
        for m in msgs { ChannelCodec.encode(m, into: &bytes) }
        var d = ChannelDecoder()
        // Feed one byte at a time: messages appear only when complete.
        var got: [ChannelMessage] = []
        for b in bytes {
            d.feed([b])
            while let m = try d.next() { got.append(m) }
        }
        XCTAssertEqual(got, msgs)
    }

    func testChannelDecoderRejectsForeignAndGarbage() {
        var d = ChannelDecoder()
        d.feed(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        XCTAssertThrowsError(try d.next()) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .badMagic(0x4745)) }
        var v = ChannelDecoder()
        v.feed([0x46, 0x54, 9, 6, 0, 0, 0, 0])
        XCTAssertThrowsError(try v.next()) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .badVersion(9)) }
        var big = ChannelDecoder()
        big.feed([0x46, 0x54, ChannelCodec.version, 4, 0x7f, 0xff, 0xff, 0xff])
        XCTAssertThrowsError(try big.next()) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .tooLarge(0x7fff_ffff)) }
        var bad = ChannelDecoder()
        bad.feed([0x46, 0x54, ChannelCodec.version, 5, 0, 0, 0, 3, 1, 2, 3])  // ack with 3 bytes instead of 8
        XCTAssertThrowsError(try bad.next())
    }

    func testPrimaryHoldsOutputUntilBackupAcks() {
        let p = Pair()
        p.clientSends(tcp(1000, 0, [.syn]))
        XCTAssertTrue(p.emittedByPrimary.isEmpty, "SYN-ACK must wait for the backup's ack")
        XCTAssertFalse(p.toBackup.isEmpty, "the entry is on its way to the backup")
        p.deliver()
        XCTAssertEqual(p.emittedByPrimary.count, 1)
        let (h, _) = parseTCP(p.emittedByPrimary[0].frame)!
        XCTAssertEqual(h.flags, [.syn, .ack])
        XCTAssertEqual(p.emittedByPrimary[0].index, 1)
        XCTAssertTrue(p.emittedByBackup.isEmpty, "a backup never emits")
        XCTAssertEqual(p.primary.replica.digest, p.backup.replica.digest)
    }

    func testTakeoverReplaysStateAndRetransmitsWithSameSequenceNumbers() {
        let p = Pair()
        let iss = p.handshake()
        XCTAssertEqual(parseTCP(p.emittedByPrimary[0].frame)?.0.seq, iss, "the SYN-ACK is A's first frame")
        p.clientSends(tcp(1001, iss &+ 1, [.ack, .psh], "INCR\n"))
        // The backup got the entry; the primary dies before the ack arrives.
        let bytes = p.toBackup; p.toBackup = []
        var a: [Action] = []
        p.backup.peerBytes(bytes[...], now: p.now, &a)
        XCTAssertEqual(p.backup.unappliedEntries, 1, "held, acknowledged on receipt, applied next")
        XCTAssertNotNil(p.backup.takeReceiptAck(now: p.now), "the acknowledgement (lost with the primary)")
        p.backup.applyReceived(now: p.now, &a); p.run(a, from: "B")
        XCTAssertTrue(p.emittedByPrimary.count == 1, "reply still held on the primary")
        XCTAssertEqual(p.primary.replica.digest, p.backup.replica.digest)
        p.now += 10 * ms
        p.call("B") { $0.peerDown(reason: "test", now: p.now, &$1) }
        XCTAssertFalse(p.claims.contains { $0.node == "B" }, "the backup waits out the primary's lease")
        p.now += 500 * ms
        p.tick("B")
        XCTAssertEqual(p.claims.last?.node, "B"); XCTAssertEqual(p.claims.last?.epoch, 2)
        XCTAssertTrue(p.emittedByBackup.isEmpty, "nothing before the arbiter answers")
        p.answerClaim(of: "B")
        XCTAssertEqual(p.backup.mode, .alone)
        XCTAssertEqual(p.backup.epoch, 2)
        XCTAssertEqual(p.garps.filter { $0 == "B" }.count, 1, "first GARP at once, the rest on later ticks")
        let replies = p.emittedByBackup.compactMap { parseTCP($0.frame) }.filter { !$0.1.isEmpty }
        XCTAssertEqual(replies.count, 1)
        XCTAssertEqual(replies[0].1, Array("1\n".utf8))
        XCTAssertEqual(replies[0].0.seq, iss &+ 1, "same sequence number the primary would have used")
        // Later GARPs follow the interval.
        p.now += 100 * ms
        p.tick("B")
        XCTAssertEqual(p.garps.filter { $0 == "B" }.count, 2)
    }

    func testLosingTheEpochExitsWithoutEmitting() {
        let p = Pair()
        p.clientSends(tcp(1000, 0, [.syn]))
        p.now += 600 * ms
        p.tick("A")  // backup silent beyond the timeout
        XCTAssertEqual(p.claims.last?.node, "A"); XCTAssertEqual(p.claims.last?.epoch, 2)
        p.answerClaim(of: "A", won: false)  // someone else took epoch 2
        XCTAssertEqual(p.primary.mode, .stopped)
        XCTAssertEqual(p.exits.last?.code, 2)
        XCTAssertTrue(p.emittedByPrimary.isEmpty, "held SYN-ACK must never leave a node that lost the epoch")
    }

    func testPrimaryAloneReleasesHeldOutputAfterWinningTheEpoch() {
        let p = Pair()
        p.clientSends(tcp(1000, 0, [.syn]))
        p.now += 600 * ms
        p.tick("A")
        XCTAssertEqual(p.claims.last?.node, "A"); XCTAssertEqual(p.claims.last?.epoch, 2)
        p.answerClaim(of: "A")
        XCTAssertEqual(p.primary.mode, .alone)
        XCTAssertEqual(p.emittedByPrimary.count, 1)
        // A backup arriving now joins by state transfer (JoinTests).
    }

    func testBackpressureStopsTapInputWhenBackupLags() {
        let p = Pair(maxLag: 3)
        XCTAssertTrue(p.primary.wantsTapInput)
        for i in 0..<3 { p.clientSends(tcp(1000 + UInt32(i), 0, [.syn], sport: 41000 + UInt16(i))) }
        XCTAssertFalse(p.primary.wantsTapInput, "3 unacked entries reach the bound")
        p.deliver()
        XCTAssertTrue(p.primary.wantsTapInput)
    }

    func testDivergedBackupRefusesToGoLive() {
        let p = Pair()
        p.clientSends(tcp(1000, 0, [.syn])); p.deliver()
        var bytes: [UInt8] = []
        ChannelCodec.encode(.digest(index: p.backup.replica.appliedIndex, value: p.backup.replica.digest ^ 1), into: &bytes)
        var a: [Action] = []
        p.backup.peerBytes(bytes[...], now: p.now, &a); p.run(a, from: "B")
        XCTAssertTrue(p.backup.diverged)
        p.call("B") { $0.peerDown(reason: "test", now: p.now, &$1) }
        XCTAssertEqual(p.exits.last?.code, 4)
        XCTAssertTrue(p.claims.allSatisfy { $0.node != "B" }, "a diverged backup must not claim an epoch")
    }

    func testMatchingDigestIsAccepted() {
        let p = Pair()
        p.clientSends(tcp(1000, 0, [.syn])); p.deliver()
        // Time passes with both sides alive (heartbeats keep the failure detector quiet).
        for _ in 0..<12 { p.advance(by: 100 * ms) }
        XCTAssertEqual(p.primary.mode, .protected)
        XCTAssertGreaterThanOrEqual(p.backup.digestChecks, 1, "the SYN-ACK retransmit tick may add a second check")
        XCTAssertFalse(p.backup.diverged)
    }

    func testFaultHookCrashesRightAfterReleasingTheReply() {
        let p = Pair(fault: FaultPlan("after-release:1"))
        let iss = p.handshake()
        XCTAssertTrue(p.crashes.isEmpty)
        p.clientSends(tcp(1001, iss &+ 1, [.ack, .psh], "INCR\n")); p.deliver()
        XCTAssertEqual(p.crashes.count, 1)
        XCTAssertEqual(parseTCP(p.emittedByPrimary.last!.frame)!.1, Array("1\n".utf8), "the reply left before the crash")
    }

    /// A backup whose appliance differs from the primary's in any way the
    /// config digest covers is refused at its hello: the primary sends the
    /// reason and closes the channel, the backup stops with exit code 3, and
    /// neither side emits or claims anything.
    func testConfigMismatchIsRefused() {
        var otherKey = applianceConfig(); otherKey.isnKey = (9, 9)
        var otherLimits = applianceConfig(); otherLimits.maxConnections += 1
        var otherMAC = applianceConfig(); otherMAC.mac = MACAddress("02:00:00:00:00:11")!
        let variants: [(String, Stack)] = [
            ("ISN key", makeStack(otherKey)),
            ("stack limits", makeStack(otherLimits)),
            ("MAC", makeStack(otherMAC)),
            ("services", makeStack(services: ["counter:7000"])),
        ]
        for (what, stack) in variants {
            let p = Pair(.started, backupStack: stack)
            XCTAssertNotEqual(p.primary.configDigest, p.backup.configDigest, what)
            p.connect()  // B says hello; A compares the digests
            XCTAssertEqual(p.closes.map(\.node), ["A"], "\(what): the primary closes the channel")
            XCTAssertEqual(p.closes.first?.reason, "refused", what)
            XCTAssertFalse(p.primary.isPeerConnected, what)
            XCTAssertEqual(p.primary.mode, .waitingForPeer, "\(what): the primary keeps waiting for a matching backup")
            XCTAssertTrue(p.exits.isEmpty, "\(what): nothing stops before the backup reads the rejection")
            p.deliverToBackup()
            XCTAssertEqual(p.backup.mode, .stopped, what)
            XCTAssertEqual(p.exits.count, 1, what)
            XCTAssertEqual(p.exits.first?.node, "B", what)
            XCTAssertEqual(p.exits.first?.code, 3, what)
            let reason = p.exits.first?.reason ?? ""
            XCTAssertTrue(reason.hasPrefix("primary refused this backup: appliance configuration differs"),
                          "\(what): \(reason)")
            XCTAssertTrue(p.toPrimary.isEmpty, "\(what): the refused backup answers nothing")
            XCTAssertEqual(p.claims.map(\.node), ["A"], "\(what): only A's claim of epoch 1")
            XCTAssertTrue(p.emitted["A"]!.isEmpty && p.emitted["B"]!.isEmpty, "\(what): no GARP, no frame")
        }
    }

    func testLogClockStaysMonotonicAcrossTakeover() {
        var c = LogClock()
        c.resume(lastLogged: 5_000, localNow: 1_000)
        XCTAssertEqual(c.stamp(localNow: 1_000), 5_000)
        XCTAssertEqual(c.stamp(localNow: 1_500), 5_500)
        XCTAssertEqual(c.toLocal(6_000), 2_000)
    }
}
