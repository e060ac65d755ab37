#!/usr/bin/env python3
"""TCP on real networks (issue 13), run from the client namespace of
scripts/netns.sh by scripts/tcp-field-test.sh (one test per invocation,
fresh topology each time):

    ip netns exec ${P}-c python3 tests/integration/tcp_field_tests.py --prefix P --only NAME --out-dir DIR

Tests assert correctness and completion within generous bounds, never
throughput: every stream is verified by SHA-256, and facts come from the
nodes' /status JSON. Throughput is printed (with a kernel-TCP echo server on
the same switch in the same run, for reference only); scripts/bench measures it.

  loss_solo / loss_pair  echo through a switch port dropping 1, 3 and 8 % of
                         frames both ways (nftables numgen on the bridge),
                         then a larger echo with loss one way only (client ->
                         appliance: ftap receives out of order; appliance ->
                         client: ftap recovers as a sender)
  syn_flood_pair         spoofed SYNs (hping3 --rand-source -S) at the
                         appliance's port for 5 s paced (-i u40), then with
                         --flood, while a real client connects and runs INCR
                         from its address and from fresh ones: served during
                         both, the pair stays protected, connections and
                         memory bounded; the flood's cost to the log link
  mtu_hop_pair           bulk echo to a client behind a router whose link
                         to it has MTU 1400 (the client advertises MSS 1460):
                         without RFC 1191 it black-holes

Environment: FTAP_RUN_BIN, FTAP_PIDFILE, FTAP_LOG_LEVEL (see pairlib);
FTAP_FIELD_LOSS_MB (default 1), FTAP_FIELD_BULK_MB (default 4),
FTAP_FIELD_FLOOD_S (default 5).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from ftaplib import TestFailure, check, test  # noqa: E402
from pairlib import Pair  # noqa: E402

KERNEL_IP = "10.0.0.200"
KERNEL_PORT = 7007
LOSS_MB = float(os.environ.get("FTAP_FIELD_LOSS_MB", "1"))
BULK_MB = float(os.environ.get("FTAP_FIELD_BULK_MB", "4"))
FLOOD_S = float(os.environ.get("FTAP_FIELD_FLOOD_S", "5"))

ECHO_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_echo.py")


def spawn(ns: str, argv: list[str], log_path: str, what: str) -> subprocess.Popen:
    with open(log_path, "ab") as f:
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                             start_new_session=True)
    PL.record_pid(p.pid, what)
    return p


def stop(p: subprocess.Popen | None):
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(3)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(3)


def offloads_off(topo: L.Topology):
    """Every frame on the client path is one packet, so loss drops packets."""
    # upA/upB: ftap's TSO super-segments are cut where they leave the node
    # (the first device without TSO), so the switch's loss rule meets
    # segments, as it meets the kernel server's.
    for ns, dev in ((topo.client, "c0"), (topo.switch, "sw-c"), (topo.switch, "br0"), (topo.switch, "sw-a"),
                    (topo.switch, "sw-b"), (topo.node_a, "upA"), (topo.node_a, "brA"),
                    (topo.node_b, "upB"), (topo.node_b, "brB")):
        L.run(["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"], ns=ns, check=False)


def set_loss(topo: L.Topology, pct: int, direction: str = "both"):
    """Random loss of pct % of the IPv4 frames to ("down") and/or from ("up")
    the client's switch port (nftables on the bridge; this kernel has no netem)."""
    L.run(["nft", "delete", "table", "bridge", "ftaploss"], ns=topo.switch, check=False)
    if pct <= 0:
        return
    rules = ["add table bridge ftaploss",
             "add chain bridge ftaploss lossy { type filter hook forward priority 0; policy accept; }"]
    if direction in ("both", "up"):
        rules.append(f'add rule bridge ftaploss lossy iifname "sw-c" ether type ip numgen random mod 100 < {pct} counter drop')
    if direction in ("both", "down"):
        rules.append(f'add rule bridge ftaploss lossy oifname "sw-c" ether type ip numgen random mod 100 < {pct} counter drop')
    L.run(["nft", "-f", "-"], ns=topo.switch, input=("\n".join(rules) + "\n").encode())


