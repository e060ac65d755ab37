import XCTest
@testable import FTWire

final class ChecksumTests: XCTestCase {

    /// RFC 1071 section 3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to
    /// 0xddf2 (after folding the carries), so the checksum is ~0xddf2 = 0x220d.
    func testRFC1071Example() {
        let b: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        var c = InternetChecksum()
        c.add(b, 0..<b.count)
        XCTAssertEqual(c.value, 0x220D)
        XCTAssertEqual(c.value, ~UInt16(0xDDF2))

        // Inserting the checksum into the data makes the sum verify to zero.
        var with = b
        with.append(0x22); with.append(0x0D)
        var v = InternetChecksum()
        v.add(with, 0..<with.count)
        XCTAssertEqual(v.value, 0)
    }

    /// The classic IPv4 header example (192.168.0.1 -> 192.168.0.199, UDP).
    func testKnownIPv4HeaderChecksum() {
        var h: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
                          0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]
        var c = InternetChecksum()
        c.add(h, 0..<20)
        XCTAssertEqual(c.value, 0xB861)
        h.writeBE16(0xB861, at: 10)
        var v = InternetChecksum()
        v.add(h, 0..<20)
        XCTAssertEqual(v.value, 0)

        // IPv4Header.write produces the same bytes and checksum.
        var w: [UInt8] = []
        IPv4Header.write(into: &w, src: IPv4Address(192, 168, 0, 1), dst: IPv4Address(192, 168, 0, 199),
                         proto: IPProtocol.udp, ttl: 64, identification: 0, payloadLength: 0x73 - 20)
        XCTAssertEqual(w, h)
    }

    func testOddLengthAndSubrange() {
        // An odd trailing byte is padded with a zero on the right.
        var a = InternetChecksum(); a.add([0x12, 0x34, 0x56], 0..<3)
        var b = InternetChecksum(); b.add([0x12, 0x34, 0x56, 0x00], 0..<4)
        XCTAssertEqual(a.value, b.value)
        XCTAssertEqual(a.value, ~UInt16(0x1234 + 0x5600))
        // Only the range counts.
        var c = InternetChecksum(); c.add([0xFF, 0x12, 0x34, 0x56, 0xFF], 1..<4)
        XCTAssertEqual(c.value, a.value)
        // Empty input: sum 0, checksum 0xffff.
        var e = InternetChecksum(); e.add([], 0..<0)
        XCTAssertEqual(e.value, 0xFFFF)
    }

    func testCarryFoldingOnLargeInput() {
        // 100 000 words of 0xffff: every addition carries.
        let b = [UInt8](repeating: 0xFF, count: 200_000)
        var c = InternetChecksum(); c.add(b, 0..<b.count)
        XCTAssertEqual(c.value, 0)  // one's complement sum of 0xffff words is 0xffff
        var d = InternetChecksum(); d.add([UInt8](repeating: 0xFF, count: 199_999) + [0x01], 0..<200_000)
        // Replacing the last 0xff by 0x01 lowers the sum by 0xfe (mod 0xffff).
        XCTAssertEqual(d.value, 0xFE)
    }

    func testAdd16And32MatchByteForm() {
        var a = InternetChecksum(); a.add32(0xC0A8_0001); a.add16(0x0011); a.add16(0xFFFF)
        var b = InternetChecksum(); b.add([0xC0, 0xA8, 0x00, 0x01, 0x00, 0x11, 0xFF, 0xFF], 0..<8)
        XCTAssertEqual(a.value, b.value)
    }

    func testTransportChecksumPseudoHeader() {
        // Manual pseudo header + segment must give the same value.
        let src = IPv4Address(10, 0, 0, 1), dst = IPv4Address(10, 0, 0, 100)
        let seg: [UInt8] = [0x1F, 0x40, 0x00, 0x07, 0x00, 0x0B, 0x00, 0x00, 0x68, 0x69, 0x21]
        var manual: [UInt8] = []
        manual.appendBE32(src.raw); manual.appendBE32(dst.raw)
        manual.append(0); manual.append(IPProtocol.udp); manual.appendBE16(UInt16(seg.count))
        manual += seg
        var m = InternetChecksum(); m.add(manual, 0..<manual.count)
        XCTAssertEqual(transportChecksum(src: src, dst: dst, proto: IPProtocol.udp, seg, 0..<seg.count), m.value)
    }
}

final class SipHashTests: XCTestCase {
    static let k0: UInt64 = 0x0706_0504_0302_0100  // key bytes 00..07, little endian
    static let k1: UInt64 = 0x0F0E_0D0C_0B0A_0908  // key bytes 08..0f

    /// Reference vectors from the SipHash paper / reference implementation (vectors.h).
    func testReferenceVectors() {
        XCTAssertEqual(SipHash24.hash(k0: Self.k0, k1: Self.k1, []), 0x726F_DB47_DD0E_0E31)
        XCTAssertEqual(SipHash24.hash(k0: Self.k0, k1: Self.k1, Array(0..<15)), 0xA129_CA61_49BE_45E5)
        // A few more from vectors.h (lengths 1, 7, 8 and 63) exercise the tail and block paths.
        XCTAssertEqual(SipHash24.hash(k0: Self.k0, k1: Self.k1, [0x00]), 0x74F8_39C5_93DC_67FD)
        XCTAssertEqual(SipHash24.hash(k0: Self.k0, k1: Self.k1, Array(0..<7)), 0xAB02_00F5_8B01_D137)
        XCTAssertEqual(SipHash24.hash(k0: Self.k0, k1: Self.k1, Array(0..<8)), 0x93F5_F579_9A93_2462)
        XCTAssertEqual(SipHash24.hash(k0: Self.k0, k1: Self.k1, Array(0..<63)), 0x958A_324C_EB06_4572)
    }

