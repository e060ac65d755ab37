import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// ARP, ICMP, UDP-without-service, classify() and malformed-input handling.
final class LinkAndIPTests: XCTestCase {

    // MARK: ARP

    func testARPRequestForOurIPGetsReply() throws {
        let h = Harness()
        for dst in [MACAddress.broadcast, applianceMAC] {  // broadcast and unicast (cache refresh) requests
            let req = arpFrame(target: applianceAddress, ethDst: dst)
            XCTAssertEqual(h.stack.classify(req), .accept)
            let out = h.input(req)
            XCTAssertEqual(out.count, 1)
            let eth = try EthernetHeader.parse(out[0])
            XCTAssertEqual(eth, EthernetHeader(dst: clientMAC, src: applianceMAC, etherType: EtherType.arp))
            let a = try ARPPacket.parse(out[0], at: 14)
            XCTAssertEqual(a, ARPPacket(op: ARPPacket.reply, senderMAC: applianceMAC, senderIP: applianceAddress,
                                        targetMAC: clientMAC, targetIP: clientIP))
            XCTAssertEqual(out[0].count, 60)
        }
        XCTAssertEqual(h.stack.counters.arpRepliesSent, 2)
        XCTAssertEqual(h.stack.counters.framesIn, 2)
        XCTAssertEqual(h.stack.counters.framesOut, 2)
    }

    func testARPNotForUsGetsNothing() {
        let h = Harness()
        let other = arpFrame(target: IPv4Address(10, 0, 0, 99))
        XCTAssertEqual(h.stack.classify(other), .ignore)
        XCTAssertTrue(h.input(other).isEmpty)
        // A reply, or a gratuitous announcement of someone else, is not answered either.
        let reply = arpFrame(target: applianceAddress, ethDst: applianceMAC, op: ARPPacket.reply)
        XCTAssertEqual(h.stack.classify(reply), .ignore)
        XCTAssertTrue(h.input(reply).isEmpty)
        XCTAssertTrue(h.input(ARPPacket.gratuitous(mac: clientMAC, ip: clientIP)).isEmpty)
        // A probe claiming our own address as sender is not answered (address conflict, not a request to us).
        XCTAssertTrue(h.input(arpFrame(target: applianceAddress, sender: applianceAddress)).isEmpty)
        // ARP to a different unicast MAC.
        XCTAssertTrue(h.input(arpFrame(target: applianceAddress, ethDst: MACAddress("02:00:00:00:00:99")!)).isEmpty)
        XCTAssertEqual(h.stack.counters.arpRepliesSent, 0)
        XCTAssertEqual(h.stack.counters.notForUs, 5)
    }

    // MARK: ICMP

    func testPingGetsEchoReplyWithSameIdSeqAndPayload() throws {
        let h = Harness()
        let body: [UInt8] = (0..<56).map { UInt8($0) }
        let req = icmpFrame(type: 8, rest: 0xBEEF_0003, body: body, ttl: 64, ipID: 77)
        XCTAssertEqual(h.stack.classify(req), .accept)
        let out = h.input(req)
        XCTAssertEqual(out.count, 1)
        let f = out[0]
        XCTAssertEqual(try EthernetHeader.parse(f), EthernetHeader(dst: clientMAC, src: applianceMAC, etherType: EtherType.ipv4))
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertEqual(ip.src, applianceAddress); XCTAssertEqual(ip.dst, clientIP)
        XCTAssertEqual(ip.proto, IPProtocol.icmp); XCTAssertEqual(ip.ttl, 64)
        let p = ip.payload
        XCTAssertEqual(f[p.lowerBound], 0, "echo reply"); XCTAssertEqual(f[p.lowerBound + 1], 0)
        XCTAssertEqual(f.readBE32(p.lowerBound + 4), 0xBEEF_0003, "same identifier and sequence number")
        XCTAssertEqual(Array(f[(p.lowerBound + 8)..<p.upperBound]), body)
        var c = InternetChecksum(); c.add(f, p)
        XCTAssertEqual(c.value, 0)
        XCTAssertEqual(h.stack.counters.icmpEchoReplies, 1)
    }

    func testICMPBadChecksumAndNonEchoAreDropped() {
        let h = Harness()
        var bad = icmpFrame(type: 8, rest: 1, body: [1, 2, 3])
        bad[bad.count - 1] ^= 0xFF
        XCTAssertTrue(h.input(bad).isEmpty)
        XCTAssertEqual(h.stack.counters.badChecksum, 1)
        let reply = icmpFrame(type: 0, rest: 1, body: [])
        XCTAssertTrue(h.input(reply).isEmpty)
        var short = icmpFrame(type: 8, rest: 1, body: [])
        // Cut the ICMP message to 4 bytes (and fix the IP length and checksum).
        short = Array(short[0..<38])
        short.writeBE16(24, at: 16); short.writeBE16(0, at: 24)
        var c = InternetChecksum(); c.add(short, 14..<34); short.writeBE16(c.value, at: 24)
        XCTAssertTrue(h.input(short).isEmpty)
        XCTAssertEqual(h.stack.counters.malformed, 1)
        XCTAssertEqual(h.stack.counters.icmpEchoReplies, 0)
    }

