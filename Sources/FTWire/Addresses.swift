@inline(__always) func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// A non-negative decimal of 1...maxDigits ASCII digits without a leading zero
/// (a lone "0" is fine). Swift's `Int(_:)` also accepts a sign, which address
/// syntax does not.
func parseDecimal(_ s: Substring, maxDigits: Int) -> Int? {
    let u = s.utf8
    guard !u.isEmpty, u.count <= maxDigits else { return nil }
    if u.count > 1 && u.first == UInt8(ascii: "0") { return nil }
    var v = 0
    for c in u {
        guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
        v = v * 10 + Int(c - UInt8(ascii: "0"))
    }
    return v
}

/// A 48-bit Ethernet address stored in the low bits of a UInt64.
public struct MACAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(raw: UInt64) { self.raw = raw & 0xFFFF_FFFF_FFFF }
    public static let broadcast = MACAddress(raw: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(raw: 0)

    /// Parses `aa:bb:cc:dd:ee:ff` (also accepts `-` as separator). Exactly six
    /// pairs of hex digits with one consistent separator; nothing else (no
    /// signs, no empty groups, no leading or trailing separator).
    public init?(_ text: String) {
        let u = Array(text.utf8)
        guard u.count == 17 else { return nil }
        let sep = u[2]
        guard sep == UInt8(ascii: ":") || sep == UInt8(ascii: "-") else { return nil }
        var v: UInt64 = 0
        for k in 0..<6 {
            guard let hi = hexValue(u[3 * k]), let lo = hexValue(u[3 * k + 1]) else { return nil }
            if k < 5 { guard u[3 * k + 2] == sep else { return nil } }
            v = v << 8 | UInt64(hi << 4 | lo)
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
            // Decimal digits only: no sign (UInt8("+1") would succeed) and no
            // leading zero, which other parsers read as octal.
            guard let b = parseDecimal(p, maxDigits: 3), b <= 255 else { return nil }
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
        guard parts.count == 2, let a = IPv4Address(String(parts[0])),
              let p = parseDecimal(parts[1], maxDigits: 2), (0...32).contains(p)
        else { return nil }
        address = a; prefixLength = p
    }
    public var netmask: UInt32 { prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefixLength) }
    public var directedBroadcast: IPv4Address { IPv4Address(raw: address.raw | ~netmask) }
    public var description: String { "\(address)/\(prefixLength)" }
}
