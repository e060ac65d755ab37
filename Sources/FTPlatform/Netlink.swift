import CNetlink
#if canImport(Glibc)
import Glibc
#endif

/// Link configuration through libnl-route (rtnetlink).
public enum Netlink {
    static func check(_ r: Int32, _ what: String) throws {
        if r < 0 { throw SystemError(what, detail: String(cString: nl_geterror(r))) }
    }

    /// Sets MTU, brings `name` up and, if `bridge` is given, enslaves it to that bridge.
    public static func configure(link name: String, mtu: Int, bridge: String?) throws {
        guard let sock = nl_socket_alloc() else { throw SystemError("netlink", detail: "cannot allocate socket") }
        defer { nl_socket_free(sock) }
        try check(nl_connect(sock, NETLINK_ROUTE), "netlink connect")
        var cache: OpaquePointer? = nil
        try check(rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache), "netlink: list links")
        defer { nl_cache_free(cache) }
        guard let link = rtnl_link_get_by_name(cache, name) else {
            throw SystemError("netlink: configure \(name)", detail: "no such interface")
        }
        defer { rtnl_link_put(link) }
        guard let change = rtnl_link_alloc() else { throw SystemError("netlink", detail: "cannot allocate link") }
        defer { rtnl_link_put(change) }
        rtnl_link_set_mtu(change, UInt32(mtu))
        rtnl_link_set_flags(change, UInt32(IFF_UP))
        try check(rtnl_link_change(sock, link, change, 0), "netlink: set \(name) mtu \(mtu) up")
        if let bridge {
            guard let br = rtnl_link_get_by_name(cache, bridge) else {
                throw SystemError("netlink: enslave \(name) to \(bridge)", detail: "no bridge named '\(bridge)' in this network namespace")
            }
            defer { rtnl_link_put(br) }
            guard rtnl_link_is_bridge(br) != 0 else {
                throw SystemError("netlink: enslave \(name) to \(bridge)", detail: "'\(bridge)' is not a bridge")
            }
            try check(rtnl_link_enslave_ifindex(sock, rtnl_link_get_ifindex(br), rtnl_link_get_ifindex(link)),
                      "netlink: enslave \(name) to \(bridge)")
        }
    }

    /// Stops the kernel from sending IPv6 (MLD, RS, DAD) on an interface it
    /// only bridges for us. Best effort: IPv6 may be absent.
    public static func disableIPv6(on name: String) {
        let path = "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6"
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { return }
        _ = write(fd, "1\n", 2)
        close(fd)
    }
}
