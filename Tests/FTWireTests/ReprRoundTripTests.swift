import XCTest
@testable import FTWire

private let macA = MACAddress("02:00:00:00:00:01")!
private let macB = MACAddress("02:00:00:00:00:10")!
private let ipA = IPv4Address(10, 0, 0, 1)
private let ipB = IPv4Address(10, 0, 0, 100)

private func expectWireError(_ expected: WireError, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { e in
        XCTAssertEqual(e as? WireError, expected, file: file, line: line)
    }
}

/// `parse(emit(x)) == x` for every wire representation, and emitted lengths
/// equal the declared lengths.
final class ReprRoundTripTests: XCTestCase {

    /// 14 bytes of Ethernet, then an IPv4 header for a transport payload of `n` bytes.
    private func ipv4(_ proto: UInt8, payloadLength n: Int) -> (bytes: [UInt8], header: IPv4Header) {
        let h = IPv4Header(src: ipA, dst: ipB, proto: proto, ttl: 61, identification: 0x1234,
                           headerStart: 14, payload: 34..<(34 + n))
        var b: [UInt8] = []
        EthernetHeader(dst: macB, src: macA, etherType: EtherType.ipv4).emit(into: &b)
        h.emit(into: &b)
        return (b, h)
    }

    func testEthernet() throws {
        for x in [EthernetHeader(dst: macB, src: macA, etherType: EtherType.arp),
                  EthernetHeader(dst: .broadcast, src: .zero, etherType: 0xFFFF)] {
            var b: [UInt8] = []
            x.emit(into: &b)
            XCTAssertEqual(b.count, EthernetHeader.length)
            XCTAssertEqual(try EthernetHeader.parse(b), x)
        }
    }

    func testARP() throws {
        for x in [ARPPacket(op: ARPPacket.request, senderMAC: macA, senderIP: ipA, targetMAC: .zero, targetIP: ipB),
                  ARPPacket(op: ARPPacket.reply, senderMAC: macB, senderIP: ipB, targetMAC: macA, targetIP: ipA)] {
            var b: [UInt8] = [0xEE, 0xEE]  // parse at a non-zero offset
            x.emit(into: &b)
            XCTAssertEqual(b.count, 2 + ARPPacket.length)
            XCTAssertEqual(try ARPPacket.parse(b, at: 2), x)
            for n in 2..<b.count { expectWireError(.truncated) { _ = try ARPPacket.parse(Array(b[0..<n]), at: 2) } }
        }
    }

    func testIPv4() throws {
        for n in [0, 1, 20, 1480] {
            var (b, h) = ipv4(IPProtocol.udp, payloadLength: n)
            XCTAssertEqual(b.count, 14 + IPv4Header.length)
            b += [UInt8](repeating: 0xAB, count: n)
            XCTAssertEqual(try IPv4Header.parse(b, at: 14), h)
            // Ethernet padding after the datagram stays outside the payload.
            XCTAssertEqual(try IPv4Header.parse(b + [0, 0, 0], at: 14), h)
            // One byte missing: the total length overruns the frame (or the header itself is cut).
            expectWireError(n > 0 ? .badTotalLength : .truncated) { _ = try IPv4Header.parse(Array(b.dropLast()), at: 14) }
        }
    }

