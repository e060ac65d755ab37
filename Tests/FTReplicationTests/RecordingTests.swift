import XCTest
@testable import FTReplication
import FTServices
import FTStack
import FTWire

final class RecordingTests: XCTestCase {
    /// Builds a recording of a short session the way the daemon's Recorder does.
    func record(flipByteInEntry flip: UInt64? = nil) -> [UInt8] {
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
            var out: [[UInt8]] = []
            try! replica.apply(e, out: &out)
            var recorded = e
            if flip == index { recorded.payload[recorded.payload.count - 2] ^= 0x01 }
            file += RecordFormat.entry(recorded)
            for o in out { file += RecordFormat.output(o, of: e) }
            return out
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

    func testOtherFormatVersionIsRefused() {
        var b = record()
        let needle = Array("ftap-record 1".utf8)
        let i = (0...(b.count - needle.count)).first { Array(b[$0..<($0 + needle.count)]) == needle }!
        b[i + needle.count - 1] = UInt8(ascii: "2")
        XCTAssertThrowsError(try RecordFormat.read(b)) { e in
            XCTAssertTrue("\(e)".contains("version 2"), "\(e)")
        }
    }
}
