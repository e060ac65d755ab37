// Segmentation offload (TSO/GSO) and checksum offload as Linux's TAP
// exposes them with IFF_VNET_HDR: every read and write carries a
// `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h) in front of the
// Ethernet frame. Pure byte work; the TAP calls live in FTPlatform.

/// The 10-byte header in front of each frame on a TAP opened with
/// IFF_VNET_HDR. Little-endian fields on x86 and arm64: the TAP's vnet
/// header is in the host's byte order unless TUNSETVNETLE/BE says otherwise.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let length = 10
    /// The frame's transport checksum is partial: the field at
    /// `csumStart + csumOffset` holds only the pseudo-header sum, and the
    /// sum over the rest is left to whoever transmits it.
    public static let needsChecksum: UInt8 = 1
    /// The kernel (or the device) verified the checksum.
    public static let dataValid: UInt8 = 2
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoUDPL4: UInt8 = 5
    public static let gsoECN: UInt8 = 0x80

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var csumStart: UInt16 = 0
    public var csumOffset: UInt16 = 0

    public init(flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
                csumStart: UInt16 = 0, csumOffset: UInt16 = 0) {
        self.flags = flags; self.gsoType = gsoType; self.headerLength = headerLength
        self.gsoSize = gsoSize; self.csumStart = csumStart; self.csumOffset = csumOffset
    }

    /// Reads the header at the start of `raw`; nil when it is too short.
    public static func parse(_ raw: UnsafeRawBufferPointer) -> VirtioNetHeader? {
        guard raw.count >= length else { return nil }
        func le16(_ i: Int) -> UInt16 { UInt16(raw[i]) | UInt16(raw[i + 1]) << 8 }
        return VirtioNetHeader(flags: raw[0], gsoType: raw[1], headerLength: le16(2), gsoSize: le16(4),
                               csumStart: le16(6), csumOffset: le16(8))
    }

    public var bytes: [UInt8] {
        func le(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
        return [flags, gsoType] + le(headerLength) + le(gsoSize) + le(csumStart) + le(csumOffset)
    }

    /// True when the frame's transport checksum need not (NEEDS_CSUM: cannot)
    /// be verified: the local kernel produced or checked it.
    public var checksumTrusted: Bool { flags & (Self.needsChecksum | Self.dataValid) != 0 }
}

/// TCP segmentation offload for frames the stack emits.
public enum TCPSegmentation {
    /// The largest IPv4 datagram (the total-length field).
    public static let maxDatagram = 65535

    /// The header to write in front of a TCP/IPv4 super-segment built by
    /// `FrameBuilder.tcp(..., partialChecksum: true)`, so that the kernel
    /// cuts it into segments of `segmentSize` payload bytes.
    public static func header(for frame: [UInt8], segmentSize: Int) -> VirtioNetHeader {
        let ihl = Int(frame[14] & 0x0F) * 4
        let tcpStart = 14 + ihl
        let thl = Int(frame[tcpStart + 12] >> 4) * 4
        return VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.gsoTCPv4,
                               headerLength: UInt16(tcpStart + thl), gsoSize: UInt16(segmentSize),
                               csumStart: UInt16(tcpStart), csumOffset: 16)
    }

    /// Cuts a TCP/IPv4 super-segment (partial checksum, as
    /// `FrameBuilder.tcp(..., partialChecksum: true)` builds it) into
    /// ordinary frames of at most `segmentSize` payload bytes with complete
    /// checksums, as the kernel's GSO does: the same headers, consecutive
    /// sequence numbers and IP identifications, PSH and FIN on the last
    /// segment only, CWR on the first only. Used where no kernel segments
    /// for us: a TAP without TSO, and the simulator.
    public static func split(_ frame: [UInt8], segmentSize: Int) -> [[UInt8]] {
        let ihl = Int(frame[14] & 0x0F) * 4
        let t = 14 + ihl
        let thl = Int(frame[t + 12] >> 4) * 4
        let dataStart = t + thl
        let total = Int(frame.readBE16(14 + 2))
        let end = min(frame.count, 14 + total)
        let payload = end - dataStart
        guard segmentSize > 0, payload > 0 else { return [TransportChecksum.completed(frame)] }
        let seq = frame.readBE32(t + 4)
        let id = frame.readBE16(14 + 4)
        let flags = frame[t + 13]
        var out: [[UInt8]] = []
        out.reserveCapacity((payload + segmentSize - 1) / segmentSize)
        var off = 0
        while off < payload {
            let len = min(segmentSize, payload - off)
            var f = [UInt8]()
            f.reserveCapacity(dataStart + len)
            f.append(contentsOf: frame[0..<dataStart])
            f.append(contentsOf: frame[(dataStart + off)..<(dataStart + off + len)])
            f.writeBE16(UInt16(ihl + thl + len), at: 14 + 2)
            f.writeBE16(id &+ UInt16(truncatingIfNeeded: out.count), at: 14 + 4)
            f.writeBE16(0, at: 14 + 10)
            var ipc = InternetChecksum(); ipc.add(f, 14..<(14 + ihl))
            f.writeBE16(ipc.value, at: 14 + 10)
            f.writeBE32(seq &+ UInt32(off), at: t + 4)
            var fl = flags
            if off + len < payload { fl &= ~(TCPFlags.psh.rawValue | TCPFlags.fin.rawValue) }
            if off > 0 { fl &= ~0x80 }  // CWR
            f[t + 13] = fl
            out.append(TransportChecksum.completed(f))
            off += len
        }
        return out
    }

    /// The value a partial checksum field holds: the folded, uncomplemented
    /// pseudo-header sum over `length` transport bytes (what Linux's
    /// `~tcp_v4_check(len, saddr, daddr, 0)` gives).
    public static func pseudoHeaderSum(src: IPv4Address, dst: IPv4Address, proto: UInt8, length: Int) -> UInt16 {
        var c = InternetChecksum()
        c.add32(src.raw); c.add32(dst.raw)
        c.add16(UInt16(proto)); c.add16(UInt16(truncatingIfNeeded: length))
        return ~c.value
    }
}

/// Transport checksums of frames read with offloads.
public enum TransportChecksum {
    /// `f` with its TCP or UDP checksum over IPv4 recomputed (for a frame
    /// whose checksum the kernel left partial, before it travels where no
    /// offload flag goes with it). Other frames are returned unchanged.
    public static func completed(_ f: [UInt8]) -> [UInt8] {
        guard f.count >= 34, f.readBE16(12) == EtherType.ipv4, f[14] >> 4 == 4 else { return f }
        let ihl = Int(f[14] & 0x0F) * 4
        let t = 14 + ihl
        let end = 14 + Int(f.readBE16(16))
        guard ihl >= 20, end <= f.count, f.readBE16(20) & 0x3FFF == 0 else { return f }
        let field: Int
        switch f[23] {
        case IPProtocol.tcp where end >= t + 20: field = t + 16
        case IPProtocol.udp where end >= t + 8: field = t + 6
        default: return f
        }
        var g = f
        g.writeBE16(0, at: field)
        let src = IPv4Address(raw: f.readBE32(26)), dst = IPv4Address(raw: f.readBE32(30))
        var sum = transportChecksum(src: src, dst: dst, proto: f[23], g, t..<end)
        if f[23] == IPProtocol.udp && sum == 0 { sum = 0xFFFF }
        g.writeBE16(sum, at: field)
        return g
    }
}
