#!/usr/bin/env python3
"""Integration tests of one ftap appliance (role solo), run from the client
namespace of scripts/netns.sh:

    ip netns exec ${P}-c python3 tests/integration/solo_tests.py --prefix P [--daemon-pid PID]

The appliance must be running in ${P}-a as 10.0.0.100 / 02:00:00:00:00:10 with
counter:7000 echo:7 discard:9 udp-echo:7001 udp-counter:7002.
Prints "PASS name (secs)" / "FAIL name (secs)" per test and a final
"N passed, M failed". Tests run one after another: the counter is global, so
the counter checks rely on nothing else using it meanwhile.
"""

import os
import random
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
from ftaplib import check, check_eq, test  # noqa: E402

AIP = L.APPLIANCE_IP
BULK = int(os.environ.get("FTAP_BULK_MB", "20")) * L.MB
LOSSY = dict(loss=5, delay_ms=1, reorder=25, corr=50)  # tc netem loss 5% delay 1ms reorder 25% 50%


# --- basics ---------------------------------------------------------------

@test("ping_and_arp", timeout=30)
def t_ping(ctx):
    tx, rx, out = L.ping(AIP, count=3)
    check(tx == 3 and rx == 3, f"ping 3 packets: transmitted {tx}, received {rx}\n{out}")
    mac = L.neighbour_mac(AIP)
    check_eq(mac, L.APPLIANCE_MAC, f"client neighbour entry for {AIP}")
    # Bigger pings too (payload echoed exactly; ping checks it).
    tx, rx, out = L.ping(AIP, count=3, size=1400)
    check(rx == 3, f"ping -s 1400: transmitted {tx}, received {rx}\n{out}")


@test("counter_1000_sequential_incr", timeout=90)
def t_seq(ctx):
    with L.LineClient(timeout=5) as c:
        base = c.get()
        got = []
        for i in range(1000):
            got.append(c.incr())
        want = list(range(base + 1, base + 1001))
        if got != want:
            bad = next(i for i in range(1000) if got[i] != want[i])
            raise L.TestFailure(f"INCR #{bad + 1}: got {got[bad]}, want {want[bad]} (base {base}); "
                                f"first replies {got[:5]}")
        check_eq(c.get(), base + 1000, "GET after 1000 INCR")


@test("counter_pipelined_1000_incr", timeout=60)
def t_pipelined(ctx):
    """1000 INCR in one write: replies in order, none lost (flow control)."""
    with L.LineClient(timeout=10) as c:
        base = c.get()
        c.send(b"INCR\n" * 1000)
        got = [int(c.read_line()) for _ in range(1000)]
        check_eq(got, list(range(base + 1, base + 1001)), "pipelined INCR replies")


@test("counter_get_unknown_too_long", timeout=30)
def t_semantics(ctx):
    with L.LineClient(timeout=5) as c:
        v = c.get()
        check_eq(c.get(), v, "GET twice")
        check_eq(c.request("get"), "ERR unknown command", "lower-case 'get'")
        check_eq(c.request("INCR 5"), "ERR unknown command", "'INCR 5'")
        check_eq(c.request(""), "ERR unknown command", "empty line")
        check_eq(c.request("HELLO WORLD"), "ERR unknown command", "unknown command")
        check_eq(c.get(), v, "GET after unknown commands (connection stays open, no increment)")
        check_eq(c.request("GET\r"), str(v), "GET with CRLF")
        check_eq(c.request("A" * 1024), "ERR unknown command", "a 1024-byte line (the limit) is a command")
        check_eq(c.incr(), v + 1, "INCR after the 1024-byte line")
        # A command split across writes.
        c.send(b"IN")
        time.sleep(0.05)
        c.send(b"CR\n")
        check_eq(c.read_line(), str(v + 2), "INCR split across two segments")
        # Two commands in one write.
        c.send(b"GET\nINCR\n")
        check_eq((c.read_line(), c.read_line()), (str(v + 2), str(v + 3)), "GET+INCR in one segment")
    with L.LineClient(timeout=5) as c:
        c.send(b"B" * 1025)  # no newline: over the limit already
        check_eq(c.read_line(), "ERR line too long", "reply to a 1025-byte line")
        how = c.wait_eof(5)
        check_eq(how, "fin", "close after 'line too long'")
        check_eq(c.buf, b"", "nothing after 'ERR line too long'")
    with L.LineClient(timeout=5) as c:
        c.send(b"C" * 5000 + b"\n")
        check_eq(c.read_line(), "ERR line too long", "reply to a 5000-byte line")
        c.wait_eof(5)
    check_eq(L.counter_get(), v + 3, "counter after the semantics checks")