    func testICMPEcho() throws {
        let body: [UInt8] = Array("ping body".utf8)
        for x in [ICMPEcho(isRequest: true, identifier: 0xBEEF, sequence: 7, payload: 42..<(42 + body.count)),
                  ICMPEcho(isRequest: false, identifier: 0, sequence: 0xFFFF, payload: 42..<(42 + body.count))] {
            var (b, ip) = ipv4(IPProtocol.icmp, payloadLength: ICMPEcho.length + body.count)
            x.emit(into: &b, payload: body[...])
            XCTAssertEqual(b.count, 42 + body.count)
            XCTAssertEqual(try ICMPEcho.parse(b, ip: ip), x)
            // Same bytes as the frame builder the stack uses.
            XCTAssertEqual(b, FrameBuilder.icmp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, type: x.isRequest ? 8 : 0,
                                                code: 0, rest: UInt32(x.identifier) << 16 | UInt32(x.sequence),
                                                body: body[...], ttl: 61, ipID: 0x1234))
            var bad = b; bad[b.count - 1] ^= 1
            expectWireError(.badChecksum) { _ = try ICMPEcho.parse(bad, ip: ip) }
            var short = ip; short.payload = 34..<41
            expectWireError(.truncated) { _ = try ICMPEcho.parse(b, ip: short) }
        }
        let unreachable = FrameBuilder.icmp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, type: 3, code: 3, rest: 0, body: [][...])
        expectWireError(.unsupported) { _ = try ICMPEcho.parse(unreachable, ip: IPv4Header.parse(unreachable, at: 14)) }
    }

    func testUDP() throws {
        for body in [[], [1], Array("hello, world".utf8)] as [[UInt8]] {
            let x = UDPHeader(srcPort: 5353, dstPort: 7001, payload: 42..<(42 + body.count))
            var (b, ip) = ipv4(IPProtocol.udp, payloadLength: UDPHeader.length + body.count)
            x.emit(into: &b, src: ipA, dst: ipB, payload: body[...])
            XCTAssertEqual(b.count, 42 + body.count)
            XCTAssertEqual(try UDPHeader.parse(b, ip: ip), x)
            XCTAssertEqual(Array(b[x.payload]), body)
        }
    }

    func testTCPHeaderWithEveryOptionCombination() throws {
        let body: [UInt8] = Array("data".utf8)
        var checked = 0
        for mss: UInt16? in [nil, 1460] {
            for ws: UInt8? in [nil, 0, 14] {
                for sp in [false, true] {
                    for ts: TCPTimestamps? in [nil, TCPTimestamps(value: 0xDEAD_BEEF, echo: 1)] {
                        for n in 0...4 {
                            var x = TCPHeader(srcPort: 43512, dstPort: 7000, seq: 0xFFFF_FFF0, ack: 9,
                                              flags: [.ack, .psh], window: 512, mss: mss, windowScale: ws,
                                              sackPermitted: sp, timestamps: ts,
                                              sackBlocks: (0..<n).map { SACKBlock(left: UInt32($0) * 100, right: UInt32($0) * 100 + 50) },
                                              payload: 0..<0)
                            // Only what fits in 40 option bytes is emitted; the round trip holds for that.
                            x.sackBlocks = Array(x.emittedSACKBlocks)
                            XCTAssertLessThanOrEqual(x.headerLength, 60)
                            XCTAssertEqual(x.headerLength % 4, 0)
                            let seg = x.headerLength + body.count
                            var (b, ip) = ipv4(IPProtocol.tcp, payloadLength: seg)
                            x.emit(into: &b, src: ipA, dst: ipB, payload: body[...])
                            XCTAssertEqual(b.count, 34 + seg)
                            x.payload = (34 + x.headerLength)..<b.count
                            XCTAssertEqual(try TCPHeader.parse(b, ip: ip), x)
                            // The option list describes exactly the emitted option bytes.
                            var opts: [UInt8] = []
                            for o in x.options { o.emit(into: &opts) }
                            XCTAssertEqual(Array(b[54..<(34 + x.headerLength)]), opts)
                            checked += 1
                        }
                    }
                }
            }
        }
        XCTAssertEqual(checked, 2 * 3 * 2 * 2 * 5)
    }

    /// The bug this representation fixes: SACK blocks the stack emits were not parsed.
    func testFrameBuilderSACKBlocksAreParsed() throws {
        let f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2, seq: 1, ack: 2,
                                 flags: [.ack], window: 3, sackBlocks: [(10, 20), (30, 40), (50, 60)])
        let t = try TCPHeader.parse(f, ip: IPv4Header.parse(f, at: 14))
        XCTAssertEqual(t.sackBlocks, [SACKBlock(left: 10, right: 20), SACKBlock(left: 30, right: 40), SACKBlock(left: 50, right: 60)])
        // Byte layout: NOP, NOP, kind 5, length 26, edges.
        XCTAssertEqual(Array(f[54..<58]), [1, 1, 5, 26])
        XCTAssertEqual(f[46] >> 4, 5 + 7)
    }

    func testEachTCPOption() throws {
        let all: [TCPOption] = [
            .endOfList, .noOperation, .maxSegmentSize(0), .maxSegmentSize(65535), .windowScale(0), .windowScale(14),
            .windowScale(255), .sackPermitted,
            .sack([SACKBlock(left: 1, right: 2)]),
            .sack((0..<4).map { SACKBlock(left: UInt32.max - UInt32($0), right: UInt32($0)) }),
            .timestamps(TCPTimestamps(value: 0, echo: UInt32.max)),
            .unknown(kind: 30, data: []), .unknown(kind: 254, data: [1, 2, 3, 4, 5, 6]),
        ]
        for x in all {
            var b: [UInt8] = [0xCC]  // parse at a non-zero offset
            x.emit(into: &b)
            XCTAssertEqual(b.count, 1 + x.length, "\(x)")
            XCTAssertEqual(b[1], x.kind)
            XCTAssertEqual(try TCPOption.parse(b, at: 1, end: b.count), x)
            // With more header after it, the option still parses alone.
            XCTAssertEqual(try TCPOption.parse(b + [1, 1, 1], at: 1, end: b.count + 3), x)
            // Cut short: a multi-byte option is rejected, never read past `end`.
            if x.length > 1 {
                for end in 2..<b.count {
                    expectWireError(.badOption) { _ = try TCPOption.parse(b, at: 1, end: end) }
                }
            }
        }
        expectWireError(.truncated) { _ = try TCPOption.parse([1], at: 1, end: 1) }
        expectWireError(.truncated) { _ = try TCPOption.parse([1], at: 0, end: 2) }
    }

    func testMalformedTCPOptionLengthsAreRejected() {
        let bad: [[UInt8]] = [
            [2, 3, 5], [2, 5, 5, 0xB4, 0], [3, 2], [3, 4, 7, 0], [4, 3, 0], [5, 2], [5, 9, 0, 0, 0, 0, 0, 0, 0],
            [5, 42] + [UInt8](repeating: 0, count: 40), [8, 9] + [UInt8](repeating: 0, count: 7),
            [8, 11] + [UInt8](repeating: 0, count: 9), [99, 0], [99, 1], [99],
        ]
        for b in bad {
            expectWireError(.badOption) { _ = try TCPOption.parse(b, at: 0, end: b.count) }
        }
    }

    func testTCPHeaderSkipsUnknownOptionsAndStopsAtEndOfList() throws {
        // Options: unknown kind 30 (length 4), MSS, EOL, then garbage that must be ignored.
        let opts: [UInt8] = [30, 4, 0xAA, 0xBB, 2, 4, 0x05, 0xB4, 0, 2, 0, 0]
        let h = TCPHeader(srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: [.syn], window: 5, payload: 0..<0)
        var b: [UInt8] = []
        EthernetHeader(dst: macB, src: macA, etherType: EtherType.ipv4).emit(into: &b)
        IPv4Header.write(into: &b, src: ipA, dst: ipB, proto: IPProtocol.tcp, ttl: 64, identification: 0,
                         payloadLength: 20 + opts.count)
        h.emit(into: &b, src: ipA, dst: ipB, payload: opts[...])
        b[46] = UInt8((20 + opts.count) / 4) << 4
        b.writeBE16(0, at: 50)
        b.writeBE16(transportChecksum(src: ipA, dst: ipB, proto: IPProtocol.tcp, b, 34..<b.count), at: 50)
        let t = try TCPHeader.parse(b, ip: IPv4Header.parse(b, at: 14))
        XCTAssertEqual(t.mss, 1460)
        XCTAssertNil(t.windowScale)
        XCTAssertTrue(t.payload.isEmpty)
        // A SACK option with a bad length inside a header: the whole segment is refused.
        var sack = b
        sack[54..<58] = [5, 9, 0, 0]
        sack.writeBE16(0, at: 50)
        sack.writeBE16(transportChecksum(src: ipA, dst: ipB, proto: IPProtocol.tcp, sack, 34..<sack.count), at: 50)
        expectWireError(.badOption) { _ = try TCPHeader.parse(sack, ip: IPv4Header.parse(sack, at: 14)) }
    }

    /// The frame builder emits the same bytes as before the representation
    /// existed: a SYN-ACK with every option the stack sends.
    func testFrameBuilderBytesAreStable() {
        let f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 0x1F40, dstPort: 0xA9F8,
                                 seq: 0x0102_0304, ack: 0x0506_0708, flags: [.syn, .ack], window: 0xFFFF,
                                 mss: 1460, windowScale: 7, sackPermitted: true)
        XCTAssertEqual(Array(f[34...]), [
            0x1F, 0x40, 0xA9, 0xF8, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0x12, 0xFF, 0xFF, f[50], f[51], 0, 0,
            2, 4, 0x05, 0xB4, 1, 3, 3, 7, 1, 1, 4, 2,
        ])
        var c = InternetChecksum(); c.add32(ipA.raw); c.add32(ipB.raw); c.add16(6); c.add16(32); c.add(f, 34..<66)
        XCTAssertEqual(c.value, 0)
    }
}
