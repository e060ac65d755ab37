import CShims
import FTWire
#if canImport(Glibc)
import Glibc
#endif

/// A TAP device: one read is one Ethernet frame, one write is one frame.
///
/// With offloads (the default; `--no-offload` turns them off) the TAP is
/// opened with IFF_VNET_HDR and TUNSETOFFLOAD: each read and write carries
/// a virtio-net header, the kernel hands us TCP super-frames of up to 64 KiB
/// (the client's TSO, GRO) with checksums left partial, and it cuts our
/// super-segments (`Frames`) into MTU-sized segments itself.
public final class TapDevice {
    public let name: String
    public let fd: Int32
    /// IFF_VNET_HDR: every read and write starts with a `VirtioNetHeader`.
    public let vnetHeader: Bool
    /// The kernel accepts TCP/IPv4 super-segments from us (TUN_F_TSO4).
    public let tso: Bool
    /// What TUNSETOFFLOAD accepted, for the log ("csum tso4 tso6", or "none").
    public let offloadDescription: String
    var buffer: [UInt8]
    /// Super-frames read (more than one MTU) and super-segments written whole,
    /// and super-segments cut here because the TAP lacks TSO.
    public private(set) var superFramesRead: UInt64 = 0
    public private(set) var superFramesWritten: UInt64 = 0
    public private(set) var superFramesSplit: UInt64 = 0
    let mtu: Int

    /// Creates (or attaches to) TAP `name`. Non-blocking.
    public init(name: String, mtu: Int, offload: Bool = false) throws {
        guard !name.isEmpty, name.utf8.count < 16 else {
            throw SystemError("open TAP '\(name)'", detail: "interface names are 1 to 15 bytes")
        }
        var actual = [CChar](repeating: 0, count: 16)
        let r = ftap_tap_open(name, &actual, actual.count, offload ? 1 : 0)
        if r < 0 {
            let hint = -r == EPERM ? " (ftap needs root or CAP_NET_ADMIN)" : ""
            throw SystemError("open TAP '\(name)' via /dev/net/tun", detail: String(cString: strerror(-r)) + hint)
        }
        fd = r
        self.mtu = mtu
        self.name = String(decoding: actual.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        vnetHeader = offload
        var accepted: UInt32 = 0
        if offload {
            // Probe: a flag this kernel does not know fails the whole call with EINVAL.
            let csum = ftap_tun_f_csum(), tso4 = ftap_tun_f_tso4(), tso6 = ftap_tun_f_tso6()
            for flags in [csum | tso4 | tso6, csum | tso4, csum] where ftap_tap_set_offload(fd, flags) == 0 {
                accepted = flags; break
            }
        }
        tso = accepted & ftap_tun_f_tso4() != 0
        var names: [String] = []
        if accepted & ftap_tun_f_csum() != 0 { names.append("csum") }
        if accepted & ftap_tun_f_tso4() != 0 { names.append("tso4") }
        if accepted & ftap_tun_f_tso6() != 0 { names.append("tso6") }
        offloadDescription = offload ? (names.isEmpty ? "vnet header, no offloads accepted" : names.joined(separator: " ")) : "off"
        // With offloads a read may be a 64 KiB super-frame behind its header.
        let frameMax = offload ? 14 + TCPSegmentation.maxDatagram : mtu + 14 + 4
        buffer = [UInt8](repeating: 0, count: max(frameMax + VirtioNetHeader.length, 2048))
    }

    deinit { close(fd) }

    /// Reads one frame; nil when no frame is waiting. `checksumTrusted`: the
    /// kernel marked it NEEDS_CSUM (partial checksum) or DATA_VALID.
    public func readFrame() throws -> (frame: [UInt8], checksumTrusted: Bool)? {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return nil }
            throw SystemError("read TAP \(name)", errno: errno)
        }
        guard vnetHeader else { return (Array(buffer[0..<n]), false) }
        guard n >= VirtioNetHeader.length else { return ([], false) }  // counted as malformed by the stack
        let h = buffer.withUnsafeBytes { VirtioNetHeader.parse($0)! }
        let frame = Array(buffer[VirtioNetHeader.length..<n])
        if frame.count > mtu + 14 { superFramesRead += 1 }
        return (frame, h.checksumTrusted)
    }

    static let noHeader = [UInt8](repeating: 0, count: VirtioNetHeader.length)

    /// Writes one frame, or a TCP super-segment (`segmentSize` > 0) that the
    /// kernel segments, or that is cut here when the TAP lacks TSO. Returns
    /// false when the kernel queue is full (the frame is dropped).
    @discardableResult
    public func writeFrame(_ frame: [UInt8], segmentSize: Int = 0) throws -> Bool {
        if segmentSize > 0 && !tso {
            superFramesSplit += 1
            var ok = true
            for f in TCPSegmentation.split(frame, segmentSize: segmentSize) { ok = try writeOne(f, header: Self.noHeader) && ok }
            return ok
        }
        if segmentSize > 0 {
            superFramesWritten += 1
            return try writeOne(frame, header: TCPSegmentation.header(for: frame, segmentSize: segmentSize).bytes)
        }
        return try writeOne(frame, header: Self.noHeader)
    }

    func writeOne(_ frame: [UInt8], header: [UInt8]) throws -> Bool {
        let n: Int
        if vnetHeader {
            n = header.withUnsafeBytes { h in
                frame.withUnsafeBytes { f in ftap_writev2(fd, h.baseAddress, h.count, f.baseAddress, f.count) }
            }
        } else {
            let w = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            n = w < 0 ? -Int(errno) : w
        }
        if n < 0 {
            let e = Int32(-n)
            if e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS { return false }
            if e == EIO { return false }  // interface down: dropped like on a wire
            throw SystemError("write TAP \(name)", errno: e)
        }
        return true
    }
}
