/// Parsers and builders for the wire formats the appliance speaks:
/// Ethernet II, ARP (RFC 826), IPv4 (RFC 791), ICMP echo (RFC 792),
/// UDP (RFC 768) and TCP (RFC 9293, in TCP.swift).
///
/// Each header is one representation with `parse`, `emit` and a length,
/// and `parse(emit(x)) == x`. Parsers never trap on malformed input: they
/// throw a `WireError`.

public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let ipv6: UInt16 = 0x86DD
}

public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
}

public enum WireError: Error, Equatable, Sendable {
    case truncated
    case badVersion
    case badHeaderLength
    case badTotalLength
    case badChecksum
    case fragment
    case options
    case unsupported
    /// A TCP option whose length octet is missing, too small, runs past the
    /// header, or does not fit its kind.
    case badOption
}

public struct EthernetHeader: Equatable, Sendable {
    public static let length = 14
    public var dst: MACAddress
    public var src: MACAddress
    public var etherType: UInt16
    public init(dst: MACAddress, src: MACAddress, etherType: UInt16) {
        self.dst = dst; self.src = src; self.etherType = etherType
    }
    public static func parse(_ f: [UInt8]) throws(WireError) -> EthernetHeader {
        guard f.count >= length else { throw .truncated }
        return EthernetHeader(dst: MACAddress(bytes: f, at: 0), src: MACAddress(bytes: f, at: 6),
                              etherType: f.readBE16(12))
    }
    /// Appends the 14 header bytes.
    public func emit(into b: inout [UInt8]) {
        dst.write(into: &b); src.write(into: &b); b.appendBE16(etherType)
    }
    public func write(into b: inout [UInt8]) { emit(into: &b) }
}

public struct ARPPacket: Equatable, Sendable {
    public static let request: UInt16 = 1
    public static let reply: UInt16 = 2
    public static let length = 28
    public var op: UInt16
    public var senderMAC: MACAddress
    public var senderIP: IPv4Address
    public var targetMAC: MACAddress
    public var targetIP: IPv4Address
    public init(op: UInt16, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address) {
        self.op = op; self.senderMAC = senderMAC; self.senderIP = senderIP
        self.targetMAC = targetMAC; self.targetIP = targetIP
    }
    /// Parses the ARP payload that starts at `offset` (Ethernet/IPv4 only).
    public static func parse(_ f: [UInt8], at o: Int) throws(WireError) -> ARPPacket {
        guard f.count >= o + length else { throw .truncated }
        guard f.readBE16(o) == 1, f.readBE16(o + 2) == EtherType.ipv4, f[o + 4] == 6, f[o + 5] == 4
        else { throw .unsupported }
        return ARPPacket(op: f.readBE16(o + 6),
                         senderMAC: MACAddress(bytes: f, at: o + 8), senderIP: IPv4Address(raw: f.readBE32(o + 14)),
                         targetMAC: MACAddress(bytes: f, at: o + 18), targetIP: IPv4Address(raw: f.readBE32(o + 24)))
    }
    /// Appends the 28-byte ARP packet (Ethernet/IPv4).
    public func emit(into b: inout [UInt8]) {
        b.appendBE16(1); b.appendBE16(EtherType.ipv4); b.append(6); b.append(4); b.appendBE16(op)
        senderMAC.write(into: &b); b.appendBE32(senderIP.raw)
        targetMAC.write(into: &b); b.appendBE32(targetIP.raw)
    }
    /// A complete Ethernet frame carrying this ARP packet.
    public func frame(ethDst: MACAddress, ethSrc: MACAddress) -> [UInt8] {
        var b: [UInt8] = []; b.reserveCapacity(60)
        EthernetHeader(dst: ethDst, src: ethSrc, etherType: EtherType.arp).emit(into: &b)
        emit(into: &b)
        while b.count < 60 { b.append(0) }  // pad to the Ethernet minimum
        return b
    }
    /// Gratuitous ARP in request form: sender IP = target IP, broadcast.
    public static func gratuitous(mac: MACAddress, ip: IPv4Address) -> [UInt8] {
        ARPPacket(op: request, senderMAC: mac, senderIP: ip, targetMAC: .zero, targetIP: ip)
            .frame(ethDst: .broadcast, ethSrc: mac)
    }
}

/// A validated IPv4 header inside a frame; `payload` indexes the frame.
/// Only option-less, unfragmented datagrams with DF set are emitted.
public struct IPv4Header: Equatable, Sendable {
    public static let length = 20
    public var src: IPv4Address
    public var dst: IPv4Address
    public var proto: UInt8
    public var ttl: UInt8
    public var identification: UInt16
    public var headerStart: Int
    public var payload: Range<Int>

