/// TCP (RFC 9293) header and options as parsed representations: every type
/// here has `parse`, `emit` and a length, and `parse(emit(x)) == x`.

public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    /// tcpdump notation: `S`, `S.`, `P.`, `F.`, `R`, `.`
    public var tcpdump: String {
        var s = ""
        if contains(.syn) { s += "S" }
        if contains(.fin) { s += "F" }
        if contains(.psh) { s += "P" }
        if contains(.rst) { s += "R" }
        if contains(.urg) { s += "U" }
        if contains(.ack) { s += "." }
        return s.isEmpty ? "none" : s
    }
}

/// One SACK block (RFC 2018): the peer holds `left..<right`.
public struct SACKBlock: Equatable, Hashable, Sendable {
    public var left: UInt32
    public var right: UInt32
    public init(left: UInt32, right: UInt32) { self.left = left; self.right = right }
}

/// The timestamps option (RFC 7323): TSval and TSecr.
public struct TCPTimestamps: Equatable, Hashable, Sendable {
    public var value: UInt32
    public var echo: UInt32
    public init(value: UInt32, echo: UInt32) { self.value = value; self.echo = echo }
}

/// One TCP option as it appears on the wire.
public enum TCPOption: Equatable, Sendable {
    /// Kind 0: ends the option list (the rest of the header is padding).
    case endOfList
    /// Kind 1: padding between options.
    case noOperation
    /// Kind 2, length 4.
    case maxSegmentSize(UInt16)
    /// Kind 3, length 3 (RFC 7323).
    case windowScale(UInt8)
    /// Kind 4, length 2 (RFC 2018).
    case sackPermitted
    /// Kind 5, length 2 + 8n with 1 <= n <= 4 (RFC 2018).
    case sack([SACKBlock])
    /// Kind 8, length 10 (RFC 7323).
    case timestamps(TCPTimestamps)
    /// Any other kind: kept so it can be skipped and re-emitted verbatim.
    case unknown(kind: UInt8, data: [UInt8])

    public static let maxSACKBlocks = 4

    public var kind: UInt8 {
        switch self {
        case .endOfList: return 0
        case .noOperation: return 1
        case .maxSegmentSize: return 2
        case .windowScale: return 3
        case .sackPermitted: return 4
        case .sack: return 5
        case .timestamps: return 8
        case .unknown(let k, _): return k
        }
    }

    /// Bytes on the wire, kind and length octets included.
    public var length: Int {
        switch self {
        case .endOfList, .noOperation: return 1
        case .maxSegmentSize: return 4
        case .windowScale: return 3
        case .sackPermitted: return 2
        case .sack(let blocks): return 2 + 8 * blocks.count
        case .timestamps: return 10
        case .unknown(_, let data): return 2 + data.count
        }
    }

    /// Parses the option at `b[i]`, which must lie before `end` (the end of
    /// the TCP header). A length octet that is missing, below 2, running
    /// past the header, or wrong for a known kind throws `.badOption`.
    public static func parse(_ b: [UInt8], at i: Int, end: Int) throws(WireError) -> TCPOption {
        guard i < end, end <= b.count else { throw .truncated }
        let kind = b[i]
        if kind == 0 { return .endOfList }
        if kind == 1 { return .noOperation }
        guard i + 1 < end else { throw .badOption }
        let len = Int(b[i + 1])
        guard len >= 2, i + len <= end else { throw .badOption }
        let v = i + 2
        switch kind {
        case 2:
            guard len == 4 else { throw .badOption }
            return .maxSegmentSize(b.readBE16(v))
        case 3:
            guard len == 3 else { throw .badOption }
            return .windowScale(b[v])
        case 4:
            guard len == 2 else { throw .badOption }
            return .sackPermitted
        case 5:
            let n = (len - 2) / 8
            guard (len - 2) % 8 == 0, n >= 1, n <= maxSACKBlocks else { throw .badOption }
            var blocks: [SACKBlock] = []
            blocks.reserveCapacity(n)
            for k in 0..<n { blocks.append(SACKBlock(left: b.readBE32(v + 8 * k), right: b.readBE32(v + 8 * k + 4))) }
            return .sack(blocks)
        case 8:
            guard len == 10 else { throw .badOption }
            return .timestamps(TCPTimestamps(value: b.readBE32(v), echo: b.readBE32(v + 4)))
        default:
            return .unknown(kind: kind, data: Array(b[v..<(i + len)]))
        }
    }

