import FTWire

extension Stack {
    /// True when `f` is a TCP data segment of an open connection whose every
    /// byte this stack has already received (it ends at or below RCV.NXT) and
    /// that carries no SYN, FIN or RST. Processing it would only repeat an
    /// ACK. A new primary uses this at go-live to skip frames from its
    /// standby buffer that the old primary's log already covered, so the
    /// client gets no burst of duplicate ACKs (which could trigger a spurious
    /// fast retransmit). A read-only query: it changes no state.
    public func isOldData(_ f: [UInt8]) -> Bool {
        guard let eth = try? EthernetHeader.parse(f), eth.dst == config.mac, eth.etherType == EtherType.ipv4,
              let ip = try? IPv4Header.parse(f, at: 14), ip.dst == config.ip, ip.proto == IPProtocol.tcp,
              let seg = try? TCPHeader.parse(f, ip: ip, verifyChecksum: false) else { return false }
        guard !seg.flags.contains(.syn), !seg.flags.contains(.fin), !seg.flags.contains(.rst),
              !seg.payload.isEmpty else { return false }
        let key = ConnKey(remote: Endpoint(ip: ip.src, port: seg.srcPort), localPort: seg.dstPort)
        guard let t = conns[key], t.state != .synReceived else { return false }
        return seqLE(seg.seq &+ UInt32(seg.payload.count), t.rcvNxt)
    }
}
