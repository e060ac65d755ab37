#if canImport(Glibc)
import Glibc
#endif
import FTReplication
import FTStack

/// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=SECONDS&timeout-ms=MS]`:
/// epochs are claimed in an etcd v3 cluster through its HTTP/JSON gateway
/// (`EtcdRequests.swift` describes the keys and the claim transaction).
/// Claiming epoch N also puts `PREFIX/alone` under a fresh lease of `ttl`
/// seconds (default 5); a node serving without a backup keeps that lease
/// alive through its epoch checks and stops once it cannot prove it for
/// `ownershipBound`; no other node can claim while the lease lives.
/// HOSTs are IPv4 addresses. Identity: `etcd:CLUSTERID:PREFIX`.
public final class EtcdArbiter: Arbiter {
    public struct Spec: Equatable {
        public var endpoints: [SocketAddress]
        public var prefix: String
        public var ttlSeconds: Int64 = 5
        public var timeout: Nanos = 500 * nsPerMs

        /// Parses the URL; throws a message naming what is wrong.
        public init(_ url: String) throws {
            func bad(_ why: String) -> SystemError { SystemError("--arbiter \(url)", detail: why) }
            guard url.hasPrefix("etcd://") else { throw bad("an etcd arbiter URL starts with etcd://") }
            var rest = Substring(url.dropFirst(7))
            var query = Substring("")
            if let q = rest.firstIndex(of: "?") { query = rest[rest.index(after: q)...]; rest = rest[..<q] }
            guard let slash = rest.firstIndex(of: "/") else { throw bad("no /PREFIX after the endpoints") }
            let hosts = rest[..<slash].split(separator: ",", omittingEmptySubsequences: false)
            endpoints = []
            for h in hosts {
                guard let a = SocketAddress(String(h)) else {
                    throw bad("endpoint '\(h)' is not IPv4:PORT (e.g. 10.0.0.5:2379)")
                }
                endpoints.append(a)
            }
            guard !endpoints.isEmpty else { throw bad("no endpoint") }
            var p = String(rest[slash...])
            while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
            guard p.count > 1 else { throw bad("the PREFIX is empty (e.g. etcd://10.0.0.5:2379/ftap/pair1)") }
            prefix = p
            for kv in query.split(separator: "&") where !kv.isEmpty {
                let parts = kv.split(separator: "=", maxSplits: 1)
                let k = String(parts[0]), v = parts.count > 1 ? String(parts[1]) : ""
                switch k {
                case "ttl":
                    guard let n = Int64(v), n >= 1, n <= 3600 else { throw bad("ttl=\(v): want whole seconds, 1...3600") }
                    ttlSeconds = n
                case "timeout-ms":
                    guard let n = UInt64(v), n >= 10, n <= 60_000 else { throw bad("timeout-ms=\(v): want 10...60000") }
                    timeout = n * nsPerMs
                default:
                    throw bad("unknown option '\(k)' (known: ttl, timeout-ms)")
                }
            }
        }

        /// How long a node may emit alone after it asked for (or renewed)
        /// its lease: TTL·(1−ρ)/(1+ρ) − δ, with clock rates within ρ = 1 % of
        /// real time and δ = 100 ms for the loop to act (ARCHITECTURE.md).
        public var ownershipBound: Nanos {
            let ttl = Double(ttlSeconds) * 1e9
            let b = ttl * (1 - Self.rho) / (1 + Self.rho) - Double(Self.delta)
            return Nanos(max(b, 0))
        }
        public static let rho = 0.01
        public static let delta: Nanos = 100 * nsPerMs
    }

    public let spec: Spec
    let keys: EtcdKeys
    let client: EtcdClient
    /// Random per process: tells this process's records from any other's.
    let token: String
    /// The lease under which this process holds `PREFIX/alone` (from its last won claim).
    private(set) var lease: Int64? = nil

    public var description: String { "etcd://" + spec.endpoints.map(\.description).joined(separator: ",") + spec.prefix }
    public private(set) var identity = ""
    public var ownershipBound: Nanos? { spec.ownershipBound }

    /// Parses the URL and asks the cluster for its id (throws when no endpoint answers).
    public init(url: String) throws {
        spec = try Spec(url)
        keys = EtcdKeys(prefix: spec.prefix)
        client = EtcdClient(endpoints: spec.endpoints, timeout: spec.timeout)
        var r = SystemRandomNumberGenerator()
        token = String(r.next(), radix: 16)
        let j: JSON
        do { j = try client.call("/v3/kv/range", EtcdRequests.get(keys.alone)) } catch {
            throw SystemError("arbiter \(description)", detail: "\(error)")
        }
        guard let id = EtcdAnswers.clusterID(j) else {
            throw SystemError("arbiter \(description)", detail: "the answer carries no cluster id")
        }
        identity = "etcd:\(String(id, radix: 16)):\(spec.prefix)"
    }

