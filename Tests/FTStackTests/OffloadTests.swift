import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// TAP offloads in the stack (issue 14): TCP super-segments out (TSO),
/// frames whose checksum the kernel vouched for in, super-segments in.
final class OffloadTests: XCTestCase {
    /// Pushes `total` bytes through echo with MSS-sized client segments and a
    /// large window, ACKing what arrives; returns the harness.
    func echo(tso: Int, total: Int) throws -> (Harness, Client) {
        var config = applianceConfig()
        config.tsoMaxBytes = tso
        let h = Harness(config)
        let c = h.client(serverPort: 7)
        c.window = 65535
        _ = try XCTUnwrap(c.connect(mss: 1460, windowScale: 7))
        let data: [UInt8] = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        var off = 0
        while off < total {
            let n = min(1448 * 8, total - off)
            // Eight segments back to back with our window closed, so the echo
            // piles up; then an ACK that opens it: the stack sends it all at once.
            for k in stride(from: 0, to: n, by: 1448) {
                let len = min(1448, n - k)
                c.absorb(c.send([.ack], payload: Array(data[(off + k)..<(off + k + len)]), window: 0))
            }
            off += n
            c.absorb(c.ackAll(window: 65535))
        }
        for _ in 0..<50 where c.received.count < total { c.absorb(c.ackAll()); h.advance(by: 50 * ms) }
        XCTAssertEqual(c.received, data, "every byte echoed, in order")
        return (h, c)
    }

    /// A super-segment is a packaging of the segments the stack would have
    /// sent one by one: cut as the kernel cuts it, the wire sees the same
    /// frames, byte for byte (headers, IP ids, windows, options, PSH).
    func testSuperSegmentsCutIntoTheSameWireFramesAsSingleSegments() throws {
        let (plain, _) = try echo(tso: 0, total: 300_000)
        let (tso, _) = try echo(tso: StackConfig.tsoLimit, total: 300_000)
        XCTAssertEqual(tso.transcript.count, plain.transcript.count)
        XCTAssertTrue(tso.transcript == plain.transcript, "wire frames differ with TSO")
        XCTAssertEqual(tso.stack.counters.tcpSegmentsOut, plain.stack.counters.tcpSegmentsOut)
        XCTAssertLessThan(tso.stack.counters.framesOut, plain.stack.counters.framesOut,
                          "with TSO the stack emitted fewer, larger frames")
    }

    func testSuperSegmentCarriesWholeSegmentsAndAPartialChecksum() throws {
        var config = applianceConfig()
        config.tsoMaxBytes = StackConfig.tsoLimit
        let stack = makeStack(config)
        // Connect and send one request whose echo needs several segments.
        var out = Frames()
        stack.handleFrame(tcpFrame(seq: 100, flags: [.syn], mss: 1460, windowScale: 7, dstPort: 7), now: 1, out: &out)
        let sa = try Seg(out[0])
        out.removeAll()
        stack.handleFrame(tcpFrame(seq: 101, ack: sa.seq &+ 1, flags: [.ack], window: 2000, dstPort: 7), now: 2, out: &out)
        let payload = [UInt8](repeating: 0x61, count: 1448 * 3 + 100)
        out.removeAll()
        stack.handleFrame(tcpFrame(seq: 101, ack: sa.seq &+ 1, flags: [.ack, .psh], window: 2000, payload: payload,
                                   dstPort: 7), now: 3, out: &out)
        let supers = out.indices.filter { out.segmentSize(at: $0) > 0 }
        XCTAssertEqual(supers.count, 1, "the echo leaves as one super-segment: \(out.map(frameSummary))")
        let i = try XCTUnwrap(supers.first)
        XCTAssertEqual(out.segmentSize(at: i), 1460, "segments of the peer's MSS (no options)")
        let f = out[i]
        let ip = try IPv4Header.parse(f, at: 14)
        XCTAssertThrowsError(try TCPHeader.parse(f, ip: ip), "the checksum is partial (pseudo-header only)")
        let t = try TCPHeader.parse(f, ip: ip, verifyChecksum: false)
        XCTAssertEqual(t.payload.count, payload.count)
        let hdr = TCPSegmentation.header(for: f, segmentSize: 1460)
        XCTAssertEqual(hdr.gsoType, VirtioNetHeader.gsoTCPv4)
        XCTAssertEqual(hdr.flags, VirtioNetHeader.needsChecksum)
        XCTAssertEqual(Int(hdr.csumStart), 34)
        XCTAssertEqual(Int(hdr.headerLength), t.payload.lowerBound)
        let wire = out.wireFrames.compactMap { try? Seg($0) }  // Seg verifies every checksum
        XCTAssertEqual(wire.map(\.payload.count), [1460, 1460, 1460, 64])
        XCTAssertEqual(wire.map { $0.flags.contains(.psh) }, [false, false, false, true])
        XCTAssertEqual(wire.map { $0.ip.identification }, (0..<4).map { ip.identification &+ UInt16($0) })
    }

    func testTrustedFrameSkipsTheTransportChecksumOnly() throws {
        var syn = tcpFrame(seq: 100, flags: [.syn], mss: 1460)
        syn[14 + 20 + 16] ^= 0xFF  // break the TCP checksum, as a partial checksum looks
        let stack = makeStack()
        var out = Frames()
        stack.handleFrame(syn, now: 1, out: &out)
        XCTAssertTrue(out.isEmpty)
        XCTAssertEqual(stack.counters.badChecksum, 1)
        stack.handleFrame(syn, now: 2, checksumTrusted: true, out: &out)
        XCTAssertEqual(try out.map { try Seg($0).flags }, [[.syn, .ack]])
        // The IP header checksum is still verified.
        var badIP = syn
        badIP[14 + 10] ^= 0xFF
        out.removeAll()
        stack.handleFrame(badIP, now: 3, checksumTrusted: true, out: &out)
        XCTAssertTrue(out.isEmpty)
        XCTAssertEqual(stack.counters.badChecksum, 2)
    }

    /// A client's TSO or the kernel's GRO hands the stack one in-order
    /// segment of many MSS: accepted whole and acknowledged at once (RFC
    /// 5681 4.2 asks for an ACK at least every second full-sized segment).
    func testSuperSegmentInIsAcceptedWholeAndAckedAtOnce() throws {
        let h = Harness()
        let c = h.client(serverPort: 9)
        _ = try XCTUnwrap(c.connect(mss: 1460, windowScale: 7))
        // Past the quick-ACK start, where every segment is acknowledged anyway.
        for _ in 0..<20 { c.send([.ack], payload: [UInt8](repeating: 1, count: 100)) }
        let big = [UInt8](repeating: 7, count: 60_000)
        let r = c.sendRaw(c.frame([.ack], payload: big))
        c.sndNxt = c.sndNxt &+ UInt32(big.count)
        XCTAssertEqual(r.count, 1, "one ACK for the super-segment: \(r)")
        XCTAssertEqual(r.first?.ack, c.sndNxt)
    }
}