    public init(src: IPv4Address, dst: IPv4Address, proto: UInt8, ttl: UInt8, identification: UInt16,
                headerStart: Int, payload: Range<Int>) {
        self.src = src; self.dst = dst; self.proto = proto; self.ttl = ttl
        self.identification = identification; self.headerStart = headerStart; self.payload = payload
    }

    /// Appends the 20-byte header for a payload of `payload.count` bytes;
    /// `headerStart` and the payload position are where it lands in `b`.
    public func emit(into b: inout [UInt8]) {
        Self.write(into: &b, src: src, dst: dst, proto: proto, ttl: ttl,
                   identification: identification, payloadLength: payload.count)
    }

    /// Validates version, IHL, total length and header checksum; rejects
    /// fragments and options. Trailing Ethernet padding is excluded from `payload`.
    public static func parse(_ f: [UInt8], at o: Int) throws(WireError) -> IPv4Header {
        guard f.count >= o + 20 else { throw .truncated }
        let vihl = f[o]
        guard vihl >> 4 == 4 else { throw .badVersion }
        let ihl = Int(vihl & 0x0F) * 4
        guard ihl >= 20 else { throw .badHeaderLength }
        guard f.count >= o + ihl else { throw .truncated }
        let total = Int(f.readBE16(o + 2))
        guard total >= ihl, o + total <= f.count else { throw .badTotalLength }
        var c = InternetChecksum(); c.add(f, o..<(o + ihl))
        guard c.value == 0 else { throw .badChecksum }
        let frag = f.readBE16(o + 6)
        guard frag & 0x3FFF == 0 else { throw .fragment }  // MF set or offset != 0
        guard ihl == 20 else { throw .options }
        return IPv4Header(src: IPv4Address(raw: f.readBE32(o + 12)), dst: IPv4Address(raw: f.readBE32(o + 16)),
                          proto: f[o + 9], ttl: f[o + 8], identification: f.readBE16(o + 4),
                          headerStart: o, payload: (o + ihl)..<(o + total))
    }

    /// Appends a 20-byte header with checksum. `payloadLength` is what follows.
    public static func write(into b: inout [UInt8], src: IPv4Address, dst: IPv4Address, proto: UInt8,
                             ttl: UInt8, identification: UInt16, payloadLength: Int) {
        let start = b.count
        b.append(0x45); b.append(0)
        b.appendBE16(UInt16(20 + payloadLength))
        b.appendBE16(identification)
        b.appendBE16(0x4000)  // DF: we never fragment
        b.append(ttl); b.append(proto)
        b.appendBE16(0)
        b.appendBE32(src.raw); b.appendBE32(dst.raw)
        var c = InternetChecksum(); c.add(b, start..<(start + 20))
        b.writeBE16(c.value, at: start + 10)
    }
}

public struct UDPHeader: Equatable, Sendable {
    public static let length = 8
    public var srcPort: UInt16
    public var dstPort: UInt16
    public var payload: Range<Int>
    /// Parses and verifies the checksum (a zero checksum means "none" in IPv4).
    public static func parse(_ f: [UInt8], ip: IPv4Header, verifyChecksum: Bool = true) throws(WireError) -> UDPHeader {
        let o = ip.payload.lowerBound
        guard ip.payload.count >= 8 else { throw .truncated }
        let len = Int(f.readBE16(o + 4))
        guard len >= 8, len <= ip.payload.count else { throw .badTotalLength }
        if verifyChecksum && f.readBE16(o + 6) != 0 {
            guard transportChecksum(src: ip.src, dst: ip.dst, proto: IPProtocol.udp, f, o..<(o + len)) == 0
            else { throw .badChecksum }
        }
        return UDPHeader(srcPort: f.readBE16(o), dstPort: f.readBE16(o + 2), payload: (o + 8)..<(o + len))
    }
    public init(srcPort: UInt16, dstPort: UInt16, payload: Range<Int>) {
        self.srcPort = srcPort; self.dstPort = dstPort; self.payload = payload
    }
    /// Appends the header and `data` with the checksum (0 is sent as 0xFFFF).
    public func emit(into b: inout [UInt8], src: IPv4Address, dst: IPv4Address, payload data: ArraySlice<UInt8>) {
        let u = b.count
        b.appendBE16(srcPort); b.appendBE16(dstPort); b.appendBE16(UInt16(Self.length + data.count)); b.appendBE16(0)
        b.append(contentsOf: data)
        var c = transportChecksum(src: src, dst: dst, proto: IPProtocol.udp, b, u..<b.count)
        if c == 0 { c = 0xFFFF }
        b.writeBE16(c, at: u + 6)
    }
}

