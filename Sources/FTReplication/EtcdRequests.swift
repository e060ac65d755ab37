// What the etcd arbiter asks etcd and what it concludes from the answers
// (pure: request bodies in, decisions out; FTPlatform.EtcdArbiter sends them).
//
// Keys under the store's PREFIX:
//   PREFIX/epoch/NNNNNNNNNNNNNNNNNNNN  one per claimed epoch (20 digits, so key
//                                      order is epoch order), never deleted
//   PREFIX/alone                       the node that may emit without a backup,
//                                      attached to that node's lease
// Values are JSON objects: {"node", "token", "epoch", "at"}; `token` is random
// per process, so two nodes with the same name are still told apart.
//
// Claim of epoch N: one txn
//   if  create_revision(PREFIX/epoch/N) == 0            (N was never claimed)
//   and version(PREFIX/alone) == 0                      (nobody holds the alone lease)
//   then put PREFIX/epoch/N = owner; put PREFIX/alone = owner with our fresh lease
//   else range PREFIX/epoch/N; range PREFIX/alone
// When the alone key is our own (an older lease of this process), the txn is
// repeated with `mod_revision(PREFIX/alone) == that key's revision` instead.
// When epoch N turns out to be ours already (an earlier attempt committed but
// its answer was lost), the alone key must be ours under the lease this
// process renews: "adopt" puts it, if epoch N+1 was never claimed and the
// alone key is absent or still our own.

public struct EtcdKeys: Equatable, Sendable {
    /// Without a trailing slash, e.g. "/ftap/pair1".
    public let prefix: String
    public init(prefix: String) { self.prefix = prefix }

    public func epoch(_ e: UInt64) -> String {
        let d = String(e)
        return "\(prefix)/epoch/" + String(repeating: "0", count: max(0, 20 - d.count)) + d
    }
    public var alone: String { "\(prefix)/alone" }
    /// The end of the epoch keys' range (exclusive): '/' + 1 is '0'.
    public var epochsEnd: String { "\(prefix)/epoch0" }
    /// The epoch number of an epoch key, nil for other keys.
    public func epochNumber(ofKey k: String) -> UInt64? {
        let p = "\(prefix)/epoch/"
        guard k.hasPrefix(p) else { return nil }
        return UInt64(k.dropFirst(p.count))
    }
}

/// An owner record: who claimed (or holds the alone lease on) an epoch.
public struct EtcdOwner: Equatable, Sendable {
    public var node: String
    public var token: String
    public var epoch: UInt64
    /// Wall-clock time of the claim as the claimer saw it (for operators only).
    public var at: String
    public init(node: String, token: String, epoch: UInt64, at: String) {
        self.node = node; self.token = token; self.epoch = epoch; self.at = at
    }
    public var json: String {
        JSON.object([("node", .string(node)), ("token", .string(token)), ("epoch", .string(String(epoch))),
                     ("at", .string(at))]).encoded
    }
    public init?(json text: [UInt8]) {
        guard let j = try? JSON.parse(text), let n = j["node"]?.string, let t = j["token"]?.string,
              let e = j["epoch"]?.uint64 else { return nil }
        self.init(node: n, token: t, epoch: e, at: j["at"]?.string ?? "")
    }
    public var description: String { "\(node)\(at.isEmpty ? "" : " at \(at)")" }
}

/// One key-value pair from a range answer.
public struct EtcdKV: Equatable, Sendable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var lease: Int64

    init?(_ j: JSON) {
        guard let k = j["key"]?.string.flatMap(Base64.decodeString) else { return nil }
        key = k
        value = j["value"]?.string.flatMap(Base64.decode) ?? []
        createRevision = j["create_revision"]?.int64 ?? 0
        modRevision = j["mod_revision"]?.int64 ?? 0
        lease = j["lease"]?.int64 ?? 0
    }
}

public enum EtcdRequests {
    static func b64(_ s: String) -> JSON { .string(Base64.encode(s)) }
    static func int(_ n: Int64) -> JSON { .string(String(n)) }

    /// POST /v3/lease/grant
    public static func grant(ttlSeconds: Int64) -> String { JSON.object([("TTL", int(ttlSeconds))]).encoded }
    /// POST /v3/lease/keepalive (a stream: one request, one `{"result": ...}` line)
    public static func keepAlive(lease: Int64) -> String { JSON.object([("ID", int(lease))]).encoded }
    /// POST /v3/lease/revoke
    public static func revoke(lease: Int64) -> String { JSON.object([("ID", int(lease))]).encoded }

    /// POST /v3/kv/range: one key.
    public static func get(_ key: String) -> String { JSON.object([("key", b64(key))]).encoded }

    /// POST /v3/kv/range: [from, to), ascending by key, or only the highest key.
    public static func range(from: String, to: String, highestOnly: Bool = false) -> String {
        rangeObject(from: from, to: to, highestOnly: highestOnly).encoded
    }

