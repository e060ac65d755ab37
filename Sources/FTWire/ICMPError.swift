/// ICMP error messages (RFC 792) that quote a datagram we sent: destination
/// unreachable (type 3), including "fragmentation needed and DF set" (code 4)
/// with the next-hop MTU of RFC 1191 section 4.
///
/// Layout: type, code, checksum, 2 unused bytes, next-hop MTU (code 4
/// only), then the quoted IPv4 header (options allowed) and at least the
/// first 8 bytes of its payload: for TCP, the ports and the sequence number.
public struct ICMPError: Equatable, Sendable {
    public static let destinationUnreachable: UInt8 = 3
    public static let fragmentationNeeded: UInt8 = 4
    public var type: UInt8
    public var code: UInt8
    /// RFC 1191's next-hop MTU (0 from routers older than RFC 1191).
    public var nextHopMTU: UInt16
    /// The quoted datagram's header fields.
    public var quotedSrc: IPv4Address
    public var quotedDst: IPv4Address
    public var quotedProto: UInt8
    /// The quoted datagram's total length (what was too big).
    public var quotedTotalLength: UInt16
    /// The first 8 bytes of the quoted transport header: source port,
    /// destination port and, for TCP, the sequence number.
    public var quotedSrcPort: UInt16
    public var quotedDstPort: UInt16
    public var quotedSeq: UInt32

    public init(type: UInt8, code: UInt8, nextHopMTU: UInt16, quotedSrc: IPv4Address, quotedDst: IPv4Address,
                quotedProto: UInt8, quotedTotalLength: UInt16, quotedSrcPort: UInt16, quotedDstPort: UInt16,
                quotedSeq: UInt32) {
        self.type = type; self.code = code; self.nextHopMTU = nextHopMTU
        self.quotedSrc = quotedSrc; self.quotedDst = quotedDst; self.quotedProto = quotedProto
        self.quotedTotalLength = quotedTotalLength
        self.quotedSrcPort = quotedSrcPort; self.quotedDstPort = quotedDstPort; self.quotedSeq = quotedSeq
    }

    public var isFragmentationNeeded: Bool {
        type == Self.destinationUnreachable && code == Self.fragmentationNeeded
    }

    /// Parses the ICMP message in `ip.payload`: verifies its checksum and
    /// that the quote holds an IPv4 header and 8 bytes of what followed.
    /// Types other than destination unreachable are `.unsupported`.
    public static func parse(_ f: [UInt8], ip: IPv4Header) throws(WireError) -> ICMPError {
        let p = ip.payload
        guard p.count >= 8, p.upperBound <= f.count else { throw .truncated }
        var c = InternetChecksum(); c.add(f, p)
        guard c.value == 0 else { throw .badChecksum }
        let type = f[p.lowerBound], code = f[p.lowerBound + 1]
        guard type == destinationUnreachable else { throw .unsupported }
        let q = p.lowerBound + 8
        guard p.upperBound - q >= 20 else { throw .truncated }
        guard f[q] >> 4 == 4 else { throw .badVersion }
        let ihl = Int(f[q] & 0x0F) * 4
        guard ihl >= 20 else { throw .badHeaderLength }
        guard p.upperBound - q >= ihl + 8 else { throw .truncated }
        let t = q + ihl
        return ICMPError(type: type, code: code, nextHopMTU: f.readBE16(p.lowerBound + 6),
                         quotedSrc: IPv4Address(raw: f.readBE32(q + 12)), quotedDst: IPv4Address(raw: f.readBE32(q + 16)),
                         quotedProto: f[q + 9], quotedTotalLength: f.readBE16(q + 2),
                         quotedSrcPort: f.readBE16(t), quotedDstPort: f.readBE16(t + 2), quotedSeq: f.readBE32(t + 4))
    }

    /// RFC 1191 section 7's plateaus, for a router that reports no MTU:
    /// the largest one below the quoted datagram's length.
    public static let plateaus: [Int] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68]
    public static func plateau(below length: Int) -> Int {
        plateaus.first { $0 < length } ?? 68
    }
}
