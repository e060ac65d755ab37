import XCTest
@testable import FTReplication
import FTWire

private let secret = [UInt8](repeating: 0x5A, count: 32)
private let otherSecret = [UInt8](repeating: 0xA5, count: 32)

private func nonce(_ n: UInt8) -> [UInt8] { [UInt8](repeating: n, count: SecureChannel.nonceBytes) }

/// Two ends of one connection: I connected (the backup), R accepted (the primary).
private struct Ends {
    var i: SecureChannel
    var r: SecureChannel
    init(iSecret: [UInt8] = secret, rSecret: [UInt8] = secret, iNonce: UInt8 = 1, rNonce: UInt8 = 2) {
        i = SecureChannel(side: .initiator, keys: ChannelKeys(secret: iSecret), local: PeerIdentity(node: "B", role: "backup"), nonce: nonce(iNonce))
        r = SecureChannel(side: .responder, keys: ChannelKeys(secret: rSecret), local: PeerIdentity(node: "A", role: "primary"), nonce: nonce(rNonce))
    }

    /// Runs the handshake; returns the failure if one side refused.
    mutating func handshake() -> ChannelFailure? {
        var toR = i.start(), toI = r.start()
        var plain: [UInt8] = []
        for _ in 0..<4 {
            do {
                if !toR.isEmpty { let b = toR; toR = []; _ = try r.receive(b[...], send: &toI, plain: &plain) }
                if !toI.isEmpty { let b = toI; toI = []; _ = try i.receive(b[...], send: &toR, plain: &plain) }
            } catch { return error as? ChannelFailure }
        }
        XCTAssertTrue(plain.isEmpty)
        return nil
    }
}

private func message(_ m: ChannelMessage) -> [UInt8] {
    var b: [UInt8] = []
    ChannelCodec.encode(m, into: &b)
    return b
}

final class SecureChannelTests: XCTestCase {

    func testHandshakeAuthenticatesBothSidesAndRecordsRoundTrip() throws {
        var e = Ends()
        XCTAssertNil(e.handshake())
        XCTAssertTrue(e.i.isEstablished && e.r.isEstablished)
        XCTAssertEqual(e.i.peer, PeerIdentity(node: "A", role: "primary"))
        XCTAssertEqual(e.r.peer, PeerIdentity(node: "B", role: "backup"))
        var wire: [UInt8] = []
        e.i.seal(message(.ack(index: 7)), into: &wire)
        e.i.seal(message(.heartbeat), into: &wire)
        XCTAssertNil(wire.firstRange(of: message(.ack(index: 7))), "records are encrypted")
        var send: [UInt8] = [], plain: [UInt8] = []
        // Byte by byte, as a stream may deliver them.
        for b in wire { _ = try e.r.receive([b][...], send: &send, plain: &plain) }
        XCTAssertEqual(plain, message(.ack(index: 7)) + message(.heartbeat))
        XCTAssertTrue(send.isEmpty)
    }

    func testKeyScheduleSeparatesKeysAndIsDeterministic() {
        let a = ChannelKeys(secret: secret), b = ChannelKeys(secret: secret), c = ChannelKeys(secret: otherSecret)
        XCTAssertEqual(a.isnKey.0, b.isnKey.0); XCTAssertEqual(a.isnKey.1, b.isnKey.1)
        XCTAssertNotEqual(a.isnKey.0, c.isnKey.0)
        XCTAssertNotEqual(a.auth, a.enc)
        XCTAssertEqual(ChannelKeys.parseSecret("0x" + String(repeating: "ab", count: 16)), [UInt8](repeating: 0xAB, count: 16))
        XCTAssertNil(ChannelKeys.parseSecret(String(repeating: "ab", count: 15)), "under 128 bits")
        XCTAssertNil(ChannelKeys.parseSecret(String(repeating: "zz", count: 16)))
    }