    // MARK: UDP

    func testUDPToClosedPortGetsPortUnreachable() throws {
        let h = Harness()
        let payload: [UInt8] = Array("hello there".utf8)
        let dgram = udpFrame(srcPort: 5555, dstPort: 9999, payload: payload, ipID: 42)
        let out = h.input(dgram)
        XCTAssertEqual(out.count, 1)
        let f = out[0]
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertEqual(ip.proto, IPProtocol.icmp); XCTAssertEqual(ip.dst, clientIP); XCTAssertEqual(ip.src, applianceAddress)
        let p = ip.payload.lowerBound
        XCTAssertEqual(f[p], 3, "destination unreachable"); XCTAssertEqual(f[p + 1], 3, "port unreachable")
        // The body quotes the offending IP header and the first 8 bytes of its payload.
        XCTAssertEqual(Array(f[(p + 8)..<ip.payload.upperBound]), Array(dgram[14..<(14 + 20 + 8)]))
        var c = InternetChecksum(); c.add(f, ip.payload)
        XCTAssertEqual(c.value, 0)
        XCTAssertEqual(h.stack.counters.udpNoPort, 1)
        XCTAssertEqual(h.stack.counters.udpIn, 1)
    }

    func testUDPBadChecksumAndBadLengthCounted() {
        let h = Harness()
        var bad = udpFrame(srcPort: 5555, dstPort: 9999, payload: [1, 2, 3])
        bad[bad.count - 1] ^= 1
        XCTAssertTrue(h.input(bad).isEmpty)
        XCTAssertEqual(h.stack.counters.badChecksum, 1)
        var badLen = udpFrame(srcPort: 5555, dstPort: 9999, payload: [1, 2, 3])
        badLen.writeBE16(4, at: 34 + 4)
        XCTAssertTrue(h.input(badLen).isEmpty)
        XCTAssertEqual(h.stack.counters.malformed, 1)
        XCTAssertEqual(h.stack.counters.udpNoPort, 0)
    }

    // MARK: Source address sanity (RFC 1122 3.2.1.3, 3.2.2)

    func testMartianSourcesGetNoAnswer() {
        let h = Harness()
        let martians = [IPv4Address(0, 0, 0, 0), IPv4Address(255, 255, 255, 255), IPv4Address(10, 0, 0, 255),
                        IPv4Address(224, 0, 0, 1), IPv4Address(239, 1, 2, 3), IPv4Address(127, 0, 0, 1),
                        IPv4Address(240, 0, 0, 1), applianceAddress]
        for src in martians {
            let udp = udpFrame(srcPort: 5555, dstPort: 9999, payload: [1], src: src)
            XCTAssertTrue(h.input(udp).isEmpty, "ICMP error sent to \(src)")
            let syn = tcpFrame(seq: 1, flags: [.syn], window: 1000, mss: 1460, srcPort: 1000, dstPort: 7000, src: src)
            XCTAssertTrue(h.input(syn).isEmpty, "SYN from \(src) answered")
            let rstBait = tcpFrame(seq: 1, flags: [.syn], window: 1000, srcPort: 1000, dstPort: 1, src: src)
            XCTAssertTrue(h.input(rstBait).isEmpty, "RST sent to \(src)")
            let ping = icmpFrame(type: 8, rest: 1, body: [], src: src)
            XCTAssertTrue(h.input(ping).isEmpty, "echo reply sent to \(src)")
        }
        XCTAssertEqual(h.stack.connectionCount, 0)
        // An ordinary host in another network is still served.
        let ping = icmpFrame(type: 8, rest: 1, body: [], src: IPv4Address(192, 0, 2, 7))
        XCTAssertEqual(h.input(ping).count, 1)
    }

    // MARK: classify

