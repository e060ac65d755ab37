"""The one Ethernet frame parser of the namespace tests (stdlib only).

Field names say which layer they belong to, so "source" is never ambiguous:
``eth_src``/``eth_dst`` are MAC addresses ("02:00:00:00:00:10"), ``ip_src``/
``ip_dst`` IPv4 addresses, ``sport``/``dport`` TCP or UDP ports.
"""

from __future__ import annotations

import socket
import struct

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
PROTO_TCP = 6
PROTO_UDP = 17


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_frame(fr: bytes) -> dict:
    """A dict describing an Ethernet frame. Always: ``eth_dst``, ``eth_src``,
    ``ethertype`` (None if the frame is shorter than a header) and ``type``:
    "arp", "ipv4" (other protocols), "tcp", "udp" or None. ARP adds
    ``arp_op``, ``arp_sha``, ``arp_spa``, ``arp_tha``, ``arp_tpa``. IPv4 adds
    ``ip_src``, ``ip_dst``, ``ip_proto``, ``ip_id``. TCP adds ``sport``,
    ``dport``, ``seq``, ``ack``, ``flags``, ``win``, ``tcp_options`` (raw
    bytes) and ``payload``; UDP adds ``sport``, ``dport`` and ``payload``."""
    d = {"eth_dst": mac_str(fr[0:6]), "eth_src": mac_str(fr[6:12]), "ethertype": None, "type": None}
    if len(fr) < 14:
        return d
    et = struct.unpack("!H", fr[12:14])[0]
    d["ethertype"] = et
    if et == ETH_ARP and len(fr) >= 42:
        d.update(type="arp", arp_op=struct.unpack("!H", fr[20:22])[0], arp_sha=mac_str(fr[22:28]),
                 arp_spa=socket.inet_ntoa(fr[28:32]), arp_tha=mac_str(fr[32:38]),
                 arp_tpa=socket.inet_ntoa(fr[38:42]))
    elif et == ETH_IPV4 and len(fr) >= 34:
        ip = fr[14:]
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        d.update(type="ipv4", ip_id=struct.unpack("!H", ip[4:6])[0], ip_proto=ip[9],
                 ip_src=socket.inet_ntoa(ip[12:16]), ip_dst=socket.inet_ntoa(ip[16:20]))
        l4 = ip[ihl:total] if total >= ihl else ip[ihl:]
        if d["ip_proto"] == PROTO_TCP and len(l4) >= 20:
            sp, dp, seq, ack, off, flags, win = struct.unpack("!HHIIBBH", l4[:16])
            doff = (off >> 4) * 4
            d.update(type="tcp", sport=sp, dport=dp, seq=seq, ack=ack, flags=flags, win=win,
                     tcp_options=bytes(l4[20:doff]), payload=bytes(l4[doff:]))
        elif d["ip_proto"] == PROTO_UDP and len(l4) >= 8:
            sp, dp, ln = struct.unpack("!HHH", l4[:6])
            d.update(type="udp", sport=sp, dport=dp, payload=bytes(l4[8:ln]))
    return d


def is_garp(fr: bytes, ip: str) -> bool:
    """A gratuitous ARP in request form for ``ip``: ARP op 1, sender IP == target IP == ip."""
    d = parse_frame(fr)
    return d["type"] == "arp" and d["arp_op"] == 1 and d["arp_spa"] == d["arp_tpa"] == ip


def tcp_options(opts: bytes) -> dict:
    """{'mss', 'wscale', 'sack_ok', 'ts', 'opt<kind>'} of raw TCP option bytes."""
    out, i = {}, 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(opts):
            break
        ln = opts[i + 1]
        if ln < 2:
            break
        v = opts[i + 2:i + ln]
        if k == 2 and len(v) == 2:
            out["mss"] = struct.unpack("!H", v)[0]
        elif k == 3 and len(v) == 1:
            out["wscale"] = v[0]
        elif k == 4:
            out["sack_ok"] = True
        elif k == 8 and len(v) == 8:
            out["ts"] = struct.unpack("!II", v)
        else:
            out[f"opt{k}"] = v
        i += ln
    return out