    public func claim(epoch: UInt64, node: String) -> ArbiterAnswer {
        // A fresh lease per claim: it is granted after the core asked, so
        // the core's bound counts from a time before the lease began.
        let fresh: Int64
        do {
            guard let id = EtcdAnswers.grantedLease(try client.call("/v3/lease/grant", EtcdRequests.grant(ttlSeconds: spec.ttlSeconds))) else {
                return .unavailable("lease grant answered without a lease id")
            }
            fresh = id
        } catch {
            return .unavailable("lease grant: \(error)")
        }
        let owner = EtcdOwner(node: node, token: token, epoch: epoch, at: Self.wallClock())
        var ownAlone: Int64? = nil
        var adopting = false
        for _ in 0..<4 {
            let j: JSON
            do {
                j = try client.call("/v3/kv/txn", adopting
                    ? EtcdRequests.adopt(keys: keys, owner: owner, lease: fresh, ownAloneRevision: ownAlone)
                    : EtcdRequests.claim(keys: keys, owner: owner, lease: fresh, ownAloneRevision: ownAlone))
            } catch {
                // Perhaps committed: a retry finds our own record (`token`) and adopts it.
                revoke(fresh)
                return .unavailable("claim txn: \(error)")
            }
            let step = adopting ? EtcdAnswers.adopt(j, keys: keys, epoch: epoch, token: token)
                                : EtcdAnswers.claim(j, keys: keys, epoch: epoch, token: token)
            switch step {
            case .won(let d):
                if let old = lease, old != fresh { revoke(old) }
                lease = fresh
                return .won("\(d) (lease \(String(fresh, radix: 16)), ttl \(spec.ttlSeconds) s)")
            case .lost(let d):
                revoke(fresh)
                return .lost(d)
            case .replaceOwnAlone(let rev):
                ownAlone = rev
            case .ownEpoch(let rev):
                adopting = true
                ownAlone = rev
            case .wait(let d):
                revoke(fresh)
                return .unavailable(d)
            }
        }
        revoke(fresh)
        return .unavailable("the alone key kept changing during the claim")
    }

    public func check(above epoch: UInt64) -> EpochCheck {
        guard let l = lease else {
            return .unavailable("this process holds no lease for epoch \(epoch)")
        }
        let ttl: Int64
        do {
            ttl = try EtcdAnswers.keepAliveTTL(try client.post("/v3/lease/keepalive", EtcdRequests.keepAlive(lease: l)))
        } catch {
            return .unavailable("lease keep-alive: \(error)")
        }
        let j: JSON
        do {
            j = try client.call("/v3/kv/txn", EtcdRequests.check(keys: keys, epoch: epoch))
        } catch {
            return .unavailable("epoch check: \(error)")
        }
        return EtcdAnswers.check(leaseTTL: ttl, lease: l, answer: j, keys: keys, epoch: epoch, token: token)
    }

    /// A plain range read of the epoch keys: `check` renews this process's
    /// lease and so cannot answer before a claim.
    public func history() -> EpochCheck {
        do {
            guard let top = try epochs().last else { return .current }
            return .superseded(epoch: top.epoch, detail: "claimed by \(top.owner)")
        } catch {
            return .unavailable("reading the claimed epochs: \(error)")
        }
    }

    public func releaseOwnership() {
        guard let l = lease else { return }
        lease = nil
        revoke(l)
    }

    /// Best effort: an unrevoked lease expires after its TTL anyway.
    func revoke(_ l: Int64) {
        _ = try? client.call("/v3/lease/revoke", EtcdRequests.revoke(lease: l))
    }

    /// Every claimed epoch with its owner, ascending.
    public func epochs() throws -> [(epoch: UInt64, owner: String)] {
        let j = try client.call("/v3/kv/range", EtcdRequests.range(from: keys.epoch(0), to: keys.epochsEnd))
        return EtcdAnswers.kvs(j).compactMap { kv in
            keys.epochNumber(ofKey: kv.key).map { ($0, EtcdOwner(json: kv.value)?.description ?? "unreadable record") }
        }
    }

    /// Who holds the alone lease now, if anyone.
    public func aloneHolder() throws -> String? {
        let j = try client.call("/v3/kv/range", EtcdRequests.get(keys.alone))
        guard let kv = EtcdAnswers.kvs(j).first else { return nil }
        let o = EtcdOwner(json: kv.value)
        return "\(o?.node ?? "?") (epoch \(o.map { String($0.epoch) } ?? "?"), lease \(String(kv.lease, radix: 16)))"
    }

    /// Claim and release timing for the benchmark: claims epochs from `first`
    /// on, `count` times; returns each claim's latency in milliseconds.
    public func benchmarkClaims(first: UInt64, count: Int, node: String) -> [Double] {
        var out: [Double] = []
        for i in 0..<count {
            let t = monotonicNanos()
            _ = claim(epoch: first + UInt64(i), node: node)
            out.append(Double(monotonicNanos() - t) / 1e6)
            releaseOwnership()
        }
        return out
    }

    static func wallClock() -> String {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [Int8](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