    func testClassify() {
        let h = Harness()
        let s = h.stack
        let tcp = tcpFrame(seq: 1, flags: [.syn], window: 100, srcPort: 1, dstPort: 7000)
        XCTAssertEqual(s.classify(tcp), .accept)
        XCTAssertEqual(s.classify(arpFrame(target: applianceAddress)), .accept)

        var v6: [UInt8] = []
        EthernetHeader(dst: applianceMAC, src: clientMAC, etherType: EtherType.ipv6).write(into: &v6)
        v6 += [UInt8](repeating: 0x60, count: 60)
        XCTAssertEqual(s.classify(v6), .ignore, "IPv6")

        let otherMAC = tcpFrame(seq: 1, flags: [.syn], window: 100, srcPort: 1, dstPort: 7000,
                                ethDst: MACAddress("02:00:00:00:00:11")!)
        XCTAssertEqual(s.classify(otherMAC), .ignore, "other MAC")
        let mcast = udpFrame(srcPort: 5353, dstPort: 5353, payload: [0], dst: IPv4Address(224, 0, 0, 251),
                             ethDst: MACAddress("01:00:5e:00:00:fb")!)
        XCTAssertEqual(s.classify(mcast), .ignore, "multicast")
        let bcastIP = udpFrame(srcPort: 67, dstPort: 68, payload: [0], dst: IPv4Address(10, 0, 0, 255), ethDst: .broadcast)
        XCTAssertEqual(s.classify(bcastIP), .ignore, "IPv4 broadcast")
        XCTAssertEqual(s.classify(arpFrame(target: IPv4Address(10, 0, 0, 2))), .ignore, "ARP for another IP")
        XCTAssertEqual(s.classify(arpFrame(target: applianceAddress, ethDst: applianceMAC, op: ARPPacket.reply)), .ignore, "ARP reply")
        let otherIP = tcpFrame(seq: 1, flags: [.syn], window: 100, srcPort: 1, dstPort: 7000, dst: IPv4Address(10, 0, 0, 101))
        XCTAssertEqual(s.classify(otherIP), .ignore, "IPv4 for another address")
        XCTAssertEqual(s.classify([0xFF, 0xFF]), .ignore, "runt")
        var lldp: [UInt8] = []
        EthernetHeader(dst: applianceMAC, src: clientMAC, etherType: 0x88CC).write(into: &lldp)
        XCTAssertEqual(s.classify(lldp + [0, 0, 0, 0]), .ignore, "other ethertype")

        // Truncated frames addressed to us are accepted so both replicas count them.
        var shortIP = Array(tcp[0..<20])
        XCTAssertEqual(s.classify(shortIP), .accept)
        shortIP = Array(tcp[0..<30])
        XCTAssertEqual(s.classify(shortIP), .accept)
        XCTAssertEqual(s.classify(Array(arpFrame(target: applianceAddress, ethDst: applianceMAC)[0..<20])), .accept)
        XCTAssertEqual(s.classify(Array(arpFrame(target: applianceAddress)[0..<20])), .ignore)
    }

    /// Whatever classify() ignores must be a no-op for handleFrame (apart from
    /// frame counters), or replicas that skip ignored frames would diverge.
    func testIgnoredFramesDoNotChangeProtocolState() {
        let h = Harness()
        let ignored: [[UInt8]] = [
            arpFrame(target: IPv4Address(10, 0, 0, 2)),
            tcpFrame(seq: 1, flags: [.syn], window: 100, srcPort: 1, dstPort: 7000, dst: IPv4Address(10, 0, 0, 101)),
            tcpFrame(seq: 1, flags: [.syn], window: 100, srcPort: 1, dstPort: 7000, ethDst: MACAddress("02:00:00:00:00:11")!),
        ]
        for f in ignored {
            XCTAssertEqual(h.stack.classify(f), .ignore)
            XCTAssertTrue(h.input(f).isEmpty)
        }
        XCTAssertEqual(h.stack.connectionCount, 0)
    }

    // MARK: Malformed input

