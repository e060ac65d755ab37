import DequeModule
import FTWire

/// The commands the `kv` service knows, with Redis's arity (n: exactly n
/// arguments including the name; -n: at least n) and whether they may grow
/// the keyspace (refused with OOM above the memory limit).
enum KVOp: String, CaseIterable {
    case ping, echo, select, quit, time, command, client, config, info, hello
    case get, set, getset, setnx, mget, mset, del, exists, expire, pexpire, ttl, pttl, persist
    case incr, incrby, decr, decrby, append, strlen, getrange, setrange
    case keys, scan, dbsize, flushdb, flushall, type
    case hset, hget, hdel, hgetall, hincrby, hlen
    case lpush, rpush, lpop, rpop, lrange, llen

    var arity: Int {
        switch self {
        case .ping: return -1
        case .echo: return 2
        case .select: return 2
        case .quit: return -1
        case .time, .dbsize: return 1
        case .command, .flushdb, .flushall: return -1
        case .client, .config, .scan: return -2
        case .info, .hello: return -1
        case .get, .ttl, .pttl, .persist, .incr, .decr, .strlen, .type, .hgetall, .hlen, .llen, .keys: return 2
        case .set: return -3
        case .hset: return -4
        case .getset, .setnx, .incrby, .decrby, .append, .hget: return 3
        case .mget, .del, .exists: return -2
        case .mset: return -3
        case .expire, .pexpire: return -3
        case .getrange, .setrange, .hincrby, .lrange: return 4
        case .hdel, .lpush, .rpush: return -3
        case .lpop, .rpop: return -2
        }
    }

    /// Commands that may use more memory (Redis's "denyoom").
    var denyOOM: Bool {
        switch self {
        case .set, .getset, .setnx, .mset, .incr, .incrby, .decr, .decrby, .append, .setrange,
             .hset, .hincrby, .lpush, .rpush: return true
        default: return false
        }
    }

    static let byName: [String: KVOp] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue.uppercased(), $0) })
}

enum KVErr {
    static let wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
    static let syntax = "ERR syntax error"
    static let notInteger = "ERR value is not an integer or out of range"
    static let overflow = "ERR increment or decrement would overflow"
    static let oom = "OOM command not allowed when used memory > 'maxmemory'."
    static let tooBig = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    static func arity(_ name: String) -> String { "ERR wrong number of arguments for '\(name)' command" }
}

/// Upper-cases an ASCII argument into a String (short names stay inline: no allocation).
func upperName(_ s: ArraySlice<UInt8>) -> String {
    if s.count > 32 { return "" }
    return String(unsafeUninitializedCapacity: s.count) { buf in
        var n = 0
        for b in s { buf[n] = (b >= 97 && b <= 122) ? b - 32 : b; n += 1 }
        return n
    }
}

func equalsIgnoringCase(_ s: ArraySlice<UInt8>, _ word: StaticString) -> Bool {
    guard s.count == word.utf8CodeUnitCount else { return false }
    return word.withUTF8Buffer { w in
        var i = 0
        for b in s {
            let u = (b >= 97 && b <= 122) ? b - 32 : b
            if u != w[i] { return false }
            i += 1
        }
        return true
    }
}

extension KVService {
    func execute(_ a: RESPArgs, _ c: KVConn, now: Int64, out: inout [UInt8]) {
        let name = upperName(a[0])
        guard let op = KVOp.byName[name] else {
            var args = ""
            var i = 1
            while i < a.count && args.utf8.count < 128 {
                args += "'" + String(decoding: a[i].prefix(128 - args.utf8.count), as: UTF8.self) + "' "
                i += 1
            }
            let typed = String(decoding: a[0].prefix(128), as: UTF8.self)
            out.respError(sanitize("ERR unknown command '\(typed)', with args beginning with: \(args)"))
            return
        }
        if (op.arity > 0 && a.count != op.arity) || (op.arity < 0 && a.count < -op.arity) {
            out.respError(KVErr.arity(op.rawValue)); return
        }
        if op.denyOOM && store.usedBytes > limits.maxMemoryBytes {
            rejectedOOM += 1
            out.respError(KVErr.oom); return
        }
        switch op {
        case .ping, .echo, .select, .quit, .time, .command, .client, .config, .info, .hello:
            server(op, a, c, now: now, out: &out)
        case .hset, .hget, .hdel, .hgetall, .hincrby, .hlen, .lpush, .rpush, .lpop, .rpop, .lrange, .llen:
            collection(op, a, now: now, out: &out)
        default:
            strings(op, a, now: now, out: &out)
        }
    }

