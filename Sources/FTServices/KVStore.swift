import DequeModule
import FTWire
import HeapModule

/// A map from byte-string keys to values whose iteration order is the order
/// of its slots: a key keeps its slot for its whole life, a removed key's
/// slot goes on a free list and is reused last-freed first. Lookups go
/// through a Dictionary, but no Dictionary order ever reaches iteration, so
/// two replicas that applied the same operations iterate identically. A SCAN
/// cursor is a slot number: a key present for a whole scan is returned
/// exactly once.
public struct SlotTable<Value> {
    var index: [[UInt8]: Int32] = [:]
    var keys: [[UInt8]] = []
    var values: [Value?] = []
    var free: [Int32] = []

    public init() {}
    public var count: Int { index.count }
    public var slotCount: Int { values.count }

    func slot(of key: [UInt8]) -> Int? { index[key].map(Int.init) }

    /// Inserts a key known to be absent; returns its slot.
    mutating func insert(_ key: [UInt8], _ value: Value) -> Int {
        let s: Int
        if let f = free.popLast() {
            s = Int(f); keys[s] = key; values[s] = value
        } else {
            s = values.count; keys.append(key); values.append(value)
        }
        index[key] = Int32(s)
        return s
    }

    @discardableResult
    mutating func remove(at s: Int) -> Value {
        let v = values[s]!
        index[keys[s]] = nil
        keys[s] = []; values[s] = nil
        free.append(Int32(s))
        return v
    }

    mutating func removeAll() { self = SlotTable() }

    /// Occupied slots in slot order.
    var occupied: [Int] { values.indices.filter { values[$0] != nil } }

    func encode(into w: inout ByteWriter, _ value: (Value, inout ByteWriter) -> Void) {
        w.int(values.count)
        for s in values.indices {
            if let v = values[s] { w.bool(true); w.blob(keys[s]); value(v, &w) } else { w.bool(false) }
        }
        w.int(free.count)
        for f in free { w.u32(UInt32(f)) }
    }

    static func decode(from r: inout ByteReader, maxKey: Int, _ value: (inout ByteReader) throws -> Value) throws -> SlotTable {
        var t = SlotTable()
        let n = try r.int()
        guard n >= 0, n <= Int(Int32.max) else { throw DecodeError.invalid(offset: r.offset - 8, what: "slot count") }
        t.keys.reserveCapacity(n); t.values.reserveCapacity(n)
        for s in 0..<n {
            if try r.bool() {
                let k = try r.blob(max: maxKey)
                guard t.index[k] == nil else { throw DecodeError.invalid(offset: r.offset, what: "duplicate key") }
                t.keys.append(k); t.values.append(try value(&r)); t.index[k] = Int32(s)
            } else { t.keys.append([]); t.values.append(nil) }
        }
        let f = try r.int()
        guard f >= 0, f <= n else { throw DecodeError.invalid(offset: r.offset - 8, what: "free count") }
        var seen = Set<Int32>()
        for _ in 0..<f {
            let s = Int32(bitPattern: try r.u32())
            guard s >= 0, Int(s) < n, t.values[Int(s)] == nil, seen.insert(s).inserted else {
                throw DecodeError.invalid(offset: r.offset - 4, what: "free slot")
            }
            t.free.append(s)
        }
        guard f == n - t.index.count else { throw DecodeError.invalid(offset: r.offset, what: "free list size") }
        return t
    }
}

/// A hash: fields in slot order (HGETALL order is deterministic).
public typealias KVHash = SlotTable<[UInt8]>

public enum KVValue {
    case string([UInt8])
    case list(Deque<[UInt8]>)
    case hash(KVHash)

    var typeName: String {
        switch self { case .string: return "string"; case .list: return "list"; case .hash: return "hash" }
    }
}

public struct KVEntry {
    public var value: KVValue
    /// Expiry on the log clock in milliseconds; 0 means none.
    public var expireAt: Int64
}

/// One pending expiry: a key in `slot` due at `at` (log ms). Entries are
/// never removed early: when one comes due, it deletes the key only if the
/// slot still holds a key with exactly that expiry.
struct Expiry: Comparable {
    var at: Int64
    var slot: Int32
    static func < (a: Expiry, b: Expiry) -> Bool { (a.at, a.slot) < (b.at, b.slot) }
}