    func testMalformedFramesAreCountedAndDoNotCrash() {
        let h = Harness()
        let good = tcpFrame(seq: 1, flags: [.syn], window: 100, mss: 1460, payload: Array("xyz".utf8),
                            srcPort: 1234, dstPort: 7000)
        func refreshIP(_ f: inout [UInt8]) {
            let ihl = Int(f[14] & 0x0F) * 4
            f.writeBE16(0, at: 24); var c = InternetChecksum(); c.add(f, 14..<(14 + ihl)); f.writeBE16(c.value, at: 24)
        }
        // Bad IP checksum.
        var badIPSum = good; badIPSum[14 + 8] = 1
        // Bad TCP checksum.
        var badTCPSum = good; badTCPSum[good.count - 1] ^= 0x55
        // TCP data offset of 3 words.
        var badOff = good; badOff[34 + 12] = 3 << 4
        // Fragment.
        var frag = good; frag.writeBE16(0x2000, at: 20); refreshIP(&frag)
        // Bad version.
        var v5 = good; v5[14] = 0x55; refreshIP(&v5)
        // Truncated IP.
        let truncIP = Array(good[0..<30])
        // Total length past the frame.
        var longIP = good; longIP.writeBE16(UInt16(good.count), at: 16); refreshIP(&longIP)
        // IP options.
        var opt = Array(good[0..<34]) + [1, 1, 1, 1] + Array(good[34...])
        opt[14] = 0x46; opt.writeBE16(UInt16(opt.count - 14), at: 16); refreshIP(&opt)
        // ARP with a wrong hardware type.
        var arp = arpFrame(target: applianceAddress); arp[15] = 6

        let cases: [([UInt8], String)] = [
            (badIPSum, "ipsum"), (badTCPSum, "tcpsum"), (badOff, "off"), (frag, "frag"), (v5, "v5"),
            (truncIP, "trunc"), (longIP, "long"), (opt, "opt"), (arp, "arp"), ([1, 2, 3], "runt"),
        ]
        for (f, name) in cases {
            XCTAssertTrue(h.input(f).isEmpty, name)
        }
        let c = h.stack.counters
        XCTAssertEqual(c.badChecksum, 2)
        XCTAssertEqual(c.ipFragmentsDropped, 1)
        XCTAssertEqual(c.ipOptionsDropped, 1)
        XCTAssertEqual(c.malformed, 6)  // off, v5, trunc, long, arp, runt
        XCTAssertEqual(c.framesIn, 10)
        XCTAssertEqual(c.framesOut, 0)
        XCTAssertEqual(c.tcpSegmentsIn, 0)
        XCTAssertEqual(h.stack.connectionCount, 0)
        for (f, name) in cases where f.count >= 34 && name != "arp" {
            XCTAssertEqual(h.stack.classify(f), .accept, "\(name) is for us and must be logged and counted")
        }
    }

    func testRandomGarbageNeverTraps() {
        let h = Harness()
        var s: UInt64 = 0xDEAD_BEEF_CAFE_F00D
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        // Connect one client so corrupt segments also reach a live connection.
        let c = h.client(serverPort: 7)
        c.connect()
        let templates: [[UInt8]] = [
            c.frame([.psh, .ack], payload: Array("hello".utf8)),
            c.frame([.syn], mss: 1460, windowScale: 7),
            udpFrame(srcPort: 1, dstPort: 2, payload: [1]),
            icmpFrame(type: 8, rest: 0, body: []),
        ]
        for i in 0..<20_000 {
            var f = templates[i % templates.count]
            for _ in 0..<(1 + Int(next() % 3)) {
                let k = 14 + Int(next() % UInt64(f.count - 14))
                f[k] = UInt8(truncatingIfNeeded: next())
            }
            if next() % 3 == 0 { f = Array(f[0..<Int(next() % UInt64(f.count + 1))]) }
            h.input(f)
            if i % 1000 == 0 { h.advance(by: 500 * ms) }
        }
        h.advance(by: 3600 * sec)
        XCTAssertGreaterThan(h.stack.counters.badChecksum + h.stack.counters.malformed, 0)
    }

    /// Fuzzed invariant: a frame classify() ignores produces no output and
    /// changes nothing but frame counters, so a replica that never sees ignored
    /// frames stays in step (once counters are set aside).
    func testClassifyIgnoreImpliesNoStateChange() {
        let h = Harness()
        let c = h.client(serverPort: 7)
        c.connect()
        var s: UInt64 = 0x0123_4567_89AB_CDEF
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let templates: [[UInt8]] = [
            c.frame([.psh, .ack], payload: Array("hello".utf8)),
            c.frame([.syn], seq: 5, mss: 1460),
            arpFrame(target: applianceAddress),
            udpFrame(srcPort: 1, dstPort: 2, payload: [1]),
        ]
        var ignored = 0
        for i in 0..<20_000 {
            var f = templates[i % templates.count]
            // Mutate the addressing bytes most of the time so many frames are "not for us".
            for _ in 0..<(1 + Int(next() % 2)) {
                let k: Int
                switch next() % 4 {
                case 0: k = Int(next() % 6)                  // destination MAC
                case 1: k = 12 + Int(next() % 2)             // ethertype
                case 2: k = 14 + 16 + Int(next() % 4)        // IPv4 destination
                default: k = 14 + 24 + Int(next() % 4)       // ARP target IP
                }
                if k < f.count { f[k] = UInt8(truncatingIfNeeded: next()) }
            }
            guard h.stack.classify(f) == .ignore else { continue }
            ignored += 1
            let counters = h.stack.counters
            let digest = h.stack.digest
            XCTAssertTrue(h.input(f).isEmpty, frameSummary(f))
            h.stack.counters = counters
            XCTAssertEqual(h.stack.digest, digest, frameSummary(f))
        }
        XCTAssertGreaterThan(ignored, 1000)
    }
}