    func sanitize(_ s: String) -> String {
        String(s.map { $0 == "\r" || $0 == "\n" ? " " : $0 })
    }

    // MARK: Strings and keys

    func strings(_ op: KVOp, _ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        switch op {
        case .get:
            guard let s = store.find(a[1], now: now) else { out.respNull(); return }
            guard case .string(let v) = store.entry(s).value else { out.respError(KVErr.wrongType); return }
            out.respBulk(v)
        case .set: set(a, now: now, out: &out)
        case .getset:
            var b = RESPArgs(); b.buf = a.buf; b.ends = a.ends
            b.buf.append(contentsOf: "GET".utf8); b.finishArg()
            set(b, now: now, out: &out)
        case .setnx:
            if store.find(a[1], now: now) != nil { out.respInt(0); return }
            store.insert(a[1], .string(Array(a[2]))); out.respInt(1)
        case .mget:
            out.respArray(a.count - 1)
            for i in 1..<a.count {
                if let s = store.find(a[i], now: now), case .string(let v) = store.entry(s).value { out.respBulk(v) } else { out.respNull() }
            }
        case .mset:
            guard a.count % 2 == 1 else { out.respError(KVErr.arity("mset")); return }
            for i in stride(from: 1, to: a.count, by: 2) { setString(a[i], a[i + 1], now: now, expireAt: 0) }
            out.respOK()
        case .del, .exists:
            var n = 0
            for i in 1..<a.count {
                if let s = store.find(a[i], now: now) { n += 1; if op == .del { store.remove(s) } }
            }
            out.respInt(n)
        case .expire, .pexpire: expire(op, a, now: now, out: &out)
        case .ttl, .pttl:
            guard let s = store.find(a[1], now: now) else { out.respInt(-2); return }
            let e = store.entry(s).expireAt
            if e == 0 { out.respInt(-1); return }
            let ms = e - now
            out.respInt(op == .pttl ? ms : (ms + 500) / 1000)
        case .persist:
            guard let s = store.find(a[1], now: now), store.entry(s).expireAt != 0 else { out.respInt(0); return }
            store.setExpire(s, 0); out.respInt(1)
        case .incr: incrBy(a[1], 1, now: now, out: &out)
        case .decr: incrBy(a[1], -1, now: now, out: &out)
        case .incrby, .decrby:
            guard let d = parseInt64(a[2]) else { out.respError(KVErr.notInteger); return }
            if op == .decrby && d == Int64.min { out.respError("ERR decrement would overflow"); return }
            incrBy(a[1], op == .incrby ? d : -d, now: now, out: &out)
        case .append:
            guard let s = store.find(a[1], now: now) else {
                store.insert(a[1], .string(Array(a[2]))); out.respInt(a[2].count); return
            }
            guard case .string(var v) = store.take(s) else { out.respError(KVErr.wrongType); return }
            if v.count + a[2].count > limits.maxBulkBytes { store.put(s, .string(v), delta: 0); out.respError(KVErr.tooBig); return }
            v.append(contentsOf: a[2])
            let n = v.count
            store.put(s, .string(v), delta: a[2].count); out.respInt(n)
        case .strlen:
            guard let s = store.find(a[1], now: now) else { out.respInt(0); return }
            guard case .string(let v) = store.entry(s).value else { out.respError(KVErr.wrongType); return }
            out.respInt(v.count)
        case .getrange:
            guard var start = parseInt64(a[2]), var end = parseInt64(a[3]) else { out.respError(KVErr.notInteger); return }
            guard let s = store.find(a[1], now: now) else { out.respBulk([UInt8]()); return }
            guard case .string(let v) = store.entry(s).value else { out.respError(KVErr.wrongType); return }
            let n = Int64(v.count)
            if start < 0 && end < 0 && start > end { out.respBulk([UInt8]()); return }
            if start < 0 { start = max(0, n + start) }
            if end < 0 { end = max(0, n + end) }
            end = min(end, n - 1)
            if n == 0 || start > end { out.respBulk([UInt8]()); return }
            out.respBulk(v[Int(start)...Int(end)])
        case .setrange: setRange(a, now: now, out: &out)
        case .keys:
            var matches: [Int] = []
            let all = a[1].count == 1 && a[1].first == UInt8(ascii: "*")
            for s in 0..<store.table.slotCount {
                guard let e = store.table.values[s], e.expireAt == 0 || e.expireAt > now else { continue }
                if all || globMatch(a[1], store.table.keys[s][...]) { matches.append(s) }
            }
            out.respArray(matches.count)
            for s in matches { out.respBulk(store.table.keys[s]) }
        case .scan: scan(a, now: now, out: &out)
        case .dbsize: out.respInt(store.count)
        case .flushdb, .flushall:
            if a.count > 2 || (a.count == 2 && !equalsIgnoringCase(a[1], "ASYNC") && !equalsIgnoringCase(a[1], "SYNC")) {
                out.respError(KVErr.syntax); return
            }
            store.flush(); out.respOK()
        case .type:
            guard let s = store.find(a[1], now: now) else { out.respSimple("none"); return }
            switch store.entry(s).value {
            case .string: out.respSimple("string")
            case .list: out.respSimple("list")
            case .hash: out.respSimple("hash")
            }
        default: break
        }
    }