    func testWrongSecretIsRefusedAndTheStrangerLearnsNothing() throws {
        var e = Ends(rSecret: otherSecret)
        var toR = e.i.start(), toI: [UInt8] = [], plain: [UInt8] = []
        let rHello = e.r.start()
        XCTAssertNoThrow(try e.r.receive(toR[...], send: &toI, plain: &plain))
        XCTAssertTrue(toI.isEmpty)
        toR = []
        XCTAssertNoThrow(try e.i.receive(rHello[...], send: &toR, plain: &plain))
        // R answers the wrong proof with a refusal only: no proof, no MAC of its own.
        var failure: ChannelFailure? = nil
        do { _ = try e.r.receive(toR[...], send: &toI, plain: &plain) } catch { failure = error as? ChannelFailure }
        let f = try XCTUnwrap(failure)
        XCTAssertTrue(f.reason.contains("failed authentication"), f.reason)
        XCTAssertTrue(f.reason.contains("secret"), f.reason)
        XCTAssertEqual(f.notice[3], SecureChannel.refusalType)
        // The initiator reads the refusal as a clear reason.
        var told: ChannelFailure? = nil
        do { _ = try e.i.receive(f.notice[...], send: &toR, plain: &plain) } catch { told = error as? ChannelFailure }
        XCTAssertTrue(told?.reason.contains("do not share the same secret") ?? false, "\(String(describing: told))")
        XCTAssertTrue(toI.isEmpty)
        XCTAssertFalse(e.r.isEstablished)
        // What R sent a stranger before it proved anything: its hello, which is a header, a side byte and a fresh nonce.
        XCTAssertEqual(rHello.count, ChannelCodec.headerSize + 1 + SecureChannel.nonceBytes)
    }

    func testInitiatorRefusesAResponderWithoutTheSecret() {
        var e = Ends(iSecret: secret, rSecret: otherSecret)
        // The stranger plays R, but cannot produce R's proof: it replays I's proof.
        var toR = e.i.start(), toI = e.r.start(), plain: [UInt8] = []
        XCTAssertNoThrow(try e.r.receive(toR[...], send: &toI, plain: &plain))
        toR = []
        XCTAssertNoThrow(try e.i.receive(toI[...], send: &toR, plain: &plain))
        // I's proof frame sent back as if it were R's: the labels differ.
        XCTAssertThrowsError(try e.i.receive(toR[...], send: &toI, plain: &plain)) { err in
            XCTAssertTrue((err as! ChannelFailure).reason.contains("failed authentication"))
        }
        XCTAssertFalse(e.i.isEstablished)
    }

    func testReplayedReorderedForgedAndCrossConnectionRecordsAreRejected() throws {
        var e = Ends()
        XCTAssertNil(e.handshake())
        var r1: [UInt8] = [], r2: [UInt8] = []
        e.r.seal(message(.ack(index: 1)), into: &r1)
        e.r.seal(message(.ack(index: 2)), into: &r2)
        var send: [UInt8] = [], plain: [UInt8] = []

        var replay = e
        _ = try replay.i.receive(r1[...], send: &send, plain: &plain)
        XCTAssertThrowsError(try replay.i.receive(r1[...], send: &send, plain: &plain), "replayed record")

        var reorder = e
        XCTAssertThrowsError(try reorder.i.receive(r2[...], send: &send, plain: &plain), "reordered record")

        var forged = e
        var bad = r1; bad[bad.count - 20] ^= 1
        XCTAssertThrowsError(try forged.i.receive(bad[...], send: &send, plain: &plain), "flipped ciphertext bit")

        // A record of another connection with the same secret: other nonces, other keys.
        var other = Ends(iNonce: 3, rNonce: 4)
        XCTAssertNil(other.handshake())
        var cross = e
        var r3: [UInt8] = []
        other.r.seal(message(.ack(index: 1)), into: &r3)
        XCTAssertThrowsError(try cross.i.receive(r3[...], send: &send, plain: &plain), "record of another connection")

        // Neither direction's records open in the other (per-direction keys).
        var mirror = e
        var fromI: [UInt8] = []
        mirror.i.seal(message(.ack(index: 1)), into: &fromI)
        XCTAssertThrowsError(try mirror.i.receive(fromI[...], send: &send, plain: &plain), "reflected record")
    }

