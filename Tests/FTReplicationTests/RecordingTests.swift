import XCTest
@testable import FTReplication
import FTServices
import FTStack
import FTTestSupport
import FTWire

final class RecordingTests: XCTestCase {
    /// Builds a recording of a short session the way the daemon's Recorder does.
    func record(flipByteInEntry flip: UInt64? = nil, dropEntry drop: UInt64? = nil) -> [UInt8] {
        var c = StackConfig(mac: applianceMAC, interface: applianceIP)
        c.isnKey = (1, 2)
        let services = [ServiceSpec(kind: "counter", port: 7000)]
        let replica = Replica(stack: try! Appliance.make(config: c, services: services))
        var file = RecordFormat.header(config: RecordedConfig.text(stack: c, services: services, node: "A", role: .solo))
        var t: Nanos = 1_000 * ms
        var index: UInt64 = 0
        var serverISN: UInt32 = 0
        func apply(_ kind: EntryKind, _ frame: [UInt8] = []) -> [[UInt8]] {
            index += 1; t += ms
            let e = LogEntry(index: index, epoch: 1, time: t, kind: kind, payload: frame)
            var out = Frames()
            try! replica.apply(e, out: &out)
            var recorded = e
            if flip == index { recorded.payload[recorded.payload.count - 2] ^= 0x01 }
            if drop != index {  // as the capture writer drops what it cannot keep up with
                file += RecordFormat.entry(recorded)
                for o in out { file += RecordFormat.output(o, of: e) }
            }
            return out.frames
        }
        let out = apply(.frame, tcp(1000, 0, [.syn]))
        serverISN = parseTCP(out[0])!.0.seq
        _ = apply(.frame, tcp(1001, serverISN &+ 1, [.ack]))
        _ = apply(.frame, tcp(1001, serverISN &+ 1, [.ack, .psh], "INCR\n"))
        _ = apply(.frame, tcp(1006, serverISN &+ 3, [.ack, .psh], "GET\n"))
        _ = apply(.tick)
        _ = apply(.goLive)
        file += RecordFormat.checkpoint(index: index, epoch: 1, time: t, digest: replica.digest)
        return file
    }

    func testRecordingRoundTripsAndReplaysIdentically() throws {
        let rec = try RecordFormat.read(record())
        XCTAssertEqual(rec.config["mac"], "02:00:00:00:00:10")
        let entries = rec.items.filter { if case .entry = $0 { return true }; return false }
        XCTAssertEqual(entries.count, 6)
        let s = try Replayer.replay(rec)
        XCTAssertNil(s.mismatch, s.mismatch?.what ?? "")
        XCTAssertEqual(s.entries, 6)
        XCTAssertEqual(s.checkpoints, 1)
        XCTAssertGreaterThanOrEqual(s.outputs, 4)
    }

    func testFlippedByteInAnInboundFrameFailsReplayAtThatEntry() throws {
        let s = try Replayer.replay(try RecordFormat.read(record(flipByteInEntry: 3)))
        XCTAssertEqual(s.mismatch?.index, 3)
    }

    func testAHoleInTheRecordingIsNamedAsSuchNotAsADivergence() throws {
        let s = try Replayer.replay(try RecordFormat.read(record(dropEntry: 3)))
        XCTAssertEqual(s.mismatch?.index, 4)
        XCTAssertTrue(s.mismatch?.what.contains("lacks entries 3..3") == true, s.mismatch?.what ?? "no mismatch")
        XCTAssertEqual(s.entries, 2)
    }

    func testTruncatedFileNamesTheOffset() {
        let full = record()
        let cut = Array(full.prefix(full.count - 7))
        XCTAssertThrowsError(try RecordFormat.read(cut)) { e in
            guard let r = e as? RecordFormat.ReadError else { return XCTFail("\(e)") }
            XCTAssertTrue(r.message.contains("truncated"), r.message)
            XCTAssertGreaterThan(r.offset, 0)
        }
        XCTAssertThrowsError(try RecordFormat.read(Array(full.prefix(5))))
        XCTAssertThrowsError(try RecordFormat.read(Array("not a capture at all".utf8)))
    }

    func testCorruptedBlockLengthIsRejected() {
        var b = record()
        b[b.count - 1] ^= 0xFF  // trailer length of the last block
        XCTAssertThrowsError(try RecordFormat.read(b)) { e in
            XCTAssertTrue("\(e)".contains("offset"), "\(e)")
        }
    }