    /// Sets a string value, replacing any value of any type.
    func setString(_ key: ArraySlice<UInt8>, _ value: ArraySlice<UInt8>, now: Int64, expireAt: Int64, keepTTL: Bool = false) {
        if let s = store.find(key, now: now) {
            if case .string(var v) = store.take(s) {
                let delta = value.count - v.count
                v.removeAll(keepingCapacity: true); v.append(contentsOf: value)
                store.put(s, .string(v), delta: delta)
            } else {
                store.replace(s, .string(Array(value)))
            }
            if !keepTTL { store.setExpire(s, expireAt) }
        } else {
            store.insert(key, .string(Array(value)), expireAt: expireAt)
        }
    }

    /// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]. EXAT
    /// and PXAT are absolute times on the log clock (see README).
    func set(_ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        var nx = false, xx = false, get = false, keepTTL = false
        var expireAt: Int64 = 0
        var unit: Int64 = 0, absolute = false, haveExpire = false
        var i = 3
        while i < a.count {
            let o = a[i]
            if equalsIgnoringCase(o, "NX") && !xx { nx = true }
            else if equalsIgnoringCase(o, "XX") && !nx { xx = true }
            else if equalsIgnoringCase(o, "GET") { get = true }
            else if equalsIgnoringCase(o, "KEEPTTL") && !haveExpire { keepTTL = true }
            else if !keepTTL && !haveExpire && i + 1 < a.count, let (u, abs) = expireOption(o) {
                unit = u; absolute = abs; haveExpire = true
                i += 1
                guard let v = parseInt64(a[i]) else { out.respError(KVErr.notInteger); return }
                guard v > 0, v <= Int64.max / unit, absolute || now <= Int64.max - v * unit else {
                    out.respError("ERR invalid expire time in 'set' command"); return
                }
                expireAt = absolute ? v * unit : now + v * unit
            } else { out.respError(KVErr.syntax); return }
            i += 1
        }
        let existing = store.find(a[1], now: now)
        if get {
            if let s = existing {
                guard case .string(let v) = store.entry(s).value else { out.respError(KVErr.wrongType); return }
                out.respBulk(v)
            } else { out.respNull() }
        }
        if (nx && existing != nil) || (xx && existing == nil) {
            if !get { out.respNull() }
            return
        }
        if expireAt != 0 && expireAt <= now {
            // Already expired (an EXAT/PXAT in the past): the key is gone.
            if let s = existing { store.remove(s) }
        } else {
            setString(a[1], a[2], now: now, expireAt: expireAt, keepTTL: keepTTL)
        }
        if !get { out.respOK() }
    }

    func expireOption(_ o: ArraySlice<UInt8>) -> (Int64, Bool)? {
        if equalsIgnoringCase(o, "EX") { return (1000, false) }
        if equalsIgnoringCase(o, "PX") { return (1, false) }
        if equalsIgnoringCase(o, "EXAT") { return (1000, true) }
        if equalsIgnoringCase(o, "PXAT") { return (1, true) }
        return nil
    }

