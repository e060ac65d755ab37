import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

private let from = Endpoint(ip: clientIP, port: 5555)

private func text(_ b: [UInt8]?) -> String? { b.map { String(decoding: $0, as: UTF8.self) } }

final class UDPCounterServiceTests: XCTestCase {

    func ask(_ s: UDPCounterService, _ t: String) -> String? { text(s.receive(from: from, Array(t.utf8)[...])) }

    func testIncrAndGet() {
        let counter = CounterState()
        let s = UDPCounterService(counter: counter)
        XCTAssertEqual(ask(s, "alice 1 INCR"), "alice 1 1\n")
        XCTAssertEqual(ask(s, "alice 2 INCR\n"), "alice 2 2\n")
        XCTAssertEqual(ask(s, "bob 1 GET\r\n"), "bob 1 2\n")
        XCTAssertEqual(ask(s, "bob 2 INCR"), "bob 2 3\n")
        XCTAssertEqual(counter.value, 3)
    }

    func testRepeatedSeqGetsCachedReplyWithoutIncrementing() {
        let counter = CounterState()
        let s = UDPCounterService(counter: counter)
        XCTAssertEqual(ask(s, "alice 7 INCR"), "alice 7 1\n")
        XCTAssertEqual(ask(s, "bob 1 INCR"), "bob 1 2\n")
        // alice retries seq 7: the same answer, no second increment.
        XCTAssertEqual(ask(s, "alice 7 INCR"), "alice 7 1\n")
        XCTAssertEqual(ask(s, "alice 7 INCR"), "alice 7 1\n")
        XCTAssertEqual(counter.value, 2)
        // Even a GET retry returns the value at the time of the first execution.
        XCTAssertEqual(ask(s, "bob 2 GET"), "bob 2 2\n")
        XCTAssertEqual(ask(s, "alice 8 INCR"), "alice 8 3\n")
        XCTAssertEqual(ask(s, "bob 2 GET"), "bob 2 2\n")
    }

    func testOlderSeqIsStale() {
        let counter = CounterState()
        let s = UDPCounterService(counter: counter)
        XCTAssertEqual(ask(s, "alice 10 INCR"), "alice 10 1\n")
        XCTAssertEqual(ask(s, "alice 9 INCR"), "alice 9 ERR stale\n")
        XCTAssertEqual(ask(s, "alice 0 GET"), "alice 0 ERR stale\n")
        XCTAssertEqual(counter.value, 1)
        // Sequence numbers may jump forward.
        XCTAssertEqual(ask(s, "alice 1000 INCR"), "alice 1000 2\n")
        XCTAssertEqual(ask(s, "alice 10 INCR"), "alice 10 ERR stale\n")
        // Clients are independent.
        XCTAssertEqual(ask(s, "bob 1 INCR"), "bob 1 3\n")
    }

    func testMalformedRequests() {
        let counter = CounterState()
        let s = UDPCounterService(counter: counter)
        for bad in ["", "INCR", "alice INCR", "alice x INCR", "alice -1 INCR", "alice 1 INCR extra",
                    "alice 18446744073709551616 INCR", String(repeating: "n", count: 65) + " 1 INCR"] {
            XCTAssertEqual(ask(s, bad), "ERR malformed\n", bad)
        }
        XCTAssertEqual(ask(s, "alice 1 DECR"), "alice 1 ERR unknown command\n")
        XCTAssertEqual(ask(s, "alice 1 incr"), "alice 1 ERR unknown command\n")
        XCTAssertEqual(counter.value, 0)
        // A 64-byte client name is fine; multiple spaces are separators.
        XCTAssertEqual(ask(s, String(repeating: "n", count: 64) + " 1 INCR"), String(repeating: "n", count: 64) + " 1 1\n")
        XCTAssertEqual(ask(s, "carol   5   GET"), "carol 5 1\n")
        // An unknown command does not take a sequence number.
        XCTAssertEqual(ask(s, "alice 1 INCR"), "alice 1 2\n")
    }

    func testBoundedTableEvictsLeastRecentlyUsedDeterministically() {
        let counter = CounterState()
        let s = UDPCounterService(counter: counter, maxClients: 3)
        XCTAssertEqual(ask(s, "a 1 INCR"), "a 1 1\n")
        XCTAssertEqual(ask(s, "b 1 INCR"), "b 1 2\n")
        XCTAssertEqual(ask(s, "c 1 INCR"), "c 1 3\n")
        // Touch "a" (a retry refreshes its stamp): "b" is now least recently used.
        XCTAssertEqual(ask(s, "a 1 INCR"), "a 1 1\n")
        XCTAssertEqual(ask(s, "d 1 INCR"), "d 1 4\n")
        XCTAssertEqual(s.evictions, 1)
        XCTAssertEqual(s.clients.keys.sorted(), ["a", "c", "d"])
        // "b" was forgotten: its old seq executes again (the documented cost of a bounded table).
        XCTAssertEqual(ask(s, "b 1 INCR"), "b 1 5\n")
        XCTAssertEqual(s.clients.keys.sorted(), ["a", "b", "d"], "c was the least recently used")
        XCTAssertEqual(s.evictions, 2)
        // A known client with a new seq never evicts anyone.
        XCTAssertEqual(ask(s, "a 2 INCR"), "a 2 6\n")
        XCTAssertEqual(s.evictions, 2)
        XCTAssertEqual(s.clients.count, 3)
    }