    static func rangeObject(from: String, to: String, highestOnly: Bool) -> JSON {
        var m: [(String, JSON)] = [("key", b64(from)), ("range_end", b64(to))]
        if highestOnly { m += [("limit", int(1)), ("sort_order", .string("DESCEND")), ("sort_target", .string("KEY"))] }
        return JSON.object(m)
    }

    /// POST /v3/kv/txn without conditions, one consistent read: the highest
    /// epoch key above `epoch`, and the alone key.
    public static func check(keys: EtcdKeys, epoch: UInt64) -> String {
        JSON.object([("success", .array([
            .object([("request_range", rangeObject(from: keys.epoch(epoch + 1), to: keys.epochsEnd, highestOnly: true))]),
            .object([("request_range", .object([("key", b64(keys.alone))]))]),
        ]))]).encoded
    }

    /// POST /v3/kv/txn: make the alone key ours under `lease` for epoch
    /// `owner.epoch`, which is ours already (see the file comment).
    public static func adopt(keys: EtcdKeys, owner: EtcdOwner, lease: Int64, ownAloneRevision: Int64?) -> String {
        let next = keys.epoch(owner.epoch + 1)
        let value = b64(owner.json)
        return JSON.object([
            ("compare", .array([
                .object([("key", b64(next)), ("result", .string("EQUAL")), ("target", .string("CREATE")),
                         ("create_revision", int(0))]),
                aloneCompare(keys, ownAloneRevision),
            ])),
            ("success", .array([
                .object([("request_put", .object([("key", b64(keys.alone)), ("value", value), ("lease", int(lease))]))]),
            ])),
            ("failure", .array([
                .object([("request_range", .object([("key", b64(next))]))]),
                .object([("request_range", .object([("key", b64(keys.alone))]))]),
            ])),
        ]).encoded
    }

    static func aloneCompare(_ keys: EtcdKeys, _ ownAloneRevision: Int64?) -> JSON {
        if let r = ownAloneRevision {
            return .object([("key", b64(keys.alone)), ("result", .string("EQUAL")), ("target", .string("MOD")),
                            ("mod_revision", int(r))])
        }
        return .object([("key", b64(keys.alone)), ("result", .string("EQUAL")), ("target", .string("VERSION")),
                        ("version", int(0))])
    }

    /// POST /v3/kv/txn: the claim (see the file comment). `ownAloneRevision`
    /// replaces "nobody holds the alone key" by "the alone key is still the
    /// one of ours seen at that revision".
    public static func claim(keys: EtcdKeys, owner: EtcdOwner, lease: Int64, ownAloneRevision: Int64? = nil) -> String {
        let epochKey = keys.epoch(owner.epoch)
        let value = b64(owner.json)
        return JSON.object([
            ("compare", .array([
                .object([("key", b64(epochKey)), ("result", .string("EQUAL")), ("target", .string("CREATE")),
                         ("create_revision", int(0))]),
                aloneCompare(keys, ownAloneRevision),
            ])),
            ("success", .array([
                .object([("request_put", .object([("key", b64(epochKey)), ("value", value)]))]),
                .object([("request_put", .object([("key", b64(keys.alone)), ("value", value), ("lease", int(lease))]))]),
            ])),
            ("failure", .array([
                .object([("request_range", .object([("key", b64(epochKey))]))]),
                .object([("request_range", .object([("key", b64(keys.alone))]))]),
            ])),
        ]).encoded
    }
}

/// Reading etcd's answers.
public enum EtcdAnswers {
    /// A gateway error (`{"error": ..., "code": N, "message": ...}`) as text, or nil.
    public static func error(_ j: JSON) -> String? {
        if let m = j["error"]?.string ?? j["message"]?.string, j["header"] == nil { return m }
        if let e = j["error"], case .object = e { return e["message"]?.string ?? e.encoded }
        return nil
    }

    /// The cluster id every answer's header carries.
    public static func clusterID(_ j: JSON) -> UInt64? {
        (j["header"] ?? j["result"]?["header"])?["cluster_id"]?.uint64
    }

    /// The key-values of a range answer (also inside a txn's `response_range`).
    public static func kvs(_ range: JSON?) -> [EtcdKV] {
        (range?["kvs"]?.array ?? []).compactMap(EtcdKV.init)
    }

    /// The lease id of a grant answer.
    public static func grantedLease(_ j: JSON) -> Int64? {
        guard let id = j["ID"]?.int64, id != 0 else { return nil }
        return id
    }

    /// The TTL a keep-alive answer reports for the lease (0: the lease is
    /// gone). The body is one or more JSON lines, each `{"result": {...}}` or
    /// `{"error": {...}}`; the first decides.
    public static func keepAliveTTL(_ body: [UInt8]) throws -> Int64 {
        let first = body.split(separator: 0x0a, omittingEmptySubsequences: true).first ?? []
        let j = try JSON.parse(first)
        if let r = j["result"] { return r["TTL"]?.int64 ?? 0 }
        throw JSON.ParseError(offset: 0, what: "keep-alive answer without a result: \(String(decoding: first.prefix(200), as: UTF8.self))")
    }