    /// Appends exactly `length` bytes.
    public func emit(into b: inout [UInt8]) {
        b.append(kind)
        switch self {
        case .endOfList, .noOperation: return
        default: b.append(UInt8(truncatingIfNeeded: length))
        }
        switch self {
        case .endOfList, .noOperation, .sackPermitted: break
        case .maxSegmentSize(let m): b.appendBE16(m)
        case .windowScale(let w): b.append(w)
        case .sack(let blocks): for s in blocks { b.appendBE32(s.left); b.appendBE32(s.right) }
        case .timestamps(let t): b.appendBE32(t.value); b.appendBE32(t.echo)
        case .unknown(_, let data): b.append(contentsOf: data)
        }
    }
}

/// A parsed, checksum-verified TCP segment; `payload` indexes the frame.
///
/// Options are held as values, not bytes. `emit` lays them out in one
/// canonical order, each aligned with NOPs as Linux does: MSS; NOP, window
/// scale; NOP, NOP, SACK-permitted; NOP, NOP, timestamps; NOP, NOP, SACK
/// blocks (as many as fit in the 40 option bytes). Unknown options are
/// skipped on parse and never emitted.
public struct TCPHeader: Equatable, Sendable {
    public static let minLength = 20
    public static let maxOptionBytes = 40

    public var srcPort: UInt16
    public var dstPort: UInt16
    public var seq: UInt32
    public var ack: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var mss: UInt16?
    public var windowScale: UInt8?
    /// The SACK-permitted option (RFC 2018) was present (SYN only).
    public var sackPermitted: Bool = false
    public var timestamps: TCPTimestamps? = nil
    public var sackBlocks: [SACKBlock] = []
    public var payload: Range<Int>

    public init(srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32, flags: TCPFlags, window: UInt16,
                mss: UInt16? = nil, windowScale: UInt8? = nil, sackPermitted: Bool = false,
                timestamps: TCPTimestamps? = nil, sackBlocks: [SACKBlock] = [], payload: Range<Int>) {
        self.srcPort = srcPort; self.dstPort = dstPort; self.seq = seq; self.ack = ack
        self.flags = flags; self.window = window; self.mss = mss; self.windowScale = windowScale
        self.sackPermitted = sackPermitted; self.timestamps = timestamps; self.sackBlocks = sackBlocks
        self.payload = payload
    }

    public static func parse(_ f: [UInt8], ip: IPv4Header, verifyChecksum: Bool = true) throws(WireError) -> TCPHeader {
        let o = ip.payload.lowerBound
        guard ip.payload.count >= minLength, ip.payload.upperBound <= f.count else { throw .truncated }
        let off = Int(f[o + 12] >> 4) * 4
        guard off >= minLength, off <= ip.payload.count else { throw .badHeaderLength }
        if verifyChecksum {
            guard transportChecksum(src: ip.src, dst: ip.dst, proto: IPProtocol.tcp, f, ip.payload) == 0
            else { throw .badChecksum }
        }
        var h = TCPHeader(srcPort: f.readBE16(o), dstPort: f.readBE16(o + 2), seq: f.readBE32(o + 4),
                          ack: f.readBE32(o + 8), flags: TCPFlags(rawValue: f[o + 13] & 0x3F),
                          window: f.readBE16(o + 14), payload: (o + off)..<ip.payload.upperBound)
        var i = o + minLength
        let end = o + off
        while i < end {
            let opt = try TCPOption.parse(f, at: i, end: end)
            switch opt {
            case .endOfList: return h
            case .noOperation, .unknown: break
            case .maxSegmentSize(let m): h.mss = m
            case .windowScale(let w): h.windowScale = w
            case .sackPermitted: h.sackPermitted = true
            case .timestamps(let t): h.timestamps = t
            case .sack(let blocks): h.sackBlocks = blocks
            }
            i += opt.length
        }
        return h
    }