    func testEvictionIsIndependentOfInsertionHistory() {
        // Two services reaching the same logical table through different
        // dictionary histories must evict the same client and encode the same state.
        func run(_ names: [String]) -> (UDPCounterService, [UInt8]) {
            let s = UDPCounterService(counter: CounterState(), maxClients: 4)
            for n in names { _ = s.receive(from: from, Array("\(n) 1 GET".utf8)[...]) }
            var w = ByteWriter(); s.encodeState(into: &w)
            return (s, w.bytes)
        }
        let names = (0..<50).map { "client\($0)" }
        let (a, ea) = run(names)
        let (b, eb) = run(names)
        XCTAssertEqual(ea, eb)
        XCTAssertEqual(a.clients.keys.sorted(), ["client46", "client47", "client48", "client49"])
        XCTAssertEqual(b.evictions, 46)
    }

    func testEncodeStateChangesWithState() {
        let s = UDPCounterService(counter: CounterState())
        var w0 = ByteWriter(); s.encodeState(into: &w0)
        _ = s.receive(from: from, Array("a 1 GET".utf8)[...])
        var w1 = ByteWriter(); s.encodeState(into: &w1)
        XCTAssertNotEqual(w0.bytes, w1.bytes)
        _ = s.receive(from: from, Array("a 1 GET".utf8)[...])  // retry: only the use stamp changes
        var w2 = ByteWriter(); s.encodeState(into: &w2)
        XCTAssertNotEqual(w1.bytes, w2.bytes)
    }
}

final class StreamServiceTests: XCTestCase {

    func feed(_ s: StreamService, _ id: ConnectionID, _ t: String, space: Int = 1 << 20) -> (Int, String, Bool) {
        var io = StreamIO()
        let bytes = Array(t.utf8)
        let n = s.receive(id, bytes[...], sendSpace: space, io: &io)
        return (n, String(decoding: io.output, as: UTF8.self), io.close)
    }

    func testCounterServiceLinesAndPartials() {
        let counter = CounterState()
        let s = CounterService(counter: counter)
        var io = StreamIO()
        s.opened(1, remote: from, io: &io)
        s.opened(2, remote: from, io: &io)
        XCTAssertTrue(io.output.isEmpty)
        XCTAssertEqual(feed(s, 1, "IN").1, "")
        XCTAssertEqual(feed(s, 2, "GE").1, "")
        XCTAssertEqual(feed(s, 1, "CR\nGET\n").1, "1\n1\n")
        XCTAssertEqual(feed(s, 2, "T\r\n").1, "1\n", "partial lines are per connection")
        XCTAssertEqual(feed(s, 1, "BAD\n").1, "ERR unknown command\n")
        s.closed(1)
        XCTAssertNil(s.partial[1])
    }

    func testCounterServiceFlowControl() {
        let s = CounterService(counter: CounterState())
        var io = StreamIO()
        s.opened(1, remote: from, io: &io)
        // With less than one reply's worth of send space nothing is consumed.
        let (n0, out0, _) = feed(s, 1, "INCR\n", space: 31)
        XCTAssertEqual(n0, 0); XCTAssertEqual(out0, "")
        // With room for one reply, one request is consumed (and then space is short again).
        let (n1, out1, _) = feed(s, 1, "INCR\nINCR\n", space: 33)
        XCTAssertEqual(n1, 5); XCTAssertEqual(out1, "1\n")
        XCTAssertEqual(feed(s, 1, "INCR\n").1, "2\n")
    }

    func testCounterServiceLineTooLong() {
        let s = CounterService(counter: CounterState())
        var io = StreamIO()
        s.opened(1, remote: from, io: &io)
        let (n, out, close) = feed(s, 1, String(repeating: "a", count: 1024))
        XCTAssertEqual(n, 1024); XCTAssertEqual(out, ""); XCTAssertFalse(close)
        let (n2, out2, close2) = feed(s, 1, "a\nINCR\n")
        XCTAssertEqual(n2, 7, "the rest is consumed and dropped")
        XCTAssertEqual(out2, "ERR line too long\n")
        XCTAssertTrue(close2)
        XCTAssertEqual(s.counter.value, 0, "nothing after the long line is executed")
    }

    func testEchoAndDiscard() {
        let e = EchoService()
        XCTAssertEqual(feed(e, 1, "hello").0, 5)
        XCTAssertEqual(feed(e, 1, "hello").1, "hello")
        let (n, out, _) = feed(e, 1, "hello", space: 3)
        XCTAssertEqual(n, 3); XCTAssertEqual(out, "hel")
        var io = StreamIO()
        e.peerClosed(1, io: &io)
        XCTAssertTrue(io.close)

        let d = DiscardService()
        XCTAssertEqual(feed(d, 1, "abc", space: 0).0, 3)
        XCTAssertEqual(feed(d, 1, "de").1, "")
        XCTAssertEqual(d.bytesDiscarded, 5)
    }
}