    public enum ClaimStep: Equatable, Sendable {
        case won(String)
        case lost(String)
        /// The alone key is an older one of ours: repeat the txn comparing its revision.
        case replaceOwnAlone(revision: Int64)
        /// Epoch N is ours already (an earlier attempt committed): adopt the
        /// alone key (`EtcdRequests.adopt`), comparing this revision of our
        /// own alone key, or its absence (nil).
        case ownEpoch(aloneRevision: Int64?)
        /// Another node holds the alone lease (it may be emitting): not an
        /// answer about epoch N; retry after its lease had time to expire.
        case wait(String)
    }

    /// Decides a claim from the txn's answer.
    public static func claim(_ j: JSON, keys: EtcdKeys, epoch: UInt64, token: String) -> ClaimStep {
        if j["succeeded"]?.bool == true { return .won("created \(keys.epoch(epoch))") }
        let rs = j["responses"]?.array ?? []
        let epochKV = kvs(rs.first?["response_range"]).first
        let aloneKV = rs.count > 1 ? kvs(rs[1]["response_range"]).first : nil
        if let kv = epochKV {
            let o = EtcdOwner(json: kv.value)
            if let o, o.token == token {
                // An earlier attempt of ours committed (its answer was lost):
                // the alone key must be ours under the lease we renew.
                if let a = aloneKV {
                    let ao = EtcdOwner(json: a.value)
                    if ao?.token == token { return .ownEpoch(aloneRevision: a.modRevision) }
                    return waitFor(a, ao, epoch: epoch)
                }
                return .ownEpoch(aloneRevision: nil)
            }
            return .lost("\(keys.epoch(epoch)) already claimed by \(o?.description ?? "an unreadable owner record")")
        }
        if let kv = aloneKV {
            let o = EtcdOwner(json: kv.value)
            if let o, o.token == token { return .replaceOwnAlone(revision: kv.modRevision) }
            return waitFor(kv, o, epoch: epoch)
        }
        return .wait("the alone key changed during the claim; retrying")
    }

    static func waitFor(_ kv: EtcdKV, _ o: EtcdOwner?, epoch: UInt64) -> ClaimStep {
        .wait("\(o.map { "\($0.node) serves epoch \($0.epoch)" } ?? "another node serves") alone under lease "
            + "\(String(kv.lease, radix: 16)); epoch \(epoch) can be granted only once that lease expired")
    }

    /// Decides an adopt txn's answer (epoch N is ours; see `EtcdRequests.adopt`).
    public static func adopt(_ j: JSON, keys: EtcdKeys, epoch: UInt64, token: String) -> ClaimStep {
        if j["succeeded"]?.bool == true {
            return .won("\(keys.epoch(epoch)) already ours (an earlier attempt committed); alone key taken over")
        }
        let rs = j["responses"]?.array ?? []
        if let kv = kvs(rs.first?["response_range"]).first {
            return .lost("\(kv.key) was claimed meanwhile by \(EtcdOwner(json: kv.value)?.description ?? "an unreadable owner record")")
        }
        if rs.count > 1, let a = kvs(rs[1]["response_range"]).first {
            let ao = EtcdOwner(json: a.value)
            if ao?.token == token { return .ownEpoch(aloneRevision: a.modRevision) }
            return waitFor(a, ao, epoch: epoch)
        }
        return .ownEpoch(aloneRevision: nil)
    }

    /// Decides an epoch check from the keep-alive TTL of our lease and the
    /// check txn's answer (`EtcdRequests.check`): `current` only if no higher
    /// epoch exists and the alone key is still ours, under that lease.
    public static func check(leaseTTL: Int64, lease: Int64, answer j: JSON, keys: EtcdKeys, epoch: UInt64, token: String) -> EpochCheck {
        let rs = j["responses"]?.array ?? []
        guard rs.count == 2 else { return .unavailable("check answer without its two ranges") }
        if let kv = kvs(rs[0]["response_range"]).first, let e = keys.epochNumber(ofKey: kv.key), e > epoch {
            let o = EtcdOwner(json: kv.value)
            return .superseded(epoch: e, detail: "\(kv.key) owned by \(o?.description ?? "an unreadable owner record")")
        }
        if leaseTTL <= 0 {
            return .unavailable("lease \(String(lease, radix: 16)) expired: this node can no longer prove it owns epoch \(epoch)")
        }
        guard let a = kvs(rs[1]["response_range"]).first, let o = EtcdOwner(json: a.value), o.token == token,
              a.lease == lease, o.epoch == epoch else {
            return .unavailable("\(keys.alone) is no longer this node's (under lease \(String(lease, radix: 16)), epoch \(epoch)): "
                + "cannot prove ownership")
        }
        return .current
    }
}