    func testForgedCoreMessagesBeforeOrInsteadOfTheHandshakeAreRefused() {
        var e = Ends()
        var send: [UInt8] = [], plain: [UInt8] = []
        _ = e.i.start()
        // A stranger answers the backup's hello with a well-formed welcome of this version.
        XCTAssertThrowsError(try e.i.receive(message(.welcome(epoch: 9, snapshot: false))[...], send: &send, plain: &plain)) { err in
            XCTAssertTrue((err as! ChannelFailure).reason.contains("unexpected handshake message"))
        }
        XCTAssertTrue(plain.isEmpty)
        // An old node's welcome (version 1).
        var old = message(.welcome(epoch: 9, snapshot: false)); old[2] = 1
        var e2 = Ends()
        _ = e2.i.start()
        XCTAssertThrowsError(try e2.i.receive(old[...], send: &send, plain: &plain)) { err in
            XCTAssertTrue((err as! ChannelFailure).reason.contains("version 1"))
        }
        XCTAssertTrue(plain.isEmpty)
    }

    func testOldVersionPeerGetsARejectItUnderstands() throws {
        var e = Ends()
        _ = e.r.start()
        var hello = message(.hello(.init(node: "old", role: "backup", configDigest: 1, appliedIndex: 0, epoch: 0)))
        hello[2] = 1
        var send: [UInt8] = [], plain: [UInt8] = []
        XCTAssertThrowsError(try e.r.receive(hello[...], send: &send, plain: &plain)) { err in
            let f = err as! ChannelFailure
            XCTAssertTrue(f.reason.contains("version 1"), f.reason)
            // Version 1 framing, type 3 (reject), whose reason names both versions.
            XCTAssertEqual(Array(f.notice[0..<4]), [0x46, 0x54, 1, 3])
            var r = ByteReader(f.notice, offset: 8)
            let why = try! r.string()
            XCTAssertTrue(why.contains("version \(ChannelCodec.version)") && why.contains("version 1"), why)
        }
    }

    func testTruncatedHandshakeNeverEstablishesAndOversizedFramesAreRefused() throws {
        var e = Ends()
        var toR = e.i.start(), toI = e.r.start(), plain: [UInt8] = []
        // Half a hello: nothing happens yet.
        XCTAssertFalse(try e.r.receive(toR[0..<10], send: &toI, plain: &plain))
        XCTAssertFalse(try e.r.receive(toR[10...], send: &toI, plain: &plain))
        XCTAssertFalse(e.r.isEstablished)
        toR = []
        XCTAssertFalse(try e.i.receive(toI[...], send: &toR, plain: &plain))
        // The proof cut short: R waits (the driver's deadline closes it), never established.
        XCTAssertFalse(try e.r.receive(toR.dropLast(), send: &toI, plain: &plain))
        XCTAssertFalse(e.r.isEstablished)
        // A handshake frame that declares 1 MiB is refused at once.
        var big = Ends()
        _ = big.r.start()
        var huge = SecureChannel.header(SecureChannel.helloType, 1 << 20)
        huge += [0]
        XCTAssertThrowsError(try big.r.receive(huge[...], send: &toI, plain: &plain))
        // A record before the handshake.
        var early = Ends()
        _ = early.r.start()
        XCTAssertThrowsError(try early.r.receive(SecureChannel.header(SecureChannel.recordType, 16)[...] + [UInt8](repeating: 0, count: 16),
                                                 send: &toI, plain: &plain))
    }

    func testEchoedNonceIsRefused() {
        var e = Ends(iNonce: 7, rNonce: 7)
        XCTAssertNotNil(e.handshake())
        XCTAssertFalse(e.r.isEstablished)
    }
}
