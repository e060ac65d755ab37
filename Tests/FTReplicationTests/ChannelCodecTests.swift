import XCTest
@testable import FTReplication
import FTStack
import FTWire

/// One message of every type, with edge values (empty and non-ASCII
/// strings, empty and full-width integers, empty payloads).
private let everyMessage: [ChannelMessage] = [
    .hello(.init(node: "node-a", role: "backup", configDigest: 0xDEAD_BEEF_0123_4567, appliedIndex: 42, epoch: 7,
                 arbiter: "file-1f2e3d", heartbeat: 50_000_000, failoverTimeout: .max)),
    .hello(.init(node: "", role: "nœud", configDigest: 0, appliedIndex: .max, epoch: 0)),
    .welcome(epoch: 8, snapshot: true),
    .welcome(epoch: 0, snapshot: false),
    .reject(reason: "config digest differs"),
    .reject(reason: ""),
    .entries([]),
    .entries([
        LogEntry(index: 1, epoch: 1, time: 5, kind: .frame, payload: [1, 2, 3]),
        LogEntry(index: 2, epoch: 1, time: 6, kind: .tick),
        LogEntry(index: 3, epoch: 2, time: 7, kind: .goLive, payload: [0]),
        LogEntry(index: 4, epoch: 2, time: .max, kind: .handover),
        LogEntry(index: 5, epoch: 2, time: .max, kind: .offloadFrame, payload: [4, 5, 6]),
    ]),
    .ack(index: 0),
    .ack(index: .max),
    .heartbeat,
    .digest(index: 9, value: 0x0102_0304_0506_0708),
    .snapshotBegin(index: 10, epoch: 3, totalBytes: 1 << 30, digest: 0xFFFF_0000_FFFF_0000),
    .snapshotChunk(offset: 65536, data: Array(0...255), checksum: 77),
    .snapshotChunk(offset: 0, data: [], checksum: 0),
    .snapshotEnd,
    .forward(frame: [UInt8](repeating: 0xAB, count: 60)),
    .forward(frame: []),
    .diverged(index: 12345),
    .health(healthy: false, reason: "uplink upA down"),
    .health(healthy: true, reason: ""),
]

private func encode(_ m: ChannelMessage) -> [UInt8] {
    var b: [UInt8] = []
    ChannelCodec.encode(m, into: &b)
    return b
}

private func decodeAll(_ bytes: [UInt8]) throws -> [ChannelMessage] {
    var d = ChannelDecoder()
    d.feed(bytes)
    var out: [ChannelMessage] = []
    while let m = try d.next() { out.append(m) }
    return out
}

final class ChannelCodecTests: XCTestCase {

    /// Golden hash of `everyMessage` encoded back to back, per channel
    /// protocol version. If it fails, the wire format changed: bump
    /// `ChannelCodec.version` (a node of the other version is then refused at
    /// once) and append (newVersion, hash). Log entries travel inside
    /// `entries` messages, so their encoding is covered here too.
    func testEncodingMatchesGoldenForItsVersion() {
        let golden: [(version: UInt8, hash: UInt64)] = [
            (1, 0xdf7d_d3d0_6e9e_bd16),
            // Authenticated and encrypted channel (SecureChannel); `diverged`; `health`;
            // the hello's arbiter identity and timing (version 2 was not released in between).
            (2, 0x19f6_3a59_7102_534c),
            (3, 0x54c1_b8ce_9069_ca60),  // offload-frame entries (TAP offloads, issue 14)
        ]
        let bytes = everyMessage.flatMap(encode)
        let h = SipHash24.hash(k0: 5, k1: 6, bytes)
        XCTAssertEqual(ChannelCodec.version, golden.last!.version, "ChannelCodec.version changed: append its golden line")
        XCTAssertEqual(h, golden.last!.hash, """
            The log channel encoding changed (hash 0x\(String(h, radix: 16))) but ChannelCodec.version is still \
            \(ChannelCodec.version). Bump ChannelCodec.version, then append (newVersion, 0x\(String(h, radix: 16))).
            """)
    }

