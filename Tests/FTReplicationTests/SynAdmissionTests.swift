import XCTest
import FTWire
import FTStack
import FTReplication
import FTTestSupport

/// SYN admission before logging (SynAdmission.swift): what a flood of
/// spoofed SYNs may put into the log, and what real clients keep.
final class SynAdmissionTests: XCTestCase {
    func spoofedSYN(_ i: UInt32) -> [UInt8] {
        tcpFrame(seq: 1000 &+ i, flags: [.syn], mss: 1460, srcPort: UInt16(truncatingIfNeeded: 1024 &+ i),
                 src: IPv4Address(raw: 0x0B00_0000 | i))
    }

    func config(rate: Int) -> SynAdmission.Config {
        var c = SynAdmission.Config(); c.rate = rate; return c
    }

    func testNewSourcesAreLimitedToTheRateAndTheRestShed() {
        let stack = makeStack()
        var sa = SynAdmission(config: config(rate: 100))
        var admitted = 0
        // 1,000 spoofed SYNs within one millisecond: the burst (one second's worth) passes.
        for i in 0..<1000 where sa.admit(spoofedSYN(UInt32(i)), stack: stack, now: 10 * sec + Nanos(i) * 1000) { admitted += 1 }
        XCTAssertEqual(admitted, 100)
        XCTAssertEqual(sa.shed, 900)
        XCTAssertEqual(sa.admittedNew, 100)
        // Half a second later, 50 more tokens.
        admitted = 0
        for i in 1000..<2000 where sa.admit(spoofedSYN(UInt32(i)), stack: stack, now: 10 * sec + 500 * ms) { admitted += 1 }
        XCTAssertEqual(admitted, 50)
    }

    func testOtherFramesPassUntouched() {
        let stack = makeStack()
        var sa = SynAdmission(config: config(rate: 1))
        XCTAssertTrue(sa.admit(spoofedSYN(0), stack: stack, now: sec))
        XCTAssertFalse(sa.admit(spoofedSYN(1), stack: stack, now: sec))
        // ACKs, data, RSTs, UDP, ARP and SYNs to another address are not SYN admission's business.
        XCTAssertTrue(sa.admit(tcp(5, 1, [.ack], "x"), stack: stack, now: sec))
        XCTAssertTrue(sa.admit(tcp(5, 0, [.rst]), stack: stack, now: sec))
        XCTAssertTrue(sa.admit(udpFrame(dstPort: udpCounterPort, payload: [1, 2]), stack: stack, now: sec))
        XCTAssertTrue(sa.admit(arpFrame(target: applianceAddress), stack: stack, now: sec))
        XCTAssertTrue(sa.admit(tcpFrame(seq: 9, flags: [.syn], dst: IPv4Address(10, 0, 0, 7)), stack: stack, now: sec))
        XCTAssertEqual(sa.shed, 1)
    }

    func testRateZeroAdmitsEverything() {
        let stack = makeStack()
        var sa = SynAdmission(config: config(rate: 0))
        for i in 0..<10_000 { XCTAssertTrue(sa.admit(spoofedSYN(UInt32(i)), stack: stack, now: sec)) }
        XCTAssertEqual(sa.shed, 0)
    }

    func testARetransmittedSYNIsAdmittedWhileTheFloodGoesOn() {
        let stack = makeStack()
        var sa = SynAdmission(config: config(rate: 10))
        var t = 100 * sec
        for i in 0..<10 { _ = sa.admit(spoofedSYN(UInt32(i)), stack: stack, now: t) }  // the burst is spent
        let client = tcp(777, 0, [.syn], sport: 50000)
        XCTAssertFalse(sa.admit(client, stack: stack, now: t), "a new source's SYN is shed with the flood's")
        // The flood keeps every token taken; the client resends its SYN after 1 s.
        for step in 0..<100 {
            t += 10 * ms
            for i in 0..<20 { _ = sa.admit(spoofedSYN(UInt32(1000 + step * 20 + i)), stack: stack, now: t) }
        }
        XCTAssertTrue(sa.admit(client, stack: stack, now: t + 1), "the same SYN again (a retransmission) is admitted")
        XCTAssertEqual(sa.admittedRetransmitted, 1)
        // A SYN remembered longer ago than rememberFor is a new one again.
        let late = tcp(888, 0, [.syn], sport: 50001)
        for i in 0..<20 { _ = sa.admit(spoofedSYN(UInt32(90_000 + i)), stack: stack, now: t + 2) }
        XCTAssertFalse(sa.admit(late, stack: stack, now: t + 2))
        for i in 0..<20 { _ = sa.admit(spoofedSYN(UInt32(95_000 + i)), stack: stack, now: t + 11 * sec) }
        XCTAssertFalse(sa.admit(late, stack: stack, now: t + 11 * sec + 1), "forgotten after 10 s")
    }

    func testASourceWithAConnectionIsKnownAndAlwaysAdmitted() {
        let stack = makeStack()
        var out = Frames()
        var sa = SynAdmission(config: config(rate: 5))
        let t = 50 * sec
        // The client opens a connection (logged and applied as usual).
        let syn = tcp(100, 0, [.syn])
        XCTAssertTrue(sa.admit(syn, stack: stack, now: t))
        stack.handleFrame(syn, now: t, out: &out)
        guard let (synAck, _) = out.compactMap(parseTCP).first else { return XCTFail("no SYN-ACK") }
        let ack = tcp(101, synAck.seq &+ 1, [.ack])
        XCTAssertTrue(sa.admit(ack, stack: stack, now: t + ms))
        stack.handleFrame(ack, now: t + ms, out: &out)
        let data = tcp(101, synAck.seq &+ 1, [.ack, .psh], "INCR\n")
        XCTAssertTrue(sa.admit(data, stack: stack, now: t + 2 * ms))  // a segment of a connection: known now
        // A flood spends every token...
        for i in 0..<100 { _ = sa.admit(spoofedSYN(UInt32(i)), stack: stack, now: t + 3 * ms) }
        XCTAssertEqual(sa.shed, 96, "the burst of 5 less the client's own SYN")
        // ...and the known client's new connections still get in, from any port.
        for p in 0..<50 {
            XCTAssertTrue(sa.admit(tcp(UInt32(5000 + p), 0, [.syn], sport: UInt16(41000 + p)), stack: stack, now: t + 4 * ms))
        }
        XCTAssertEqual(sa.admittedKnown, 50)
        // An ACK that belongs to no connection (a spoofer guessing) makes no source known.
        let stranger = IPv4Address(10, 9, 9, 9)
        XCTAssertTrue(sa.admit(tcpFrame(seq: 1, ack: 1, flags: [.ack], src: stranger), stack: stack, now: t + 5 * ms))
        XCTAssertFalse(sa.admit(tcpFrame(seq: 2, flags: [.syn], src: stranger), stack: stack, now: t + 5 * ms))
    }
}
