import FTReplication
import FTStack

/// The simulator's only source of randomness: xoshiro256** seeded through
/// SplitMix64. Every choice a run makes is drawn from generators forked
/// from one seed, so a seed names a run completely.
public struct SimRandom {
    var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// Uniform in 0..<n (Lemire's method, unbiased).
    public mutating func below(_ n: UInt64) -> UInt64 {
        precondition(n > 0)
        var m = next().multipliedFullWidth(by: n)
        if m.low < n {
            let t = (0 &- n) % n
            while m.low < t { m = next().multipliedFullWidth(by: n) }
        }
        return m.high
    }

    /// Uniform in the closed range.
    public mutating func int(_ r: ClosedRange<Int>) -> Int {
        r.lowerBound + Int(below(UInt64(r.upperBound - r.lowerBound) + 1))
    }

    /// Uniform in lo...hi.
    public mutating func nanos(_ lo: Nanos, _ hi: Nanos) -> Nanos {
        hi <= lo ? lo : lo + below(hi - lo + 1)
    }

    /// Log-uniform in lo...hi (both > 0): as many short values as long ones per decade.
    public mutating func logNanos(_ lo: Nanos, _ hi: Nanos) -> Nanos {
        guard hi > lo, lo > 0 else { return lo }
        var v = lo
        let steps = Int(below(64))
        // Multiply by hi/lo in 64 geometric steps, without floating point pow.
        var r = Double(hi) / Double(lo)
        var f = 1.0
        for _ in 0..<6 { r = r.squareRoot() }  // r^(1/64)
        for _ in 0..<steps { f *= r }
        v = Nanos(Double(lo) * f)
        return min(hi, max(lo, v + below(max(1, v / 64))))
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    public mutating func chance(_ p: Double) -> Bool { p > 0 && unit() < p }

    public mutating func pick<T>(_ a: [T]) -> T { a[Int(below(UInt64(a.count)))] }

    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n {
            var v = next()
            for _ in 0..<8 { out.append(UInt8(truncatingIfNeeded: v)); v >>= 8 }
        }
        out.removeLast(out.count - n)
        return out
    }

    /// An independent generator derived from this one.
    public mutating func fork() -> SimRandom { SimRandom(seed: next()) }
}

/// Running hash of the trace: 64-bit words mixed with a multiply-xorshift.
/// Deterministic across processes (unlike Swift's seeded `Hasher`).
public struct TraceHash {
    public private(set) var value: UInt64 = 0x6674_6170_7369_6d31
    public init() {}
    @inline(__always) public mutating func mix(_ v: UInt64) {
        var h = (value ^ v) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        value = h ^ (h >> 32)
    }
    public mutating func mix(_ s: String) {
        mix(UInt64(s.utf8.count))
        var w: UInt64 = 0, n = 0
        for b in s.utf8 { w = w << 8 | UInt64(b); n += 1; if n == 8 { mix(w); w = 0; n = 0 } }
        if n > 0 { mix(w) }
    }
    public mutating func mix(bytes f: [UInt8]) {
        mix(UInt64(f.count))
        f.withUnsafeBytes { p in
            var i = 0
            while i + 8 <= p.count { mix(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)); i += 8 }
            var w: UInt64 = 0
            while i < p.count { w = w << 8 | UInt64(p[i]); i += 1 }
            mix(w)
        }
    }
}

/// A min-heap of timed events; ties are broken by insertion order, so the
/// order of simultaneous events is deterministic. The heap holds plain keys;
/// payloads wait in a slot table (cheap comparisons even in debug builds).
struct EventQueue<E> {
    struct Key { var t: UInt64; var seq: UInt64; var slot: Int }
    private var heap: [Key] = []
    private var slots: [E?] = []
    private var free: [Int] = []
    private var seq: UInt64 = 0
    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: UInt64? { heap.first?.t }

    mutating func push(_ t: UInt64, _ e: E) {
        seq += 1
        let slot: Int
        if let f = free.popLast() { slot = f; slots[f] = e } else { slot = slots.count; slots.append(e) }
        var k = Key(t: t, seq: seq, slot: slot)
        var i = heap.count
        heap.append(k)
        while i > 0 {
            let p = (i - 1) >> 1
            let q = heap[p]
            if q.t < k.t || (q.t == k.t && q.seq < k.seq) { break }
            heap[i] = q
            i = p
        }
        k = Key(t: t, seq: seq, slot: slot)
        heap[i] = k
    }

    mutating func pop() -> (UInt64, E)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var m = l
                let r = l + 1
                if r < n && (heap[r].t < heap[l].t || (heap[r].t == heap[l].t && heap[r].seq < heap[l].seq)) { m = r }
                let c = heap[m]
                if last.t < c.t || (last.t == c.t && last.seq < c.seq) { break }
                heap[i] = c
                i = m
            }
            heap[i] = last
        }
        let e = slots[top.slot]!
        slots[top.slot] = nil
        free.append(top.slot)
        return (top.t, e)
    }
}

/// The replication core's FIFO.
typealias Queue<T> = FIFO<T>

/// `12.345678901s`
func fmtTime(_ t: Nanos) -> String {
    let frac = String(t % 1_000_000_000)
    return "\(t / 1_000_000_000).\(String(repeating: "0", count: 9 - frac.count))\(frac)"
}

func fmtMs(_ t: Nanos) -> String {
    let us = t / 1000
    let frac = String(us % 1000)
    return "\(us / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)ms"
}

func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