/// ICMP echo request (type 8) or reply (type 0), RFC 792; `payload` indexes the frame.
public struct ICMPEcho: Equatable, Sendable {
    public static let length = 8
    public static let requestType: UInt8 = 8
    public static let replyType: UInt8 = 0
    public var isRequest: Bool
    public var identifier: UInt16
    public var sequence: UInt16
    public var payload: Range<Int>
    public init(isRequest: Bool, identifier: UInt16, sequence: UInt16, payload: Range<Int>) {
        self.isRequest = isRequest; self.identifier = identifier; self.sequence = sequence; self.payload = payload
    }
    /// Verifies the checksum; other ICMP types or a non-zero code are `.unsupported`.
    public static func parse(_ f: [UInt8], ip: IPv4Header) throws(WireError) -> ICMPEcho {
        let p = ip.payload
        guard p.count >= length, p.upperBound <= f.count else { throw .truncated }
        var c = InternetChecksum(); c.add(f, p)
        guard c.value == 0 else { throw .badChecksum }
        let type = f[p.lowerBound]
        guard type == requestType || type == replyType, f[p.lowerBound + 1] == 0 else { throw .unsupported }
        return ICMPEcho(isRequest: type == requestType, identifier: f.readBE16(p.lowerBound + 4),
                        sequence: f.readBE16(p.lowerBound + 6), payload: (p.lowerBound + length)..<p.upperBound)
    }
    /// Appends the message with `data` and its checksum.
    public func emit(into b: inout [UInt8], payload data: ArraySlice<UInt8>) {
        FrameBuilder.icmpMessage(into: &b, type: isRequest ? Self.requestType : Self.replyType, code: 0,
                                 rest: UInt32(identifier) << 16 | UInt32(sequence), body: data)
    }
}

/// Builds complete Ethernet+IPv4+transport frames with checksums, by
/// emitting the header representations above.
public enum FrameBuilder {
    public static func tcp(ethSrc: MACAddress, ethDst: MACAddress, src: IPv4Address, dst: IPv4Address,
                           srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32, flags: TCPFlags,
                           window: UInt16, mss: UInt16? = nil, windowScale: UInt8? = nil,
                           sackPermitted: Bool = false, timestamps: TCPTimestamps? = nil,
                           sackBlocks: [(UInt32, UInt32)] = [],
                           payload: ArraySlice<UInt8> = [], ttl: UInt8 = 64, ipID: UInt16 = 0,
                           partialChecksum: Bool = false) -> [UInt8] {
        let h = TCPHeader(srcPort: srcPort, dstPort: dstPort, seq: seq, ack: ack, flags: flags, window: window,
                          mss: mss, windowScale: windowScale, sackPermitted: sackPermitted, timestamps: timestamps,
                          sackBlocks: sackBlocks.map { SACKBlock(left: $0.0, right: $0.1) }, payload: 0..<0)
        let tcpLen = h.headerLength + payload.count
        var b: [UInt8] = []
        b.reserveCapacity(EthernetHeader.length + IPv4Header.length + tcpLen)
        EthernetHeader(dst: ethDst, src: ethSrc, etherType: EtherType.ipv4).emit(into: &b)
        IPv4Header.write(into: &b, src: src, dst: dst, proto: IPProtocol.tcp, ttl: ttl,
                         identification: ipID, payloadLength: tcpLen)
        h.emit(into: &b, src: src, dst: dst, payload: payload, partialChecksum: partialChecksum)
        return b
    }

    public static func udp(ethSrc: MACAddress, ethDst: MACAddress, src: IPv4Address, dst: IPv4Address,
                           srcPort: UInt16, dstPort: UInt16, payload: ArraySlice<UInt8>,
                           ttl: UInt8 = 64, ipID: UInt16 = 0) -> [UInt8] {
        let udpLen = UDPHeader.length + payload.count
        var b: [UInt8] = []
        b.reserveCapacity(EthernetHeader.length + IPv4Header.length + udpLen)
        EthernetHeader(dst: ethDst, src: ethSrc, etherType: EtherType.ipv4).emit(into: &b)
        IPv4Header.write(into: &b, src: src, dst: dst, proto: IPProtocol.udp, ttl: ttl,
                         identification: ipID, payloadLength: udpLen)
        UDPHeader(srcPort: srcPort, dstPort: dstPort, payload: 0..<0).emit(into: &b, src: src, dst: dst, payload: payload)
        return b
    }

