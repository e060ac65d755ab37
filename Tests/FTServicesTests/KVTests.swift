import XCTest
import FTWire
@testable import FTStack
@testable import FTServices

/// Drives a `KVService` directly, as the stack would, with a log clock the
/// test sets.
final class KVHarness {
    var now: UInt64 = 5_000_000_000  // log time, ns
    var service: KVService!
    var closed: Set<ConnectionID> = []
    init(limits: KVLimits = .default) {
        service = KVService(port: 6379, limits: limits, logTime: { [unowned self] in self.now })
    }
    func open(_ id: ConnectionID) { var io = StreamIO(); service.opened(id, remote: Endpoint(ip: IPv4Address(10, 0, 0, 1), port: UInt16(1000 + id)), io: &io) }
    /// Sends raw bytes; returns the reply bytes as text.
    @discardableResult
    func raw(_ text: String, conn: ConnectionID = 1, space: Int = 1 << 20) -> String {
        if service.conns[conn] == nil { open(conn) }
        var io = StreamIO()
        let data = Array(text.utf8)
        let n = service.receive(conn, data[...], sendSpace: space, io: &io)
        XCTAssertEqual(n, data.count, "all input consumed")
        if io.close { closed.insert(conn) }
        return String(decoding: io.output, as: UTF8.self)
    }
    /// Sends one command as a RESP multibulk request.
    @discardableResult
    func cmd(_ parts: String..., conn: ConnectionID = 1) -> String { raw(resp(parts), conn: conn) }
    func advance(ms: UInt64) { now += ms * 1_000_000 }
    func state() -> [UInt8] { var w = ByteWriter(); service.encodeState(into: &w); return w.bytes }
}

func resp(_ parts: [String]) -> String {
    "*\(parts.count)\r\n" + parts.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
}