@test("counter_20_concurrent_connections", timeout=90)
def t_concurrent(ctx):
    n_conn, per = 20, 50
    base = L.counter_get()
    clients = [L.LineClient(timeout=10) for _ in range(n_conn)]
    results = [[] for _ in range(n_conn)]
    errors = []
    barrier = threading.Barrier(n_conn)

    def worker(i):
        try:
            barrier.wait(10)
            for _ in range(per):
                results[i].append(clients[i].incr())
        except Exception as e:  # noqa: BLE001
            errors.append(f"conn {i}: {e}")

    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_conn)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    for c in clients:
        c.close()
    check(not errors, "; ".join(errors[:5]))
    check(all(not t.is_alive() for t in ths), "workers did not finish in 60s")
    allv = [v for r in results for v in r]
    check_eq(len(allv), n_conn * per, "number of replies")
    check_eq(len(set(allv)), len(allv), "distinct values")
    for i, r in enumerate(results):
        check(all(a < b for a, b in zip(r, r[1:])), f"conn {i} values not strictly increasing: {r[:10]}...")
    check_eq(sorted(allv), list(range(base + 1, base + n_conn * per + 1)), "union of values")
    # Interleaving actually happened (not one connection after another).
    interleaved = sum(1 for r in results if r[-1] - r[0] > per - 1)
    ctx.note(f"{interleaved}/{n_conn} connections saw others' increments in between")


@test("connection_churn_200", timeout=90)
def t_churn(ctx):
    """200 short connections, each one INCR then close (TIME-WAIT, SYN handling)."""
    base = L.counter_get()
    for i in range(200):
        with L.LineClient(timeout=5) as c:
            check_eq(c.incr(), base + i + 1, f"INCR on connection {i}")
    check_eq(L.counter_get(), base + 200, "counter after churn")


@test("echo_20MB_intact", timeout=180)
def t_echo(ctx):
    r = L.bulk_echo(BULK, timeout=150)
    summary = L.check_bulk_echo(r, BULK)
    check_eq(r["eof"], "fin", "echo closes after our FIN")
    ctx.note(summary)


@test("echo_small_roundtrips", timeout=30)
def t_echo_small(ctx):
    with L.LineClient(port=L.PORT_ECHO, timeout=5) as c:
        for msg in [b"x", b"hello world", bytes(range(256)) * 4, b"\n\n\r\n"]:
            c.send(msg)
            got = b""
            dl = L.Deadline(5)
            while len(got) < len(msg):
                dl.check(f"echo of {len(msg)} bytes (got {len(got)})")
                got += c.sock.recv(65536)
            check_eq(got, msg, "echoed bytes")
        c.sock.shutdown(socket.SHUT_WR)
        check_eq(c.wait_eof(5), "fin", "echo closes after our FIN")


@test("discard_20MB_clean_close", timeout=180)
def t_discard(ctx):
    r = L.bulk_discard(BULK, timeout=150)
    check(r["error"] is None, f"discard: {r}")
    check_eq(r["sent"], BULK, "bytes sent")
    check_eq(r["stray"], 0, "bytes received from discard")
    check_eq(r["close"], "fin", "discard's close (after our FIN)")
    ctx.note(f"discard: {BULK} bytes in {r['elapsed']:.1f}s")


@test("udp_echo", timeout=30)
def t_udp_echo(ctx):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for size in [1, 7, 100, 512, 1400, 1472]:
            msg = random.randbytes(size)
            check_eq(L.udp_request(msg, L.PORT_UDP_ECHO, sock=s), msg, f"udp-echo of {size} bytes")
        check_eq(L.udp_request(b"", L.PORT_UDP_ECHO, sock=s), b"", "udp-echo of an empty datagram")


