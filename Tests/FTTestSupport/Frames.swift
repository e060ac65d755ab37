import FTWire
import FTStack

// Frames a client sends to the appliance, and parsers for what comes back.
// Every builder defaults to the test client → appliance addresses; pass
// another source or destination to build a foreign or malformed frame.

/// A TCP segment from the client to the appliance.
public func tcpFrame(seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, window: UInt16 = 65535,
                     mss: UInt16? = nil, windowScale: UInt8? = nil, payload: [UInt8] = [],
                     srcPort: UInt16 = clientPort, dstPort: UInt16 = counterPort,
                     src: IPv4Address = clientIP, dst: IPv4Address = applianceAddress,
                     ethSrc: MACAddress = clientMAC, ethDst: MACAddress = applianceMAC,
                     ttl: UInt8 = 64, ipID: UInt16 = 0) -> [UInt8] {
    FrameBuilder.tcp(ethSrc: ethSrc, ethDst: ethDst, src: src, dst: dst, srcPort: srcPort, dstPort: dstPort,
                     seq: seq, ack: ack, flags: flags, window: window, mss: mss, windowScale: windowScale,
                     payload: payload[...], ttl: ttl, ipID: ipID)
}

/// The short form of `tcpFrame` for the counter service: a SYN offers MSS 1460.
public func tcp(_ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: String = "",
                sport: UInt16 = clientPort) -> [UInt8] {
    tcpFrame(seq: seq, ack: ack, flags: flags, mss: flags.contains(.syn) ? 1460 : nil,
             payload: Array(payload.utf8), srcPort: sport)
}

/// A UDP datagram from the client to the appliance.
public func udpFrame(srcPort: UInt16 = clientPort, dstPort: UInt16, payload: [UInt8],
                     src: IPv4Address = clientIP, dst: IPv4Address = applianceAddress,
                     ethSrc: MACAddress = clientMAC, ethDst: MACAddress = applianceMAC,
                     ttl: UInt8 = 64, ipID: UInt16 = 0) -> [UInt8] {
    FrameBuilder.udp(ethSrc: ethSrc, ethDst: ethDst, src: src, dst: dst, srcPort: srcPort, dstPort: dstPort,
                     payload: payload[...], ttl: ttl, ipID: ipID)
}

/// An ICMP message from the client to the appliance (type 8 is an echo request).
public func icmpFrame(type: UInt8, code: UInt8 = 0, rest: UInt32, body: [UInt8],
                      src: IPv4Address = clientIP, dst: IPv4Address = applianceAddress,
                      ethSrc: MACAddress = clientMAC, ethDst: MACAddress = applianceMAC,
                      ttl: UInt8 = 64, ipID: UInt16 = 0) -> [UInt8] {
    FrameBuilder.icmp(ethSrc: ethSrc, ethDst: ethDst, src: src, dst: dst, type: type, code: code,
                      rest: rest, body: body[...], ttl: ttl, ipID: ipID)
}

/// An ARP request (or, with `op`, another ARP message) from the client.
public func arpFrame(target: IPv4Address, sender: IPv4Address = clientIP, ethDst: MACAddress = .broadcast,
                     op: UInt16 = ARPPacket.request) -> [UInt8] {
    ARPPacket(op: op, senderMAC: clientMAC, senderIP: sender, targetMAC: .zero, targetIP: target)
        .frame(ethDst: ethDst, ethSrc: clientMAC)
}

/// The header and payload of a TCP segment (checksum verified), or nil.
public func parseTCP(_ f: [UInt8]) -> (TCPHeader, [UInt8])? {
    guard let ip = try? IPv4Header.parse(f, at: 14), ip.proto == IPProtocol.tcp,
          let t = try? TCPHeader.parse(f, ip: ip) else { return nil }
    return (t, Array(f[t.payload]))
}

/// A gratuitous ARP: a request whose sender and target address are the same.
public func isGARP(_ f: [UInt8]) -> Bool {
    guard let a = try? ARPPacket.parse(f, at: 14) else { return false }
    return a.op == ARPPacket.request && a.senderIP == a.targetIP
}