final class KVCommandTests: XCTestCase {
    func testScriptedSessionRepliesExactly() {
        let h = KVHarness()
        XCTAssertEqual(h.cmd("PING"), "+PONG\r\n")
        XCTAssertEqual(h.cmd("ping", "hi"), "$2\r\nhi\r\n")
        XCTAssertEqual(h.cmd("ECHO", "x y"), "$3\r\nx y\r\n")
        XCTAssertEqual(h.cmd("SELECT", "0"), "+OK\r\n")
        XCTAssertEqual(h.cmd("SELECT", "1"), "-ERR DB index is out of range\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "v"), "+OK\r\n")
        XCTAssertEqual(h.cmd("GET", "k"), "$1\r\nv\r\n")
        XCTAssertEqual(h.cmd("GET", "nope"), "$-1\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "w", "NX"), "$-1\r\n")
        XCTAssertEqual(h.cmd("SET", "k2", "w", "XX"), "$-1\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "w", "XX", "GET"), "$1\r\nv\r\n")
        XCTAssertEqual(h.cmd("GETSET", "k", "z"), "$1\r\nw\r\n")
        XCTAssertEqual(h.cmd("SETNX", "k", "q"), ":0\r\n")
        XCTAssertEqual(h.cmd("SETNX", "n", "10"), ":1\r\n")
        XCTAssertEqual(h.cmd("INCR", "n"), ":11\r\n")
        XCTAssertEqual(h.cmd("INCRBY", "n", "-21"), ":-10\r\n")
        XCTAssertEqual(h.cmd("DECR", "n"), ":-11\r\n")
        XCTAssertEqual(h.cmd("DECRBY", "n", "9"), ":-20\r\n")
        XCTAssertEqual(h.cmd("INCR", "k"), "-ERR value is not an integer or out of range\r\n")
        XCTAssertEqual(h.cmd("INCRBY", "n", "1x"), "-ERR value is not an integer or out of range\r\n")
        XCTAssertEqual(h.cmd("SET", "big", "9223372036854775807"), "+OK\r\n")
        XCTAssertEqual(h.cmd("INCR", "big"), "-ERR increment or decrement would overflow\r\n")
        XCTAssertEqual(h.cmd("MSET", "a", "1", "b", "2"), "+OK\r\n")
        XCTAssertEqual(h.cmd("MSET", "a", "1", "b"), "-ERR wrong number of arguments for 'mset' command\r\n")
        XCTAssertEqual(h.cmd("MGET", "a", "zz", "b"), "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n")
        XCTAssertEqual(h.cmd("APPEND", "a", "23"), ":3\r\n")
        XCTAssertEqual(h.cmd("STRLEN", "a"), ":3\r\n")
        XCTAssertEqual(h.cmd("GETRANGE", "a", "1", "-1"), "$2\r\n23\r\n")
        XCTAssertEqual(h.cmd("GETRANGE", "a", "5", "9"), "$0\r\n\r\n")
        XCTAssertEqual(h.cmd("SETRANGE", "a", "5", "x"), ":6\r\n")
        XCTAssertEqual(h.cmd("GET", "a"), "$6\r\n123\0\0x\r\n")
        XCTAssertEqual(h.cmd("SETRANGE", "a", "-1", "x"), "-ERR offset is out of range\r\n")
        XCTAssertEqual(h.cmd("EXISTS", "a", "a", "zz"), ":2\r\n")
        XCTAssertEqual(h.cmd("DEL", "a", "zz"), ":1\r\n")
        XCTAssertEqual(h.cmd("TYPE", "b"), "+string\r\n")
        XCTAssertEqual(h.cmd("TYPE", "zz"), "+none\r\n")
        XCTAssertEqual(h.cmd("GET"), "-ERR wrong number of arguments for 'get' command\r\n")
        XCTAssertEqual(h.cmd("FOO", "a", "b"), "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n")
        XCTAssertEqual(h.cmd("SET", "k", "v", "BOGUS"), "-ERR syntax error\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "v", "EX", "0"), "-ERR invalid expire time in 'set' command\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "v", "EX", "x"), "-ERR value is not an integer or out of range\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "v", "NX", "XX"), "-ERR syntax error\r\n")
        XCTAssertEqual(h.cmd("LPUSH", "b", "x"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        XCTAssertEqual(h.cmd("DBSIZE"), ":4\r\n")  // k, n, big, b
        XCTAssertEqual(h.cmd("FLUSHDB"), "+OK\r\n")
        XCTAssertEqual(h.cmd("DBSIZE"), ":0\r\n")
        XCTAssertEqual(h.service.store.usedBytes, 0, "memory account returns to zero")
        XCTAssertEqual(h.cmd("QUIT"), "+OK\r\n")
        XCTAssertTrue(h.closed.contains(1))
    }

    func testHashesAndLists() {
        let h = KVHarness()
        XCTAssertEqual(h.cmd("HSET", "h", "f1", "a", "f2", "b"), ":2\r\n")
        XCTAssertEqual(h.cmd("HSET", "h", "f1", "c", "f3", "d"), ":1\r\n")
        XCTAssertEqual(h.cmd("HSET", "h", "f1"), "-ERR wrong number of arguments for 'hset' command\r\n")
        XCTAssertEqual(h.cmd("HGET", "h", "f1"), "$1\r\nc\r\n")
        XCTAssertEqual(h.cmd("HGET", "h", "zz"), "$-1\r\n")
        XCTAssertEqual(h.cmd("HLEN", "h"), ":3\r\n")
        XCTAssertEqual(h.cmd("HGETALL", "h"), "*6\r\n$2\r\nf1\r\n$1\r\nc\r\n$2\r\nf2\r\n$1\r\nb\r\n$2\r\nf3\r\n$1\r\nd\r\n")
        XCTAssertEqual(h.cmd("HINCRBY", "h", "n", "5"), ":5\r\n")
        XCTAssertEqual(h.cmd("HINCRBY", "h", "f1", "5"), "-ERR hash value is not an integer\r\n")
        XCTAssertEqual(h.cmd("HDEL", "h", "f1", "f2", "f3", "zz"), ":3\r\n")
        XCTAssertEqual(h.cmd("HDEL", "h", "n"), ":1\r\n")
        XCTAssertEqual(h.cmd("EXISTS", "h"), ":0\r\n", "an empty hash is deleted")
        XCTAssertEqual(h.cmd("RPUSH", "l", "a", "b"), ":2\r\n")
        XCTAssertEqual(h.cmd("LPUSH", "l", "z", "y"), ":4\r\n")
        XCTAssertEqual(h.cmd("LRANGE", "l", "0", "-1"), "*4\r\n$1\r\ny\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n")
        XCTAssertEqual(h.cmd("LRANGE", "l", "-2", "100"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n")
        XCTAssertEqual(h.cmd("LRANGE", "l", "5", "10"), "*0\r\n")
        XCTAssertEqual(h.cmd("LLEN", "l"), ":4\r\n")
        XCTAssertEqual(h.cmd("LPOP", "l"), "$1\r\ny\r\n")
        XCTAssertEqual(h.cmd("RPOP", "l", "2"), "*2\r\n$1\r\nb\r\n$1\r\na\r\n")
        XCTAssertEqual(h.cmd("RPOP", "l", "-1"), "-ERR value is out of range, must be positive\r\n")
        XCTAssertEqual(h.cmd("LPOP", "l"), "$1\r\nz\r\n")
        XCTAssertEqual(h.cmd("LPOP", "l"), "$-1\r\n")
        XCTAssertEqual(h.cmd("LPOP", "l", "3"), "*-1\r\n")
        XCTAssertEqual(h.cmd("TYPE", "l"), "+none\r\n")
        XCTAssertEqual(h.cmd("HSET", "h", "f", "v"), ":1\r\n")
        XCTAssertEqual(h.cmd("GET", "h"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        XCTAssertEqual(h.cmd("TYPE", "h"), "+hash\r\n")
        XCTAssertEqual(h.cmd("DEL", "h"), ":1\r\n")
        XCTAssertEqual(h.service.store.usedBytes, 0, "memory account returns to zero")
    }

    func testInlineCommandsAndPipelinesSplitAnywhere() {
        let stream = "PING\r\nSET \"a b\" 'c d'\r\n" + resp(["GET", "a b"]) + "INCR n\nINCR n\r\n" + resp(["MGET", "n", "a b"]) + "\r\n"
        let whole = KVHarness().raw(stream)
        XCTAssertEqual(whole, "+PONG\r\n+OK\r\n$3\r\nc d\r\n:1\r\n:2\r\n*2\r\n$1\r\n2\r\n$3\r\nc d\r\n")
        for chunk in [1, 2, 3, 7] {
            let h = KVHarness()
            var out = ""
            let bytes = Array(stream.utf8)
            var i = 0
            while i < bytes.count {
                out += h.raw(String(decoding: bytes[i..<min(i + chunk, bytes.count)], as: UTF8.self))
                i += chunk
            }
            XCTAssertEqual(out, whole, "chunk \(chunk)")
        }
        let h = KVHarness()
        XCTAssertEqual(h.raw("SET a \"unterminated\r\n"), "-ERR Protocol error: unbalanced quotes in request\r\n")
        XCTAssertTrue(h.closed.contains(1))
    }

    func testProtocolErrorsCloseTheConnection() {
        for (input, reply) in [("*2\r\n+x\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"),
                               ("*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
                               ("*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n")] {
            let h = KVHarness()
            XCTAssertEqual(h.raw(input), reply)
            XCTAssertTrue(h.closed.contains(1))
            XCTAssertEqual(h.raw("PING\r\n"), "", "input after the error is discarded")
        }
    }

    func testFlowControlTakesRequestsOnlyWhileTheSendBufferHasSpace() {
        let h = KVHarness()
        h.open(1)
        var io = StreamIO()
        let data = Array((resp(["PING"]) + resp(["PING"]) + resp(["PING"])).utf8)
        let n = h.service.receive(1, data[...], sendSpace: 1, io: &io)
        XCTAssertEqual(n, resp(["PING"]).utf8.count, "one request, then the send buffer is full")
        XCTAssertEqual(String(decoding: io.output, as: UTF8.self), "+PONG\r\n")
        XCTAssertEqual(h.service.receive(1, data[n...], sendSpace: 0, io: &io), 0)
    }
}
