#if canImport(Glibc)
import Glibc
#endif
import CShims
import FTReplication
import FTStack

/// The systemd notification protocol (sd_notify(3)), implemented directly:
/// one datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET
/// (a path, or an abstract name written with a leading '@'). Without
/// $NOTIFY_SOCKET every call does nothing. `WATCHDOG=1` is due every half of
/// $WATCHDOG_USEC (when $WATCHDOG_PID, if set, is this process).
public final class SystemdNotifier {
    var fd: Int32 = -1
    var address = sockaddr_un()
    var addressLength: socklen_t = 0
    /// Interval of WATCHDOG=1 (half of $WATCHDOG_USEC), nil without a watchdog.
    public let watchdogInterval: Nanos?
    var nextWatchdog: Nanos = 0
    public private(set) var ready = false
    public private(set) var sent: UInt64 = 0

    public init(environment env: (String) -> String? = { getenv($0).map { String(cString: $0) } }) {
        var wd: Nanos? = nil
        if let us = env("WATCHDOG_USEC").flatMap(UInt64.init), us > 0 {
            let pidOK = env("WATCHDOG_PID").flatMap(Int32.init).map { $0 == getpid() } ?? true
            if pidOK { wd = us * 1000 / 2 }
        }
        watchdogInterval = wd
        guard let path = env("NOTIFY_SOCKET"), path.utf8.count >= 2,
              path.hasPrefix("/") || path.hasPrefix("@") else { return }
        var bytes = Array(path.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        let cap = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < cap else { return }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    public var enabled: Bool { fd >= 0 }

    /// Sends one notification (several `KEY=value` lines); false if it failed.
    @discardableResult
    public func send(_ lines: [String]) -> Bool {
        guard fd >= 0 else { return false }
        let msg = Array(lines.joined(separator: "\n").utf8)
        let n = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                msg.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, addressLength) }
            }
        }
        if n == msg.count { sent += 1 }
        return n == msg.count
    }

    /// READY=1 the first time the node serves or follows; STATUS= each time.
    public func roleChanged(_ c: RoleChange, node: String) {
        let status = "STATUS=\(node): \(c.mode) epoch \(c.epoch) index \(c.index) (\(c.event))"
        switch c.event {
        case .primary, .backup, .alone, .protected:
            if !ready { ready = true; send(["READY=1", status]) } else { send([status]) }
        case .stopping:
            send(["STOPPING=1", status])
        default:
            send([status])
        }
    }

    /// WATCHDOG=1 when due; call once per loop iteration.
    public func tick(now: Nanos) {
        guard let iv = watchdogInterval, now >= nextWatchdog else { return }
        nextWatchdog = now + iv
        send(["WATCHDOG=1"])
    }

    /// When the next WATCHDOG=1 is due (the loop must wake by then).
    public func nextWake() -> Nanos? { watchdogInterval == nil || fd < 0 ? nil : nextWatchdog }

    deinit { if fd >= 0 { close(fd) } }
}