@test("udp_counter_semantics", timeout=30)
def t_udp_counter(ctx):
    cid = f"it{os.getpid()}x{random.randrange(10**6)}"
    P = L.PORT_UDP_COUNTER
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        def req(text):
            return L.udp_request(text.encode(), P, sock=s).decode(errors="replace")
        base = L.counter_get()
        r1 = req(f"{cid} 1 INCR")
        check_eq(r1, f"{cid} 1 {base + 1}\n", "first INCR")
        check_eq(req(f"{cid} 1 INCR"), r1, "repeated seq 1 (cached reply)")
        check_eq(L.counter_get(), base + 1, "counter after a repeated request (must not re-execute)")
        r2 = req(f"{cid} 2 INCR")
        check_eq(r2, f"{cid} 2 {base + 2}\n", "seq 2 INCR")
        check_eq(req(f"{cid} 1 INCR"), f"{cid} 1 ERR stale\n", "older seq")
        check_eq(req(f"{cid} 2 INCR"), r2, "repeat of latest seq")
        check_eq(req(f"{cid} 10 INCR"), f"{cid} 10 {base + 3}\n", "seq gap is fine")
        check_eq(req(f"{cid} 11 GET"), f"{cid} 11 {base + 3}\n", "GET over udp-counter")
        # Shared with the TCP counter.
        check_eq(L.counter_get(), base + 3, "TCP GET sees the UDP increments")
        with L.LineClient() as c:
            check_eq(c.incr(), base + 4, "TCP INCR after UDP")
        check_eq(req(f"{cid} 12 INCR"), f"{cid} 12 {base + 5}\n", "UDP INCR after TCP INCR")
        # Another client id has its own sequence space.
        other = cid + "b"
        check_eq(req(f"{other} 1 INCR"), f"{other} 1 {base + 6}\n", "second client, seq 1")
        check_eq(req(f"{cid} 12 INCR"), f"{cid} 12 {base + 5}\n", "first client's cache survives")
        # Malformed requests.
        for bad in ["INCR", f"{cid} notanumber INCR", f"{cid} 13", ""]:
            rep = req(bad)
            check(rep.startswith("ERR") or " ERR " in rep, f"malformed request {bad!r} got {rep!r}")
        check_eq(L.counter_get(), base + 6, "counter after malformed requests")


@test("closed_ports_refused", timeout=30)
def t_closed(ctx):
    try:
        socket.create_connection((AIP, 1234), timeout=5).close()
        raise L.TestFailure("TCP connect to closed port 1234 succeeded")
    except ConnectionRefusedError:
        pass
    except socket.timeout:
        raise L.TestFailure("TCP connect to closed port 1234 timed out (no RST)") from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((AIP, 23456))
        s.send(b"hello")
        try:
            s.recv(100)
            raise L.TestFailure("UDP to closed port got a reply")
        except ConnectionRefusedError:
            pass  # ICMP port unreachable
        except socket.timeout:
            raise L.TestFailure("UDP to closed port 23456: no ICMP port unreachable within 3s") from None