def dropped(topo: L.Topology) -> int:
    cp = L.run(["nft", "list", "table", "bridge", "ftaploss"], ns=topo.switch, check=False)
    return sum(int(x) for x in re.findall(r"counter packets (\d+)", cp.stdout))


def start_kernel_echo(ctx) -> subprocess.Popen:
    topo = ctx.topo
    L.run(["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "brB"], ns=topo.node_b)
    p = spawn(topo.node_b, [sys.executable, ECHO_SERVER, KERNEL_IP, str(KERNEL_PORT)],
              os.path.join(ctx.out_dir, "kernel-echo.log"), "kernel echo")
    dl = L.Deadline(10)
    while True:
        try:
            socket.create_connection((KERNEL_IP, KERNEL_PORT), timeout=1).close()
            return p
        except OSError:
            dl.check("kernel echo server not reachable")
            time.sleep(0.1)


def echo(topo, host: str, port: int, nbytes: int, pct: int, direction: str, timeout: float) -> dict:
    set_loss(topo, pct, direction)
    try:
        r = L.bulk_echo(nbytes, host=host, port=port, timeout=timeout)
    finally:
        r_drop = dropped(topo)
        set_loss(topo, 0)
    r["dropped"] = r_drop
    return r


def mbit(r: dict) -> float:
    return r["received"] * 8 / max(r["elapsed"], 1e-6) / 1e6


def loss_suite(ctx, node: PL.Daemon):
    topo = ctx.topo
    offloads_off(topo)
    kern = start_kernel_echo(ctx)
    # The reference's congestion control (this machine's default may be BBR,
    # which does not back off on random loss; ftap's is loss-based).
    cc = L.run(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], ns=topo.node_b, check=False).stdout.strip()
    measures = {}
    try:
        n = int(LOSS_MB * L.MB)
        for pct in (1, 3, 8):
            k = echo(topo, KERNEL_IP, KERNEL_PORT, n, pct, "both", 120)
            f = echo(topo, L.APPLIANCE_IP, PL.PORT_ECHO, n, pct, "both", 120)
            summary = L.check_bulk_echo(f, n)
            ctx.note(f"{pct}% both ways, {n} B echo: ftap {mbit(f):.1f} Mbit/s ({f['elapsed']:.2f} s, "
                     f"{f['dropped']} frames dropped), kernel ({cc}) {mbit(k):.1f} Mbit/s (reference)")
            measures[f"echo_{pct}pct_ftap_mbit_s"] = round(mbit(f), 2)
            measures[f"echo_{pct}pct_kernel_mbit_s"] = round(mbit(k), 2)
            check(f["dropped"] > 0, f"{pct}%: the switch dropped nothing ({summary})")
        nb = int(BULK_MB * L.MB)
        for direction in ("up", "down"):
            f = echo(topo, L.APPLIANCE_IP, PL.PORT_ECHO, nb, 3, direction, 180)
            L.check_bulk_echo(f, nb)
            ctx.note(f"3% {direction} only, {nb} B echo: ftap {mbit(f):.1f} Mbit/s ({f['elapsed']:.2f} s, "
                     f"{f['dropped']} dropped)")
            measures[f"bulk_3pct_{direction}_ftap_mbit_s"] = round(mbit(f), 2)
            check(f["dropped"] > 0, f"3% {direction}: the switch dropped nothing")
        st = node.status()["stack"]
        ctx.note("ftap recovery: " + ", ".join(f"{k}={st[k]}" for k in (
            "tcp_retransmits", "tcp_sack_retransmits", "tcp_loss_probes", "tcp_timeouts", "tcp_ooo_queued",
            "tcp_ooo_dropped", "tcp_delayed_acks")))
        check(st["tcp_sack_retransmits"] > 0, "ftap never retransmitted from SACK blocks under loss")
        check(st["tcp_ooo_queued"] > 0, "ftap never queued out-of-order data under loss")
    finally:
        set_loss(topo, 0)
        stop(kern)
    PL.write_measure(ctx.out_dir, **measures)


@test("loss_solo", timeout=300)
def t_loss_solo(ctx):
    pair = Pair(ctx.topo, ctx.out_dir)
    try:
        a = pair.start_node("A", "solo")
        a.wait_status("solo live", 30, live=True)
        PL.wait_ping(ctx.topo, 30, [a])
        loss_suite(ctx, a)
    finally:
        pair.close()


@test("loss_pair", timeout=300)
def t_loss_pair(ctx):
    pair = Pair(ctx.topo, ctx.out_dir)
    try:
        a, b = pair.start()
        loss_suite(ctx, a)
        st = a.status()
        check(st["protected"] is True and st["diverged"] is False, f"pair not protected after the loss runs: {PL.brief(st)}")
        check(b.alive(), "the backup exited")
    finally:
        pair.close()


# --- SYN flood ---------------------------------------------------------------------

def link_tx(ns: str, dev: str) -> tuple[int, int]:
    cp = L.run(["cat", f"/sys/class/net/{dev}/statistics/tx_bytes", f"/sys/class/net/{dev}/statistics/tx_packets"], ns=ns)
    b, p = cp.stdout.split()
    return int(b), int(p)


def tap_dropped(ns: str, dev: str) -> int:
    """Frames the kernel dropped on their way into the daemon's TAP (its queue was full)."""
    cp = L.run(["cat", f"/sys/class/net/{dev}/statistics/tx_dropped"], ns=ns, check=False)
    return int(cp.stdout.strip() or 0)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def live_status(pair: Pair) -> tuple[str, dict]:
    """/status of the node that serves: A, or B once it took over."""
    try:
        return "A", pair.a.status()
    except (TestFailure, OSError, ValueError):
        return "B", pair.b.status()


FRESH_SOURCES = [f"10.0.0.{i}" for i in range(2, 90)]


def add_fresh_sources(topo: L.Topology):
    """Addresses on the client's interface that have never connected: each
    fresh-source connection uses one once, so the appliance cannot know it
    (SynAdmission: only its SYN retransmission or the new-source budget lets
    it in during a flood)."""
    for ip in FRESH_SOURCES:
        L.run(["ip", "addr", "add", f"{ip}/24", "dev", "c0"], ns=topo.client, check=False)


def fresh_connection(ip: str, timeout: float) -> float:
    """Connects from `ip` to the counter service, runs one INCR; returns the connect time."""
    s = socket.socket()
    try:
        s.settimeout(timeout)
        s.bind((ip, 0))
        c0 = time.monotonic()
        s.connect((L.APPLIANCE_IP, PL.PORT_COUNTER))
        took = time.monotonic() - c0
        s.sendall(b"INCR\n")
        got = b""
        while not got.endswith(b"\n"):
            b = s.recv(64)
            if not b:
                raise OSError("closed before the reply")
            got += b
        int(got)
        return took
    finally:
        s.close()


def flood_phase(ctx, pair: Pair, label: str, rate_args: list[str], secs: float, settle_s: float,
                fresh: list[str] | None = None) -> dict:
    """One flood (hping3 RATE --rand-source -S at the counter port) while a
    real client opens a fresh connection every 0.3 s and runs five INCR on
    it, until `settle_s` after the flood and at least three connections
    completed after it (a SYN or segment the kernel dropped at the TAP queue
    is retried by the client with its backoff, so one may take seconds).
    With `fresh`, each round also connects once from the next address of
    `fresh`, a source the appliance has never seen (connect time recorded)."""
    topo = ctx.topo
    a = pair.a
    st0 = a.status()
    tx0, t0 = link_tx(topo.node_a, "logA"), time.monotonic()
    rss0 = rss_kib(a.pid)
    drop0 = tap_dropped(topo.node_a, "tapA")
    log_path = os.path.join(ctx.out_dir, f"hping3-{label.replace('/', '-')}.log")
    flood = spawn(topo.client, ["timeout", "-s", "INT", str(secs), "hping3"] + rate_args +
                  ["--rand-source", "-S", "-p", str(PL.PORT_COUNTER), L.APPLIANCE_IP], log_path, "hping3")
    flood_end = t0 + secs
    r = {"during": [], "after": [], "lat": [], "failures": [], "peak": 0, "fresh_during": [], "fresh_after": []}
    fresh = list(fresh or [])
    st1 = tx1 = t1 = None
    try:
        time.sleep(0.3)
        while time.monotonic() < flood_end + settle_s or (len(r["after"]) < 3 and time.monotonic() < flood_end + 60):
            c0 = time.monotonic()
            try:
                with L.LineClient(port=PL.PORT_COUNTER, timeout=20, connect_timeout=20) as c:
                    lat = []
                    for _ in range(5):
                        r0 = time.monotonic()
                        c.send_line("INCR")
                        int(c.read_line())
                        lat.append((r0, time.monotonic() - r0))
                    c1 = time.monotonic()
                    (r["during"] if c1 < flood_end else r["after"]).append(c1 - c0)
                    r["lat"] += [d for r0, d in lat if r0 + d < flood_end]
            except (OSError, TestFailure, ValueError) as e:
                r["failures"].append(f"{time.monotonic() - c0:.2f}s: {e!r}")
            if fresh:
                ip = fresh.pop(0)
                try:
                    took = fresh_connection(ip, 20)
                    (r["fresh_during"] if time.monotonic() < flood_end else r["fresh_after"]).append(took)
                except (OSError, ValueError) as e:
                    r["failures"].append(f"fresh source {ip}: {e!r}")
            who, st = live_status(pair)
            r["peak"] = max(r["peak"], st["tcp_connections"])
            if st1 is None and time.monotonic() >= flood_end:
                st1, tx1, t1 = st, link_tx(topo.node_a, "logA"), time.monotonic()
            time.sleep(0.3)
        r["flood_rc"] = flood.wait(10)
    finally:
        stop(flood)
    if st1 is None:
        st1, tx1, t1 = a.status(), link_tx(topo.node_a, "logA"), time.monotonic()
    el = t1 - t0
    r["failover"] = who == "B"
    r["tap_dropped"] = tap_dropped(topo.node_a, "tapA") - drop0
    r["rss_growth"] = rss_kib(a.pid) - rss0 if a.alive() else 0
    r["entries_s"] = (st1["applied_index"] - st0["applied_index"]) / el
    r["log_mb_s"] = (tx1[0] - tx0[0]) / el / 1e6
    r["cookies"] = st1["stack"]["tcp_syncookies_sent"] - st0["stack"]["tcp_syncookies_sent"]
    r["segments_s"] = (st1["stack"]["tcp_segments_in"] - st0["stack"]["tcp_segments_in"]) / el
    r["shed"] = st1.get("syn_shed", 0) - st0.get("syn_shed", 0)
    r["admitted"] = {k: st1.get(f"syn_admitted_{k}", 0) - st0.get(f"syn_admitted_{k}", 0)
                     for k in ("known", "retransmitted", "new")}
    with open(log_path) as f:
        m = re.search(r"(\d+) packets transmitted", f.read())
    r["sent"] = int(m.group(1)) if m else -1

    def med(xs):
        return 1000 * sorted(xs)[len(xs) // 2] if xs else -1.0
    r["during_ms"], r["after_ms"], r["lat_ms"] = med(r["during"]), med(r["after"]), med(r["lat"])
    r["fresh_during_ms"], r["fresh_after_ms"] = med(r["fresh_during"]), med(r["fresh_after"])
    ctx.note(f"[{label}] hping3 sent {r['sent']} SYNs in {secs:.0f} s (exit {r['flood_rc']}); {r['segments_s']:.0f} "
             f"segments/s reached the stack, {r['cookies']} SYN cookies, {r['shed']} SYNs shed before logging, {r['tap_dropped']} dropped at the full TAP queue "
             f"(admitted: {r['admitted']}), peak {r['peak']} connections; log link "
             f"{r['entries_s']:.0f} entries/s, {r['log_mb_s']:.2f} MB/s"
             + ("; THE BACKUP TOOK OVER (the primary, starved of CPU, fell silent past the failover timeout)"
                if r["failover"] else ""))
    ctx.note(f"[{label}] client: {len(r['during'])} connections (connect + 5 INCR) completed during the flood, "
             f"median {r['during_ms']:.1f} ms; {len(r['after'])} after, median {r['after_ms']:.1f} ms; "
             f"{len(r['lat'])} INCR during, median {r['lat_ms']:.2f} ms; RSS +{r['rss_growth']} KiB; "
             f"fresh sources: {len(r['fresh_during'])} connected during, connect median {r['fresh_during_ms']:.0f} ms "
             f"(max {1000 * max(r['fresh_during'], default=0):.0f} ms), {len(r['fresh_after'])} after")
    return r


@test("syn_flood_pair", timeout=240)
def t_syn_flood(ctx):
    """Spoofed SYN floods (hping3 --rand-source -S) at the counter port of
    the pair while a real client connects and runs INCR: first paced with
    -i u40 (at most 25,000 SYNs/s; about 14,000/s measured here) for FLOOD_S
    seconds, then hping3 --flood (as fast as it can: 100,000-200,000/s here)
    for FLOOD_S seconds. In both the client is served during the flood, from
    its known address and from fresh addresses that never connected before
    (their SYN is shed with the flood's and its retransmission admitted, or
    it wins a token of --tcp-syn-rate); every connection succeeds; the
    connection table stays at the SYN backlog (the rest get stateless
    cookies), memory stays bounded and the pair stays protected: the
    primary sheds what exceeds --tcp-syn-rate before logging
    (SynAdmission), so neither the TAP queue nor the log link overflows."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    try:
        add_fresh_sources(topo)
        a, b = pair.start()
        half = len(FRESH_SOURCES) // 2
        lim = flood_phase(ctx, pair, "paced", ["-i", "u40"], FLOOD_S, 2, fresh=FRESH_SOURCES[:half])
        check(a.alive() and b.alive() and a.status()["protected"] is True,
              f"the paced flood cost the pair its protection: A {pair.describe_exit(a)}, B {pair.describe_exit(b)}")
        full = flood_phase(ctx, pair, "flood", ["--flood"], FLOOD_S, 2, fresh=FRESH_SOURCES[half:])
        PL.write_measure(ctx.out_dir, **{f"{k}_{n}": round(r[n], 2) if isinstance(r[n], float) else r[n]
                                         for k, r in (("limited", lim), ("flood", full))
                                         for n in ("sent", "segments_s", "entries_s", "log_mb_s", "cookies", "shed",
                                                   "during_ms", "after_ms", "lat_ms", "rss_growth", "fresh_during_ms",
                                                   "tap_dropped")},
                         limited_connections_during=len(lim["during"]), flood_connections_during=len(full["during"]),
                         flood_fresh_during=len(full["fresh_during"]))
        for label, r in (("paced", lim), ("flood", full)):
            check(not r["failures"], f"[{label}] client failures: {r['failures']}")
            check(len(r["during"]) >= 1, f"[{label}] no connection from the known client was served during the flood")
            check(len(r["fresh_during"]) >= 1, f"[{label}] no connection from a fresh source was served during the flood")
            check(len(r["after"]) >= 3, f"[{label}] only {len(r['after'])} connections completed after the flood")
            check(r["cookies"] > 0, f"[{label}] the flood never filled the SYN backlog (no SYN cookies sent)")
            check(r["peak"] <= 256 + 16, f"[{label}] {r['peak']} connections held: the SYN backlog (256) does not bound them")
            check(r["rss_growth"] < 64 * 1024, f"[{label}] primary RSS grew {r['rss_growth']} KiB")
        check(full["shed"] > 0, "the full flood shed no SYN before logging")
        check(not full["failover"], "the backup took over during the full flood")
        check(a.alive() and b.alive(), f"after the flood: A {pair.describe_exit(a)}, B {pair.describe_exit(b)}")
        st = a.status()
        check(st["protected"] is True and not st["diverged"], f"pair not protected after the floods: {PL.brief(st)}")
    finally:
        pair.close()


# --- MTU hop -------------------------------------------------------------------------

ROUTER_IP, CLIENT2_IP, ROUTER2_IP = "10.0.0.254", "10.0.1.1", "10.0.1.254"


def mtu_topology(ctx) -> tuple[str, str]:
    """${P}-r: a router on the switch (r0 10.0.0.254) with a link of MTU 1400
    (r1 10.0.1.254) to ${P}-m, a client (m0 10.0.1.1, MTU 1400) whose route
    advertises MSS 1460 (advmss), as a client behind a tunnel or PPPoE link
    does. Deleted again by the test (the suite's netns.sh down does not know them)."""
    p = ctx.topo.prefix
    r, m = f"{p}-r", f"{p}-m"
    for ns in (r, m):
        L.run(["ip", "netns", "del", ns], check=False)
        L.run(["ip", "netns", "add", ns])
        L.run(["ip", "-n", ns, "link", "set", "lo", "up"])
    L.run(["ip", "link", "add", "r0", "netns", r, "type", "veth", "peer", "name", "sw-r", "netns", ctx.topo.switch])
    L.run(["ip", "-n", ctx.topo.switch, "link", "set", "sw-r", "master", "br0"])
    L.run(["ip", "-n", ctx.topo.switch, "link", "set", "sw-r", "up"])
    L.run(["ip", "link", "add", "r1", "netns", r, "mtu", "1400", "type", "veth", "peer", "name", "m0", "netns", m])
    L.run(["ip", "-n", m, "link", "set", "m0", "mtu", "1400"])
    L.run(["ip", "-n", r, "addr", "add", f"{ROUTER_IP}/24", "dev", "r0"])
    L.run(["ip", "-n", r, "addr", "add", f"{ROUTER2_IP}/24", "dev", "r1"])
    L.run(["ip", "-n", m, "addr", "add", f"{CLIENT2_IP}/24", "dev", "m0"])
    for ns, dev in ((r, "r0"), (r, "r1"), (m, "m0")):
        L.run(["ip", "-n", ns, "link", "set", dev, "up"])
        L.run(["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"], ns=ns, check=False)
    L.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=r)
    L.run(["ip", "-n", m, "route", "add", "default", "via", ROUTER2_IP, "advmss", "1460"])
    return r, m


MTU_CLIENT = r"""
import hashlib, json, socket, sys, threading, time
host, port, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))
s = socket.create_connection((host, port), timeout=10); s.settimeout(timeout)
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
t0 = time.monotonic()
threading.Thread(target=lambda: s.sendall(data), daemon=True).start()
h, got, err = hashlib.sha256(), 0, None
try:
    while got < n:
        b = s.recv(262144)
        if not b:
            break
        h.update(b); got += len(b)
except OSError as e:
    err = repr(e)
print(json.dumps({"received": got, "ok": h.hexdigest() == hashlib.sha256(data).hexdigest() and got == n,
                  "seconds": time.monotonic() - t0, "error": err, "mss": mss}))
"""


@test("mtu_hop_pair", timeout=180)
def t_mtu_hop(ctx):
    """A bulk echo to a client behind a 1,400-byte-MTU hop. The appliance's
    1,500-byte segments (DF set) are refused by the router with ICMP
    fragmentation-needed; the appliance must lower the connection's MSS
    (through the log: the backup applies the same ICMP frame) or the
    transfer black-holes."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    r = m = None
    try:
        r, m = mtu_topology(ctx)
        a, b = pair.start()
        L.run(["ping", "-n", "-c", "1", "-W", "2", L.APPLIANCE_IP], ns=m, timeout=10)
        n = int(BULK_MB * L.MB)
        cp = L.run([sys.executable, "-c", MTU_CLIENT, L.APPLIANCE_IP, str(PL.PORT_ECHO), str(n), "60"], ns=m, timeout=120,
                   check=False)
        res = __import__("json").loads(cp.stdout.strip().splitlines()[-1]) if cp.stdout.strip() else {}
        sa, sb = a.status(), b.status()
        ka, kb = sa["stack"], sb["stack"]
        ctx.note(f"{n} B echo across the 1400 MTU hop: {res}; pmtu updates A {ka.get('tcp_pmtu_updates')} "
                 f"B {kb.get('tcp_pmtu_updates')}, icmp ignored {ka.get('icmp_errors_ignored')}, "
                 f"timeouts {ka['tcp_timeouts']}")
        PL.write_measure(ctx.out_dir, mtu_echo_s=round(res.get("seconds", -1), 2),
                         pmtu_updates=ka.get("tcp_pmtu_updates", -1))
        check(res.get("ok") is True, f"echo across the MTU hop failed: {res} {cp.stderr[-500:]}")
        check(ka.get("tcp_pmtu_updates", 0) >= 1, "the primary never lowered an MSS")
        check(kb.get("tcp_pmtu_updates") == ka.get("tcp_pmtu_updates"),
              "the backup did not apply the same ICMP messages")
        check(sa["protected"] is True and not sa["diverged"], f"pair not protected: {PL.brief(sa)}")
    finally:
        pair.close()
        for ns in (r, m):
            if ns:
                L.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(L.main("ftap TCP field tests (issue 13)"))
