import DequeModule
import FTWire

/// Hashes (fields in slot order) and lists (a Deque) of the `kv` service.
extension KVService {
    func collection(_ op: KVOp, _ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        switch op {
        case .hset, .hget, .hdel, .hgetall, .hincrby, .hlen: hash(op, a, now: now, out: &out)
        default: list(op, a, now: now, out: &out)
        }
    }

    func hash(_ op: KVOp, _ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        let s = store.find(a[1], now: now)
        if let s, case .hash = store.entry(s).value {} else if s != nil { out.respError(KVErr.wrongType); return }
        switch op {
        case .hget, .hgetall, .hlen:
            guard let s, case .hash(let h) = store.entry(s).value else {
                if op == .hget { out.respNull() } else if op == .hlen { out.respInt(0) } else { out.respArray(0) }
                return
            }
            if op == .hlen { out.respInt(h.count); return }
            if op == .hget {
                guard let f = h.slot(of: Array(a[2])) else { out.respNull(); return }
                out.respBulk(h.values[f]!); return
            }
            out.respArray(2 * h.count)
            for f in 0..<h.slotCount { if let v = h.values[f] { out.respBulk(h.keys[f]); out.respBulk(v) } }
        case .hset:
            guard a.count % 2 == 0 else { out.respError(KVErr.arity("hset")); return }
            var h = KVHash(), delta = 0, added = 0
            if let s, case .hash(let old) = store.take(s) { h = old }
            for i in stride(from: 2, to: a.count, by: 2) {
                let f = Array(a[i])
                if let fs = h.slot(of: f) {
                    delta += a[i + 1].count - h.values[fs]!.count
                    h.values[fs] = Array(a[i + 1])
                } else {
                    delta += KVStore.fieldOverhead + f.count + a[i + 1].count
                    h.insert(f, Array(a[i + 1])); added += 1
                }
            }
            if let s { store.put(s, .hash(h), delta: delta) } else { store.insert(a[1], .hash(h)) }
            out.respInt(added)
        case .hdel:
            guard let s, case .hash(var h) = store.take(s) else { out.respInt(0); return }
            var removed = 0, delta = 0
            for i in 2..<a.count {
                if let fs = h.slot(of: Array(a[i])) {
                    delta -= KVStore.fieldOverhead + h.keys[fs].count + h.values[fs]!.count
                    h.remove(at: fs); removed += 1
                }
            }
            store.put(s, .hash(h), delta: delta)
            if h.count == 0 { store.remove(s) }
            out.respInt(removed)
        case .hincrby:
            guard let d = parseInt64(a[3]) else { out.respError(KVErr.notInteger); return }
            var h = KVHash()
            if let s, case .hash(let old) = store.take(s) { h = old }
            let f = Array(a[2])
            var cur: Int64 = 0
            let fs = h.slot(of: f)
            if let fs {
                guard let n = parseInt64(h.values[fs]![...]) else {
                    if let s { store.put(s, .hash(h), delta: 0) }
                    out.respError("ERR hash value is not an integer"); return
                }
                cur = n
            }
            let (r, o) = cur.addingReportingOverflow(d)
            if o {
                if let s { store.put(s, .hash(h), delta: 0) }
                out.respError(KVErr.overflow); return
            }
            var digits: [UInt8] = []
            digits.appendDecimal(r)
            var delta = digits.count
            if let fs { delta -= h.values[fs]!.count; h.values[fs] = digits } else { delta += KVStore.fieldOverhead + f.count; h.insert(f, digits) }
            if let s { store.put(s, .hash(h), delta: delta) } else { store.insert(a[1], .hash(h)) }
            out.respInt(r)
        default: break
        }
    }

    func list(_ op: KVOp, _ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        let s = store.find(a[1], now: now)
        if let s, case .list = store.entry(s).value {} else if s != nil { out.respError(KVErr.wrongType); return }
        switch op {
        case .lpush, .rpush:
            var l = Deque<[UInt8]>(), delta = 0
            if let s, case .list(let old) = store.take(s) { l = old }
            for i in 2..<a.count {
                delta += KVStore.itemOverhead + a[i].count
                if op == .lpush { l.prepend(Array(a[i])) } else { l.append(Array(a[i])) }
            }
            let n = l.count
            if let s { store.put(s, .list(l), delta: delta) } else { store.insert(a[1], .list(l)) }
            out.respInt(n)
        case .lpop, .rpop:
            guard a.count <= 3 else { out.respError(KVErr.arity(op.rawValue)); return }
            var count: Int? = nil
            if a.count == 3 {
                guard let n = parseInt64(a[2]), n >= 0 else { out.respError("ERR value is out of range, must be positive"); return }
                count = Int(min(n, Int64(Int32.max)))
            }
            guard let s, case .list(var l) = store.take(s) else {
                if count == nil { out.respNull() } else { out.respNullArray() }
                return
            }
            let take = min(count ?? 1, l.count)
            if count != nil { out.respArray(take) }
            var delta = 0
            for _ in 0..<take {
                let x = op == .lpop ? l.removeFirst() : l.removeLast()
                delta -= KVStore.itemOverhead + x.count
                out.respBulk(x)
            }
            store.put(s, .list(l), delta: delta)
            if l.isEmpty { store.remove(s) }
        case .lrange:
            guard var start = parseInt64(a[2]), var stop = parseInt64(a[3]) else { out.respError(KVErr.notInteger); return }
            guard let s, case .list(let l) = store.entry(s).value else { out.respArray(0); return }
            let n = Int64(l.count)
            if start < 0 { start = max(0, n + start) }
            if stop < 0 { stop = n + stop }
            if stop >= n { stop = n - 1 }
            if start > stop || start >= n { out.respArray(0); return }
            out.respArray(Int(stop - start + 1))
            for i in Int(start)...Int(stop) { out.respBulk(l[i]) }
        case .llen:
            guard let s, case .list(let l) = store.entry(s).value else { out.respInt(0); return }
            out.respInt(l.count)
        default: break
        }
    }
}