final class ServiceSpecTests: XCTestCase {

    func testParse() throws {
        XCTAssertEqual(try ServiceSpec.parse("counter:7000"), ServiceSpec(kind: "counter", port: 7000))
        XCTAssertEqual(try ServiceSpec.parse("udp-counter:7001").isUDP, true)
        XCTAssertEqual(try ServiceSpec.parse("echo:7").isUDP, false)
        XCTAssertEqual(try ServiceSpec.parse("discard:65535").port, 65535)
        XCTAssertEqual(try ServiceSpec.parse("udp-echo:1").description, "udp-echo:1")
        for k in ServiceSpec.kinds { XCTAssertEqual(try ServiceSpec.parse("\(k):10").kind, k) }
    }

    func testParseErrors() {
        func expect(_ text: String, _ check: (ServiceSpec.ParseError) -> Bool, line: UInt = #line) {
            XCTAssertThrowsError(try ServiceSpec.parse(text), line: line) { e in
                guard let pe = e as? ServiceSpec.ParseError else { return XCTFail("wrong error \(e)", line: line) }
                XCTAssertTrue(check(pe), "\(text): \(pe)", line: line)
            }
        }
        func isSyntax(_ e: ServiceSpec.ParseError) -> Bool { if case .syntax = e { return true }; return false }
        func isKind(_ e: ServiceSpec.ParseError) -> Bool { if case .unknownKind = e { return true }; return false }
        func isPort(_ e: ServiceSpec.ParseError) -> Bool { if case .badPort = e { return true }; return false }
        expect("", isSyntax)
        expect("counter", isSyntax)
        expect("counter:70:00", isSyntax)
        expect("bogus:7000", isKind)
        expect(":7000", isKind)
        expect("Counter:7000", isKind)
        expect("counter:", isPort)
        expect("counter:0", isPort)
        expect("counter:65536", isPort)
        expect("counter:-1", isPort)
        expect("counter:+80", isPort)
        expect("counter: 80", isPort)
        expect("counter:http", isPort)
        XCTAssertTrue("\(ServiceSpec.ParseError.badPort("x"))".contains("1...65535"))
        XCTAssertTrue("\(ServiceSpec.ParseError.unknownKind("x"))".contains("udp-counter"))
    }

    func testApplianceRejectsDuplicatePortsPerProtocol() throws {
        let cfg = applianceConfig()
        XCTAssertThrowsError(try Appliance.make(config: cfg, services: [
            ServiceSpec(kind: "counter", port: 7), ServiceSpec(kind: "echo", port: 7)]))
        XCTAssertThrowsError(try Appliance.make(config: cfg, services: [
            ServiceSpec(kind: "udp-echo", port: 7), ServiceSpec(kind: "udp-counter", port: 7)]))
        // The same number on TCP and UDP is fine.
        XCTAssertNoThrow(try Appliance.make(config: cfg, services: [
            ServiceSpec(kind: "echo", port: 7), ServiceSpec(kind: "udp-echo", port: 7)]))
    }
}

/// UDP services through the stack: the TCP and UDP counters share one value.
final class ApplianceUDPTests: XCTestCase {
    func udp(_ stack: Stack, port: UInt16, _ t: String) throws -> String? {
        let f = udpFrame(dstPort: port, payload: Array(t.utf8))
        var out = Frames()
        stack.handleFrame(f, now: 0, out: &out)
        guard let r = out.first else { return nil }
        XCTAssertEqual(out.count, 1)
        let ip = try IPv4Header.parse(r, at: 14)
        XCTAssertEqual(ip.dst, clientIP)
        XCTAssertEqual(ip.proto, IPProtocol.udp)
        let u = try UDPHeader.parse(r, ip: ip)
        XCTAssertEqual(u.srcPort, port); XCTAssertEqual(u.dstPort, clientPort)
        return String(decoding: r[u.payload], as: UTF8.self)
    }

    func testUDPServicesThroughStack() throws {
        let stack = try Appliance.make(config: applianceConfig(), services: [
            ServiceSpec(kind: "counter", port: 7000), ServiceSpec(kind: "udp-counter", port: 7001),
            ServiceSpec(kind: "udp-echo", port: 7)])
        XCTAssertEqual(try udp(stack, port: 7, "ping"), "ping")
        XCTAssertEqual(try udp(stack, port: 7001, "c1 1 INCR"), "c1 1 1\n")
        XCTAssertEqual(try udp(stack, port: 7001, "c1 1 INCR"), "c1 1 1\n")
        XCTAssertEqual(try udp(stack, port: 7001, "c1 2 INCR"), "c1 2 2\n")
        // The TCP counter service shares the value.
        let svc = try XCTUnwrap(stack.streamServices[7000] as? CounterService)
        XCTAssertEqual(svc.counter.value, 2)
        XCTAssertEqual(stack.counters.udpIn, 4)
    }
}
