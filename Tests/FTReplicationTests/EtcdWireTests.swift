import XCTest
import FTReplication

/// The etcd arbiter's wire format and decisions (EtcdWire.swift, EtcdRequests.swift),
/// checked against answers in the form etcd 3.4's gateway sends them.
final class EtcdWireTests: XCTestCase {

    func testBase64RFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, enc) in vectors {
            XCTAssertEqual(Base64.encode(plain), enc)
            XCTAssertEqual(Base64.decodeString(enc), plain)
        }
        let all = (0...255).map { UInt8($0) }
        XCTAssertEqual(Base64.decode(Base64.encode(all)), all)
        XCTAssertNil(Base64.decode("Zm9v!"), "a character outside the alphabet")
        XCTAssertNil(Base64.decode("Zg==Zg"), "data after padding")
        XCTAssertNil(Base64.decode("Z"), "a lone sextet is not a byte")
    }

    func testJSONParseAndEncode() throws {
        let text = #"{"a":"x\"y\\z\n\u00e9\ud83d\ude00","b":[1,-2.5e3,true,false,null],"c":{},"d":"123"}"#
        let j = try JSON.parse(Array(text.utf8))
        XCTAssertEqual(j["a"]?.string, "x\"y\\z\né😀")
        XCTAssertEqual(j["b"]?.array?.count, 5)
        XCTAssertEqual(j["b"]?.array?[1], .number("-2.5e3"))
        XCTAssertEqual(j["d"]?.int64, 123, "proto3 JSON writes int64 as strings")
        XCTAssertEqual(try JSON.parse(Array(j.encoded.utf8)), j, "encode/parse round trip")
        XCTAssertEqual(JSON.object([("k", .string("a\u{1}b"))]).encoded, #"{"k":"a\u0001b"}"#)
        for bad in ["{", #"{"a" 1}"#, "[1,]", "tru", #""abc"#, "{} x", #""\q""#] {
            XCTAssertThrowsError(try JSON.parse(Array(bad.utf8)), bad)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try JSON.parse(Array(deep.utf8)), "nesting is bounded")
    }

    func testHTTPResponseFraming() {
        let ok = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".utf8)
        XCTAssertEqual(HTTPResponse.parse(ok, closed: false), .complete(HTTPResponse(status: 200, body: Array("{}".utf8))))
        XCTAssertEqual(HTTPResponse.parse(Array(ok.dropLast()), closed: false), .incomplete)
        if case .malformed = HTTPResponse.parse(Array(ok.dropLast()), closed: true) {} else { XCTFail("short body after close") }
        // grpc-gateway streams (lease keep-alive) use chunked coding.
        let chunked = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3;x=y\r\n1}\n\r\n0\r\n\r\n".utf8)
        XCTAssertEqual(HTTPResponse.parse(chunked, closed: false), .complete(HTTPResponse(status: 200, body: Array("{\"a\":1}\n".utf8))))
        XCTAssertEqual(HTTPResponse.parse(Array(chunked.prefix(60)), closed: false), .incomplete)
        let untilClose = Array("HTTP/1.1 503 Service Unavailable\r\n\r\nno".utf8)
        XCTAssertEqual(HTTPResponse.parse(untilClose, closed: false), .incomplete)
        XCTAssertEqual(HTTPResponse.parse(untilClose, closed: true), .complete(HTTPResponse(status: 503, body: Array("no".utf8))))
        if case .malformed = HTTPResponse.parse(Array("SSH-2.0\r\n\r\n".utf8), closed: false) {} else { XCTFail("not HTTP") }
        let req = String(decoding: HTTPResponse.post(path: "/v3/kv/txn", host: "10.0.0.5:2379", body: "{}"), as: UTF8.self)
        XCTAssertEqual(req, "POST /v3/kv/txn HTTP/1.1\r\nHost: 10.0.0.5:2379\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    }

    let keys = EtcdKeys(prefix: "/ftap/p")

    func testKeysSortByEpoch() {
        XCTAssertEqual(keys.epoch(7), "/ftap/p/epoch/00000000000000000007")
        XCTAssertLessThan(keys.epoch(9), keys.epoch(10), "key order is epoch order")
        XCTAssertLessThan(keys.epoch(UInt64.max), keys.epochsEnd)
        XCTAssertEqual(keys.epochNumber(ofKey: keys.epoch(42)), 42)
        XCTAssertNil(keys.epochNumber(ofKey: keys.alone))
    }

    /// The claim is one txn: epoch N never created and nobody holding the alone lease.
    func testClaimTransactionBody() throws {
        let owner = EtcdOwner(node: "A", token: "t1", epoch: 3, at: "2026-12-01T22:00:00Z")
        let body = EtcdRequests.claim(keys: keys, owner: owner, lease: 0x1234)
        let j = try JSON.parse(Array(body.utf8))
        let cmp = j["compare"]!.array!
        XCTAssertEqual(cmp.count, 2)
        XCTAssertEqual(cmp[0]["key"]?.string.flatMap(Base64.decodeString), keys.epoch(3))
        XCTAssertEqual(cmp[0]["target"], .string("CREATE"))
        XCTAssertEqual(cmp[0]["result"], .string("EQUAL"))
        XCTAssertEqual(cmp[0]["create_revision"], .string("0"))
        XCTAssertEqual(cmp[1]["key"]?.string.flatMap(Base64.decodeString), keys.alone)
        XCTAssertEqual(cmp[1]["target"], .string("VERSION"))
        XCTAssertEqual(cmp[1]["version"], .string("0"))
        let puts = j["success"]!.array!.map { $0["request_put"]! }
        XCTAssertEqual(puts.map { $0["key"]?.string.flatMap(Base64.decodeString) }, [keys.epoch(3), keys.alone])
        XCTAssertNil(puts[0]["lease"], "the epoch record outlives every lease")
        XCTAssertEqual(puts[1]["lease"], .string(String(0x1234)))
        let value = Base64.decode(puts[0]["value"]!.string!)!
        XCTAssertEqual(EtcdOwner(json: value), owner)
        XCTAssertEqual(j["failure"]?.array?.count, 2)
        // Replacing our own older alone key compares its revision instead.
        let again = try JSON.parse(Array(EtcdRequests.claim(keys: keys, owner: owner, lease: 9, ownAloneRevision: 77).utf8))
        XCTAssertEqual(again["compare"]!.array![1]["target"], .string("MOD"))
        XCTAssertEqual(again["compare"]!.array![1]["mod_revision"], .string("77"))
    }

    func kv(_ key: String, _ owner: EtcdOwner, lease: Int64 = 0, rev: Int64 = 5) -> String {
        #"{"key":"\#(Base64.encode(key))","create_revision":"\#(rev)","mod_revision":"\#(rev)","version":"1","value":"\#(Base64.encode(owner.json))","lease":"\#(lease)"}"#
    }

    func txnAnswer(epochKV: String?, aloneKV: String?) throws -> JSON {
        let header = #"{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"9","raft_term":"2"}"#
        let r1 = epochKV.map { #"{"response_range":{"header":\#(header),"kvs":[\#($0)],"count":"1"}}"# } ?? #"{"response_range":{"header":\#(header)}}"#
        let r2 = aloneKV.map { #"{"response_range":{"header":\#(header),"kvs":[\#($0)],"count":"1"}}"# } ?? #"{"response_range":{"header":\#(header)}}"#
        return try JSON.parse(Array(#"{"header":\#(header),"responses":[\#(r1),\#(r2)]}"#.utf8))
    }

    func testClaimDecisions() throws {
        let me = "tok-me"
        let ok = try JSON.parse(Array(#"{"header":{"cluster_id":"14841639068965178418","revision":"3"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}},{"response_put":{"header":{"revision":"3"}}}]}"#.utf8))
        XCTAssertEqual(EtcdAnswers.clusterID(ok), 14841639068965178418)
        guard case .won = EtcdAnswers.claim(ok, keys: keys, epoch: 2, token: me) else { return XCTFail("succeeded is won") }

        let other = EtcdOwner(node: "B", token: "tok-b", epoch: 2, at: "t")
        let lost = try txnAnswer(epochKV: kv(keys.epoch(2), other), aloneKV: nil)
        XCTAssertEqual(EtcdAnswers.claim(lost, keys: keys, epoch: 2, token: me), .lost("\(keys.epoch(2)) already claimed by B at t"))

        // A retried claim whose first attempt committed: epoch 2 is ours, but
        // the alone key must be re-attached to the lease this process renews.
        let mine = EtcdOwner(node: "A", token: me, epoch: 2, at: "t")
        XCTAssertEqual(EtcdAnswers.claim(try txnAnswer(epochKV: kv(keys.epoch(2), mine), aloneKV: nil), keys: keys, epoch: 2, token: me),
                       .ownEpoch(aloneRevision: nil))
        XCTAssertEqual(EtcdAnswers.claim(try txnAnswer(epochKV: kv(keys.epoch(2), mine), aloneKV: kv(keys.alone, mine, lease: 7, rev: 12)),
                                         keys: keys, epoch: 2, token: me), .ownEpoch(aloneRevision: 12))
        // Same node name, another process: lost (the token decides, not the name).
        let sameName = EtcdOwner(node: "A", token: "tok-other", epoch: 2, at: "t")
        guard case .lost = EtcdAnswers.claim(try txnAnswer(epochKV: kv(keys.epoch(2), sameName), aloneKV: nil), keys: keys, epoch: 2, token: me) else {
            return XCTFail("another process with the same node name")
        }
        // Another node serves epoch 1 alone under a live lease: wait (unavailable), never won.
        let holder = EtcdOwner(node: "B", token: "tok-b", epoch: 1, at: "t")
        guard case .wait(let why) = EtcdAnswers.claim(try txnAnswer(epochKV: nil, aloneKV: kv(keys.alone, holder, lease: 0xabc)), keys: keys, epoch: 2, token: me) else {
            return XCTFail("an alone lease blocks the claim")
        }
        XCTAssertTrue(why.contains("B serves epoch 1 alone under lease abc"), why)
        let ownOld = EtcdOwner(node: "A", token: me, epoch: 1, at: "t")
        XCTAssertEqual(EtcdAnswers.claim(try txnAnswer(epochKV: nil, aloneKV: kv(keys.alone, ownOld, rev: 41)), keys: keys, epoch: 2, token: me),
                       .replaceOwnAlone(revision: 41))
    }

    /// Adopting the alone key for an epoch that is ours: only if epoch N+1
    /// was never claimed and the alone key is absent or still ours.
    func testAdoptTransactionAndDecisions() throws {
        let me = "tok-me"
        let owner = EtcdOwner(node: "A", token: me, epoch: 2, at: "t")
        let j = try JSON.parse(Array(EtcdRequests.adopt(keys: keys, owner: owner, lease: 5, ownAloneRevision: nil).utf8))
        let cmp = j["compare"]!.array!
        XCTAssertEqual(cmp[0]["key"]?.string.flatMap(Base64.decodeString), keys.epoch(3), "no higher epoch meanwhile")
        XCTAssertEqual(cmp[0]["create_revision"], .string("0"))
        XCTAssertEqual(cmp[1]["target"], .string("VERSION"))
        let put = j["success"]!.array![0]["request_put"]!
        XCTAssertEqual(put["key"]?.string.flatMap(Base64.decodeString), keys.alone)
        XCTAssertEqual(put["lease"], .string("5"))

        let ok = try JSON.parse(Array(#"{"header":{},"succeeded":true}"#.utf8))
        guard case .won = EtcdAnswers.adopt(ok, keys: keys, epoch: 2, token: me) else { return XCTFail("adopted") }
        let higher = EtcdOwner(node: "B", token: "b", epoch: 3, at: "t")
        guard case .lost = EtcdAnswers.adopt(try txnAnswer(epochKV: kv(keys.epoch(3), higher), aloneKV: nil), keys: keys, epoch: 2, token: me) else {
            return XCTFail("epoch 3 claimed while our alone key was gone: lost")
        }
        guard case .wait = EtcdAnswers.adopt(try txnAnswer(epochKV: nil, aloneKV: kv(keys.alone, higher, lease: 3)), keys: keys, epoch: 2, token: me) else {
            return XCTFail("another process holds the alone key")
        }
        XCTAssertEqual(EtcdAnswers.adopt(try txnAnswer(epochKV: nil, aloneKV: kv(keys.alone, owner, rev: 30)), keys: keys, epoch: 2, token: me),
                       .ownEpoch(aloneRevision: 30))
    }

    func testKeepAliveAndCheck() throws {
        let alive = Array(#"{"result":{"header":{"cluster_id":"1","revision":"9"},"ID":"7587","TTL":"5"}}"#.utf8) + [10]
        XCTAssertEqual(try EtcdAnswers.keepAliveTTL(alive), 5)
        let gone = Array(#"{"result":{"header":{"cluster_id":"1"},"ID":"7587"}}"#.utf8)
        XCTAssertEqual(try EtcdAnswers.keepAliveTTL(gone), 0, "proto3 omits TTL 0: the lease is gone")
        XCTAssertThrowsError(try EtcdAnswers.keepAliveTTL(Array(#"{"error":{"grpc_code":14,"message":"no leader"}}"#.utf8)))

        let body = try JSON.parse(Array(EtcdRequests.check(keys: keys, epoch: 2).utf8))
        XCTAssertNil(body["compare"], "an unconditional txn: one consistent read of both keys")
        let ranges = body["success"]!.array!.map { $0["request_range"]! }
        XCTAssertEqual(ranges[0]["key"]?.string.flatMap(Base64.decodeString), keys.epoch(3))
        XCTAssertEqual(ranges[0]["range_end"]?.string.flatMap(Base64.decodeString), keys.epochsEnd)
        XCTAssertEqual(ranges[0]["sort_order"], .string("DESCEND"))
        XCTAssertEqual(ranges[1]["key"]?.string.flatMap(Base64.decodeString), keys.alone)

        let me = EtcdOwner(node: "B", token: "tb", epoch: 2, at: "t")
        let higher = EtcdOwner(node: "C", token: "x", epoch: 3, at: "t")
        let mine = kv(keys.alone, me, lease: 0x77)
        XCTAssertEqual(EtcdAnswers.check(leaseTTL: 5, lease: 0x77, answer: try txnAnswer(epochKV: nil, aloneKV: mine), keys: keys, epoch: 2, token: "tb"),
                       .current)
        guard case .unavailable = EtcdAnswers.check(leaseTTL: 0, lease: 0x77, answer: try txnAnswer(epochKV: nil, aloneKV: mine), keys: keys, epoch: 2, token: "tb") else {
            return XCTFail("an expired lease proves nothing")
        }
        guard case .unavailable = EtcdAnswers.check(leaseTTL: 5, lease: 0x77, answer: try txnAnswer(epochKV: nil, aloneKV: nil), keys: keys, epoch: 2, token: "tb") else {
            return XCTFail("the alone key deleted (by an operator): no proof")
        }
        guard case .unavailable = EtcdAnswers.check(leaseTTL: 5, lease: 0x78, answer: try txnAnswer(epochKV: nil, aloneKV: mine), keys: keys, epoch: 2, token: "tb") else {
            return XCTFail("the alone key under another lease: no proof")
        }
        XCTAssertEqual(EtcdAnswers.check(leaseTTL: 5, lease: 0x77, answer: try txnAnswer(epochKV: kv(keys.epoch(3), higher), aloneKV: mine), keys: keys, epoch: 2, token: "tb"),
                       .superseded(epoch: 3, detail: "\(keys.epoch(3)) owned by C at t"))
        let j = try JSON.parse(Array(#"{"header":{},"kvs":[\#(kv(keys.epoch(3), higher))],"count":"1"}"#.utf8))
        XCTAssertEqual(EtcdAnswers.kvs(j).map(\.key), [keys.epoch(3)])
        XCTAssertEqual(EtcdAnswers.error(try JSON.parse(Array(#"{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}"#.utf8))),
                       "etcdserver: requested lease not found")
        XCTAssertNil(EtcdAnswers.error(j))
    }
}
