#!/usr/bin/env python3
"""Injects malformed and hostile frames toward the appliance.

Run in the switch namespace; frames are written with an AF_PACKET raw socket
bound to ``sw-a``, so they travel sw-a -> upA -> brA -> the appliance's TAP
(they do not enter br0, so the client never sees them).

    inject_garbage.py --iface sw-a [--count 2000] [--seed 1]
                      [--conn CLIENT_IP:CLIENT_PORT:SERVER_PORT --client-mac MAC]

No frame here may legitimately change the appliance's counter: every
datagram/segment that carries an INCR is corrupt, a fragment of a datagram
that is never completed, or a segment outside any connection's handshake.
Source MACs are locally administered unicast addresses that are never the
appliance's, so the node bridge's forwarding table is not poisoned.
Prints one line per category: "category sent/attempted".
"""

import argparse
import random
import struct
import sys
import time

import ftaplib as L

AMAC = L.APPLIANCE_MAC
AIP = L.APPLIANCE_IP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="sw-a")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--conn", help="CLIENT_IP:CLIENT_PORT:SERVER_PORT of a live connection to harass blindly")
    ap.add_argument("--client-mac", help="source MAC for frames spoofing the live connection")
    ap.add_argument("--pace", type=int, default=100, help="frames per burst (1 ms pause between bursts)")
    ap.add_argument("--categories", default="", help="comma-separated subset of categories (default: all)")
    args = ap.parse_args()

    rnd = random.Random(args.seed)
    raw = L.RawSocket(args.iface)

    def rmac():
        b = bytearray(rnd.randbytes(6))
        b[0] = (b[0] & 0xFC) | 0x02  # unicast, locally administered
        if bytes(b) == L.mac_bytes(AMAC):
            b[5] ^= 1
        return bytes(b)

    def rip():
        return f"10.0.0.{rnd.randrange(150, 250)}"

    def rport():
        return rnd.randrange(1024, 65535)

    def incr_payload(tag):
        return f"garbage-{tag} {rnd.randrange(1, 10**9)} INCR".encode()

    def eth_ip(payload, src_mac=None):
        return L.ether(AMAC, src_mac or rmac(), L.ETH_IPV4, payload)

    # Each generator returns one frame.
    def random_bytes():
        n = rnd.randrange(14, 1515)
        body = bytearray(rnd.randbytes(n))
        r = rnd.random()
        if r < 0.7:
            body[0:6] = L.mac_bytes(AMAC)
        elif r < 0.8:
            body[0:6] = b"\xff" * 6
        body[6:12] = rmac()
        if rnd.random() < 0.5:
            body[12:14] = b"\x08\x00"
        return bytes(body)

    def random_ipv4():
        """Random bytes behind a plausible IPv4 header to our address: half
        with a valid header checksum, and of those half with a valid TCP/UDP/
        ICMP checksum too, so the random bytes reach the transport parsers."""
        src = rip()
        proto = rnd.choice([L.PROTO_TCP, L.PROTO_UDP, L.PROTO_ICMP, rnd.randrange(256)])
        n = rnd.randrange(0, 1480)
        body = bytearray(rnd.randbytes(n))
        if proto in (L.PROTO_TCP, L.PROTO_UDP) and n >= 4 and rnd.random() < 0.5:
            port = rnd.choice([L.PORT_COUNTER, L.PORT_ECHO, L.PORT_DISCARD] if proto == L.PROTO_TCP
                              else [L.PORT_UDP_ECHO, L.PORT_UDP_COUNTER])
            body[2:4] = struct.pack("!H", port)
        if proto == L.PROTO_UDP and n >= 8 and rnd.random() < 0.5:
            body[4:6] = struct.pack("!H", n)
        if rnd.random() < 0.25:
            if proto == L.PROTO_TCP and n >= 20:
                body[16:18] = b"\0\0"
                body[16:18] = struct.pack("!H", L.inet_checksum(L._pseudo(src, AIP, proto, n) + bytes(body)))
            elif proto == L.PROTO_UDP and n >= 8:
                body[6:8] = b"\0\0"
                body[6:8] = struct.pack("!H", L.inet_checksum(L._pseudo(src, AIP, proto, n) + bytes(body)) or 0xFFFF)
            elif proto == L.PROTO_ICMP and n >= 4:
                body[2:4] = b"\0\0"
                body[2:4] = struct.pack("!H", L.inet_checksum(bytes(body)))
        ip = bytearray(L.ipv4(src, AIP, proto, bytes(body), ident=rnd.randrange(65536)))
        if rnd.random() < 0.5:  # random TOS/ID/flags/TTL, checksum recomputed
            ip[1] = rnd.randrange(256)
            if rnd.random() < 0.1:  # sometimes random flags and fragment offset
                ip[6], ip[7] = rnd.randrange(256), rnd.randrange(256)
            else:
                ip[6], ip[7] = rnd.choice([0, 0x40, 0x80]), 0  # none, DF, the reserved "evil" bit
            ip[8] = rnd.randrange(256)
            ip[10:12] = b"\0\0"
            ip[10:12] = struct.pack("!H", L.inet_checksum(bytes(ip[:20])))
        if rnd.random() < 0.5:
            ip[10:12] = struct.pack("!H", rnd.randrange(65536))
        return eth_ip(bytes(ip))

    def truncated():
        src = rip()
        kind = rnd.randrange(12)
        good_udp = L.ipv4(src, AIP, L.PROTO_UDP, L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("trunc")))
        good_tcp = L.ipv4(src, AIP, L.PROTO_TCP, L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32)))
        if kind == 0:   # Ethernet header only / partial IPv4 header
            return eth_ip(good_udp[:rnd.randrange(0, 20)])
        if kind == 1:   # IPv4 header cut inside the UDP header
            return eth_ip(good_udp[:20 + rnd.randrange(0, 8)])
        if kind == 2:   # IPv4 header cut inside the TCP header
            return eth_ip(good_tcp[:20 + rnd.randrange(0, 20)])
        if kind == 3:   # total length larger than the frame
            pl = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("tl"))
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, total_length=20 + len(pl) + rnd.randrange(1, 500)))
        if kind == 4:   # total length smaller than the header
            pl = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("tl2"))
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, total_length=rnd.randrange(0, 20)))
        if kind == 5:   # IHL < 5
            pl = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("ihl"))
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, ihl=rnd.randrange(0, 5)))
        if kind == 6:   # IHL past the end of the packet
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, b"\0" * 4, ihl=15))
        if kind == 7:   # version 6 inside an IPv4 ethertype
            pl = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("ver"))
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, version=rnd.choice([0, 5, 6, 15])))
        if kind == 8:   # TCP data offset < 5 or beyond the segment
            off = rnd.choice([0, 1, 4, 15])
            seg = L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32), flags=L.TCP_ACK | L.TCP_PSH,
                        payload=b"INCR\n", data_offset=off)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_TCP, seg))
        if kind == 9:   # UDP length larger than the IP payload / smaller than 8
            p = incr_payload("ulen")
            ln = rnd.choice([rnd.randrange(0, 8), 8 + len(p) + rnd.randrange(1, 100)])
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, p, length=ln)))
        if kind == 10:  # ICMP shorter than 8 bytes
            return eth_ip(L.ipv4(src, AIP, L.PROTO_ICMP, b"\x08\x00" + rnd.randbytes(rnd.randrange(0, 6))))
        # truncated ARP
        a = L.arp(1, "02:66:00:00:00:01", src, "00:00:00:00:00:00", AIP)
        return L.ether("ff:ff:ff:ff:ff:ff", rmac(), L.ETH_ARP, a[:rnd.randrange(0, 28)])

    def bad_ip_checksum():
        src = rip() if rnd.random() < 0.8 else L.CLIENT_IP
        pl = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("ipsum"))
        good = L.ipv4(src, AIP, L.PROTO_UDP, pl)
        c = struct.unpack("!H", good[10:12])[0]
        return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, checksum=(c ^ (1 << rnd.randrange(16)))))

    def bad_l4_checksum():
        src = rip() if rnd.random() < 0.8 else L.CLIENT_IP
        r = rnd.random()
        if r < 0.35:
            seg = L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32), flags=L.TCP_SYN,
                        bad_checksum=True)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_TCP, seg))
        if r < 0.7:
            seg = L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32), ack=rnd.getrandbits(32),
                        flags=L.TCP_ACK | L.TCP_PSH, payload=b"INCR\n", bad_checksum=True)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_TCP, seg))
        if r < 0.9:
            seg = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("usum"), bad_checksum=True)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, seg))
        return eth_ip(L.ipv4(src, AIP, L.PROTO_ICMP, L.icmp_echo(rnd.randrange(65536), 1, bad_checksum=True)))

    def fragment():
        src = rip()
        ident = rnd.randrange(65536)
        kind = rnd.randrange(6)
        pl = L.udp(src, AIP, rport(), L.PORT_UDP_COUNTER, incr_payload("frag"))
        if kind == 0:   # a complete UDP INCR, but flagged "more fragments"
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, ident=ident, flags=1))
        if kind == 1:   # a last fragment at a non-zero offset carrying a whole UDP INCR
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, ident=ident, frag_offset=rnd.randrange(1, 200)))
        if kind == 2:   # a middle fragment
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, rnd.randbytes(rnd.randrange(8, 600)), ident=ident, flags=1,
                                 frag_offset=rnd.randrange(1, 8000)))
        if kind == 3:   # a first fragment of a TCP segment to the counter
            seg = L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32), flags=L.TCP_SYN)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_TCP, seg[:8], ident=ident, flags=1))
        if kind == 4:   # a first fragment of a ping
            m = L.icmp_echo(rnd.randrange(65536), 1, b"x" * 64)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_ICMP, m[:32], ident=ident, flags=1))
        # DF and MF together, offset 0, whole datagram
        return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, ident=ident, flags=0b011))

    def odd_valid():
        """Well-formed, checksummed frames with odd contents. None executes INCR."""
        src = rip()
        k = rnd.randrange(10)
        if k == 0:   # weird TCP flag combinations to the counter port (no payload)
            fl = rnd.choice([0, L.TCP_SYN | L.TCP_FIN, L.TCP_SYN | L.TCP_RST, L.TCP_FIN | L.TCP_PSH | L.TCP_URG,
                             0xFF, L.TCP_FIN, L.TCP_RST])
            seg = L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32), ack=rnd.getrandbits(32), flags=fl)
            return eth_ip(L.ipv4(src, AIP, L.PROTO_TCP, seg))
        if k == 1:   # data without a connection
            seg = L.tcp(src, AIP, rport(), L.PORT_COUNTER, seq=rnd.getrandbits(32), ack=rnd.getrandbits(32),
                        flags=L.TCP_ACK | L.TCP_PSH, payload=b"INCR\nINCR\n")
            return eth_ip(L.ipv4(src, AIP, L.PROTO_TCP, seg))
        if k == 2:   # IP options (to udp-echo: options policy must not matter to the counter check)
            opt = rnd.choice([b"\x01\x01\x01\x00", b"\x07\x07\x04" + b"\0" * 4 + b"\x00", b"\x94\x04\x00\x00"])
            pl = L.udp(src, AIP, rport(), L.PORT_UDP_ECHO, b"options")
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, pl, options=opt))
        if k == 3:   # UDP to closed ports
            return eth_ip(L.ipv4(src, AIP, L.PROTO_UDP, L.udp(src, AIP, rport(), rnd.randrange(20000, 30000), b"x")))
        if k == 4:   # unknown IP protocols
            return eth_ip(L.ipv4(src, AIP, rnd.choice([0, 2, 47, 50, 89, 132, 255]), rnd.randbytes(40)))
        if k == 5:   # ICMP types other than echo request
            t = rnd.choice([0, 3, 5, 11, 13, 17])
            m = struct.pack("!BBHI", t, 0, 0, 0) + rnd.randbytes(28)
            c = L.inet_checksum(m)
            m = m[:2] + struct.pack("!H", c) + m[4:]
            return eth_ip(L.ipv4(src, AIP, L.PROTO_ICMP, m))
        if k == 6:   # IPv4 for another address, to our MAC
            other = f"10.0.0.{rnd.randrange(101, 140)}"
            pl = L.udp(src, other, rport(), L.PORT_UDP_COUNTER, incr_payload("other"))
            return eth_ip(L.ipv4(src, other, L.PROTO_UDP, pl))
        if k == 7:   # ARP: replies, requests for other IPs, non-Ethernet hardware
            op = rnd.choice([1, 2, 3])
            tip = rnd.choice([AIP, "10.0.0.77"])
            a = bytearray(L.arp(op, "02:66:00:00:00:02", src, "00:00:00:00:00:00", tip))
            if rnd.random() < 0.3:
                a[0:2] = b"\x00\x06"
            if op == 1 and tip == AIP and a[0:2] == b"\x00\x01":
                a[7] = 2  # never a well-formed request for us from a bogus MAC: make it a reply
            return L.ether(rnd.choice([AMAC, "ff:ff:ff:ff:ff:ff"]), rmac(), L.ETH_ARP, bytes(a))
        if k == 8:   # broadcast / multicast destination IPs, land attack
            if rnd.random() < 0.5:
                seg = L.tcp(AIP, AIP, L.PORT_COUNTER, L.PORT_COUNTER, seq=rnd.getrandbits(32), flags=L.TCP_SYN)
                return eth_ip(L.ipv4(AIP, AIP, L.PROTO_TCP, seg))
            dst = rnd.choice(["10.0.0.255", "255.255.255.255", "224.0.0.1"])
            # (to udp-echo: whether broadcasts are served is a policy, not a counter matter)
            pl = L.udp(src, dst, rport(), L.PORT_UDP_ECHO, b"broadcast")
            return L.ether(rnd.choice([AMAC, "ff:ff:ff:ff:ff:ff"]), rmac(), L.ETH_IPV4, L.ipv4(src, dst, L.PROTO_UDP, pl))
        # other ethertypes to our MAC: IPv6, VLAN, LLDP-like
        et = rnd.choice([L.ETH_IPV6, 0x8100, 0x88CC, 0x9000, 0x0842])
        return L.ether(AMAC, rmac(), et, rnd.randbytes(rnd.randrange(0, 200)))

    categories = [
        ("random_bytes", random_bytes, 0.10),
        ("random_ipv4", random_ipv4, 0.15),
        ("truncated", truncated, 0.15),
        ("bad_ip_checksum", bad_ip_checksum, 0.15),
        ("bad_l4_checksum", bad_l4_checksum, 0.15),
        ("ip_fragments", fragment, 0.15),
        ("odd_but_valid", odd_valid, 0.15),
    ]

    if args.categories:
        wanted = set(args.categories.split(","))
        categories = [c for c in categories if c[0] in wanted]
        total_share = sum(c[2] for c in categories) or 1
        categories = [(n, g, sh / total_share) for n, g, sh in categories]

    blind = []
    if args.conn:
        cip, cport, sport = args.conn.split(":")
        cport, sport = int(cport), int(sport)
        cmac = args.client_mac

        def blind_segment():
            """Spoofed segments on the live connection with random sequence numbers."""
            fl = rnd.choice([L.TCP_RST, L.TCP_RST | L.TCP_ACK, L.TCP_SYN, L.TCP_ACK, L.TCP_ACK | L.TCP_PSH, L.TCP_FIN | L.TCP_ACK])
            payload = b"INCR\n" if fl & L.TCP_PSH else b""
            seg = L.tcp(cip, AIP, cport, sport, seq=rnd.getrandbits(32), ack=rnd.getrandbits(32), flags=fl,
                        payload=payload)
            return L.ether(AMAC, cmac, L.ETH_IPV4, L.ipv4(cip, AIP, L.PROTO_TCP, seg))
        blind.append(("blind_on_live_conn", blind_segment, 0.0))

    plan = []
    n_blind = min(200, args.count // 10) if blind else 0
    remaining = args.count - n_blind
    for name, gen, share in categories:
        plan += [(name, gen)] * int(remaining * share)
    while len(plan) < remaining:
        plan.append(categories[0][:2])
    for name, gen, _ in blind:
        plan += [(name, gen)] * n_blind
    rnd.shuffle(plan)

    stats = {}
    for i, (name, gen) in enumerate(plan):
        frame = gen()
        ok = raw.send(frame)
        s = stats.setdefault(name, [0, 0])
        s[1] += 1
        s[0] += ok
        if args.pace and (i + 1) % args.pace == 0:
            time.sleep(0.001)
    raw.close()
    total_sent = 0
    for name, (sent, tried) in sorted(stats.items()):
        print(f"{name} {sent}/{tried}")
        total_sent += sent
    print(f"total {total_sent}/{len(plan)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
