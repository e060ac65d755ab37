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
    /// Frames the kernel queues for the daemon on its TAP (txqueuelen).
    public static let tapQueueLength = 4096

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
        // The TAP's queue toward this process (tun's default is 500 frames):
        // a deeper one rides out the moments the daemon is not scheduled.
        // Measured under a full-rate spoofed SYN flood (~200k frames/s, two
        // runs each): 56,005 and 115,927 frames dropped at the queue in 5 s
        // with 500, 25,048 and 56,968 with 4,096 (issue 13).
        rtnl_link_set_txqlen(change, UInt32(Netlink.tapQueueLength))
        rtnl_link_set_flags(change, UInt32(IFF_UP))
        try check(rtnl_link_change(sock, link, change, 0), "netlink: set \(name) mtu \(mtu) txqueuelen \(Netlink.tapQueueLength) up")
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

    /// Pins `mac` to the bridge port `name` with a static forwarding entry
    /// (`bridge fdb replace MAC dev NAME master static sticky`; a static entry without `sticky` still moves when the MAC is learned on another port). The appliance's
    /// MAC lives behind its TAP: without the pin, a backup's host bridge
    /// learns the MAC on the uplink from the primary's frames and drops
    /// every client frame the switch floods or mirrors to it (a bridge does
    /// not send a frame back out of the port it came in on), so the standby
    /// buffer would never see them. The entry goes away with the TAP.
    public static func pinBridgeFDB(mac: [UInt8], to name: String) throws {
        guard let sock = nl_socket_alloc() else { throw SystemError("netlink", detail: "cannot allocate socket") }
        defer { nl_socket_free(sock) }
        try check(nl_connect(sock, NETLINK_ROUTE), "netlink connect")
        let ifindex = if_nametoindex(name)
        guard ifindex > 0 else { throw SystemError("netlink: pin fdb on \(name)", detail: "no such interface") }
        guard let neigh = rtnl_neigh_alloc() else { throw SystemError("netlink", detail: "cannot allocate neighbour") }
        defer { rtnl_neigh_put(neigh) }
        var bytes = mac
        guard let addr = nl_addr_build(AF_LLC, &bytes, 6) else { throw SystemError("netlink", detail: "cannot build address") }
        defer { nl_addr_put(addr) }
        rtnl_neigh_set_ifindex(neigh, Int32(ifindex))
        rtnl_neigh_set_family(neigh, Int32(AF_BRIDGE))
        rtnl_neigh_set_lladdr(neigh, addr)
        rtnl_neigh_set_state(neigh, Int32(NUD_NOARP))
        rtnl_neigh_set_flags(neigh, UInt32(NTF_MASTER | NTF_STICKY))  // sticky: learning must not move it
        try check(rtnl_neigh_add(sock, neigh, Int32(NLM_F_CREATE | NLM_F_REPLACE)), "netlink: pin \(name)'s MAC in its bridge")
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
