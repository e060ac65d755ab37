import XCTest
@testable import FTWire

private let macA = MACAddress("02:00:00:00:00:01")!
private let macB = MACAddress("02:00:00:00:00:10")!
private let ipA = IPv4Address(10, 0, 0, 1)
private let ipB = IPv4Address(10, 0, 0, 100)

/// Parses a whole frame down to the transport layer; throws on any error.
private func parseAll(_ f: [UInt8]) throws {
    let eth = try EthernetHeader.parse(f)
    switch eth.etherType {
    case EtherType.arp: _ = try ARPPacket.parse(f, at: 14)
    case EtherType.ipv4:
        let ip = try IPv4Header.parse(f, at: 14)
        switch ip.proto {
        case IPProtocol.tcp: _ = try TCPHeader.parse(f, ip: ip)
        case IPProtocol.udp: _ = try UDPHeader.parse(f, ip: ip)
        case IPProtocol.icmp:
            guard ip.payload.count >= 8 else { throw WireError.truncated }
            var c = InternetChecksum(); c.add(f, ip.payload)
            guard c.value == 0 else { throw WireError.badChecksum }
        default: break
        }
    default: break
    }
}

private func expectWireError(_ expected: WireError, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { e in
        XCTAssertEqual(e as? WireError, expected, file: file, line: line)
    }
}

/// Recomputes the IPv4 header checksum of the header at 14 after a test edited it.
private func refreshIPChecksum(_ f: inout [UInt8]) {
    let ihl = Int(f[14] & 0x0F) * 4
    f.writeBE16(0, at: 24)
    var c = InternetChecksum(); c.add(f, 14..<(14 + ihl))
    f.writeBE16(c.value, at: 24)
}

/// Recomputes the TCP checksum (IHL 20 assumed).
private func refreshTCPChecksum(_ f: inout [UInt8]) {
    let total = Int(f.readBE16(16))
    f.writeBE16(0, at: 34 + 16)
    f.writeBE16(transportChecksum(src: ipA, dst: ipB, proto: IPProtocol.tcp, f, 34..<(14 + total)), at: 34 + 16)
}

final class PacketTests: XCTestCase {

    // MARK: Ethernet and ARP

    func testEthernetRoundTrip() throws {
        var b: [UInt8] = []
        EthernetHeader(dst: macB, src: macA, etherType: 0x1234).write(into: &b)
        XCTAssertEqual(b.count, EthernetHeader.length)
        XCTAssertEqual(try EthernetHeader.parse(b), EthernetHeader(dst: macB, src: macA, etherType: 0x1234))
        for n in 0..<14 { expectWireError(.truncated) { _ = try EthernetHeader.parse(Array(b[0..<n])) } }
    }

    func testARPRoundTrip() throws {
        let a = ARPPacket(op: ARPPacket.request, senderMAC: macA, senderIP: ipA, targetMAC: .zero, targetIP: ipB)
        let f = a.frame(ethDst: .broadcast, ethSrc: macA)
        XCTAssertEqual(f.count, 60, "padded to the Ethernet minimum")
        let eth = try EthernetHeader.parse(f)
        XCTAssertEqual(eth, EthernetHeader(dst: .broadcast, src: macA, etherType: EtherType.arp))
        XCTAssertEqual(try ARPPacket.parse(f, at: 14), a)
        // Fixed fields: htype 1, ptype IPv4, hlen 6, plen 4.
        XCTAssertEqual(Array(f[14..<20]), [0, 1, 8, 0, 6, 4])
        for n in 0..<42 { XCTAssertThrowsError(try parseAll(Array(f[0..<n])), "length \(n)") }

        let reply = ARPPacket(op: ARPPacket.reply, senderMAC: macB, senderIP: ipB, targetMAC: macA, targetIP: ipA)
        XCTAssertEqual(try ARPPacket.parse(reply.frame(ethDst: macA, ethSrc: macB), at: 14), reply)

        let g = ARPPacket.gratuitous(mac: macB, ip: ipB)
        let gp = try ARPPacket.parse(g, at: 14)
        XCTAssertEqual(gp.op, ARPPacket.request)
        XCTAssertEqual(gp.senderIP, ipB); XCTAssertEqual(gp.targetIP, ipB)
        XCTAssertEqual(try EthernetHeader.parse(g).dst, .broadcast)
    }

