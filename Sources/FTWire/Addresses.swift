/// A 48-bit Ethernet address stored in the low bits of a UInt64.
public struct MACAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(raw: UInt64) { self.raw = raw & 0xFFFF_FFFF_FFFF }
    public static let broadcast = MACAddress(raw: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(raw: 0)

    /// Parses `aa:bb:cc:dd:ee:ff` (also accepts `-` as separator).
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard p.count == 2, let b = UInt8(p, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        raw = v
    }
    public init(bytes b: [UInt8], at i: Int) {
        var v: UInt64 = 0
        for k in 0..<6 { v = v << 8 | UInt64(b[i + k]) }
        raw = v
    }
    public func write(into b: inout [UInt8]) {
        for k in (0..<6).reversed() { b.append(UInt8(truncatingIfNeeded: raw >> (UInt64(k) * 8))) }
    }
    public var isMulticast: Bool { (raw >> 40) & 1 == 1 }
    public var isBroadcast: Bool { self == .broadcast }
    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.raw < b.raw }
    public var description: String {
        (0..<6).reversed().map { k -> String in
            let byte = UInt8(truncatingIfNeeded: raw >> (UInt64(k) * 8))
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined(separator: ":")
    }
}

/// An IPv4 address in host order.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt32
    public init(raw: UInt32) { self.raw = raw }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        raw = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, let b = UInt8(p) else { return nil }
            v = v << 8 | UInt32(b)
        }
        raw = v
    }
    public static let any = IPv4Address(raw: 0)
    public static let broadcast = IPv4Address(raw: 0xFFFF_FFFF)
    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.raw < b.raw }
    public var description: String {
        "\(raw >> 24).\((raw >> 16) & 0xFF).\((raw >> 8) & 0xFF).\(raw & 0xFF)"
    }
}

/// `ADDR/PREFIX`, e.g. 10.0.0.100/24.
public struct IPv4Interface: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefixLength: Int
    public init(address: IPv4Address, prefixLength: Int) {
        self.address = address; self.prefixLength = prefixLength
    }
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])), let p = Int(parts[1]), (0...32).contains(p)
        else { return nil }
        address = a; prefixLength = p
    }
    public var netmask: UInt32 { prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefixLength) }
    public var directedBroadcast: IPv4Address { IPv4Address(raw: address.raw | ~netmask) }
    public var description: String { "\(address)/\(prefixLength)" }
}