    func expire(_ op: KVOp, _ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        guard let v = parseInt64(a[2]) else { out.respError(KVErr.notInteger); return }
        var nx = false, xx = false, gt = false, lt = false
        for i in 3..<a.count {
            if equalsIgnoringCase(a[i], "NX") { nx = true }
            else if equalsIgnoringCase(a[i], "XX") { xx = true }
            else if equalsIgnoringCase(a[i], "GT") { gt = true }
            else if equalsIgnoringCase(a[i], "LT") { lt = true }
            else { out.respError("ERR Unsupported option " + String(decoding: a[i], as: UTF8.self)); return }
        }
        if nx && (xx || gt || lt) { out.respError("ERR NX and XX, GT or LT options at the same time are not compatible"); return }
        if gt && lt { out.respError("ERR GT and LT options at the same time are not compatible"); return }
        let unit: Int64 = op == .expire ? 1000 : 1
        let (ms, o1) = v.multipliedReportingOverflow(by: unit)
        let (at, o2) = ms.addingReportingOverflow(now)
        if o1 || o2 { out.respError("ERR invalid expire time in '\(op.rawValue)' command"); return }
        guard let s = store.find(a[1], now: now) else { out.respInt(0); return }
        let cur = store.entry(s).expireAt
        if nx && cur != 0 { out.respInt(0); return }
        if xx && cur == 0 { out.respInt(0); return }
        if gt && (cur == 0 || at <= cur) { out.respInt(0); return }
        if lt && cur != 0 && at >= cur { out.respInt(0); return }
        if at <= now { store.remove(s) } else { store.setExpire(s, at) }
        out.respInt(1)
    }

    func incrBy(_ key: ArraySlice<UInt8>, _ d: Int64, now: Int64, out: inout [UInt8]) {
        var cur: Int64 = 0
        let s = store.find(key, now: now)
        if let s {
            guard case .string(let v) = store.entry(s).value else { out.respError(KVErr.wrongType); return }
            guard let n = parseInt64(v[...]) else { out.respError(KVErr.notInteger); return }
            cur = n
        }
        let (r, o) = cur.addingReportingOverflow(d)
        if o { out.respError(KVErr.overflow); return }
        var digits: [UInt8] = []
        digits.appendDecimal(r)
        if let s { store.replace(s, .string(digits)) } else { store.insert(key, .string(digits)) }
        out.respInt(r)
    }

    func setRange(_ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        guard let off = parseInt64(a[2]) else { out.respError(KVErr.notInteger); return }
        guard off >= 0 else { out.respError("ERR offset is out of range"); return }
        let value = a[3]
        let s = store.find(a[1], now: now)
        if let s, case .string = store.entry(s).value {} else if s != nil { out.respError(KVErr.wrongType); return }
        if value.isEmpty {
            if let s, case .string(let v) = store.entry(s).value { out.respInt(v.count) } else { out.respInt(0) }
            return
        }
        guard off + Int64(value.count) <= Int64(limits.maxBulkBytes) else { out.respError(KVErr.tooBig); return }
        let end = Int(off) + value.count
        var v: [UInt8] = []
        var before = 0
        if let s, case .string(let old) = store.take(s) { v = old; before = old.count }
        if v.count < end { v.append(contentsOf: repeatElement(0, count: end - v.count)) }
        v.replaceSubrange(Int(off)..<end, with: value)
        let n = v.count
        if let s { store.put(s, .string(v), delta: n - before) } else { store.insert(a[1], .string(v)) }
        out.respInt(n)
    }

    /// SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]: the cursor is a slot
    /// number; COUNT slots are visited per call.
    func scan(_ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        guard let cursor = parseInt64(a[1]), cursor >= 0 else { out.respError("ERR invalid cursor"); return }
        var pattern: ArraySlice<UInt8>? = nil, type: String? = nil
        var count = 10
        var i = 2
        while i < a.count {
            guard i + 1 < a.count else { out.respError(KVErr.syntax); return }
            if equalsIgnoringCase(a[i], "MATCH") { pattern = a[i + 1] }
            else if equalsIgnoringCase(a[i], "COUNT") {
                guard let n = parseInt64(a[i + 1]) else { out.respError(KVErr.notInteger); return }
                guard n >= 1 else { out.respError(KVErr.syntax); return }
                count = Int(min(n, 1 << 30))
            } else if equalsIgnoringCase(a[i], "TYPE") { type = String(decoding: a[i + 1], as: UTF8.self).lowercased() }
            else { out.respError(KVErr.syntax); return }
            i += 2
        }
        var s = Int(min(cursor, Int64(store.table.slotCount)))
        var found: [Int] = []
        var visited = 0
        while s < store.table.slotCount && visited < count {
            if let e = store.table.values[s], e.expireAt == 0 || e.expireAt > now,
               pattern.map({ globMatch($0, store.table.keys[s][...]) }) ?? true,
               type.map({ $0 == e.value.typeName }) ?? true {
                found.append(s)
            }
            s += 1; visited += 1
        }
        let next = s >= store.table.slotCount ? 0 : s
        out.respArray(2)
        var num: [UInt8] = []
        num.appendDecimal(Int64(next))
        out.respBulk(num)
        out.respArray(found.count)
        for f in found { out.respBulk(store.table.keys[f]) }
    }
}