    func testARPRejectsNonEthernetIPv4() {
        let f = ARPPacket(op: 1, senderMAC: macA, senderIP: ipA, targetMAC: .zero, targetIP: ipB).frame(ethDst: .broadcast, ethSrc: macA)
        var htype = f; htype[15] = 6
        var ptype = f; ptype[16] = 0x86; ptype[17] = 0xDD
        var hlen = f; hlen[18] = 8
        var plen = f; plen[19] = 16
        for bad in [htype, ptype, hlen, plen] { expectWireError(.unsupported) { _ = try ARPPacket.parse(bad, at: 14) } }
    }

    // MARK: IPv4 + TCP

    func testTCPBuildParseRoundTripWithOptions() throws {
        let payload: [UInt8] = Array("hello".utf8)
        let f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 43512, dstPort: 7000,
                                 seq: 0xFFFF_FFF0, ack: 0x1234_5678, flags: [.syn, .ack], window: 29200,
                                 mss: 1460, windowScale: 7, payload: payload[...], ttl: 33, ipID: 0xABCD)
        XCTAssertEqual(f.count, 14 + 20 + 28 + 5)
        let eth = try EthernetHeader.parse(f)
        XCTAssertEqual(eth, EthernetHeader(dst: macB, src: macA, etherType: EtherType.ipv4))
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertEqual(ip.src, ipA); XCTAssertEqual(ip.dst, ipB)
        XCTAssertEqual(ip.proto, IPProtocol.tcp); XCTAssertEqual(ip.ttl, 33); XCTAssertEqual(ip.identification, 0xABCD)
        XCTAssertEqual(ip.headerStart, 14)
        XCTAssertEqual(ip.payload, 34..<f.count)
        XCTAssertEqual(f.readBE16(14 + 6), 0x4000, "DF set, no fragment offset")
        let t = try TCPHeader.parse(f, ip: ip)
        XCTAssertEqual(t.srcPort, 43512); XCTAssertEqual(t.dstPort, 7000)
        XCTAssertEqual(t.seq, 0xFFFF_FFF0); XCTAssertEqual(t.ack, 0x1234_5678)
        XCTAssertEqual(t.flags, [.syn, .ack]); XCTAssertEqual(t.window, 29200)
        XCTAssertEqual(t.mss, 1460); XCTAssertEqual(t.windowScale, 7)
        XCTAssertEqual(Array(f[t.payload]), payload)
        XCTAssertEqual(f[34 + 12] >> 4, 7, "data offset: 20 + 4 (MSS) + 4 (NOP, WS)")
    }

    func testTCPWithoutOptionsAndEachOptionAlone() throws {
        let plain = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                                     seq: 1, ack: 2, flags: [.ack], window: 3)
        XCTAssertEqual(plain.count, 54)
        let ip = try IPv4Header.parse(plain, at: 14)
        let t = try TCPHeader.parse(plain, ip: ip)
        XCTAssertNil(t.mss); XCTAssertNil(t.windowScale); XCTAssertTrue(t.payload.isEmpty)

        let onlyMSS = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                                       seq: 1, ack: 0, flags: [.syn], window: 3, mss: 536)
        let t2 = try TCPHeader.parse(onlyMSS, ip: IPv4Header.parse(onlyMSS, at: 14))
        XCTAssertEqual(t2.mss, 536); XCTAssertNil(t2.windowScale)

        let onlyWS = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                                      seq: 1, ack: 0, flags: [.syn], window: 3, windowScale: 14)
        let t3 = try TCPHeader.parse(onlyWS, ip: IPv4Header.parse(onlyWS, at: 14))
        XCTAssertNil(t3.mss); XCTAssertEqual(t3.windowScale, 14)
    }

    func testTCPOptionParsingEdgeCases() throws {
        // Hand-built option blocks: unknown options are skipped by length, EOL ends parsing.
        func frame(options: [UInt8]) -> [UInt8] {
            var opts = options
            while opts.count % 4 != 0 { opts.append(0) }
            var f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                                     seq: 1, ack: 0, flags: [.syn], window: 3, payload: opts[...])
            // Turn the payload into options by raising the data offset.
            f[34 + 12] = UInt8((20 + opts.count) / 4) << 4
            refreshTCPChecksum(&f)
            return f
        }
        // SACK-permitted (4,2), timestamps (8,10,...), MSS, WS.
        let f1 = frame(options: [4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 2, 4, 0x05, 0xB4, 1, 3, 3, 9])
        let t1 = try TCPHeader.parse(f1, ip: IPv4Header.parse(f1, at: 14))
        XCTAssertEqual(t1.mss, 1460); XCTAssertEqual(t1.windowScale, 9); XCTAssertTrue(t1.payload.isEmpty)
        // Options after EOL are not parsed.
        let f2 = frame(options: [0, 2, 4, 0x05, 0xB4])
        let t2 = try TCPHeader.parse(f2, ip: IPv4Header.parse(f2, at: 14))
        XCTAssertNil(t2.mss)
        // An option length of 0 or 1 would loop forever or overlap: rejected.
        for bad in [[2, 0, 0, 0], [2, 1, 0, 0], [1, 1, 1, 5]] as [[UInt8]] {
            let f = frame(options: bad)
            expectWireError(.badOption) { _ = try TCPHeader.parse(f, ip: IPv4Header.parse(f, at: 14)) }
        }
        // An option running past the header.
        let f3 = frame(options: [1, 1, 2, 8])
        expectWireError(.badOption) { _ = try TCPHeader.parse(f3, ip: IPv4Header.parse(f3, at: 14)) }
        // A kind with no room for its length byte.
        let f4 = frame(options: [1, 1, 1, 2])
        expectWireError(.badOption) { _ = try TCPHeader.parse(f4, ip: IPv4Header.parse(f4, at: 14)) }
    }

    func testTCPBadDataOffsetAndChecksum() throws {
        let f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                                 seq: 1, ack: 2, flags: [.ack], window: 3, payload: [1, 2, 3, 4][...])
        for off: UInt8 in [0, 1, 4, 7, 15] {  // < 5 words, or beyond the 24-byte segment
            var b = f; b[34 + 12] = off << 4
            refreshTCPChecksum(&b)
            expectWireError(.badHeaderLength) { _ = try TCPHeader.parse(b, ip: IPv4Header.parse(b, at: 14)) }
        }
        var corrupt = f; corrupt[f.count - 1] ^= 0x40
        expectWireError(.badChecksum) { _ = try TCPHeader.parse(corrupt, ip: IPv4Header.parse(corrupt, at: 14)) }
        // Checksum verification can be skipped.
        XCTAssertNoThrow(try TCPHeader.parse(corrupt, ip: IPv4Header.parse(corrupt, at: 14), verifyChecksum: false))
        // A TCP header shorter than 20 bytes.
        let ip = try IPv4Header.parse(f, at: 14)
        var shortIP = ip; shortIP.payload = ip.payload.lowerBound..<(ip.payload.lowerBound + 19)
        expectWireError(.truncated) { _ = try TCPHeader.parse(f, ip: shortIP) }
    }

    func testTCPFlagsTcpdumpNotation() {
        XCTAssertEqual(TCPFlags.syn.tcpdump, "S")
        XCTAssertEqual(([.syn, .ack] as TCPFlags).tcpdump, "S.")
        XCTAssertEqual(([.psh, .ack] as TCPFlags).tcpdump, "P.")
        XCTAssertEqual(([.fin, .ack] as TCPFlags).tcpdump, "F.")
        XCTAssertEqual(([.fin, .psh, .ack] as TCPFlags).tcpdump, "FP.")
        XCTAssertEqual(TCPFlags.rst.tcpdump, "R")
        XCTAssertEqual(([.rst, .ack] as TCPFlags).tcpdump, "R.")
        XCTAssertEqual(TCPFlags.ack.tcpdump, ".")
        XCTAssertEqual(TCPFlags().tcpdump, "none")
    }

    // MARK: IPv4 validation

    func testIPv4Rejects() throws {
        let f = FrameBuilder.udp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 5, dstPort: 6, payload: [1, 2, 3][...])
        XCTAssertNoThrow(try IPv4Header.parse(f, at: 14))

        var v6 = f; v6[14] = 0x65; refreshIPChecksum(&v6)
        expectWireError(.badVersion) { _ = try IPv4Header.parse(v6, at: 14) }
        var ihl4 = f; ihl4[14] = 0x44; refreshIPChecksum(&ihl4)
        expectWireError(.badHeaderLength) { _ = try IPv4Header.parse(ihl4, at: 14) }
        var badSum = f; badSum[14 + 8] = 63  // TTL changed without fixing the checksum
        expectWireError(.badChecksum) { _ = try IPv4Header.parse(badSum, at: 14) }
        var mf = f; mf.writeBE16(0x2000, at: 14 + 6); refreshIPChecksum(&mf)
        expectWireError(.fragment) { _ = try IPv4Header.parse(mf, at: 14) }
        var offset = f; offset.writeBE16(0x0001, at: 14 + 6); refreshIPChecksum(&offset)
        expectWireError(.fragment) { _ = try IPv4Header.parse(offset, at: 14) }
        var dfOnly = f; dfOnly.writeBE16(0x4000, at: 14 + 6); refreshIPChecksum(&dfOnly)
        XCTAssertNoThrow(try IPv4Header.parse(dfOnly, at: 14))
        var tooLong = f; tooLong.writeBE16(UInt16(f.count - 14 + 1), at: 16); refreshIPChecksum(&tooLong)
        expectWireError(.badTotalLength) { _ = try IPv4Header.parse(tooLong, at: 14) }
        var tooShort = f; tooShort.writeBE16(19, at: 16); refreshIPChecksum(&tooShort)
        expectWireError(.badTotalLength) { _ = try IPv4Header.parse(tooShort, at: 14) }

        // Options (IHL 6): build a header with a 4-byte NOP option block.
        var opt = Array(f[0..<34]) + [1, 1, 1, 1] + Array(f[34...])
        opt[14] = 0x46
        opt.writeBE16(UInt16(opt.count - 14), at: 16)
        refreshIPChecksum(&opt)
        expectWireError(.options) { _ = try IPv4Header.parse(opt, at: 14) }
        // IHL larger than the frame.
        var ihlBig = Array(f[0..<40]); ihlBig[14] = 0x4F
        expectWireError(.truncated) { _ = try IPv4Header.parse(ihlBig, at: 14) }
    }

    func testIPv4PaddingExcludedFromPayload() throws {
        var f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                                 seq: 1, ack: 2, flags: [.ack], window: 3)
        XCTAssertEqual(f.count, 54)
        f += [0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE]  // Ethernet padding to 60 bytes
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertEqual(ip.payload, 34..<54)
        let t = try TCPHeader.parse(f, ip: ip)
        XCTAssertTrue(t.payload.isEmpty)
    }

    // MARK: UDP

    func testUDPRoundTripAndRejects() throws {
        let payload: [UInt8] = Array("ping 1 INCR".utf8)
        let f = FrameBuilder.udp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 40000, dstPort: 7001,
                                 payload: payload[...], ttl: 17, ipID: 9)
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertEqual(ip.proto, IPProtocol.udp); XCTAssertEqual(ip.ttl, 17); XCTAssertEqual(ip.identification, 9)
        let u = try UDPHeader.parse(f, ip: ip)
        XCTAssertEqual(u.srcPort, 40000); XCTAssertEqual(u.dstPort, 7001)
        XCTAssertEqual(Array(f[u.payload]), payload)
        XCTAssertNotEqual(f.readBE16(34 + 6), 0, "checksum is always sent")

        // Zero checksum means "no checksum" in IPv4.
        var none = f; none.writeBE16(0, at: 34 + 6)
        XCTAssertEqual(Array(none[try UDPHeader.parse(none, ip: ip).payload]), payload)

        var bad = f; bad[f.count - 1] ^= 1
        expectWireError(.badChecksum) { _ = try UDPHeader.parse(bad, ip: ip) }
        var len7 = none; len7.writeBE16(7, at: 34 + 4)
        expectWireError(.badTotalLength) { _ = try UDPHeader.parse(len7, ip: ip) }
        var lenBig = none; lenBig.writeBE16(UInt16(8 + payload.count + 1), at: 34 + 4)
        expectWireError(.badTotalLength) { _ = try UDPHeader.parse(lenBig, ip: ip) }
        // A shorter UDP length than the IP payload is legal: the rest is ignored.
        var lenShort = none; lenShort.writeBE16(8 + 4, at: 34 + 4)
        XCTAssertEqual(Array(lenShort[try UDPHeader.parse(lenShort, ip: ip).payload]), Array(payload[0..<4]))
        var shortIP = ip; shortIP.payload = ip.payload.lowerBound..<(ip.payload.lowerBound + 7)
        expectWireError(.truncated) { _ = try UDPHeader.parse(f, ip: shortIP) }
    }

    func testUDPChecksumZeroIsSentAsFFFF() throws {
        // Search for a payload whose checksum computes to 0; it must be sent as 0xffff and still verify.
        var found = false
        for x in 0...0xFFFF {
            let p: [UInt8] = [UInt8(x >> 8), UInt8(x & 0xFF)]
            let f = FrameBuilder.udp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2, payload: p[...])
            if f.readBE16(34 + 6) == 0xFFFF {
                found = true
                XCTAssertNoThrow(try UDPHeader.parse(f, ip: IPv4Header.parse(f, at: 14)))
                break
            }
        }
        XCTAssertTrue(found)
    }

    // MARK: ICMP

    func testICMPRoundTrip() throws {
        let body: [UInt8] = Array("abcdefgh".utf8)
        let f = FrameBuilder.icmp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, type: 8, code: 0,
                                  rest: 0x1234_0007, body: body[...])
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertEqual(ip.proto, IPProtocol.icmp)
        XCTAssertEqual(ip.payload.count, 8 + body.count)
        let o = ip.payload.lowerBound
        XCTAssertEqual(f[o], 8); XCTAssertEqual(f[o + 1], 0)
        XCTAssertEqual(f.readBE32(o + 4), 0x1234_0007)
        XCTAssertEqual(Array(f[(o + 8)...]), body)
        var c = InternetChecksum(); c.add(f, ip.payload)
        XCTAssertEqual(c.value, 0, "ICMP checksum verifies")
        XCTAssertNoThrow(try parseAll(f))
    }

    // MARK: Truncation fuzz

    func testEveryTruncationThrowsAndNeverTraps() throws {
        let frames: [[UInt8]] = [
            FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 43512, dstPort: 7000,
                             seq: 1, ack: 1, flags: [.syn], window: 1000, mss: 1460, windowScale: 7,
                             payload: Array("data".utf8)[...]),
            FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2,
                             seq: 1, ack: 1, flags: [.ack], window: 1000),
            FrameBuilder.udp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 1, dstPort: 2, payload: [9, 9][...]),
            FrameBuilder.icmp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, type: 8, code: 0, rest: 1, body: [1, 2, 3][...]),
        ]
        for f in frames {
            XCTAssertNoThrow(try parseAll(f))
            for n in 0..<f.count {
                let cut = Array(f[0..<n])
                XCTAssertThrowsError(try parseAll(cut), "accepted a frame truncated to \(n) of \(f.count)")
                _ = frameSummary(cut)  // must not trap either
            }
        }
    }

    func testRandomCorruptionNeverTraps() {
        // Deterministic xorshift so failures reproduce.
        var s: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let base = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 43512, dstPort: 7000,
                                    seq: 1, ack: 1, flags: [.syn], window: 1000, mss: 1460, windowScale: 7,
                                    payload: Array("data".utf8)[...])
        for _ in 0..<20_000 {
            var f = base
            for _ in 0..<(1 + Int(next() % 4)) {
                let i = 14 + Int(next() % UInt64(f.count - 14))
                f[i] = UInt8(truncatingIfNeeded: next())
            }
            if next() % 4 == 0 { f = Array(f[0..<Int(next() % UInt64(f.count + 1))]) }
            _ = try? parseAll(f)
            if let ip = try? IPv4Header.parse(f, at: 14) {
                _ = try? TCPHeader.parse(f, ip: ip, verifyChecksum: false)
                _ = try? UDPHeader.parse(f, ip: ip)
            }
            _ = frameSummary(f)
        }
    }

    // MARK: frameSummary

    func testFrameSummaryTCPLooksLikeTcpdump() {
        let f = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 43512, dstPort: 7000,
                                 seq: 1, ack: 1, flags: [.psh, .ack], window: 502, payload: Array("INCR\n".utf8)[...])
        XCTAssertEqual(frameSummary(f), "IP 10.0.0.1.43512 > 10.0.0.100.7000: Flags [P.], seq 1:6, ack 1, win 502, length 5")

        let syn = FrameBuilder.tcp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 43512, dstPort: 7000,
                                   seq: 1000, ack: 0, flags: [.syn], window: 64240, mss: 1460, windowScale: 7)
        XCTAssertEqual(frameSummary(syn), "IP 10.0.0.1.43512 > 10.0.0.100.7000: Flags [S], seq 1000, win 64240, mss 1460, wscale 7, length 0")

        let ack = FrameBuilder.tcp(ethSrc: macB, ethDst: macA, src: ipB, dst: ipA, srcPort: 7000, dstPort: 43512,
                                   seq: 5, ack: 6, flags: [.ack], window: 2048)
        XCTAssertEqual(frameSummary(ack), "IP 10.0.0.100.7000 > 10.0.0.1.43512: Flags [.], ack 6, win 2048, length 0")

        let fin = FrameBuilder.tcp(ethSrc: macB, ethDst: macA, src: ipB, dst: ipA, srcPort: 7000, dstPort: 43512,
                                   seq: 5, ack: 6, flags: [.fin, .ack], window: 2048)
        XCTAssertEqual(frameSummary(fin), "IP 10.0.0.100.7000 > 10.0.0.1.43512: Flags [F.], seq 5, ack 6, win 2048, length 0")
    }

    func testFrameSummaryOtherFrames() {
        let req = ARPPacket(op: ARPPacket.request, senderMAC: macA, senderIP: ipA, targetMAC: .zero, targetIP: ipB)
            .frame(ethDst: .broadcast, ethSrc: macA)
        XCTAssertEqual(frameSummary(req), "ARP, Request who-has 10.0.0.100 tell 10.0.0.1")
        let rep = ARPPacket(op: ARPPacket.reply, senderMAC: macB, senderIP: ipB, targetMAC: macA, targetIP: ipA)
            .frame(ethDst: macA, ethSrc: macB)
        XCTAssertEqual(frameSummary(rep), "ARP, Reply 10.0.0.100 is-at 02:00:00:00:00:10")
        XCTAssertEqual(frameSummary(ARPPacket.gratuitous(mac: macB, ip: ipB)), "ARP, Announcement 10.0.0.100 is-at 02:00:00:00:00:10")
        let u = FrameBuilder.udp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, srcPort: 5353, dstPort: 7001, payload: [1, 2, 3][...])
        XCTAssertEqual(frameSummary(u), "IP 10.0.0.1.5353 > 10.0.0.100.7001: UDP, length 3")
        let ping = FrameBuilder.icmp(ethSrc: macA, ethDst: macB, src: ipA, dst: ipB, type: 8, code: 0, rest: 0, body: [0, 0][...])
        XCTAssertEqual(frameSummary(ping), "IP 10.0.0.1 > 10.0.0.100: ICMP echo request, length 2")
        XCTAssertEqual(frameSummary([1, 2, 3]), "truncated frame (3 bytes)")
        var v6: [UInt8] = []
        EthernetHeader(dst: macB, src: macA, etherType: EtherType.ipv6).write(into: &v6)
        XCTAssertEqual(frameSummary(v6), "IP6 frame 02:00:00:00:00:01 > 02:00:00:00:00:10")
        var bad = u; bad[14 + 10] ^= 0xFF
        XCTAssertEqual(frameSummary(bad), "IP malformed (\(u.count) bytes)")
    }
}