/// The keyspace: one database of keys, their values and expiries, and its
/// memory account (an estimate that is the same on every replica).
public final class KVStore {
    var table = SlotTable<KVEntry>()
    var expiries = Heap<Expiry>()
    /// Keys that have an expiry.
    public internal(set) var volatileKeys = 0
    /// Estimated bytes held by keys and values (counted as below).
    public internal(set) var usedBytes = 0
    public internal(set) var expiredKeys: UInt64 = 0
    var scratch: [UInt8] = []

    static let keyOverhead = 64
    static let itemOverhead = 16
    static let fieldOverhead = 32

    public init() {}
    public var count: Int { table.count }

    static func cost(_ v: KVValue) -> Int {
        switch v {
        case .string(let s): return s.count
        case .list(let l): return l.reduce(0) { $0 + $1.count + itemOverhead }
        case .hash(let h): return h.occupied.reduce(0) { $0 + h.keys[$1].count + h.values[$1]!.count + fieldOverhead }
        }
    }

    /// The slot of a live key, deleting it first if it expired by `now`.
    func find(_ key: ArraySlice<UInt8>, now: Int64) -> Int? {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: key)
        guard let s = table.slot(of: scratch) else { return nil }
        let e = table.values[s]!.expireAt
        if e != 0 && e <= now { remove(s); expiredKeys += 1; return nil }
        return s
    }

    func entry(_ s: Int) -> KVEntry { table.values[s]! }
    func key(_ s: Int) -> [UInt8] { table.keys[s] }

    @discardableResult
    func insert(_ key: ArraySlice<UInt8>, _ value: KVValue, expireAt: Int64 = 0) -> Int {
        let k = Array(key)
        usedBytes += Self.keyOverhead + k.count + Self.cost(value)
        let s = table.insert(k, KVEntry(value: value, expireAt: 0))
        setExpire(s, expireAt)
        return s
    }

    func remove(_ s: Int) {
        let keyLength = table.keys[s].count
        let e = table.remove(at: s)
        usedBytes -= Self.keyOverhead + keyLength
        if e.expireAt != 0 { volatileKeys -= 1 }
        usedBytes -= Self.cost(e.value)
    }

    /// Replaces the value of a live key, keeping its expiry.
    func replace(_ s: Int, _ value: KVValue) {
        usedBytes += Self.cost(value) - Self.cost(table.values[s]!.value)
        table.values[s]!.value = value
    }

    /// Takes the value out of its slot (so it can be mutated without a copy);
    /// `put` must follow. `delta` adjusts the memory account.
    func take(_ s: Int) -> KVValue {
        let v = table.values[s]!.value
        table.values[s]!.value = .string([])
        return v
    }
    func put(_ s: Int, _ v: KVValue, delta: Int) {
        table.values[s]!.value = v
        usedBytes += delta
    }

    func setExpire(_ s: Int, _ at: Int64) {
        let old = table.values[s]!.expireAt
        if old == at { return }
        if old != 0 { volatileKeys -= 1 }
        if at != 0 { volatileKeys += 1; expiries.insert(Expiry(at: at, slot: Int32(s))) }
        table.values[s]!.expireAt = at
    }

    /// Deletes up to `limit` keys whose expiry is due at `now` (the active
    /// expiry: deterministic, in expiry order).
    func expireDue(now: Int64, limit: Int) {
        var n = 0
        while n < limit, let m = expiries.min, m.at <= now {
            _ = expiries.popMin()
            let s = Int(m.slot)
            if s < table.values.count, let e = table.values[s], e.expireAt == m.at {
                remove(s); expiredKeys += 1; n += 1
            }
        }
        // Stale entries (keys deleted, overwritten or persisted) are dropped
        // when they come due; bound them so they cannot grow without limit.
        if expiries.count > 4 * (volatileKeys + 1024) { rebuildExpiries() }
    }

    func rebuildExpiries() {
        var live: [Expiry] = []
        for s in table.values.indices { if let e = table.values[s], e.expireAt != 0 { live.append(Expiry(at: e.expireAt, slot: Int32(s))) } }
        expiries = Heap(live)
    }

    func flush() {
        table.removeAll(); expiries = Heap(); volatileKeys = 0; usedBytes = 0
    }

    // MARK: Snapshot

    func encode(into w: inout ByteWriter) {
        w.int(usedBytes); w.int(volatileKeys); w.u64(expiredKeys)
        table.encode(into: &w) { e, w in
            w.u64(UInt64(bitPattern: e.expireAt))
            switch e.value {
            case .string(let s): w.u8(0); w.blob(s)
            case .list(let l): w.u8(1); w.int(l.count); for x in l { w.blob(x) }
            case .hash(let h): w.u8(2); h.encode(into: &w) { v, w in w.blob(v) }
            }
        }
        // The heap's layout depends on its history; its contents do not.
        let pending = expiries.unordered.sorted()
        w.int(pending.count)
        for x in pending { w.u64(UInt64(bitPattern: x.at)); w.u32(UInt32(bitPattern: x.slot)) }
    }

    func decode(from r: inout ByteReader, maxBulk: Int) throws {
        let used = try r.int(), volatile = try r.int(), expired = try r.u64()
        let t = try SlotTable<KVEntry>.decode(from: &r, maxKey: maxBulk) { r in
            let at = Int64(bitPattern: try r.u64())
            switch try r.u8() {
            case 0: return KVEntry(value: .string(try r.blob(max: maxBulk)), expireAt: at)
            case 1:
                let n = try r.int()
                guard n >= 0, n <= 1 << 31 else { throw DecodeError.invalid(offset: r.offset - 8, what: "list length") }
                var l = Deque<[UInt8]>(); l.reserveCapacity(n)
                for _ in 0..<n { l.append(try r.blob(max: maxBulk)) }
                return KVEntry(value: .list(l), expireAt: at)
            case 2:
                return KVEntry(value: .hash(try KVHash.decode(from: &r, maxKey: maxBulk) { r in try r.blob(max: maxBulk) }), expireAt: at)
            default: throw DecodeError.invalid(offset: r.offset - 1, what: "value type")
            }
        }
        let n = try r.int()
        guard n >= 0, n <= 1 << 31 else { throw DecodeError.invalid(offset: r.offset - 8, what: "expiry count") }
        var pending: [Expiry] = []
        pending.reserveCapacity(n)
        for _ in 0..<n { pending.append(Expiry(at: Int64(bitPattern: try r.u64()), slot: Int32(bitPattern: try r.u32()))) }
        table = t; expiries = Heap(pending); usedBytes = used; volatileKeys = volatile; expiredKeys = expired
    }
}