    func testIncrementalEqualsOneShot() {
        let msg: [UInt8] = (0..<40).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let one = SipHash24.hash(k0: 1, k1: 2, msg)
        for split in 0...msg.count {
            var h = SipHash24(k0: 1, k1: 2)
            h.update(msg[..<split]); h.update(msg[split...])
            XCTAssertEqual(h.finalize(), one, "split at \(split)")
        }
        // finalize does not consume the state: a hash finalized part way
        // through gives the prefix's hash and then goes on to the whole one.
        var h = SipHash24(k0: 1, k1: 2)
        for (k, byte) in msg.enumerated() {
            XCTAssertEqual(h.finalize(), SipHash24.hash(k0: 1, k1: 2, Array(msg[..<k])), "prefix \(k)")
            h.update(byte)
        }
        XCTAssertEqual(h.finalize(), one)
        // The byte-wise, block-wise and integer paths agree with the paper's
        // known answer (key 00..0f, message 00..0e).
        var bytewise = SipHash24(k0: Self.k0, k1: Self.k1)
        for b in UInt8(0)..<15 { bytewise.update(b) }
        XCTAssertEqual(bytewise.finalize(), 0xA129_CA61_49BE_45E5)
        var ints = SipHash24(k0: Self.k0, k1: Self.k1)
        ints.update(u32: 0x0302_0100); ints.update(u32: 0x0706_0504); ints.update(u16: 0x0908)
        ints.update([0x0A, 0x0B, 0x0C, 0x0D, 0x0E][...])
        XCTAssertEqual(ints.finalize(), 0xA129_CA61_49BE_45E5)
    }

    func testIntegerUpdatesAreLittleEndian() {
        var a = SipHash24(k0: 9, k1: 9); a.update(u32: 0x0403_0201); a.update(u16: 0x0605)
        var b = SipHash24(k0: 9, k1: 9); b.update([1, 2, 3, 4, 5, 6])
        XCTAssertEqual(a.finalize(), b.finalize())
    }

    func testKeyAndMessageSensitivity() {
        let m: [UInt8] = Array("hello".utf8)
        let base = SipHash24.hash(k0: 1, k1: 2, m)
        XCTAssertNotEqual(base, SipHash24.hash(k0: 1, k1: 3, m))
        XCTAssertNotEqual(base, SipHash24.hash(k0: 2, k1: 2, m))
        XCTAssertNotEqual(base, SipHash24.hash(k0: 1, k1: 2, Array("hellp".utf8)))
        XCTAssertNotEqual(base, SipHash24.hash(k0: 1, k1: 2, m + [0]))  // length is part of the hash
    }
}

final class ByteCodecTests: XCTestCase {

    func testBigEndianHelpers() {
        var b: [UInt8] = []
        b.appendBE16(0x1234); b.appendBE32(0xDEAD_BEEF); b.appendBE64(0x0102_0304_0506_0708)
        XCTAssertEqual(b, [0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(b.readBE16(0), 0x1234)
        XCTAssertEqual(b.readBE32(2), 0xDEAD_BEEF)
        b.writeBE16(0xABCD, at: 0); b.writeBE32(0x0A0B_0C0D, at: 2)
        XCTAssertEqual(Array(b[0..<6]), [0xAB, 0xCD, 0x0A, 0x0B, 0x0C, 0x0D])
    }

    func testWriterReaderRoundTrip() throws {
        var w = ByteWriter()
        w.u8(7); w.u16(0xBEEF); w.u32(0xCAFE_BABE); w.u64(.max); w.int(-5); w.bool(true); w.bool(false)
        w.blob([1, 2, 3]); w.string("héllo"); w.blob([UInt8]())
        var r = ByteReader(w.bytes)
        XCTAssertEqual(try r.u8(), 7)
        XCTAssertEqual(try r.u16(), 0xBEEF)
        XCTAssertEqual(try r.u32(), 0xCAFE_BABE)
        XCTAssertEqual(try r.u64(), .max)
        XCTAssertEqual(try r.int(), -5)
        XCTAssertEqual(try r.bool(), true)
        XCTAssertEqual(try r.bool(), false)
        XCTAssertEqual(try r.blob(), [1, 2, 3])
        XCTAssertEqual(try r.string(), "héllo")
        XCTAssertEqual(try r.blob(), [])
        XCTAssertEqual(r.remaining, 0)
        XCTAssertThrowsError(try r.u8()) { XCTAssertEqual($0 as? DecodeError, .truncated(offset: w.bytes.count, wanted: 1)) }
    }

    func testReaderRejectsTruncationAndBadValues() {
        var w = ByteWriter(); w.blob([1, 2, 3, 4])
        // Every strict prefix fails to decode the blob.
        for n in 0..<w.bytes.count {
            var r = ByteReader(Array(w.bytes[0..<n]))
            XCTAssertThrowsError(try r.blob(), "prefix \(n)")
        }
        var big = ByteReader([0, 0, 1, 0] + [UInt8](repeating: 0, count: 256))
        XCTAssertThrowsError(try big.blob(max: 255)) { XCTAssertEqual($0 as? DecodeError, .invalid(offset: 0, what: "length 256")) }
        var badBool = ByteReader([2])
        XCTAssertThrowsError(try badBool.bool()) { XCTAssertEqual($0 as? DecodeError, .invalid(offset: 0, what: "bool")) }
        // `end` bounds the reader even when more bytes follow.
        var bounded = ByteReader([1, 2, 3, 4], offset: 1, end: 3)
        XCTAssertEqual(try bounded.u16(), 0x0203)
        XCTAssertThrowsError(try bounded.u8())
        var huge = ByteReader([0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try huge.blob())
    }
}
