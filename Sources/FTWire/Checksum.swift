/// RFC 1071 Internet checksum, accumulated in 32 bits and folded at the end.
public struct InternetChecksum {
    public var sum: UInt32 = 0
    public init() {}
    @inlinable public mutating func add(_ b: [UInt8], _ range: Range<Int>) {
        var s = UInt64(sum)
        b.withUnsafeBytes { raw in
            var i = range.lowerBound
            let end = range.upperBound
            // Two 32-bit words per load: the one's-complement sum of 32-bit
            // big-endian words, folded, equals that of 16-bit words (RFC 1071
            // 2(B), byte-order and width independence), and a 64-bit
            // accumulator of 33-bit additions cannot overflow for 64 KiB
            // super-frames or anything much larger.
            while i + 16 <= end {
                let w0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let w1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
                s &+= (w0 >> 32) &+ (w0 & 0xFFFF_FFFF) &+ (w1 >> 32) &+ (w1 & 0xFFFF_FFFF)
                i += 16
            }
            while i + 8 <= end {
                let w = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                s &+= (w >> 32) &+ (w & 0xFFFF_FFFF)
                i += 8
            }
            while i + 1 < end {
                s &+= UInt64(raw[i]) << 8 | UInt64(raw[i + 1])
                i += 2
            }
            if i < end { s &+= UInt64(raw[i]) << 8 }
        }
        while s > 0xFFFF_FFFF { s = (s & 0xFFFF_FFFF) + (s >> 32) }
        sum = UInt32(s)
    }
    @inlinable public mutating func add16(_ v: UInt16) { addWide(UInt32(v)) }
    @inlinable public mutating func add32(_ v: UInt32) { addWide(v >> 16); addWide(v & 0xFFFF) }
    @inlinable mutating func addWide(_ v: UInt32) {
        let (r, o) = sum.addingReportingOverflow(v)
        sum = r &+ (o ? 1 : 0)
    }
    /// The one's complement of the folded sum: the value to put in a header.
    @inlinable public var value: UInt16 {
        var s = sum
        while s > 0xFFFF { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(s)
    }
}

/// Checksum over an IPv4 pseudo header plus `range` of `b`.
@inlinable public func transportChecksum(src: IPv4Address, dst: IPv4Address, proto: UInt8,
                                          _ b: [UInt8], _ range: Range<Int>) -> UInt16 {
    var c = InternetChecksum()
    c.add32(src.raw); c.add32(dst.raw)
    c.add16(UInt16(proto)); c.add16(UInt16(range.count))
    c.add(b, range)
    return c.value
}
