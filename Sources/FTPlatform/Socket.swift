#if canImport(Glibc)
import Glibc
#endif
import FTWire

/// `IPv4:PORT` for the log channel.
public struct SocketAddress: Equatable, Sendable, CustomStringConvertible {
    public var ip: IPv4Address
    public var port: UInt16
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let ip = IPv4Address(String(text[..<colon])),
              let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        self.ip = ip; self.port = port
    }
    public var description: String { "\(ip):\(port)" }
    /// 127.0.0.0/8: reachable from this host (this network namespace) only.
    public var isLoopback: Bool { ip.raw >> 24 == 127 }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = ip.raw.bigEndian
        return withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

enum Sockets {
    static func setNoDelayNonBlocking(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let fl = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, fl | O_NONBLOCK)
    }

    static func listen(on a: SocketAddress) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let r = a.withSockaddr { bind(fd, $0, $1) }
        guard r == 0 else { let e = errno; close(fd); throw SystemError("bind log channel to \(a)", errno: e) }
        guard Glibc.listen(fd, 4) == 0 else { let e = errno; close(fd); throw SystemError("listen on \(a)", errno: e) }
        return fd
    }

    /// Starts a non-blocking connect. Returns the fd (connection completes when writable).
    static func connect(to a: SocketAddress) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let r = a.withSockaddr { Glibc.connect(fd, $0, $1) }
        if r != 0 && errno != EINPROGRESS { let e = errno; close(fd); throw SystemError("connect to \(a)", errno: e) }
        return fd
    }

    static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }
}