    /// SACK blocks `emit` writes: as many of `sackBlocks` as fit after the other options.
    public var emittedSACKBlocks: ArraySlice<SACKBlock> {
        var used = 0
        if mss != nil { used += 4 }
        if windowScale != nil { used += 4 }
        if sackPermitted { used += 4 }
        if timestamps != nil { used += 12 }
        let room = max(0, (Self.maxOptionBytes - used - 4) / 8)
        return sackBlocks.prefix(min(room, TCPOption.maxSACKBlocks))
    }

    /// The options in emitted order, NOP padding included.
    public var options: [TCPOption] {
        var o: [TCPOption] = []
        if let m = mss { o.append(.maxSegmentSize(m)) }
        if let w = windowScale { o += [.noOperation, .windowScale(w)] }
        if sackPermitted { o += [.noOperation, .noOperation, .sackPermitted] }
        if let t = timestamps { o += [.noOperation, .noOperation, .timestamps(t)] }
        let blocks = emittedSACKBlocks
        if !blocks.isEmpty { o += [.noOperation, .noOperation, .sack(Array(blocks))] }
        return o
    }

    /// Header length including options (always a multiple of 4).
    public var headerLength: Int {
        var n = Self.minLength
        if mss != nil { n += 4 }
        if windowScale != nil { n += 4 }
        if sackPermitted { n += 4 }
        if timestamps != nil { n += 12 }
        let blocks = emittedSACKBlocks.count
        if blocks > 0 { n += 4 + 8 * blocks }
        return n
    }

    /// Appends the header and `payload` with the checksum over the IPv4
    /// pseudo header. `self.payload` is not read: the emitted segment's
    /// payload range is `b.count + headerLength` onwards. With
    /// `partialChecksum` the field holds only the pseudo-header sum, for a
    /// super-segment the kernel segments and checksums (`TCPSegmentation`).
    public func emit(into b: inout [UInt8], src: IPv4Address, dst: IPv4Address, payload data: ArraySlice<UInt8>,
                     partialChecksum: Bool = false) {
        let t = b.count
        let hl = headerLength
        b.appendBE16(srcPort); b.appendBE16(dstPort); b.appendBE32(seq); b.appendBE32(ack)
        b.append(UInt8(hl / 4) << 4); b.append(flags.rawValue)
        b.appendBE16(window); b.appendBE16(0); b.appendBE16(0)
        if let m = mss { TCPOption.maxSegmentSize(m).emit(into: &b) }
        if let w = windowScale { b.append(1); TCPOption.windowScale(w).emit(into: &b) }
        if sackPermitted { b.append(1); b.append(1); TCPOption.sackPermitted.emit(into: &b) }
        if let ts = timestamps { b.append(1); b.append(1); TCPOption.timestamps(ts).emit(into: &b) }
        let blocks = emittedSACKBlocks
        if !blocks.isEmpty {
            b.append(1); b.append(1); b.append(5); b.append(UInt8(2 + 8 * blocks.count))
            for s in blocks { b.appendBE32(s.left); b.appendBE32(s.right) }
        }
        b.append(contentsOf: data)
        let sum = partialChecksum
            ? TCPSegmentation.pseudoHeaderSum(src: src, dst: dst, proto: IPProtocol.tcp, length: b.count - t)
            : transportChecksum(src: src, dst: dst, proto: IPProtocol.tcp, b, t..<b.count)
        b.writeBE16(sum, at: t + 16)
    }
}
