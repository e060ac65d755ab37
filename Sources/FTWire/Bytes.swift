/// Big-endian byte helpers and a small binary encoder/decoder used for wire
/// formats, state snapshots and digests. Pure: no Foundation.

@inlinable func be16(_ b: [UInt8], _ i: Int) -> UInt16 {
    UInt16(b[i]) << 8 | UInt16(b[i + 1])
}
@inlinable func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}

extension Array where Element == UInt8 {
    @inlinable public func readBE16(_ i: Int) -> UInt16 { be16(self, i) }
    @inlinable public func readBE32(_ i: Int) -> UInt32 { be32(self, i) }
    @inlinable public mutating func appendBE16(_ v: UInt16) {
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }
    @inlinable public mutating func appendBE32(_ v: UInt32) {
        append(UInt8(truncatingIfNeeded: v >> 24)); append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }
    @inlinable public mutating func appendBE64(_ v: UInt64) {
        appendBE32(UInt32(truncatingIfNeeded: v >> 32)); appendBE32(UInt32(truncatingIfNeeded: v))
    }
    @inlinable public mutating func writeBE16(_ v: UInt16, at i: Int) {
        self[i] = UInt8(truncatingIfNeeded: v >> 8); self[i + 1] = UInt8(truncatingIfNeeded: v)
    }
    @inlinable public mutating func writeBE32(_ v: UInt32, at i: Int) {
        self[i] = UInt8(truncatingIfNeeded: v >> 24); self[i + 1] = UInt8(truncatingIfNeeded: v >> 16)
        self[i + 2] = UInt8(truncatingIfNeeded: v >> 8); self[i + 3] = UInt8(truncatingIfNeeded: v)
    }
}

/// Appends fields in a fixed, documented order. Used for snapshots and the
/// state digest, so every encoder must be deterministic (sorted keys, no
/// Dictionary iteration order).
public struct ByteWriter {
    public var bytes: [UInt8]
    public init(capacity: Int = 256) { bytes = []; bytes.reserveCapacity(capacity) }
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { bytes.appendBE16(v) }
    public mutating func u32(_ v: UInt32) { bytes.appendBE32(v) }
    public mutating func u64(_ v: UInt64) { bytes.appendBE64(v) }
    public mutating func int(_ v: Int) { bytes.appendBE64(UInt64(bitPattern: Int64(v))) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func blob<C: Collection>(_ v: C) where C.Element == UInt8 {
        bytes.appendBE32(UInt32(v.count)); bytes.append(contentsOf: v)
    }
    public mutating func string(_ s: String) { blob(Array(s.utf8)) }
}

public enum DecodeError: Error, Equatable, CustomStringConvertible {
    case truncated(offset: Int, wanted: Int)
    case invalid(offset: Int, what: String)
    public var description: String {
        switch self {
        case let .truncated(o, w): return "truncated at offset \(o) (wanted \(w) more bytes)"
        case let .invalid(o, w): return "invalid \(w) at offset \(o)"
        }
    }
}

/// Reads what `ByteWriter` wrote; every read is bounds-checked and throws.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    public let end: Int
    public init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes; self.offset = offset; self.end = end ?? bytes.count
    }
    public var remaining: Int { end - offset }
    mutating func need(_ n: Int) throws {
        if n < 0 || offset + n > end { throw DecodeError.truncated(offset: offset, wanted: n - (end - offset)) }
    }
    public mutating func u8() throws -> UInt8 { try need(1); defer { offset += 1 }; return bytes[offset] }
    public mutating func u16() throws -> UInt16 { try need(2); defer { offset += 2 }; return be16(bytes, offset) }
    public mutating func u32() throws -> UInt32 { try need(4); defer { offset += 4 }; return be32(bytes, offset) }
    public mutating func u64() throws -> UInt64 {
        let hi = try u32(); let lo = try u32(); return UInt64(hi) << 32 | UInt64(lo)
    }
    public mutating func int() throws -> Int { Int(Int64(bitPattern: try u64())) }
    public mutating func bool() throws -> Bool {
        let v = try u8(); guard v <= 1 else { throw DecodeError.invalid(offset: offset - 1, what: "bool") }; return v == 1
    }
    public mutating func take(_ n: Int) throws -> [UInt8] {
        try need(n); defer { offset += n }; return Array(bytes[offset..<offset + n])
    }
    public mutating func blob(max: Int = 1 << 30) throws -> [UInt8] {
        let n = Int(try u32())
        guard n <= max else { throw DecodeError.invalid(offset: offset - 4, what: "length \(n)") }
        return try take(n)
    }
    public mutating func string() throws -> String { String(decoding: try blob(max: 1 << 20), as: UTF8.self) }
}