    func testOtherFormatVersionIsRefused() throws {
        let needle = Array("ftap-record \(RecordFormat.version)".utf8)
        let full = record()
        let i = try XCTUnwrap((0...(full.count - needle.count)).first { Array(full[$0..<($0 + needle.count)]) == needle })
        for other in ["1", "2", "4"] {  // 1: before the configuration was the stack's own encoding; 2: before offload frames
            var b = full
            b[i + needle.count - 1] = UInt8(ascii: other.unicodeScalars.first!)
            XCTAssertThrowsError(try RecordFormat.read(b)) { e in
                XCTAssertTrue("\(e)".contains("version \(other); this ftap reads version \(RecordFormat.version)"), "\(e)")
            }
        }
    }

    /// Every StackConfig field set away from its default comes back from a recording.
    func testEveryStackConfigFieldSurvivesARecording() throws {
        var c = StackConfig(mac: MACAddress("02:aa:bb:cc:dd:ee")!, interface: IPv4Interface("192.168.7.9/20")!)
        c.mtu = 9000; c.isnKey = (0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210)
        c.maxConnections = 17; c.synBacklog = 3; c.sendBufferBytes = 12_345; c.receiveBufferBytes = 54_321
        c.windowScale = 3; c.maxOutOfOrderSegments = 9; c.rtoInitial = 2 * ms; c.rtoMin = 1 * ms; c.rtoMax = 9 * ms
        c.maxRetransmits = 4; c.synAckRetries = 2; c.msl = 5 * ms; c.finWait2Timeout = 6 * ms; c.ttl = 33
        XCTAssertNotEqual(c, StackConfig(mac: c.mac, interface: c.interface), "every field differs from its default")
        let services = [ServiceSpec(kind: "echo", port: 7), ServiceSpec(kind: "udp-counter", port: 7001)]
        let file = RecordFormat.header(config: RecordedConfig.text(stack: c, services: services, node: "B", role: .solo))
        let rec = try RecordFormat.read(file)
        let (back, backServices) = try RecordedConfig.parse(rec.config)
        XCTAssertEqual(back, c)
        XCTAssertEqual(backServices, services)
        // The readable pairs are there for people.
        XCTAssertEqual(rec.config["mtu"], "9000")
        XCTAssertEqual(rec.config["ttl"], "33")
        XCTAssertEqual(rec.config["isn-key"], "0123456789abcdeffedcba9876543210")
    }

    func testBadStackConfigBlocksAreRefusedClearly() throws {
        var good = try RecordFormat.read(record()).config
        _ = try RecordedConfig.parse(good)
        let stack = good["stack"]!
        let cases: [(String?, String)] = [
            (nil, "lacks stack="),
            ("4:" + stack.dropFirst(2), "encoding version 4; this ftap reads version 3"),
            ("x" + stack, "bad stack="),
            (stack + "0", "not lowercase hex"),
            (String(stack.dropLast(2)), "does not decode"),
            (stack + "00", "1 trailing bytes"),
        ]
        for (value, message) in cases {
            good["stack"] = value
            XCTAssertThrowsError(try RecordedConfig.parse(good)) { e in
                XCTAssertTrue("\(e)".contains(message), "\(value ?? "nil"): \(e)")
            }
        }
    }

    /// The configuration block's bytes are pinned to the recording format and
    /// the stack configuration encoding versions. If this fails, bump
    /// `RecordFormat.version` (and `StackConfig.encodingVersion` if its layout
    /// changed) and append the new line.
    func testConfigBlockMatchesGoldenForItsVersions() {
        let golden: [(record: Int, stackConfig: UInt8, hash: UInt64)] = [
            (2, 1, 0xff46_8035_fbe4_2952),
            (2, 2, 0x37fd_f605_dccc_e88c),  // TCP resource limits, minimum path MTU (issue 13)
            (3, 3, 0x7b1a_3cbc_705a_4724),  // offload-frame entries, 64 KiB packets, TSO limit (issue 14)
        ]
        var c = StackConfig(mac: applianceMAC, interface: applianceIP)
        c.isnKey = (1, 2)
        let text = RecordedConfig.text(stack: c, services: [ServiceSpec(kind: "counter", port: 7000)], node: "A", role: .solo)
        let h = SipHash24.hash(k0: 3, k1: 4, RecordFormat.header(config: text))
        let current = golden.last!
        XCTAssertEqual(RecordFormat.version, current.record, "RecordFormat.version changed: append its golden line")
        XCTAssertEqual(StackConfig.encodingVersion, current.stackConfig, "StackConfig.encodingVersion changed: append its golden line")
        XCTAssertEqual(h, current.hash, """
            The recording header/configuration bytes changed (hash 0x\(String(h, radix: 16))) under ftap-record \
            \(RecordFormat.version) / stack config encoding \(StackConfig.encodingVersion). Bump RecordFormat.version \
            (and StackConfig.encodingVersion if StackConfig's schema changed), then append the new line with this hash.
            """)
    }
}