/// Redis's glob (stringmatchlen): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
func globMatch(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
    var pi = p.startIndex, si = s.startIndex
    while pi < p.endIndex {
        switch p[pi] {
        case UInt8(ascii: "*"):
            while pi + 1 < p.endIndex && p[pi + 1] == UInt8(ascii: "*") { pi += 1 }
            if pi + 1 == p.endIndex { return true }
            var k = si
            while k <= s.endIndex {
                if globMatch(p[(pi + 1)...], s[k...]) { return true }
                k += 1
            }
            return false
        case UInt8(ascii: "?"):
            if si == s.endIndex { return false }
            si += 1
        case UInt8(ascii: "["):
            if si == s.endIndex { return false }
            pi += 1
            let not = pi < p.endIndex && p[pi] == UInt8(ascii: "^")
            if not { pi += 1 }
            var match = false
            while pi < p.endIndex && p[pi] != UInt8(ascii: "]") {
                if p[pi] == UInt8(ascii: "\\") && pi + 1 < p.endIndex {
                    pi += 1; if p[pi] == s[si] { match = true }
                } else if pi + 2 < p.endIndex && p[pi + 1] == UInt8(ascii: "-") && p[pi + 2] != UInt8(ascii: "]") {
                    let lo = min(p[pi], p[pi + 2]), hi = max(p[pi], p[pi + 2])
                    if s[si] >= lo && s[si] <= hi { match = true }
                    pi += 2
                } else if p[pi] == s[si] { match = true }
                pi += 1
            }
            if pi == p.endIndex { pi -= 1 }  // unterminated: treat the last byte as the end
            if not { match = !match }
            if !match { return false }
            si += 1
        case UInt8(ascii: "\\") where pi + 1 < p.endIndex:
            pi += 1
            if si == s.endIndex || p[pi] != s[si] { return false }
            si += 1
        default:
            if si == s.endIndex || p[pi] != s[si] { return false }
            si += 1
        }
        pi += 1
    }
    return si == s.endIndex
}
