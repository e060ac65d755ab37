import XCTest
import FTWire
@testable import FTStack
@testable import FTServices
import FTTestSupport

/// End-to-end flow: a well-behaved client pushes a large stream through echo,
/// respecting the advertised window and acknowledging everything, and must get
/// every byte back in order without the connection stalling.
final class BulkTransferTests: XCTestCase {

    struct Result { var steps = 0; var timerAdvances = 0; var received: [UInt8] = [] }

    func pump(config: StackConfig, total: Int, clientWindow: UInt16, clientMSS: UInt16, windowScale: UInt8?,
              dropEvery: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let h = Harness(config)
        let c = h.client(serverPort: 7)
        c.window = clientWindow
        let sa = try XCTUnwrap(c.connect(mss: clientMSS, windowScale: windowScale), file: file, line: line)
        let shift = sa.tcp.windowScale != nil ? Int(sa.tcp.windowScale!) : 0
        let data: [UInt8] = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
        let base = c.sndNxt
        var serverAck = base
        var serverWindow = Int(sa.window)  // SYN-ACK window is unscaled
        var res = Result()
        var serverSegments = 0
        func absorb(_ segs: [Seg]) {
            for s in segs {
                XCTAssertFalse(s.flags.contains(.rst), "reset: \(s)", file: file, line: line)
                serverSegments += 1
                if dropEvery > 0 && serverSegments % dropEvery == 0 { continue }  // lost on the way to the client
                if seqGT(s.ack, serverAck) || s.ack == serverAck {
                    serverAck = s.ack
                    serverWindow = Int(s.window) << shift
                }
                c.absorb([s])
            }
        }
        while c.received.count < total && res.steps < 100_000 {
            res.steps += 1
            let sentOffset = seqDiff(c.sndNxt, base)
            let inFlight = seqDiff(c.sndNxt, serverAck)
            let room = serverWindow - inFlight
            let len = min(Int(clientMSS), total - sentOffset, room)
            if len > 0 {
                absorb(c.send([.ack], payload: Array(data[sentOffset..<(sentOffset + len)])))
                continue
            }
            // Nothing to send: acknowledge what arrived (a window update for the server).
            let before = c.received.count
            let r = c.ackAll()
            absorb(r)
            if r.isEmpty && c.received.count == before {
                // Fully stalled on both sides: let timers run.
                if seqDiff(c.sndNxt, serverAck) > 0 && room <= 0 && r.isEmpty {
                    // Our own data is unacknowledged: behave like a real peer and retransmit from serverAck.
                    let off = seqDiff(serverAck, base)
                    let n = min(Int(clientMSS), total - off, max(1, serverWindow))
                    if off < total {
                        absorb(c.send([.ack], payload: Array(data[off..<(off + n)]), seq: serverAck))
                    }
                }
                guard let d = h.stack.nextDeadline else {
                    if c.received.count == before { XCTFail("deadlock: no timers, nothing to send", file: file, line: line); break }
                    continue
                }
                res.timerAdvances += 1
                absorb(h.advance(to: max(d, h.now)).segs)
            }
        }
        res.received = c.received
        XCTAssertEqual(res.received.count, total, "stalled after \(res.steps) steps", file: file, line: line)
        XCTAssertTrue(res.received == data, "echoed stream differs", file: file, line: line)
        return res
    }

    func testBulkEchoWithSmallBuffers() throws {
        var cfg = applianceConfig()
        cfg.sendBufferBytes = 4096
        cfg.receiveBufferBytes = 4096
        let r = try pump(config: cfg, total: 100_000, clientWindow: 3000, clientMSS: 1000, windowScale: nil)
        XCTAssertEqual(r.timerAdvances, 0, "a lossless exchange needs no timers")
    }

    func testBulkEchoWithWindowScaling() throws {
        let r = try pump(config: applianceConfig(), total: 300_000, clientWindow: 512, clientMSS: 1460, windowScale: 7)
        XCTAssertEqual(r.timerAdvances, 0)
    }

    func testBulkEchoWithTinyClientWindow() throws {
        var cfg = applianceConfig()
        cfg.sendBufferBytes = 2000
        cfg.receiveBufferBytes = 3000
        _ = try pump(config: cfg, total: 20_000, clientWindow: 100, clientMSS: 536, windowScale: nil)
    }

    func testBulkEchoWithLoss() throws {
        var cfg = applianceConfig()
        cfg.sendBufferBytes = 8192
        cfg.receiveBufferBytes = 8192
        let r = try pump(config: cfg, total: 50_000, clientWindow: 6000, clientMSS: 1000, windowScale: nil, dropEvery: 7)
        XCTAssertGreaterThan(r.timerAdvances, 0, "losses are recovered by timers")
    }
}