@test("tcp_ack_at_right_window_edge", timeout=40)
def t_window_edge(ctx):
    """A pure ACK whose SEQ is exactly RCV.NXT + RCV.WND must have its ACK
    processed. A Linux sender that has filled the window past a lost segment
    sends exactly such ACKs (SEQ = its SND.NXT = the window's right edge);
    Linux and BSD receivers accept them. If they are dropped, the appliance
    never sees its data acknowledged while the client has a hole, and keeps
    retransmitting acknowledged data with exponential backoff (seen as
    multi-minute stalls under loss). Control: the same ACK at edge - 1."""
    res = {}
    for label, back in (("edge-1", 1), ("edge", 0)):
        p = L.RawTCPPeer(dport=L.PORT_ECHO)
        try:
            p.connect()
            data = b"E" * 100
            p.send(L.TCP_ACK | L.TCP_PSH, payload=data)
            p.snd_nxt = (p.snd_nxt + len(data)) & 0xFFFFFFFF
            echo, wnd, acked = b"", None, None
            dl = L.Deadline(3)
            while (len(echo) < len(data) or acked != p.snd_nxt) and not dl.expired():
                d = p.recv(dl.remaining())
                if d is None:
                    break
                wnd, acked = p.window_bytes(d), d["ack"]
                echo += d["payload"]
            check_eq(echo, data, f"[{label}] echo of 100 bytes")
            check_eq(acked, p.snd_nxt, f"[{label}] appliance's ACK of our 100 bytes")
            edge = (p.snd_nxt + wnd) & 0xFFFFFFFF  # the appliance's RCV.NXT + RCV.WND
            p.rcv_nxt = (p.irs + 1 + len(data)) & 0xFFFFFFFF
            p.send(L.TCP_ACK, seq=(edge - back) & 0xFFFFFFFF, ack=p.rcv_nxt)
            segs = p.recv_all(2.5)
            res[label] = ([d for d in segs if d["payload"]], wnd, p.log[:])
        finally:
            p.reset()
            p.close()
    for label in ("edge-1", "edge"):
        rex, wnd, log = res[label]
        check(not rex, f"[{label}] appliance retransmitted {len(rex)} times data that our ACK "
                       f"(SEQ = RCV.NXT + {wnd} - {1 if label == 'edge-1' else 0}) acknowledged: the ACK was "
                       f"ignored.\n  segment log: " + "\n  ".join(log))


# --- impaired link ----------------------------------------------------------

