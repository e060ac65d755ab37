import CShims
#if canImport(Glibc)
import Glibc
#endif

/// A TAP device: one read is one Ethernet frame, one write is one frame.
public final class TapDevice {
    public let name: String
    public let fd: Int32
    var buffer: [UInt8]

    /// Creates (or attaches to) TAP `name`. Non-blocking.
    public init(name: String, mtu: Int) throws {
        guard !name.isEmpty, name.utf8.count < 16 else {
            throw SystemError("open TAP '\(name)'", detail: "interface names are 1 to 15 bytes")
        }
        var actual = [CChar](repeating: 0, count: 16)
        let r = ftap_tap_open(name, &actual, actual.count)
        if r < 0 {
            let hint = -r == EPERM ? " (ftap needs root or CAP_NET_ADMIN)" : ""
            throw SystemError("open TAP '\(name)' via /dev/net/tun", detail: String(cString: strerror(-r)) + hint)
        }
        fd = r
        self.name = String(decoding: actual.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        buffer = [UInt8](repeating: 0, count: max(mtu + 14 + 4, 2048))
    }

    deinit { close(fd) }

    /// Reads one frame; nil when no frame is waiting.
    public func readFrame() throws -> [UInt8]? {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return nil }
            throw SystemError("read TAP \(name)", errno: errno)
        }
        return Array(buffer[0..<n])
    }

    /// Writes one frame. Returns false when the kernel queue is full (the frame is dropped).
    @discardableResult
    public func writeFrame(_ frame: [UInt8]) throws -> Bool {
        let n = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS { return false }
            if errno == EIO { return false }  // interface down: dropped like on a wire
            throw SystemError("write TAP \(name)", errno: errno)
        }
        return true
    }
}
