import XCTest
import FTWire
@testable import FTStack
@testable import FTServices

final class KVExpiryTests: XCTestCase {
    func testExpiryFollowsLogTime() {
        let h = KVHarness()
        XCTAssertEqual(h.cmd("SET", "k", "v", "PX", "100"), "+OK\r\n")
        XCTAssertEqual(h.cmd("PTTL", "k"), ":100\r\n")
        XCTAssertEqual(h.cmd("TTL", "k"), ":0\r\n")
        h.advance(ms: 99)
        XCTAssertEqual(h.cmd("GET", "k"), "$1\r\nv\r\n")
        h.advance(ms: 1)
        XCTAssertEqual(h.cmd("GET", "k"), "$-1\r\n")
        XCTAssertEqual(h.cmd("TTL", "k"), ":-2\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "v", "EX", "10"), "+OK\r\n")
        XCTAssertEqual(h.cmd("TTL", "k"), ":10\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "w", "KEEPTTL"), "+OK\r\n")
        XCTAssertEqual(h.cmd("TTL", "k"), ":10\r\n")
        XCTAssertEqual(h.cmd("SET", "k", "w"), "+OK\r\n")
        XCTAssertEqual(h.cmd("TTL", "k"), ":-1\r\n", "SET without KEEPTTL clears the expiry")
        XCTAssertEqual(h.cmd("EXPIRE", "k", "5"), ":1\r\n")
        XCTAssertEqual(h.cmd("EXPIRE", "k", "9", "NX"), ":0\r\n")
        XCTAssertEqual(h.cmd("EXPIRE", "k", "9", "GT"), ":1\r\n")
        XCTAssertEqual(h.cmd("PEXPIRE", "k", "1000", "LT"), ":1\r\n")
        XCTAssertEqual(h.cmd("PTTL", "k"), ":1000\r\n")
        XCTAssertEqual(h.cmd("PERSIST", "k"), ":1\r\n")
        XCTAssertEqual(h.cmd("PERSIST", "k"), ":0\r\n")
        XCTAssertEqual(h.cmd("EXPIRE", "nope", "5"), ":0\r\n")
        XCTAssertEqual(h.cmd("EXPIRE", "k", "-1"), ":1\r\n")
        XCTAssertEqual(h.cmd("EXISTS", "k"), ":0\r\n", "a non-positive expiry deletes")
        // EXAT / PXAT are absolute on the log clock (ms since its origin).
        let nowMs = h.now / 1_000_000
        XCTAssertEqual(h.cmd("SET", "a", "1", "PXAT", String(nowMs + 50)), "+OK\r\n")
        XCTAssertEqual(h.cmd("PTTL", "a"), ":50\r\n")
        XCTAssertEqual(h.cmd("SET", "a", "1", "EXAT", "1"), "+OK\r\n")
        XCTAssertEqual(h.cmd("EXISTS", "a"), ":0\r\n", "an EXAT in the past deletes")
        XCTAssertEqual(h.cmd("TIME"), "*2\r\n$1\r\n5\r\n$6\r\n100000\r\n", "log time 5.1 s")
    }

    func testActiveExpiryRemovesDueKeysInExpiryOrder() {
        let h = KVHarness()
        for i in 0..<200 { h.cmd("SET", "k\(i)", "v", "PX", String(10 + i % 3)) }
        h.cmd("SET", "keep", "v")
        XCTAssertEqual(h.cmd("DBSIZE"), ":201\r\n")
        XCTAssertEqual(h.service.store.volatileKeys, 200)
        h.advance(ms: 20)
        // Each request first deletes up to 64 due keys.
        XCTAssertEqual(h.cmd("DBSIZE"), ":137\r\n")
        XCTAssertEqual(h.cmd("KEYS", "*"), "*1\r\n$4\r\nkeep\r\n", "KEYS never shows an expired key")
        for _ in 0..<3 { h.cmd("PING") }
        XCTAssertEqual(h.cmd("DBSIZE"), ":1\r\n")
        XCTAssertEqual(h.service.store.volatileKeys, 0)
        XCTAssertEqual(h.service.store.expiredKeys, 200)
    }
}

final class KVOrderAndStateTests: XCTestCase {
    func testKeysAndScanFollowSlotOrderAndScanIsComplete() {
        let h = KVHarness()
        for i in 0..<50 { h.cmd("SET", "key:\(i)", "v") }
        h.cmd("DEL", "key:3", "key:7")
        h.cmd("SET", "new", "v")  // reuses key:7's slot (last freed first)
        XCTAssertTrue(h.cmd("KEYS", "key:?").hasPrefix("*8\r\n$5\r\nkey:0\r\n$5\r\nkey:1\r\n$5\r\nkey:2\r\n$5\r\nkey:4\r\n"))
        XCTAssertEqual(h.cmd("KEYS", "n[a-f]w"), "*1\r\n$3\r\nnew\r\n")
        // SCAN with deletions and insertions during the scan: every key
        // present throughout is returned exactly once.
        var seen: [String: Int] = [:]
        var cursor = "0"
        var round = 0
        repeat {
            let r = h.cmd("SCAN", cursor, "COUNT", "7")
            let lines = r.split(separator: "\r\n").map(String.init)
            cursor = lines[2]
            for k in lines.dropFirst(4).enumerated().filter({ $0.offset % 2 == 1 }).map(\.element) { seen[k, default: 0] += 1 }
            round += 1
            h.cmd("DEL", "key:\(40 + round)")
            h.cmd("SET", "late:\(round)", "v")
        } while cursor != "0"
        for i in 0..<41 where i != 3 && i != 7 { XCTAssertEqual(seen["key:\(i)"], 1, "key:\(i)") }
        XCTAssertEqual(seen.values.max(), 1, "no key twice")
        XCTAssertEqual(h.cmd("SCAN", "0", "MATCH", "new", "COUNT", "1000", "TYPE", "string"), "*2\r\n$1\r\n0\r\n*1\r\n$3\r\nnew\r\n")
        XCTAssertEqual(h.cmd("SCAN", "x"), "-ERR invalid cursor\r\n")
    }

    func workload(_ h: KVHarness) {
        for i in 0..<300 {
            h.cmd("SET", "s\(i % 37)", "v\(i)", "PX", String(5 + i % 50), conn: ConnectionID(1 + i % 3))
            h.cmd("HSET", "h\(i % 11)", "f\(i % 5)", "\(i)")
            h.cmd(i % 2 == 0 ? "LPUSH" : "RPUSH", "l\(i % 7)", "\(i)")
            if i % 13 == 0 { h.cmd("DEL", "s\(i % 17)", "h\(i % 3)"); h.cmd("HDEL", "h\(i % 11)", "f1") }
            if i % 5 == 0 { h.cmd("LPOP", "l\(i % 7)", "2") }
            h.advance(ms: 1)
        }
        h.raw("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$9\r\nhalf", conn: 2)  // a request in flight
    }

    func testSnapshotRoundTripsAndTheRestoredServiceBehavesIdentically() throws {
        let a = KVHarness()
        workload(a)
        let bytes = a.state()
        let b = KVHarness()
        var r = ByteReader(bytes)
        try b.service.decodeState(from: &r)
        XCTAssertEqual(r.remaining, 0)
        XCTAssertEqual(b.state(), bytes)
        b.now = a.now
        // The same inputs from here on give the same replies and state.
        for h in [a, b] { h.advance(ms: 20) }
        for req in [["SCAN", "0", "COUNT", "1000"], ["KEYS", "*"], ["HGETALL", "h4"], ["LRANGE", "l3", "0", "-1"], ["DBSIZE"], ["INFO", "keyspace"]] {
            XCTAssertEqual(a.raw(resp(req)), b.raw(resp(req)), req.joined(separator: " "))
        }
        XCTAssertEqual(a.raw("-done\r\n", conn: 2), "+OK\r\n")
        XCTAssertEqual(b.raw("-done\r\n", conn: 2), "+OK\r\n")
        for h in [a, b] { XCTAssertEqual(h.cmd("GET", "x"), "$9\r\nhalf-done\r\n") }
        XCTAssertEqual(a.state(), b.state())
    }

    func testStateIsTheSameForTheSameInputsAndChangesWithTheKeyspace() {
        let a = KVHarness(), b = KVHarness()
        workload(a); workload(b)
        XCTAssertEqual(a.state(), b.state())
        let before = a.state()
        a.cmd("SET", "s1", "other")
        XCTAssertNotEqual(a.state(), before)
    }

    func testSnapshotFromDifferentLimitsIsRefused() {
        let a = KVHarness()
        a.cmd("SET", "k", "v")
        let b = KVHarness(limits: KVLimits(maxMemoryBytes: 1 << 20, maxBulkBytes: 1 << 20, maxPendingBytes: 4 << 20))
        var r = ByteReader(a.state())
        XCTAssertThrowsError(try b.service.decodeState(from: &r))
    }
}

final class KVLimitTests: XCTestCase {
    func testMemoryLimitRefusesGrowingWritesWithRedisOOMError() {
        let h = KVHarness(limits: KVLimits(maxMemoryBytes: 2000, maxBulkBytes: 1000, maxPendingBytes: 4000))
        var i = 0
        while h.cmd("SET", "k\(i)", String(repeating: "x", count: 100)) == "+OK\r\n" { i += 1 }
        // Each key costs 64 + key + value bytes (166 or 167 here); a write is refused
        // once the estimate is above the limit, so the last one accepted may exceed it.
        XCTAssertEqual(i, 13)
        XCTAssertEqual(h.service.store.usedBytes, 10 * 166 + 3 * 167)
        XCTAssertEqual(h.cmd("SET", "k0", "y"), "-OOM command not allowed when used memory > 'maxmemory'.\r\n")
        XCTAssertEqual(h.cmd("RPUSH", "l", "y"), "-OOM command not allowed when used memory > 'maxmemory'.\r\n")
        XCTAssertEqual(h.cmd("GET", "k0"), "$100\r\n" + String(repeating: "x", count: 100) + "\r\n", "reads still work")
        XCTAssertEqual(h.cmd("DEL", "k0", "k1"), ":2\r\n", "deletes still work")
        XCTAssertEqual(h.cmd("SET", "k0", "y"), "+OK\r\n")
        XCTAssertEqual(h.service.rejectedOOM, 3)
        XCTAssertTrue(h.cmd("INFO", "stats").contains("rejected_oom:3\r\n"))
    }

    func testBulkAndPendingLimits() {
        let h = KVHarness(limits: KVLimits(maxMemoryBytes: 1 << 20, maxBulkBytes: 100, maxPendingBytes: 250))
        XCTAssertEqual(h.cmd("SET", "k", String(repeating: "x", count: 100)), "+OK\r\n")
        XCTAssertEqual(h.cmd("APPEND", "k", "y"), "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n")
        XCTAssertEqual(h.cmd("SETRANGE", "k", "100", "y"), "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n")
        XCTAssertEqual(h.cmd("SET", "k", String(repeating: "x", count: 101)), "-ERR Protocol error: invalid bulk length\r\n")
        XCTAssertTrue(h.closed.contains(1))
        // Three 100-byte arguments of one request exceed 250 pending bytes.
        let big = String(repeating: "x", count: 100)
        XCTAssertEqual(h.raw(resp(["MSET", "a", big, "b", big, "c", big]), conn: 2),
                       "-ERR Protocol error: request exceeds the pending pipeline limit\r\n")
        XCTAssertTrue(h.closed.contains(2))
        XCTAssertEqual(h.raw(String(repeating: "P", count: 70_000), conn: 3), "-ERR Protocol error: too big inline request\r\n")
    }
}

final class KVClientHandshakeTests: XCTestCase {
    func testWhatRedisCliAndBenchmarkSendOnConnect() {
        let h = KVHarness()
        XCTAssertEqual(h.cmd("CONFIG", "GET", "save"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n")
        XCTAssertEqual(h.cmd("CONFIG", "GET", "appendonly"), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n")
        XCTAssertEqual(h.cmd("CONFIG", "GET", "maxmemory*"), "*4\r\n$9\r\nmaxmemory\r\n$9\r\n268435456\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n")
        XCTAssertEqual(h.cmd("CLIENT", "SETNAME", "bench"), "+OK\r\n")
        XCTAssertEqual(h.cmd("CLIENT", "GETNAME"), "$5\r\nbench\r\n")
        XCTAssertEqual(h.cmd("CLIENT", "SETINFO", "lib-name", "redis-py"), "+OK\r\n")
        XCTAssertEqual(h.cmd("CLIENT", "SETNAME", "a b"), "-ERR Client names cannot contain spaces, newlines or special characters.\r\n")
        XCTAssertEqual(h.cmd("CLIENT", "NOPE"), "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n")
        XCTAssertEqual(h.cmd("COMMAND", "DOCS"), "*0\r\n")
        XCTAssertEqual(h.cmd("COMMAND", "COUNT"), ":\(KVOp.allCases.count)\r\n")
        XCTAssertTrue(h.cmd("COMMAND").hasPrefix("*\(KVOp.allCases.count)\r\n*10\r\n$4\r\nping\r\n:-1\r\n"))
        XCTAssertEqual(h.cmd("COMMAND", "INFO", "get"), "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n")
        XCTAssertEqual(h.cmd("HELLO", "3"), "-NOPROTO unsupported protocol version\r\n")
        XCTAssertTrue(h.cmd("HELLO", "2").hasPrefix("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"))
        h.cmd("SET", "a", "1", "EX", "100"); h.cmd("SET", "b", "2")
        let info = h.cmd("INFO")
        for needle in ["# Server\r\nredis_version:7.0.0\r\n", "# Replication\r\nrole:master\r\n", "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"] {
            XCTAssertTrue(info.contains(needle), needle)
        }
        XCTAssertFalse(h.cmd("INFO", "keyspace").contains("# Server"))
    }
}

final class KVServiceSpecTests: XCTestCase {
    func testLimitsTravelInTheServiceSpecSoRecordingsRebuildTheSameService() throws {
        XCTAssertEqual(try ServiceSpec.parse("kv:6379").description, "kv:6379")
        var s = try ServiceSpec.parse("kv:6379")
        s.kv = KVLimits(maxMemoryBytes: 1 << 20, maxBulkBytes: 100, maxPendingBytes: 200)
        XCTAssertEqual(s.description, "kv:6379:maxmemory=1048576:maxbulk=100:maxpending=200")
        XCTAssertEqual(try ServiceSpec.parse(s.description), s)
        for bad in ["kv:6379:maxmemory=0", "kv:6379:size=5", "kv:6379:maxbulk=300:maxpending=200", "counter:7000:maxmemory=5"] {
            XCTAssertThrowsError(try ServiceSpec.parse(bad), bad)
        }
        let stack = try Appliance.make(config: StackConfig(mac: MACAddress(raw: 0x0200_0000_0010), interface: IPv4Interface("10.0.0.100/24")!),
                                       services: [s])
        XCTAssertEqual((stack.streamServices[6379] as? KVService)?.limits, s.kv)
    }
}