    func testEveryMessageTypeRoundTrips() throws {
        let types = Set(everyMessage.map(\.type))
        XCTAssertEqual(types, Set(1...UInt8(ChannelMessage.typeCount)), "the set covers every message type")
        for m in everyMessage {
            let b = encode(m)
            XCTAssertEqual(b.readBE16(0), ChannelCodec.magic)
            XCTAssertEqual(b[2], ChannelCodec.version)
            XCTAssertEqual(b[3], m.type)
            XCTAssertEqual(Int(b.readBE32(4)), b.count - 8, "length field")
            XCTAssertEqual(try decodeAll(b), [m])
        }
        // Back to back, and byte by byte as a stream would deliver them.
        let all = everyMessage.flatMap(encode)
        XCTAssertEqual(try decodeAll(all), everyMessage)
        var d = ChannelDecoder()
        var out: [ChannelMessage] = []
        for byte in all {
            d.feed([byte])
            while let m = try d.next() { out.append(m) }
        }
        XCTAssertEqual(out, everyMessage)
        XCTAssertEqual(d.buffered, 0)
    }

    func testLogEntryRoundTripsAndSize() throws {
        for case .entries(let es) in everyMessage {
            for e in es {
                var w = ByteWriter()
                e.encode(into: &w)
                XCTAssertEqual(w.bytes.count, e.encodedSize)
                var r = ByteReader(w.bytes)
                XCTAssertEqual(try LogEntry.decode(&r), e)
                XCTAssertEqual(r.remaining, 0)
            }
        }
        var w = ByteWriter()
        LogEntry(index: 1, epoch: 1, time: 1, kind: .tick).encode(into: &w)
        var bad = w.bytes
        bad[24] = 9  // kind
        var r = ByteReader(bad)
        XCTAssertThrowsError(try LogEntry.decode(&r)) { XCTAssertTrue("\($0)".contains("entry kind 9"), "\($0)") }
    }

    /// Every message cut short of its declared payload waits for more bytes;
    /// every payload with a byte missing or one too many is malformed.
    func testTruncatedAndPaddedPayloadsAreRejected() throws {
        for m in everyMessage {
            let b = encode(m)
            for n in 0..<b.count { XCTAssertEqual(try decodeAll(Array(b[0..<n])), [], "\(m) cut to \(n)") }
            let len = b.count - 8
            if len > 0 {
                var short = Array(b.dropLast())
                short.writeBE32(UInt32(len - 1), at: 4)
                XCTAssertThrowsError(try decodeAll(short), "\(m) one byte short") { e in
                    guard case .malformed = e as? ChannelCodec.ProtocolError else { return XCTFail("\(e)") }
                }
            }
            var long = b + [0]
            long.writeBE32(UInt32(len + 1), at: 4)
            XCTAssertThrowsError(try decodeAll(long), "\(m) one byte long") { e in
                guard case .malformed = e as? ChannelCodec.ProtocolError else { return XCTFail("\(e)") }
            }
        }
    }

    func testBadHeadersAreRefusedClearly() {
        var b = encode(.heartbeat)
        b[0] = 0x47
        XCTAssertThrowsError(try decodeAll(b)) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .badMagic(0x4754)) }
        b = encode(.heartbeat); b[2] = ChannelCodec.version - 1
        XCTAssertThrowsError(try decodeAll(b)) { e in
            XCTAssertEqual(e as? ChannelCodec.ProtocolError, .badVersion(ChannelCodec.version - 1))
            XCTAssertTrue("\(e)".contains("this ftap speaks version \(ChannelCodec.version)"), "\(e)")
        }
        b = encode(.heartbeat); b[3] = UInt8(ChannelMessage.typeCount + 1)
        XCTAssertThrowsError(try decodeAll(b)) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .badType(UInt8(ChannelMessage.typeCount + 1))) }
        b = encode(.heartbeat); b.writeBE32(UInt32(ChannelCodec.maxPayload + 1), at: 4)
        XCTAssertThrowsError(try decodeAll(b)) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .tooLarge(ChannelCodec.maxPayload + 1)) }
        // An entry count larger than the payload could hold.
        var w = ByteWriter(); w.u32(1000)
        var e: [UInt8] = []
        e.appendBE16(ChannelCodec.magic); e.append(ChannelCodec.version); e.append(4)
        e.appendBE32(UInt32(w.bytes.count)); e += w.bytes
        XCTAssertThrowsError(try decodeAll(e)) { XCTAssertEqual($0 as? ChannelCodec.ProtocolError, .malformed("entry count 1000")) }
        // A bool that is neither 0 nor 1.
        b = encode(.welcome(epoch: 1, snapshot: true)); b[b.count - 1] = 2
        XCTAssertThrowsError(try decodeAll(b)) { e in
            guard case .malformed(let s) = e as? ChannelCodec.ProtocolError else { return XCTFail("\(e)") }
            XCTAssertTrue(s.contains("bool"), s)
        }
    }
}
