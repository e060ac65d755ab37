/// SipHash-2-4 (Aumasson & Bernstein), a keyed PRF. Used for RFC 6528 initial
/// sequence numbers (key from configuration) and, with a fixed key, for the
/// replica state digest. Pure and deterministic across processes, unlike
/// Swift's per-process seeded `Hasher`.
public struct SipHash24 {
    var v0: UInt64, v1: UInt64, v2: UInt64, v3: UInt64
    var tail: UInt64 = 0
    var tailCount: Int = 0
    var length: Int = 0

    public init(k0: UInt64, k1: UInt64) {
        v0 = k0 ^ 0x736f6d6570736575
        v1 = k1 ^ 0x646f72616e646f6d
        v2 = k0 ^ 0x6c7967656e657261
        v3 = k1 ^ 0x7465646279746573
    }
    @inline(__always) static func rotl(_ x: UInt64, _ b: UInt64) -> UInt64 { (x << b) | (x >> (64 - b)) }
    @inline(__always) mutating func round() {
        v0 = v0 &+ v1; v1 = Self.rotl(v1, 13); v1 ^= v0; v0 = Self.rotl(v0, 32)
        v2 = v2 &+ v3; v3 = Self.rotl(v3, 16); v3 ^= v2
        v0 = v0 &+ v3; v3 = Self.rotl(v3, 21); v3 ^= v0
        v2 = v2 &+ v1; v1 = Self.rotl(v1, 17); v1 ^= v2; v2 = Self.rotl(v2, 32)
    }
    @inline(__always) mutating func compress(_ m: UInt64) {
        v3 ^= m; round(); round(); v0 ^= m
    }
    public mutating func update(_ byte: UInt8) {
        tail |= UInt64(byte) << (UInt64(tailCount) * 8)
        tailCount += 1; length += 1
        if tailCount == 8 { compress(tail); tail = 0; tailCount = 0 }
    }
    public mutating func update<C: Sequence>(_ bytes: C) where C.Element == UInt8 {
        let done: Bool? = bytes.withContiguousStorageIfAvailable { buf -> Bool in
            update(buffer: UnsafeRawBufferPointer(buf)); return true
        }
        if done == nil { for b in bytes { update(b) } }
    }

    /// Eight bytes at a time once aligned with the block boundary.
    mutating func update(buffer: UnsafeRawBufferPointer) {
        var i = 0
        let n = buffer.count
        while tailCount != 0 && i < n { update(buffer[i]); i += 1 }
        while i + 8 <= n {
            let m = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            compress(m)
            length += 8
            i += 8
        }
        while i < n { update(buffer[i]); i += 1 }
    }
    public mutating func update(u32 v: UInt32) {
        for k in 0..<4 { update(UInt8(truncatingIfNeeded: v >> (UInt32(k) * 8))) }
    }
    public mutating func update(u16 v: UInt16) {
        update(UInt8(truncatingIfNeeded: v)); update(UInt8(truncatingIfNeeded: v >> 8))
    }
    public func finalize() -> UInt64 {
        var s = self
        let b = (UInt64(truncatingIfNeeded: length) << 56) | s.tail
        s.compress(b)
        s.v2 ^= 0xff
        s.round(); s.round(); s.round(); s.round()
        return s.v0 ^ s.v1 ^ s.v2 ^ s.v3
    }
    public static func hash(k0: UInt64, k1: UInt64, _ bytes: [UInt8]) -> UInt64 {
        var h = SipHash24(k0: k0, k1: k1); h.update(bytes); return h.finalize()
    }
}