    /// An ICMP message (type, code, 4 bytes of rest-of-header, body).
    public static func icmp(ethSrc: MACAddress, ethDst: MACAddress, src: IPv4Address, dst: IPv4Address,
                            type: UInt8, code: UInt8, rest: UInt32, body: ArraySlice<UInt8>,
                            ttl: UInt8 = 64, ipID: UInt16 = 0) -> [UInt8] {
        let len = 8 + body.count
        var b: [UInt8] = []
        b.reserveCapacity(EthernetHeader.length + IPv4Header.length + len)
        EthernetHeader(dst: ethDst, src: ethSrc, etherType: EtherType.ipv4).emit(into: &b)
        IPv4Header.write(into: &b, src: src, dst: dst, proto: IPProtocol.icmp, ttl: ttl,
                         identification: ipID, payloadLength: len)
        icmpMessage(into: &b, type: type, code: code, rest: rest, body: body)
        return b
    }

    /// Appends an ICMP message with its checksum.
    static func icmpMessage(into b: inout [UInt8], type: UInt8, code: UInt8, rest: UInt32, body: ArraySlice<UInt8>) {
        let s = b.count
        b.append(type); b.append(code); b.appendBE16(0); b.appendBE32(rest)
        b.append(contentsOf: body)
        var c = InternetChecksum(); c.add(b, s..<b.count)
        b.writeBE16(c.value, at: s + 2)
    }
}

/// A one-line, tcpdump-like summary of a frame, for logs and `ftap log show`.
public func frameSummary(_ f: [UInt8]) -> String {
    guard let eth = try? EthernetHeader.parse(f) else { return "truncated frame (\(f.count) bytes)" }
    switch eth.etherType {
    case EtherType.arp:
        guard let a = try? ARPPacket.parse(f, at: 14) else { return "ARP malformed" }
        if a.op == ARPPacket.request {
            return a.senderIP == a.targetIP ? "ARP, Announcement \(a.senderIP) is-at \(a.senderMAC)"
                : "ARP, Request who-has \(a.targetIP) tell \(a.senderIP)"
        }
        return "ARP, Reply \(a.senderIP) is-at \(a.senderMAC)"
    case EtherType.ipv4:
        guard let ip = try? IPv4Header.parse(f, at: 14) else { return "IP malformed (\(f.count) bytes)" }
        switch ip.proto {
        case IPProtocol.tcp:
            guard let t = try? TCPHeader.parse(f, ip: ip, verifyChecksum: false) else { return "IP \(ip.src) > \(ip.dst): TCP malformed" }
            var s = "IP \(ip.src).\(t.srcPort) > \(ip.dst).\(t.dstPort): Flags [\(t.flags.tcpdump)]"
            let n = t.payload.count
            if n > 0 || t.flags.contains(.syn) || t.flags.contains(.fin) {
                s += n > 0 ? ", seq \(t.seq):\(t.seq &+ UInt32(n))" : ", seq \(t.seq)"
            }
            if t.flags.contains(.ack) { s += ", ack \(t.ack)" }
            s += ", win \(t.window)"
            if let m = t.mss { s += ", mss \(m)" }
            if let w = t.windowScale { s += ", wscale \(w)" }
            return s + ", length \(n)"
        case IPProtocol.udp:
            guard ip.payload.count >= 8 else { return "IP \(ip.src) > \(ip.dst): UDP truncated" }
            let o = ip.payload.lowerBound
            return "IP \(ip.src).\(f.readBE16(o)) > \(ip.dst).\(f.readBE16(o + 2)): UDP, length \(ip.payload.count - 8)"
        case IPProtocol.icmp:
            guard ip.payload.count >= 8 else { return "IP \(ip.src) > \(ip.dst): ICMP truncated" }
            let t = f[ip.payload.lowerBound]
            let name = t == 8 ? "echo request" : t == 0 ? "echo reply" : t == 3 ? "unreachable" : "type \(t)"
            return "IP \(ip.src) > \(ip.dst): ICMP \(name), length \(ip.payload.count - 8)"
        default:
            return "IP \(ip.src) > \(ip.dst): proto \(ip.proto), length \(ip.payload.count)"
        }
    case EtherType.ipv6:
        return "IP6 frame \(eth.src) > \(eth.dst)"
    default:
        return "ethertype 0x\(String(eth.etherType, radix: 16)) \(eth.src) > \(eth.dst)"
    }
}
