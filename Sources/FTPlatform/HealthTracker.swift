import CNetlink
import FTStack
#if canImport(Glibc)
import Glibc
#endif

/// What makes this node healthy: its links and an optional check script,
/// the way keepalived's track_interface and track_script do. Node-local:
/// the result reaches the replication core only as `setHealth`, which
/// steers decisions the log records (who claims, who hands over).
public struct HealthOptions {
    /// Track the bridge's other ports (its uplinks), found by netlink.
    public var bridge: String? = nil
    /// Our own TAP, never counted as an uplink.
    public var tap: String = ""
    /// Interfaces named with --track-interface.
    public var interfaces: [String] = []
    /// --track-script: run with /bin/sh -c every `interval`; exit 0 is a pass.
    public var script: String? = nil
    public var interval: Nanos = 1_000 * nsPerMs
    /// Consecutive failures that make the script's verdict unhealthy, and
    /// consecutive passes that make it healthy again.
    public var fall = 2
    public var rise = 2
    public init() {}
    public var tracksAnything: Bool { bridge != nil || !interfaces.isEmpty || script != nil }
}

/// Follows link state through rtnetlink notifications (RTNLGRP_LINK: no
/// polling) and runs the check script without ever blocking the loop.
final class HealthTracker {
    let options: HealthOptions
    private var events: OpaquePointer?   // nl_sock subscribed to link notifications
    private var query: OpaquePointer?    // nl_sock for link dumps
    private var cache: OpaquePointer?    // rtnl link cache
    private(set) var linksOK = true
    private(set) var linkReason = ""
    /// Moves whenever the verdict or its reason may have changed, so the loop
    /// compares one integer per iteration instead of building the reason.
    private(set) var generation = 0
    // The script.
    private var child = TimedChild()
    private var nextRun: Nanos = 0
    private var fails = 0, passes = 0
    private(set) var scriptOK = true
    private var scriptReason = ""

    /// Readable when a link changed.
    var fd: Int32 { events.map { nl_socket_get_fd($0) } ?? -1 }

    init(options: HealthOptions) throws {
        self.options = options
        guard options.bridge != nil || !options.interfaces.isEmpty else { return }
        guard let ev = nl_socket_alloc(), let q = nl_socket_alloc() else {
            throw SystemError("health tracking", detail: "cannot allocate netlink sockets")
        }
        events = ev; query = q
        try Netlink.check(nl_connect(ev, NETLINK_ROUTE), "netlink connect (link notifications)")
        try Netlink.check(nl_socket_add_membership(ev, Int32(RTNLGRP_LINK.rawValue)), "netlink: subscribe to link changes")
        try Netlink.check(nl_socket_set_nonblocking(ev), "netlink: non-blocking")
        try Netlink.check(nl_connect(q, NETLINK_ROUTE), "netlink connect")
        try Netlink.check(rtnl_link_alloc_cache(q, AF_UNSPEC, &cache), "netlink: list links")
        evaluateLinks()
    }

    deinit {
        child.kill()
        if let c = cache { nl_cache_free(c) }
        if let s = events { nl_socket_free(s) }
        if let s = query { nl_socket_free(s) }
    }

    var healthy: Bool { linksOK && scriptOK }
    var reason: String {
        let parts = [linkReason, scriptReason].filter { !$0.isEmpty }
        return parts.isEmpty ? "all tracked links up" : parts.joined(separator: "; ")
    }

    /// Link notifications arrived: drain them and look at the links again.
    func linksChanged() {
        guard let ev = events else { return }
        var buf = [UInt8](repeating: 0, count: 16384)
        while recv(nl_socket_get_fd(ev), &buf, buf.count, Int32(MSG_DONTWAIT)) > 0 {}
        if let q = query, let c = cache { _ = nl_cache_refill(q, c) }
        evaluateLinks()
    }

    /// The interfaces tracked now: the named ones, plus every port of the
    /// bridge except our TAP.
    func trackedLinks() -> [String] {
        guard let c = cache else { return [] }
        var names = options.interfaces
        if let b = options.bridge, let br = rtnl_link_get_by_name(c, b) {
            let bi = rtnl_link_get_ifindex(br)
            rtnl_link_put(br)
            var ports: [String] = []
            var obj = nl_cache_get_first(c)
            while let o = obj {
                let l = o
                if rtnl_link_get_master(l) == bi, let n = rtnl_link_get_name(l) {
                    let name = String(cString: n)
                    if name != options.tap { ports.append(name) }
                }
                obj = nl_cache_get_next(o)
            }
            names += ports.sorted()
        }
        return names
    }

    func evaluateLinks() {
        guard let c = cache else { return }
        var down: [String] = []
        for name in trackedLinks() {
            guard let l = rtnl_link_get_by_name(c, name) else { down.append("\(name) missing"); continue }
            let oper = rtnl_link_get_operstate(l)
            let up = rtnl_link_get_flags(l) & UInt32(IFF_UP) != 0
            rtnl_link_put(l)
            // IF_OPER_UP = 6; UNKNOWN (0) is what drivers without operstate report: trust IFF_UP then.
            if !(up && (oper == 6 || oper == 0)) { down.append("\(name) down") }
        }
        if let b = options.bridge, trackedLinks().count == options.interfaces.count {
            // A bridge with no uplink at all cannot reach any client.
            down.append("bridge \(b) has no port besides \(options.tap)")
        }
        linksOK = down.isEmpty
        linkReason = down.joined(separator: ", ")
        generation += 1
    }

    /// Runs the script when due and collects its verdict; never blocks.
    func tickScript(now: Nanos) {
        guard let cmd = options.script else { return }
        switch child.poll(now: now, timeout: options.interval) {
        case .running: break
        case .timedOut: scriptResult(false, "timed out after \(options.interval / nsPerMs) ms")
        case let outcome: scriptResult(outcome.succeeded, outcome.description)
        }
        if !child.isRunning && now >= nextRun {
            nextRun = now + options.interval
            let rc = child.spawn("/bin/sh", ["-c", cmd], now: now)
            if rc != 0 { scriptResult(false, "cannot start: \(String(cString: strerror(rc)))") }
        }
    }

    private func scriptResult(_ pass: Bool, _ detail: String) {
        generation += 1
        if pass { passes += 1; fails = 0 } else { fails += 1; passes = 0 }
        if scriptOK && fails >= options.fall {
            scriptOK = false
            scriptReason = "track script failed \(fails) times (\(detail))"
        } else if !scriptOK && passes >= options.rise {
            scriptOK = true
            scriptReason = ""
        }
    }

    /// When the script next needs attention.
    func nextWake(now: Nanos) -> Nanos? {
        guard options.script != nil else { return nil }
        return child.isRunning ? min(child.started + options.interval, now + 20 * nsPerMs) : nextRun
    }
}
