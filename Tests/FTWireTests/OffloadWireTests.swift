import XCTest
@testable import FTWire

final class OffloadWireTests: XCTestCase {
    /// RFC 1071 by the book: 16-bit big-endian words, end-around carry.
    func reference(_ b: [UInt8]) -> UInt16 {
        var s: UInt32 = 0
        var i = 0
        while i + 1 < b.count { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
        if i < b.count { s += UInt32(b[i]) << 8 }
        while s > 0xFFFF { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(s)
    }

    func testChecksumMatchesTheReferenceForEveryLengthAndOffset() {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        let data: [UInt8] = (0..<70_000).map { _ in x = x &* 6364136223846793005 &+ 1442695040888963407; return UInt8(x >> 56) }
        for len in Array(0..<80) + [1499, 1500, 1514, 9000, 65_535, 69_999] {
            for start in [0, 2, 14] where start + len <= data.count {
                var c = InternetChecksum(); c.add(data, start..<(start + len))
                XCTAssertEqual(c.value, reference(Array(data[start..<(start + len)])), "length \(len) at \(start)")
            }
        }
        let ones = [UInt8](repeating: 0xFF, count: 65_536)
        var c = InternetChecksum(); c.add(ones, 0..<ones.count)
        XCTAssertEqual(c.value, reference(ones), "all ones: the accumulator must not overflow")
    }

    func testVirtioHeaderRoundTrip() {
        let h = VirtioNetHeader(flags: 1, gsoType: 1, headerLength: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16)
        XCTAssertEqual(h.bytes, [1, 1, 66, 0, 0xA8, 0x05, 34, 0, 16, 0])
        XCTAssertEqual(h.bytes.withUnsafeBytes { VirtioNetHeader.parse($0) }, h)
        XCTAssertNil([UInt8](repeating: 0, count: 9).withUnsafeBytes { VirtioNetHeader.parse($0) })
        XCTAssertTrue(h.checksumTrusted)
        XCTAssertTrue(VirtioNetHeader(flags: VirtioNetHeader.dataValid).checksumTrusted)
        XCTAssertFalse(VirtioNetHeader().checksumTrusted)
    }

    func superFrame(payload: Int, flags: TCPFlags) -> [UInt8] {
        FrameBuilder.tcp(ethSrc: MACAddress(raw: 0x0200_0000_0010), ethDst: MACAddress(raw: 0x0200_0000_0001),
                         src: IPv4Address(10, 0, 0, 100), dst: IPv4Address(10, 0, 0, 1), srcPort: 7, dstPort: 40000,
                         seq: 0xFFFF_F000, ack: 77, flags: flags, window: 500,
                         timestamps: TCPTimestamps(value: 5, echo: 6),
                         payload: (0..<payload).map { UInt8(truncatingIfNeeded: $0) }[...], ipID: 0xFFFE,
                         partialChecksum: true)
    }

    func testSplitGivesCheckedSegmentsWithConsecutiveNumbers() throws {
        let f = superFrame(payload: 5000, flags: [.ack, .psh, .fin])
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertThrowsError(try TCPHeader.parse(f, ip: ip), "partial checksum")
        let segs = TCPSegmentation.split(f, segmentSize: 1448)
        XCTAssertEqual(segs.count, 4)
        var payload: [UInt8] = []
        for (i, s) in segs.enumerated() {
            let sip = try IPv4Header.parse(s, at: 14)  // IP checksum verified
            let t = try TCPHeader.parse(s, ip: sip)    // TCP checksum verified
            XCTAssertEqual(sip.identification, 0xFFFE &+ UInt16(i))
            XCTAssertEqual(t.seq, 0xFFFF_F000 &+ UInt32(1448 * i), "sequence numbers wrap like the kernel's")
            XCTAssertEqual(t.timestamps, TCPTimestamps(value: 5, echo: 6))
            let last = i == segs.count - 1
            XCTAssertEqual(t.flags.contains(.psh), last); XCTAssertEqual(t.flags.contains(.fin), last)
            payload += s[t.payload]
        }
        XCTAssertEqual(payload, (0..<5000).map { UInt8(truncatingIfNeeded: $0) })
    }

    func testCompletedChecksumsVerify() throws {
        let f = superFrame(payload: 100, flags: [.ack])
        let done = TransportChecksum.completed(f)
        let ip = try IPv4Header.parse(done, at: 14)
        XCTAssertNoThrow(try TCPHeader.parse(done, ip: ip))
        let udp = FrameBuilder.udp(ethSrc: MACAddress(raw: 1), ethDst: MACAddress(raw: 2), src: IPv4Address(10, 0, 0, 1),
                                   dst: IPv4Address(10, 0, 0, 2), srcPort: 1, dstPort: 2, payload: [1, 2, 3][...])
        var broken = udp
        broken[14 + 20 + 6] ^= 0x55
        XCTAssertEqual(TransportChecksum.completed(broken), udp)
        XCTAssertEqual(TransportChecksum.completed([1, 2, 3]), [1, 2, 3], "not IPv4: unchanged")
    }
}