@test("lossy_link_echo_20MB", timeout=420)
def t_lossy_echo(ctx):
    """20 MB echo with loss 5%, delay 1 ms, reorder 25% 50% on client -> appliance.
    For scale: a Linux server without SACK and timestamps (the stand-in with
    tcp_sack=0, tcp_timestamps=0) needs ~110 s here; with them ~2 s."""
    n = int(os.environ.get("FTAP_LOSSY_MB", str(BULK // L.MB))) * L.MB
    with L.Impairment(ctx.topo, upstream=LOSSY) as imp:
        ctx.note(f"impairment {imp.describe()}")
        r = L.bulk_echo(n, timeout=360)
    if imp.stats:
        ctx.note("relay " + imp.stats.replace("\n", " | "))
    summary = L.check_bulk_echo(r, n)
    ctx.note(summary)


@test("lossy_link_300_incr", timeout=240)
def t_lossy_incr(ctx):
    with L.Impairment(ctx.topo, upstream=LOSSY) as imp:
        with L.LineClient(timeout=30, connect_timeout=30) as c:
            base = c.get()
            got = [c.incr() for _ in range(300)]
        check_eq(got, list(range(base + 1, base + 301)), "300 INCR under loss")
        # Exactly-once over UDP with retries of the same seq.
        cid = f"lossy{os.getpid()}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq in range(1, 101):
                rep = L.udp_request(f"{cid} {seq} INCR".encode(), L.PORT_UDP_COUNTER, timeout=0.3,
                                    retries=20, sock=s).decode()
                check(rep.startswith(f"{cid} {seq} "), f"udp-counter reply {rep!r} for seq {seq}")
        with L.LineClient(timeout=30, connect_timeout=30) as c:
            check_eq(c.get(), base + 400, "counter after 300 TCP INCR + 100 UDP INCR (with retries) under loss")
    if imp.stats:
        ctx.note("relay " + imp.stats.replace("\n", " | "))


def impaired_echo_and_incr(ctx, n: int, what: str, **impairment):
    """An n-byte echo, then 100 INCR that must count up by one each, through
    ``L.Impairment(**impairment)``; notes the impairment and the relay's
    counters. Returns (the impairment, the echo's result)."""
    with L.Impairment(ctx.topo, **impairment) as imp:
        ctx.note(f"impairment {imp.describe()}")
        r = L.bulk_echo(n, timeout=240)
        with L.LineClient(timeout=30, connect_timeout=30) as c:
            base = c.get()
            got = [c.incr() for _ in range(100)]
        check_eq(got, list(range(base + 1, base + 101)), f"100 INCR {what}")
    if imp.stats:
        ctx.note("relay " + imp.stats.replace("\n", " | "))
    return imp, r


@test("lossy_return_path_echo", timeout=300)
def t_lossy_return(ctx):
    """Loss/reorder on the appliance -> client direction: exercises the
    appliance's own retransmission (RTO, fast retransmit)."""
    n = min(BULK, 5 * L.MB)
    _, r = impaired_echo_and_incr(ctx, n, "with loss on the return path", downstream=LOSSY)
    ctx.note(L.check_bulk_echo(r, n))


@test("lossy_duplicating_link_echo", timeout=300)
def t_lossy_dup_echo(ctx):
    """Both directions: loss 2 %, reordering, and 5 % of the frames sent
    twice (netem's duplicate, or the relay's). The echoed stream must come
    back intact: duplicates are absorbed by sequence numbers, and the
    appliance's retransmissions meet the same link."""
    n = min(BULK, 10 * L.MB)
    model = dict(loss=2, delay_ms=1, reorder=25, corr=50, dup=5)
    imp, r = impaired_echo_and_incr(ctx, n, "over a duplicating link", upstream=model, downstream=model)
    if imp.stats:
        dups = sum(int(x) for x in re.findall(r"duplicated=(\d+)", imp.stats))
        check(dups > 0, f"the relay duplicated no frame: {imp.stats}")
    ctx.note(L.check_bulk_echo(r, n))


# --- hostile input ---------------------------------------------------------

def tap_stats(ctx, dev="tapA"):
    """(tx_packets, tx_dropped) of the appliance's TAP: frames the kernel handed
    to (or dropped before) the daemon. None if there is no such device."""
    cp = L.run(f"cat /sys/class/net/{dev}/statistics/tx_packets /sys/class/net/{dev}/statistics/tx_dropped",
               ns=ctx.topo.node_a, check=False)
    vals = cp.stdout.split()
    return (int(vals[0]), int(vals[1])) if cp.returncode == 0 and len(vals) == 2 else None


@test("garbage_frames_survived", timeout=180)
def t_garbage(ctx):
    count = int(os.environ.get("FTAP_GARBAGE_COUNT", "2000"))
    live = L.LineClient(timeout=10)
    try:
        v0 = live.get()
        cip, cport = live.local
        tap0 = tap_stats(ctx)
        argv = ["ip", "netns", "exec", ctx.topo.switch, sys.executable,
                os.path.join(L.HERE, "inject_garbage.py"), "--iface", "sw-a", "--count", str(count),
                "--seed", str(random.randrange(1 << 30)),
                "--conn", f"{cip}:{cport}:{L.PORT_COUNTER}", "--client-mac", L.interface_mac()]
        cp = L.run(argv, timeout=120)
        ctx.note("injected: " + " ".join(cp.stdout.split("\n")).strip())
        check("total" in cp.stdout, f"injector output: {cp.stdout} {cp.stderr}")
        time.sleep(1.0)
        tap1 = tap_stats(ctx)
        if tap0 and tap1:
            delivered, dropped = tap1[0] - tap0[0], tap1[1] - tap0[1]
            ctx.note(f"tapA: {delivered} frames delivered to the daemon, {dropped} dropped by the kernel queue")
            # Guards the harness itself: the garbage must actually reach the TAP.
            check(delivered + dropped >= 0.9 * count,
                  f"only {delivered + dropped} of {count} injected frames reached tapA")
        check(L.pid_alive(ctx.daemon_pid), f"daemon (pid {ctx.daemon_pid}) died after the garbage")
        # The counter was not touched by any of it.
        check_eq(live.get(), v0, "counter after garbage (GET on the connection opened before)")
        check_eq(live.incr(), v0 + 1, "INCR on the connection opened before the garbage")
    finally:
        live.close()
    with L.LineClient(timeout=10) as c:
        check_eq(c.incr(), v0 + 2, "INCR on a new connection after the garbage")
    tx, rx, out = L.ping(AIP, count=3)
    check(rx == 3, f"ping after garbage: {tx} sent, {rx} received\n{out}")
    r = L.udp_request(b"still alive", L.PORT_UDP_ECHO)
    check_eq(r, b"still alive", "udp-echo after garbage")
    check(L.pid_alive(ctx.daemon_pid), "daemon alive")


@test("ipv6_noise_ignored", timeout=60)
def t_ipv6(ctx):
    """IPv6 (which the client namespace emits on its own: RS, MLD, DAD) and
    explicit IPv6 to the appliance's MAC draw no IPv6 frame from the appliance
    and do not disturb it."""
    amac = L.mac_bytes(L.APPLIANCE_MAC)
    seen = {"v6_from_appliance": 0, "frames_from_appliance": 0}
    stop = threading.Event()
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sniff.bind((L.CLIENT_IF, 0))
    sniff.settimeout(0.2)

    def sniffer():
        while not stop.is_set():
            try:
                f = sniff.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if f[6:12] == amac:
                seen["frames_from_appliance"] += 1
                if f[12:14] == b"\x86\xdd":
                    seen["v6_from_appliance"] += 1

    th = threading.Thread(target=sniffer, daemon=True)
    th.start()
    ll = "fe80::ff:fe00:10"
    added = False
    try:
        L.run(["ip", "-6", "neigh", "replace", ll, "lladdr", L.APPLIANCE_MAC, "dev", L.CLIENT_IF,
               "nud", "permanent"])
        added = True
        key = L.register_cleanup("ipv6 neigh", lambda: L.run(["ip", "-6", "neigh", "del", ll, "dev", L.CLIENT_IF],
                                                               check=False))
        tx, rx, _ = L.ping(f"{ll}%{L.CLIENT_IF}", count=3, ipv6=True, interval=0.2, wait=1)
        check_eq(rx, 0, "IPv6 ping replies from the appliance's MAC")
        L.ping(f"ff02::1%{L.CLIENT_IF}", count=2, ipv6=True, interval=0.2, wait=1)
        # IPv6 UDP and TCP to the appliance's MAC.
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            idx = socket.if_nametoindex(L.CLIENT_IF)
            for port in (L.PORT_UDP_ECHO, L.PORT_UDP_COUNTER):
                s.sendto(b"v6 1 INCR", (ll, port, 0, idx))
            try:
                t6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                t6.settimeout(1.5)
                t6.connect((ll, L.PORT_COUNTER, 0, idx))
                raise L.TestFailure("an IPv6 TCP connection to the appliance succeeded")
            except (socket.timeout, OSError):
                pass
            finally:
                t6.close()
        # Raw IPv6 with an IPv4 ethertype and vice versa, to the appliance's MAC.
        raw = L.RawSocket(L.CLIENT_IF)
        cmac = L.interface_mac()
        v6hdr = struct.pack("!IHBB", 0x60000000, 8, 17, 64) + socket.inet_pton(socket.AF_INET6, "fe80::1") + \
            socket.inet_pton(socket.AF_INET6, ll) + struct.pack("!HHHH", 5555, L.PORT_UDP_COUNTER, 8, 0)
        for _ in range(20):
            raw.send(L.ether(L.APPLIANCE_MAC, cmac, L.ETH_IPV6, v6hdr))
            raw.send(L.ether(L.APPLIANCE_MAC, cmac, L.ETH_IPV4, v6hdr))
        raw.close()
        time.sleep(1.0)
    finally:
        stop.set()
        th.join(2)
        sniff.close()
        if added:
            L.run(["ip", "-6", "neigh", "del", ll, "dev", L.CLIENT_IF], check=False)
            L.unregister_cleanup(key)
    check_eq(seen["v6_from_appliance"], 0, "IPv6 frames sent by the appliance")
    check(L.pid_alive(ctx.daemon_pid), "daemon alive after IPv6 noise")
    with L.LineClient() as c:
        c.incr()
    tx, rx, out = L.ping(AIP, count=2)
    check(rx == 2, f"ping after IPv6 noise: {out}")
    ctx.note(f"frames from the appliance during the check: {seen['frames_from_appliance']}")


@test("daemon_alive_at_end", timeout=10)
def t_alive(ctx):
    check(L.pid_alive(ctx.daemon_pid), f"daemon pid {ctx.daemon_pid} is not running")


if __name__ == "__main__":
    sys.exit(L.main(__doc__.splitlines()[0]))
