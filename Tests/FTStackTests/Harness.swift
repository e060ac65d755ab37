import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// A TCP segment the stack emitted, parsed and checksum-verified.
struct Seg: CustomStringConvertible {
    let frame: [UInt8]
    let eth: EthernetHeader
    let ip: IPv4Header
    let tcp: TCPHeader
    var payload: [UInt8] { Array(frame[tcp.payload]) }
    var text: String { String(decoding: payload, as: UTF8.self) }
    var flags: TCPFlags { tcp.flags }
    var seq: UInt32 { tcp.seq }
    var ack: UInt32 { tcp.ack }
    var window: UInt16 { tcp.window }
    /// Sequence space consumed (payload + SYN + FIN).
    var seqLen: UInt32 {
        UInt32(tcp.payload.count) + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }
    var description: String { frameSummary(frame) }

    init(_ f: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws {
        frame = f
        eth = try EthernetHeader.parse(f)
        guard eth.etherType == EtherType.ipv4 else { throw WireError.unsupported }
        ip = try IPv4Header.parse(f, at: 14)
        guard ip.proto == IPProtocol.tcp else { throw WireError.unsupported }
        tcp = try TCPHeader.parse(f, ip: ip)  // verifies the stack's checksum
    }
}

/// Owns a stack and the hand-driven clock.
final class Harness {
    let stack: Stack
    var now: Nanos = 1_000 * sec
    /// Every frame the stack emitted, in order (for determinism checks).
    var transcript: [[UInt8]] = []

    init(_ config: StackConfig = applianceConfig(), services: [String] = applianceServices) {
        stack = makeStack(config, services: services)
    }

    @discardableResult
    func input(_ f: [UInt8]) -> [[UInt8]] {
        var out = Frames()
        stack.handleFrame(f, now: now, out: &out)
        transcript += out.wireFrames
        return out.wireFrames
    }

    @discardableResult
    func advance(to t: Nanos) -> [[UInt8]] {
        precondition(t >= now)
        now = t
        var out = Frames()
        stack.advanceTime(to: t, out: &out)
        transcript += out.wireFrames
        return out.wireFrames
    }

    @discardableResult
    func advance(by d: Nanos) -> [[UInt8]] { advance(to: now + d) }

    func client(port: UInt16 = 43512, serverPort: UInt16 = 7000, ip: IPv4Address = clientIP,
                mac: MACAddress = clientMAC, isn: UInt32 = 1_000_000) -> Client {
        Client(self, port: port, serverPort: serverPort, ip: ip, mac: mac, isn: isn)
    }

    func info(_ c: Client) -> ConnectionInfo? {
        stack.connections.first { $0.key == ConnKey(remote: Endpoint(ip: c.ip, port: c.port), localPort: c.serverPort) }
    }

    func tcb(_ c: Client) -> TCB? {
        stack.conns[ConnKey(remote: Endpoint(ip: c.ip, port: c.port), localPort: c.serverPort)]
    }
}

/// A scripted TCP peer. It crafts segments with `tcpFrame` and parses what
/// the stack sends back; it never retransmits on its own.
final class Client {
    let h: Harness
    let port: UInt16
    let serverPort: UInt16
    let ip: IPv4Address
    let mac: MACAddress
    let isn: UInt32
    /// Our next sequence number.
    var sndNxt: UInt32
    /// What we acknowledge: the server's next expected byte.
    var rcvNxt: UInt32 = 0
    var serverISS: UInt32 = 0
    var window: UInt16 = 65535
    /// Bytes received in order from the server.
    var received: [UInt8] = []
    var receivedText: String { String(decoding: received, as: UTF8.self) }

    init(_ h: Harness, port: UInt16, serverPort: UInt16, ip: IPv4Address, mac: MACAddress, isn: UInt32) {
        self.h = h; self.port = port; self.serverPort = serverPort; self.ip = ip; self.mac = mac; self.isn = isn
        sndNxt = isn
    }

    func frame(_ flags: TCPFlags, seq: UInt32? = nil, ack: UInt32? = nil, window: UInt16? = nil,
               payload: [UInt8] = [], mss: UInt16? = nil, windowScale: UInt8? = nil) -> [UInt8] {
        tcpFrame(seq: seq ?? sndNxt, ack: flags.contains(.ack) ? (ack ?? rcvNxt) : (ack ?? 0), flags: flags,
                 window: window ?? self.window, mss: mss, windowScale: windowScale, payload: payload,
                 srcPort: port, dstPort: serverPort, src: ip, ethSrc: mac)
    }

    /// Sends a raw frame and returns the TCP segments the stack answered with.
    @discardableResult
    func sendRaw(_ f: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> [Seg] {
        let out = h.input(f)
        return out.compactMap { try? Seg($0) }.filter { $0.tcp.dstPort == port && $0.ip.dst == ip }
    }

    /// Sends a segment; advances `sndNxt` by the sequence space it uses unless `seq` is given.
    @discardableResult
    func send(_ flags: TCPFlags, payload: [UInt8] = [], seq: UInt32? = nil, ack: UInt32? = nil,
              window: UInt16? = nil) -> [Seg] {
        let f = frame(flags, seq: seq, ack: ack, window: window, payload: payload)
        if seq == nil {
            sndNxt = sndNxt &+ UInt32(payload.count) &+ (flags.contains(.syn) ? 1 : 0) &+ (flags.contains(.fin) ? 1 : 0)
        }
        return sendRaw(f)
    }

    @discardableResult
    func send(_ s: String, flags: TCPFlags = [.psh, .ack], window: UInt16? = nil) -> [Seg] {
        send(flags, payload: Array(s.utf8), window: window)
    }

    /// Takes the server's in-order data into `received` and moves `rcvNxt` (does not send an ACK).
    func absorb(_ segs: [Seg]) {
        for s in segs where !s.flags.contains(.rst) {
            if s.seq == rcvNxt {
                received += s.payload
                rcvNxt = rcvNxt &+ s.seqLen
            }
        }
    }

    /// SYN, expects SYN-ACK, sends the final ACK. Returns the SYN-ACK.
    @discardableResult
    func connect(mss: UInt16? = 1460, windowScale: UInt8? = nil, synWindow: UInt16? = nil,
                 file: StaticString = #filePath, line: UInt = #line) -> Seg? {
        let syn = frame([.syn], window: synWindow, mss: mss, windowScale: windowScale)
        sndNxt = isn &+ 1
        let r = sendRaw(syn)
        guard r.count == 1, let sa = r.first, sa.flags == [.syn, .ack] else {
            XCTFail("expected one SYN-ACK, got \(r)", file: file, line: line); return nil
        }
        XCTAssertEqual(sa.ack, isn &+ 1, file: file, line: line)
        serverISS = sa.seq
        rcvNxt = sa.seq &+ 1
        let after = send([.ack])
        XCTAssertEqual(after.count, 0, "the handshake ACK needs no answer: \(after)", file: file, line: line)
        return sa
    }

    /// Sends `s`, absorbs the answer and ACKs it. Returns the answer segments.
    @discardableResult
    func request(_ s: String) -> [Seg] {
        let r = send(s)
        absorb(r)
        return r
    }

    /// Acknowledges everything absorbed so far.
    @discardableResult
    func ackAll(window: UInt16? = nil) -> [Seg] { send([.ack], window: window) }
}

extension Array where Element == [UInt8] {
    var segs: [Seg] { compactMap { try? Seg($0) } }
}
