#!/usr/bin/env python3
"""The measurements of scripts/bench (run that, not this: it builds ftap and
the topology, and cleans up whatever happens).

Runs in the root namespace as root; every process it starts goes into one of
the namespaces of scripts/netns.sh (prefix --prefix) through `ip netns exec`,
and its pid is appended to --pidfile so that scripts/bench can kill it by pid
even if this program dies.

Layout during the run (all on the switch br0 of ${P}-sw):
  client   ${P}-c   c0 10.0.0.1                 C load generator (bench-client.c)
  kernel   ${P}-b   brB 10.0.0.200              C TCP/UDP echo servers, iperf3 -s
  solo     ${P}-b   tapS on brB 10.0.0.101      ftap --role solo (MAC ...:11)
  pair     ${P}-a   tapA on brA 10.0.0.100      ftap --role primary
           ${P}-b   tapB on brB                 ftap --role backup
  log link logA 192.168.77.1 (a) <-> logB 192.168.77.2 (b)
Kernel, solo and replicated runs alternate within each repetition so that
every figure is taken next to its reference under the same background load.
The failover trials come last, each on a fresh pair.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from ftaplib import Topology  # noqa: E402

ISN_KEY = "00112233445566778899aabbccddeeff"  # the pair's shared secret (--secret)
PAIR_IP, PAIR_MAC = "10.0.0.100", "02:00:00:00:00:10"
SOLO_IP, SOLO_MAC = "10.0.0.101", "02:00:00:00:00:11"
KERNEL_IP = "10.0.0.200"
PORT_COUNTER, PORT_ECHO, PORT_DISCARD, PORT_UDP_ECHO, PORT_IPERF = 7000, 7, 9, 7002, 5201
SERVICES = [f"counter:{PORT_COUNTER}", f"echo:{PORT_ECHO}", f"discard:{PORT_DISCARD}", f"udp-echo:{PORT_UDP_ECHO}"]
LOG_A, LOG_B = "192.168.77.1", "192.168.77.2"


def log(msg: str):
    print(f"--- {msg}", flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.topo = Topology(args.prefix)
        self.ftap = args.ftap
        self.client = args.client
        self.out = args.out
        self.logdir = os.path.join(self.out, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.procs: dict[int, subprocess.Popen] = {}
        self.quick = args.quick
        q = self.quick
        self.p = {
            "reps": args.reps or (1 if q else 5),
            "lat_requests": 5000 if q else 20000,
            "lat_warmup": 500 if q else 1000,
            "bulk_seconds": 1.5 if q else 4.0,
            "iperf_seconds": 2 if q else 4,
            "udp_seconds": 1.0 if q else 3.0,
            "udp_size": 64,
            "udp_window": 32,
            "ping_count": 200,
            "ping_interval": 0.01,
            "failover_trials": args.trials or (3 if q else 10),
            "failover_clients": 2,
            "failover_mirror": os.environ.get("FTAP_BENCH_MIRROR", "on") != "off",
            "failover_before_s": 1.0,
            "failover_after_s": 1.5 if q else 2.0,
            "memory_connections": 1000,
            "loss_rates": [int(x) for x in args.loss_rates.split(",")],
            "loss_reps": args.loss_reps or (1 if q else 3),
            "loss_bytes": args.loss_bytes,
            "loss_timeout_s": args.loss_timeout,
            "loss_direction": args.loss_direction,
            "synflood_seconds": args.synflood_seconds,
        }
        self.solo_pid = None
        self.pair = None  # dict(primary=pid, backup=pid, arb=dir)
        self.pair_seq = 0
        self.offload_saved: list[tuple[str, str, dict]] = []

    # --- processes ----------------------------------------------------------

    def spawn(self, name: str, argv: list[str], ns: str | None, stdin=subprocess.DEVNULL,
              stdout=None) -> subprocess.Popen:
        full = (["ip", "netns", "exec", ns] if ns else []) + argv
        logf = open(os.path.join(self.logdir, f"{name}.log"), "ab")
        p = subprocess.Popen(full, stdin=stdin, stdout=stdout if stdout is not None else logf,
                             stderr=logf, start_new_session=True)
        logf.close()
        self.procs[p.pid] = p
        with open(self.args.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, pid: int | None, sig=signal.SIGTERM, timeout: float = 5.0) -> int | None:
        if pid is None or pid not in self.procs:
            return None
        p = self.procs.pop(pid)
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return p.returncode

    def stop_all(self):
        for pid in list(self.procs):
            self.stop(pid, timeout=3)

    def sh(self, argv: list[str], ns: str | None = None, timeout: float = 120, check: bool = True) -> str:
        full = (["ip", "netns", "exec", ns] if ns else []) + argv
        cp = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} exited {cp.returncode}: {cp.stderr.strip()} {cp.stdout.strip()}")
        return cp.stdout

    def sh_json(self, argv: list, ns: str, timeout: float = 120) -> dict:
        out = self.sh([str(a) for a in argv], ns=ns, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def client_json(self, *args, timeout: float = 120) -> dict:
        out = self.sh([self.client] + [str(a) for a in args], ns=self.topo.client, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def wait_ping(self, ip: str, pid: int, timeout: float = 30):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.procs[pid].poll() is not None:
                raise RuntimeError(f"daemon {pid} exited ({self.procs[pid].returncode}) before answering ping")
            cp = subprocess.run(["ip", "netns", "exec", self.topo.client, "ping", "-n", "-c", "1", "-W", "1", ip],
                                capture_output=True)
            if cp.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"no ping reply from {ip} within {timeout}s")

    def wait_log(self, name: str, pattern: str, pid: int, timeout: float = 30, start: int = 0) -> None:
        path = os.path.join(self.logdir, f"{name}.log")
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    if pattern.encode() in f.read():
                        return
            except OSError:
                pass
            if pid in self.procs and self.procs[pid].poll() is not None:
                raise RuntimeError(f"{name} exited ({self.procs[pid].returncode}) before logging '{pattern}'")
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not log '{pattern}' within {timeout}s")

    # --- daemons --------------------------------------------------------------

    def ftap_argv(self, role: str, tap: str, bridge: str, mac: str, ip: str, admin: str, extra=()) -> list[str]:
        argv = [self.ftap, "run", "--role", role, "--tap", tap, "--bridge", bridge, "--mac", mac,
                "--ip", f"{ip}/24", "--admin", admin, "--log-level", "info"]
        for s in SERVICES:
            argv += ["--service", s]
        return self.args.rt_prefix + argv + list(extra) + self.args.ftap_arg

    def start_solo(self):
        argv = self.ftap_argv("solo", "tapS", "brB", SOLO_MAC, SOLO_IP, "127.0.0.1:7411")
        p = self.spawn("solo", argv, self.topo.node_b)
        self.solo_pid = p.pid
        self.wait_ping(SOLO_IP, p.pid)

    def start_pair(self, tag: str):
        self.pair_seq += 1
        os.makedirs(os.path.join(self.out, "arb"), exist_ok=True)
        arb = tempfile.mkdtemp(prefix=f"{tag}-", dir=os.path.join(self.out, "arb"))
        common = ["--secret", ISN_KEY, "--arbiter", f"file:{arb}"]
        pa = self.spawn(f"primary-{tag}", self.ftap_argv(
            "primary", "tapA", "brA", PAIR_MAC, PAIR_IP, "127.0.0.1:7410",
            common + ["--listen", f"{LOG_A}:7400", "--peer", f"{LOG_B}:7400", "--node-name", "A"]), self.topo.node_a)
        pb = self.spawn(f"backup-{tag}", self.ftap_argv(
            "backup", "tapB", "brB", PAIR_MAC, PAIR_IP, "127.0.0.1:7410",
            common + ["--listen", f"{LOG_B}:7400", "--peer", f"{LOG_A}:7400", "--node-name", "B"]), self.topo.node_b)
        self.pair = {"primary": pa.pid, "backup": pb.pid, "arb": arb, "tag": tag}
        self.wait_log(f"primary-{tag}", "protected, serving", pa.pid)
        self.wait_log(f"backup-{tag}", "joined primary as backup", pb.pid)
        self.wait_ping(PAIR_IP, pa.pid)

    def stop_pair(self):
        if not self.pair:
            return
        codes = {}
        for r in ("backup", "primary"):
            codes[r] = self.stop(self.pair[r])
        shutil.rmtree(self.pair["arb"], ignore_errors=True)
        self.pair = None
        return codes

    def start_kernel_servers(self):
        nb = self.topo.node_b
        self.sh(["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "brB"], ns=nb)
        self.spawn("kernel-tcpecho", [self.client, "tcpecho", KERNEL_IP, str(PORT_ECHO)], nb)
        # The log link's own round trip for the same C client (kernel TCP echo on logB).
        self.spawn("kernel-tcpecho-log", [self.client, "tcpecho", LOG_B, str(PORT_ECHO)], nb)
        self.spawn("kernel-udpecho", [self.client, "udpecho", KERNEL_IP, str(PORT_UDP_ECHO)], nb)
        self.spawn("kernel-iperf3", ["iperf3", "-s", "-B", KERNEL_IP, "-p", str(PORT_IPERF)], nb)
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            ss = self.sh(["ss", "-Hltn"], ns=nb, check=False)
            if f"{KERNEL_IP}:{PORT_ECHO} " in ss and f"{KERNEL_IP}:{PORT_IPERF} " in ss:
                break
            time.sleep(0.1)
        self.wait_ping_plain(KERNEL_IP)

    def wait_ping_plain(self, ip: str):
        for _ in range(50):
            cp = subprocess.run(["ip", "netns", "exec", self.topo.client, "ping", "-n", "-c", "1", "-W", "1", ip],
                                capture_output=True)
            if cp.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"kernel reference {ip} unreachable")

    # --- measurements ------------------------------------------------------------

    def lat(self, ip: str, port: int) -> dict:
        return self.client_json("lat", ip, port, self.p["lat_requests"], self.p["lat_warmup"], "INCR")

    def bulk(self, ip: str, port: int, mode: str) -> dict:
        return self.client_json("bulk", ip, port, self.p["bulk_seconds"], mode, timeout=self.p["bulk_seconds"] + 60)

    def udp(self, ip: str) -> dict:
        return self.client_json("udp", ip, PORT_UDP_ECHO, self.p["udp_seconds"], self.p["udp_size"],
                                self.p["udp_window"], timeout=self.p["udp_seconds"] + 30)

    def iperf(self) -> dict:
        out = self.sh(["iperf3", "-c", KERNEL_IP, "-p", str(PORT_IPERF), "-t", str(self.p["iperf_seconds"]), "-J"],
                      ns=self.topo.client, timeout=self.p["iperf_seconds"] + 30)
        j = json.loads(out)
        return {"mbit_s": round(j["end"]["sum_received"]["bits_per_second"] / 1e6, 1),
                "retransmits": j["end"]["sum_sent"].get("retransmits")}

    def log_ping(self) -> dict:
        out = self.sh(["ping", "-n", "-c", str(self.p["ping_count"]), "-i", str(self.p["ping_interval"]), LOG_B],
                      ns=self.topo.node_a, timeout=60)
        rtts = sorted(float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", out))
        return {"n": len(rtts), "median_us": round(pctl(rtts, 0.5), 1), "p99_us": round(pctl(rtts, 0.99), 1),
                "min_us": round(rtts[0], 1) if rtts else None}

    def link_stats(self, ns: str, devs: list[str]) -> dict:
        script = "; ".join(f"for s in tx_bytes rx_bytes tx_packets rx_packets; do echo {d} $s "
                           f"$(cat /sys/class/net/{d}/statistics/$s); done" for d in devs)
        out = self.sh(["sh", "-c", script], ns=ns)
        r = {}
        for line in out.splitlines():
            d, s, v = line.split()
            r[f"{d}.{s}"] = int(v)
        return r

    def rss_kib(self, pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def count_syscalls(self, daemons: dict[str, int]) -> dict:
        """Starts `perf stat -e raw_syscalls:sys_enter` on each daemon (issue 14:
        system calls per MB); {} without perf."""
        if not shutil.which("perf"):
            return {}
        started = {}
        for k, pid in daemons.items():
            path = os.path.join(self.out, f"syscalls-{k}.txt")
            p = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "-o", path],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started[k] = (p, path)
        time.sleep(0.2)  # perf attaches
        return started

    def syscalls_counted(self, started: dict) -> dict:
        out = {}
        for k, (p, path) in started.items():
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
                with open(path) as f:
                    for line in f:
                        parts = line.strip().split(",")
                        if len(parts) > 2 and "raw_syscalls:sys_enter" in line and parts[0].isdigit():
                            out[k] = int(parts[0])
            except (subprocess.TimeoutExpired, OSError):
                p.kill()
        return out

    def cpu_ticks(self, pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            return None

    def hold_snapshot(self) -> dict | None:
        """The primary's output hold time histogram (cumulative bucket counts)."""
        if not self.pair:
            return None
        text = self.metrics(self.topo.node_a, 7410)
        snap = {"buckets": {}, "sum": 0.0, "count": 0.0}
        for line in text.splitlines():
            if line.startswith("ftap_output_hold_seconds_bucket"):
                le = re.search(r'le="([^"]+)"', line).group(1)
                snap["buckets"][float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("ftap_output_hold_seconds_sum"):
                snap["sum"] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("ftap_output_hold_seconds_count"):
                snap["count"] = float(line.rsplit(" ", 1)[1])
        return snap

    def measured(self, daemons: dict[str, int], fn, hold: bool = False) -> dict:
        """Runs fn() and adds the CPU share of each daemon (percent of one core)
        and, for the pair, the output hold time of the frames emitted meanwhile."""
        h0 = self.hold_snapshot() if hold else None
        perf = self.count_syscalls(daemons)
        c0 = {k: self.cpu_ticks(pid) for k, pid in daemons.items()}
        t0 = time.monotonic()
        r = fn()
        el = time.monotonic() - t0
        c1 = {k: self.cpu_ticks(pid) for k, pid in daemons.items()}
        sc = self.syscalls_counted(perf)
        if sc:
            r["daemon_syscalls"] = sc
        tck = os.sysconf("SC_CLK_TCK")
        r["daemon_cpu_pct"] = {k: round((c1[k] - c0[k]) / tck / el * 100, 1)
                               for k in daemons if c0[k] is not None and c1[k] is not None}
        if "cpu_user_s" in r and "seconds" in r:
            r["client_cpu_pct"] = round((r["cpu_user_s"] + r["cpu_sys_s"]) / max(r["seconds"], 1e-3) * 100, 1)
        if h0 is not None:
            h1 = self.hold_snapshot()
            n = h1["count"] - h0["count"]
            if n > 0:
                def q(p):
                    for le in sorted(h1["buckets"]):
                        if h1["buckets"][le] - h0["buckets"].get(le, 0) >= p * n:
                            return le * 1e6
                    return None
                r["output_hold"] = {"frames": int(n), "mean_us": round((h1["sum"] - h0["sum"]) / n * 1e6, 1),
                                    "median_le_us": q(0.5), "p99_le_us": q(0.99)}
        return r

    def metrics(self, ns: str, port: int) -> str:
        return self.sh(["curl", "-s", "--max-time", "3", f"http://127.0.0.1:{port}/metrics"], ns=ns, check=False) \
            if shutil.which("curl") else self.sh(
                [sys.executable, "-c",
                 f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics',timeout=3)"
                 f".read().decode())"], ns=ns, check=False)

    # --- offloads ------------------------------------------------------------------

    def kernel_path_devs(self) -> list[tuple[str, str]]:
        t = self.topo
        # upA/upB too: ftap's TSO super-segments are cut where they leave
        # the node, so a lossy switch port meets segments, not 64 KiB frames.
        return [(t.client, "c0"), (t.switch, "sw-c"), (t.switch, "br0"), (t.switch, "sw-b"),
                (t.node_b, "upB"), (t.node_b, "brB"), (t.switch, "sw-a"), (t.node_a, "upA"), (t.node_a, "brA")]

    def offloads(self, on: bool):
        feats = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                 "gro": "generic-receive-offload"}
        if not on:
            self.offload_saved = []
            for ns, dev in self.kernel_path_devs():
                k = self.sh(["ethtool", "-k", dev], ns=ns)
                saved = {}
                for short, longname in feats.items():
                    m = re.search(rf"^{longname}: (on|off)", k, re.M)
                    if m:
                        saved[short] = m.group(1)
                self.offload_saved.append((ns, dev, saved))
                self.sh(["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"], ns=ns, check=False)
        else:
            for ns, dev, saved in self.offload_saved:
                args = []
                for k, v in saved.items():
                    args += [k, v]
                if args:
                    self.sh(["ethtool", "-K", dev] + args, ns=ns, check=False)
            self.offload_saved = []

    # --- loss (issue 13) -------------------------------------------------------------

    def loss_set(self, pct: int, direction: str = "both"):
        """Random loss of pct % of the IPv4 frames the switch forwards to (down)
        and/or from (up) the client port, with nftables on br0 (no netem here)."""
        ns = self.topo.switch
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "bridge", "ftaploss"],
                       capture_output=True)
        if pct <= 0:
            return
        rules = ["add table bridge ftaploss",
                 "add chain bridge ftaploss lossy { type filter hook forward priority 0; policy accept; }"]
        if direction in ("both", "up"):
            rules.append(f'add rule bridge ftaploss lossy iifname "sw-c" ether type ip '
                         f'numgen random mod 100 < {pct} counter drop')
        if direction in ("both", "down"):
            rules.append(f'add rule bridge ftaploss lossy oifname "sw-c" ether type ip '
                         f'numgen random mod 100 < {pct} counter drop')
        cp = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input="\n".join(rules) + "\n",
                            capture_output=True, text=True)
        if cp.returncode != 0:
            raise RuntimeError(f"nft: {cp.stderr.strip()}")

    def loss_dropped(self) -> int:
        out = self.sh(["nft", "list", "table", "bridge", "ftaploss"], ns=self.topo.switch, check=False)
        return sum(int(x) for x in re.findall(r"counter packets (\d+)", out))

    def server_tcp_counters(self, ip: str) -> dict:
        """The ftap node's TCP recovery counters (its /status stack counters):
        the solo node, or the pair's primary."""
        if ip == SOLO_IP:
            ns, port = self.topo.node_b, 7411
        elif ip == PAIR_IP and self.pair:
            ns, port = self.topo.node_a, 7410
        else:
            return {}
        out = self.sh(["curl", "-s", "--max-time", "3", f"http://127.0.0.1:{port}/status"], ns=ns, check=False)
        try:
            st = json.loads(out)["stack"]
        except (ValueError, KeyError):
            return {}
        return {k: v for k, v in st.items() if k.startswith("tcp_") and
                any(w in k for w in ("retrans", "timeout", "sack", "probe", "delayed"))}

    CLIENT_MIBS = ("TCPLossProbes", "TCPLossProbeRecovery", "TCPSACKRecovery", "TCPSackRecoveryFail", "TCPTimeouts",
                   "TCPSACKReorder", "TCPTSReorder", "TCPRenoReorder", "TCPFullUndo", "TCPPartialUndo",
                   "TCPDSACKUndo", "TCPLossUndo", "TCPSpuriousRTOs", "TCPDSACKRecv", "TCPFastRetrans",
                   "TCPLostRetransmit", "TCPDelivered")

    def client_mibs(self) -> dict:
        """The client namespace's TCP extended MIB (/proc/net/netstat)."""
        text = self.sh(["cat", "/proc/net/netstat"], ns=self.topo.client, check=False).splitlines()
        out = {}
        for i in range(0, len(text) - 1, 2):
            names, values = text[i].split(), text[i + 1].split()
            if names and names[0] == "TcpExt:":
                out.update({k: int(v) for k, v in zip(names[1:], values[1:]) if k in self.CLIENT_MIBS})
        return out

    # A second kernel reference for the loss section: the same echo with the
    # server's congestion control set per socket (TCP_CONGESTION; a network
    # namespace may only select what tcp_allowed_congestion_control lists,
    # root may set any per socket). This machine's default may be BBR,
    # which does not back off on random loss (measured: 3 % loss, 40 MB
    # echo: BBR 1535, CUBIC 82, Reno 42 Mbit/s); ftap decreases like CUBIC
    # but not below two bandwidth-delay products of its path model.
    CC_ECHO = os.path.join(REPO, "tests", "integration", "kernel_echo.py")
    PORT_ECHO_CUBIC = 7102

    def start_cubic_echo(self) -> bool:
        """The CUBIC echo server on KERNEL_IP:PORT_ECHO_CUBIC in ns b; False if the kernel lacks CUBIC."""
        p = self.spawn("kernel-cubic-echo", [sys.executable, self.CC_ECHO, KERNEL_IP, str(self.PORT_ECHO_CUBIC),
                                             "cubic"], self.topo.node_b)
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            if p.poll() is not None:
                return False
            if f"{KERNEL_IP}:{self.PORT_ECHO_CUBIC} " in self.sh(["ss", "-Hltn"], ns=self.topo.node_b, check=False):
                return True
            time.sleep(0.1)
        return False

    def loss_transfer(self, ip: str, pct: int, direction: str, port: int = PORT_ECHO) -> dict:
        self.loss_set(pct, direction)
        m0 = self.client_mibs()
        c0 = self.server_tcp_counters(ip)
        try:
            r = self.sh_json([sys.executable, os.path.join(REPO, "scripts", "lossclient.py"), ip, port,
                              self.p["loss_bytes"], "echo", self.p["loss_timeout_s"]],
                             ns=self.topo.client, timeout=self.p["loss_timeout_s"] + 30)
        finally:
            r_drop = self.loss_dropped()
            self.loss_set(0)
        r["dropped_frames"] = r_drop
        m1 = self.client_mibs()
        r["client_mib"] = {k: m1[k] - m0.get(k, 0) for k in m1 if m1[k] != m0.get(k, 0)}
        if c0:
            c1 = self.server_tcp_counters(ip)
            r["server"] = {k: int(c1[k] - c0.get(k, 0)) for k in c1 if c1[k] != c0.get(k, 0)}
        return r

    def loss_phase(self) -> dict:
        """1 MB echo through a lossy switch port: kernel TCP, ftap solo and (if
        running) the replicated pair at each loss rate, in turn, offloads off
        so a frame is a packet."""
        log(f"loss: {self.p['loss_bytes']} B echo at {self.p['loss_rates']} % loss "
            f"({self.p['loss_direction']}), {self.p['loss_reps']} runs each")
        self.offloads(False)
        res = {"kernel_congestion_control": self.sh(["sysctl", "-n", "net.ipv4.tcp_congestion_control"],
                                                    ns=self.topo.node_b, check=False).strip()}
        cubic = self.start_cubic_echo()
        log(f"  kernel reference: {res['kernel_congestion_control']} (the namespace default)"
            + (f"; second reference: CUBIC (per socket, port {self.PORT_ECHO_CUBIC})" if cubic else "; no CUBIC reference"))
        try:
            for pct in self.p["loss_rates"]:
                for i in range(self.p["loss_reps"]):
                    targets = [("kernel", KERNEL_IP, PORT_ECHO)]
                    if cubic:
                        targets.append(("kernel_cubic", KERNEL_IP, self.PORT_ECHO_CUBIC))
                    targets.append(("solo", SOLO_IP, PORT_ECHO))
                    if self.pair:
                        targets.append(("pair", PAIR_IP, PORT_ECHO))
                    for who, ip, port in targets:
                        r = self.loss_transfer(ip, pct, self.p["loss_direction"], port)
                        res.setdefault(f"{who}_{pct}", []).append(r)
                        log(f"  {pct}% {who:12s} run {i + 1}: {r['mbit_s']:10.3f} Mbit/s  {r['seconds']:8.2f} s  "
                            f"{r['result']}  dropped {r['dropped_frames']}  client retrans "
                            f"{r.get('client_total_retrans')}  server {r.get('server', '')}  "
                            f"client {r.get('client_mib')} reordering {r.get('client_reordering')}")
        finally:
            self.offloads(True)
        return res

    # --- SYN flood (issue 13) ----------------------------------------------------------

    def ftap_status(self, ns: str, port: int) -> dict:
        out = self.sh(["curl", "-s", "--max-time", "3", f"http://127.0.0.1:{port}/status"], ns=ns, check=False)
        try:
            return json.loads(out)
        except ValueError:
            return {}

    def synflood_phase(self) -> dict:
        """hping3 --flood --rand-source -S at the echo port of the kernel
        server, ftap solo and the pair, in turn, for synflood_seconds each,
        while a real client connects and echoes (scripts/synflood.py): its
        connect time and request latency during the flood, and for ftap the
        SYNs that reached the stack, the SYN cookies, and for the pair the
        flood's cost to the log link (entries and bytes per second)."""
        secs = self.p["synflood_seconds"]
        log(f"SYN flood: hping3 --flood --rand-source -S for {secs} s at kernel, solo and pair in turn")
        res = {}
        targets = [("kernel", KERNEL_IP, None), ("solo", SOLO_IP, (self.topo.node_b, 7411))]
        if self.pair:
            targets.append(("pair", PAIR_IP, (self.topo.node_a, 7410)))
        for who, ip, admin in targets:
            st0 = self.ftap_status(*admin) if admin else {}
            l0 = self.link_stats(self.topo.node_a, ["logA"]) if who == "pair" else {}
            t0 = time.monotonic()
            r = self.sh_json([sys.executable, os.path.join(REPO, "scripts", "synflood.py"), ip, PORT_ECHO, secs],
                             ns=self.topo.client, timeout=secs + 120)
            el = time.monotonic() - t0
            if admin:
                st1 = self.ftap_status(*admin)
                if st0 and st1:
                    k0, k1 = st0["stack"], st1["stack"]
                    r["segments_in"] = k1["tcp_segments_in"] - k0["tcp_segments_in"]
                    r["syncookies_sent"] = k1["tcp_syncookies_sent"] - k0["tcp_syncookies_sent"]
                    r["entries"] = st1["applied_index"] - st0["applied_index"]
                    r["connections_after"] = st1["tcp_connections"]
                    r["syn_shed"] = st1.get("syn_shed", 0) - st0.get("syn_shed", 0)
                    r["protected_after"] = st1.get("protected")
            if l0:
                l1 = self.link_stats(self.topo.node_a, ["logA"])
                r["log_bytes"] = l1["logA.tx_bytes"] - l0["logA.tx_bytes"]
            r["elapsed_s"] = round(el, 2)
            res[who] = r
            log(f"  {who:6s}: {fmt_flood_row(r)}")
            time.sleep(2)  # let the backlog's SYN-RECEIVED entries and cookies age a little
        return res

    # --- phases -----------------------------------------------------------------------

    def memory_phase(self) -> dict:
        log("memory: idle and with 1,000 open connections")
        n = self.p["memory_connections"]
        res = {"connections": n, "unit": "KiB (VmRSS)"}
        res["solo_idle"] = self.rss_kib(self.solo_pid)
        res["primary_idle"] = self.rss_kib(self.pair["primary"])
        res["backup_idle"] = self.rss_kib(self.pair["backup"])
        for target, ip, pids in (("solo", SOLO_IP, {"solo": self.solo_pid}),
                                 ("pair", PAIR_IP, {"primary": self.pair["primary"], "backup": self.pair["backup"]})):
            p = self.spawn(f"conns-{target}", [self.client, "conns", ip, str(PORT_COUNTER), str(n)],
                           self.topo.client, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            line = p.stdout.readline().decode().strip()
            if not line.startswith("ready"):
                raise RuntimeError(f"opening {n} connections to {target} failed: {line!r}")
            time.sleep(0.5)
            for name, pid in pids.items():
                res[f"{name}_{n}_conns"] = self.rss_kib(pid)
            ns, port = (self.topo.node_b, 7411) if target == "solo" else (self.topo.node_a, 7410)
            m = re.search(r"^ftap_tcp_connections(?:\{[^}]*\})? (\S+)", self.metrics(ns, port), re.M)
            res[f"{target}_tcp_connections_seen"] = int(float(m.group(1))) if m else None
            p.stdin.close()
            p.wait(30)
            self.procs.pop(p.pid, None)
        return res

    def rep(self, i: int, r: dict):
        """One repetition: every measurement once. Within each group the order is
        reversed on odd repetitions so that slow drifts of the background load
        do not favour one side."""
        solo = {"solo": self.solo_pid}
        pair = {"primary": self.pair["primary"], "backup": self.pair["backup"]}
        n = self.p["reps"]

        def group(items):
            for key, fn in (items if i % 2 == 0 else items[::-1]):
                r[key].append(fn())

        log(f"repetition {i + 1}/{n}: latency")
        group([
            ("lat_kernel_echo", lambda: self.measured({}, lambda: self.lat(KERNEL_IP, PORT_ECHO))),
            ("lat_solo_echo", lambda: self.measured(solo, lambda: self.lat(SOLO_IP, PORT_ECHO))),
            ("lat_pair_echo", lambda: self.measured(pair, lambda: self.lat(PAIR_IP, PORT_ECHO), hold=True)),
        ])
        group([
            ("lat_solo_counter", lambda: self.measured(solo, lambda: self.lat(SOLO_IP, PORT_COUNTER))),
            ("lat_pair_counter", lambda: self.measured(pair, lambda: self.lat(PAIR_IP, PORT_COUNTER), hold=True)),
            ("log_ping", self.log_ping),
            ("log_tcp_rtt", lambda: self.sh_json([self.client, "lat", LOG_B, PORT_ECHO, self.p["lat_requests"],
                                                  self.p["lat_warmup"], "INCR"], self.topo.node_a)),
        ])

        log(f"repetition {i + 1}/{n}: bulk TCP")
        r["bulk_iperf_offload_on"].append(self.iperf())
        self.offloads(False)
        try:
            # ftap solo sits on brB too, so it sees the same offload-free client path.
            group([
                ("bulk_iperf_offload_off", self.iperf),
                ("bulk_solo_discard_offload_off",
                 lambda: self.measured(solo, lambda: self.bulk(SOLO_IP, PORT_DISCARD, "discard"))),
            ])
        finally:
            self.offloads(True)
        r["bulk_kernel_echo"].append(self.measured({}, lambda: self.bulk(KERNEL_IP, PORT_ECHO, "echo")))
        group([
            ("bulk_solo_discard", lambda: self.measured(solo, lambda: self.bulk(SOLO_IP, PORT_DISCARD, "discard"))),
            ("bulk_pair_discard", lambda: self.measured(pair, lambda: self.bulk_logged(PORT_DISCARD, "discard"),
                                                        hold=True)),
        ])
        group([
            ("bulk_solo_echo", lambda: self.measured(solo, lambda: self.bulk(SOLO_IP, PORT_ECHO, "echo"))),
            ("bulk_pair_echo", lambda: self.measured(pair, lambda: self.bulk_logged(PORT_ECHO, "echo"), hold=True)),
        ])

        log(f"repetition {i + 1}/{n}: UDP echo")
        group([
            ("udp_kernel", lambda: self.measured({}, lambda: self.udp(KERNEL_IP))),
            ("udp_solo", lambda: self.measured(solo, lambda: self.udp(SOLO_IP))),
            ("udp_pair", lambda: self.measured(pair, lambda: self.udp(PAIR_IP), hold=True)),
        ])

    def bulk_logged(self, port: int, mode: str) -> dict:
        """A bulk run against the pair, with the log link's and the TAP's counters
        (primary's namespace) around it."""
        before = self.link_stats(self.topo.node_a, ["logA", "tapA"])
        d = self.bulk(PAIR_IP, port, mode)
        after = self.link_stats(self.topo.node_a, ["logA", "tapA"])
        d["link_delta"] = {k: after[k] - before[k] for k in after}
        return d

    def set_mirror(self, node: str):
        """scripts/netns.sh mirror a|b|off: the switch copies what it sends
        node's port to the other node's port (README: Mirroring)."""
        self.sh([os.path.join(REPO, "scripts", "netns.sh"), "mirror", node, self.topo.prefix])

    def failover_phase(self, mirror: bool = False) -> list[dict]:
        trials = []
        arp_txt = os.path.join(self.out, "failover-arp.txt")
        open(arp_txt, "w").close()
        td = self.spawn("tcpdump-br0", ["tcpdump", "-i", "br0", "-n", "-l", "-tt", "-e", "arp"], self.topo.switch,
                        stdout=open(arp_txt, "ab"))
        time.sleep(1.0)
        try:
            for i in range(self.p["failover_trials"]):
                trials.append(self.failover_trial(i, arp_txt, mirror))
                t = trials[-1]
                log(f"failover trial {i + 1}/{self.p['failover_trials']}{' (mirror)' if mirror else ''}: stall "
                    f"{max(c['max_stall_ms'] for c in t['clients']):.1f} ms, GARP after {t['kill_to_garp_ms']} ms, "
                    f"lost {t['lost']} dup {t['duplicated']} resets {t['resets']} errors {t['errors']}")
        finally:
            time.sleep(0.3)
            self.stop(td.pid, sig=signal.SIGINT)
        return trials

    def backup_status_field(self, key: str):
        out = self.sh(["curl", "-s", "--max-time", "3", "http://127.0.0.1:7410/status"], ns=self.topo.node_b,
                      check=False)
        try:
            return json.loads(out).get(key)
        except ValueError:
            return None

    def nstat(self) -> dict:
        """The client namespace's TCP retransmission counters (absolute)."""
        out = self.sh(["nstat", "-asz", "TcpRetransSegs", "TcpExtTCPLossProbes", "TcpExtTCPTimeouts"],
                      ns=self.topo.client, check=False)
        r = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 2 and f[1].isdigit():
                r[f[0]] = int(f[1])
        return r

    def failover_trial(self, i: int, arp_txt: str, mirror: bool = False) -> dict:
        tag = f"fo{'m' if mirror else ''}{i + 1}"
        self.start_pair(tag)
        p = self.pair
        if mirror:
            self.set_mirror("a")
        secs = self.p["failover_before_s"] + self.p["failover_after_s"]
        cl = self.spawn(f"stream-{tag}", [self.client, "stream", PAIR_IP, str(PORT_COUNTER), str(secs),
                                          str(self.p["failover_clients"])], self.topo.client, stdout=subprocess.PIPE)
        n0 = self.nstat()
        time.sleep(self.p["failover_before_s"])
        t_kill = time.time()
        os.kill(p["primary"], signal.SIGKILL)
        out, _ = cl.communicate(timeout=secs + 30)
        self.procs.pop(cl.pid, None)
        n1 = self.nstat()
        res = json.loads(out.decode().strip().splitlines()[-1])
        res["client_tcp"] = {k: n1[k] - n0.get(k, 0) for k in n1}
        res["kill_wall"] = t_kill
        live = False
        try:
            self.wait_log(f"backup-{tag}", "LIVE in epoch", p["backup"], timeout=5)
            live = True
        except RuntimeError:
            pass
        res["backup_went_live"] = live
        time.sleep(0.4)  # let the three GARPs of the takeover reach the capture
        garp = None
        with open(arp_txt) as f:
            for line in f:
                m = re.match(r"(\d+\.\d+) (\S+) > ff:ff:ff:ff:ff:ff.*Request who-has (\S+) tell (\S+),", line)
                if m and m.group(2) == PAIR_MAC and m.group(3) == PAIR_IP and m.group(4) == PAIR_IP:
                    ts = float(m.group(1))
                    if t_kill <= ts <= t_kill + 10:
                        garp = ts
                        break
        res["kill_to_garp_ms"] = round((garp - t_kill) * 1000, 2) if garp else None
        # Where the worst stall began relative to the kill (negative: before it).
        for c in res["clients"]:
            c["stall_start_after_kill_ms"] = round((c["stall_start_wall"] - t_kill) * 1000, 2) \
                if c["stall_start_wall"] else None
            # The gap between replies that spans the kill (begun at most 10 ms after it), if over 2 ms.
            span = [g for g in c.get("gaps", []) if g[0] <= t_kill + 0.01 and g[0] + g[1] / 1000 >= t_kill]
            c["kill_stall_ms"] = round(max(g[1] for g in span), 1) if span else 0.0
        if mirror:
            res["standby_applied"] = self.backup_status_field("standby_applied")
            self.set_mirror("off")
        self.stop(p["primary"])  # reaps the killed process
        self.pair["primary"] = None
        res["backup_exit"] = self.stop(p["backup"])
        shutil.rmtree(p["arb"], ignore_errors=True)
        self.pair = None
        return res

    def run(self) -> dict:
        t_start = time.monotonic()
        result = {"quick": self.quick, "parameters": self.p}
        log("kernel reference servers on 10.0.0.200 (ns b)")
        self.start_kernel_servers()
        if self.args.synflood == "only":
            log("ftap solo (10.0.0.101, ns b) and replicated pair (10.0.0.100)")
            self.start_solo()
            self.start_pair("flood")
            result["synflood"] = self.synflood_phase()
            result["pair_exit"] = self.stop_pair()
            result["solo_exit"] = self.stop(self.solo_pid)
            result["elapsed_s"] = round(time.monotonic() - t_start, 1)
            return result
        if self.args.loss == "only":
            log("ftap solo (10.0.0.101, ns b)" + ("" if self.args.loss_no_pair else " and replicated pair (10.0.0.100)"))
            self.start_solo()
            if not self.args.loss_no_pair:
                self.start_pair("loss")
            result["loss"] = self.loss_phase()
            result["pair_exit"] = self.stop_pair()
            result["solo_exit"] = self.stop(self.solo_pid)
            result["elapsed_s"] = round(time.monotonic() - t_start, 1)
            return result
        log("ftap solo (10.0.0.101, ns b) and replicated pair (10.0.0.100, primary ns a, backup ns b)")
        self.start_solo()
        self.start_pair("main")
        result["memory"] = self.memory_phase()
        keys = ["lat_kernel_echo", "lat_solo_echo", "lat_pair_echo", "lat_solo_counter", "lat_pair_counter",
                "log_ping", "log_tcp_rtt", "bulk_iperf_offload_on", "bulk_iperf_offload_off", "bulk_kernel_echo",
                "bulk_solo_discard_offload_off", "bulk_solo_discard", "bulk_pair_discard", "bulk_solo_echo", "bulk_pair_echo",
                "udp_kernel", "udp_solo", "udp_pair"]
        reps = {k: [] for k in keys}
        for i in range(self.p["reps"]):
            self.rep(i, reps)
        result["runs"] = reps
        if self.args.loss == "on":
            result["loss"] = self.loss_phase()
        if self.args.synflood == "on":
            result["synflood"] = self.synflood_phase()
        mem = result["memory"]
        mem["solo_after_bench"] = self.rss_kib(self.solo_pid)
        mem["primary_after_bench"] = self.rss_kib(self.pair["primary"])
        mem["backup_after_bench"] = self.rss_kib(self.pair["backup"])
        result["metrics_primary"] = parse_metrics(self.metrics(self.topo.node_a, 7410))
        result["metrics_backup"] = parse_metrics(self.metrics(self.topo.node_b, 7410))
        result["metrics_solo"] = parse_metrics(self.metrics(self.topo.node_b, 7411))
        result["pair_exit"] = self.stop_pair()
        result["solo_exit"] = self.stop(self.solo_pid)
        self.solo_pid = None
        log(f"failover: {self.p['failover_trials']} SIGKILLs of the primary under "
            f"{self.p['failover_clients']} INCR streams")
        result["failover"] = self.failover_phase()
        if self.p["failover_mirror"]:
            log(f"failover with mirroring (netns.sh mirror a): {self.p['failover_trials']} SIGKILLs")
            result["failover_mirror"] = self.failover_phase(mirror=True)
        result["elapsed_s"] = round(time.monotonic() - t_start, 1)
        return result


# --- statistics and report ----------------------------------------------------------

def pctl(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    i = int(round(p * (len(xs) - 1)))
    return xs[min(i, len(xs) - 1)]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def parse_metrics(text: str) -> dict:
    """A few figures from a Prometheus text page: plain samples by name{labels},
    and the output hold time histogram summarised as count/sum/approximate median and p99."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
        except ValueError:
            continue
    out = {k: v for k, v in samples.items()
           if not k.startswith("ftap_output_hold_seconds") and k.startswith("ftap_")}
    buckets = sorted((float(re.search(r'le="([^"]+)"', k).group(1).replace("+Inf", "inf")), v)
                     for k, v in samples.items() if k.startswith("ftap_output_hold_seconds_bucket"))
    count = samples.get("ftap_output_hold_seconds_count")
    if buckets and count:
        def q(p):
            for le, c in buckets:
                if c >= p * count:
                    return le
            return None
        out["output_hold"] = {"count": count, "mean_us": round(samples.get("ftap_output_hold_seconds_sum", 0)
                                                                / count * 1e6, 1),
                              "median_le_us": (q(0.5) or 0) * 1e6, "p99_le_us": (q(0.99) or 0) * 1e6}
    return out


def summarise(res: dict) -> dict:
    R = res["runs"]
    s = {}

    def lat(key):
        return {"median_us": round(med([r["median_us"] for r in R[key]]), 1),
                "p99_us": round(med([r["p99_us"] for r in R[key]]), 1)}
    for k in ("lat_kernel_echo", "lat_solo_echo", "lat_pair_echo", "lat_solo_counter", "lat_pair_counter",
              "log_ping", "log_tcp_rtt"):
        s[k] = lat(k)
    for k in ("bulk_iperf_offload_on", "bulk_iperf_offload_off", "bulk_kernel_echo", "bulk_solo_discard_offload_off",
              "bulk_solo_discard", "bulk_pair_discard", "bulk_solo_echo", "bulk_pair_echo"):
        s[k] = {"mbit_s": round(med([r["mbit_s"] for r in R[k]]), 1)}
    for k in ("udp_kernel", "udp_solo", "udp_pair"):
        s[k] = {"pps": round(med([r["pps"] for r in R[k]])),
                "lost": sum(r["lost"] for r in R[k])}
    for k, runs in R.items():
        if k not in s or not runs:
            continue
        cpu = {}
        for name in runs[0].get("daemon_cpu_pct", {}):
            cpu[name] = round(med([r["daemon_cpu_pct"].get(name) for r in runs]), 1)
        if cpu:
            s[k]["daemon_cpu_pct"] = cpu
        if "client_cpu_pct" in runs[0]:
            s[k]["client_cpu_pct"] = round(med([r.get("client_cpu_pct") for r in runs]), 1)
        holds = [r["output_hold"]["mean_us"] for r in runs if r.get("output_hold")]
        if holds:
            s[k]["output_hold_mean_us"] = round(med(holds), 1)
            s[k]["output_hold_median_le_us"] = med([r["output_hold"]["median_le_us"] for r in runs
                                                    if r.get("output_hold")])
    # Issue 14: system calls per MB moved and CPU per Gbit/s, per daemon, for the bulk runs.
    for k in ("bulk_solo_discard", "bulk_pair_discard", "bulk_solo_echo", "bulk_pair_echo",
              "bulk_solo_discard_offload_off"):
        per_mb, cpu_per_gbit = {}, {}
        for name in R[k][0].get("daemon_syscalls", {}) if R[k] else {}:
            per_mb[name] = round(med([r["daemon_syscalls"][name] / max(1e-9, r["sent"] / 1e6) for r in R[k]
                                      if name in r.get("daemon_syscalls", {})]), 1)
        for name in R[k][0].get("daemon_cpu_pct", {}) if R[k] else {}:
            cpu_per_gbit[name] = round(med([r["daemon_cpu_pct"][name] / max(1e-9, r["mbit_s"] / 1000) for r in R[k]]), 1)
        if per_mb:
            s[k]["syscalls_per_mb"] = per_mb
        if cpu_per_gbit:
            s[k]["cpu_pct_per_gbit_s"] = cpu_per_gbit
    # Log overhead from the replicated discard runs (bytes seen on logA in the primary's namespace).
    lo = []
    for r in R["bulk_pair_discard"] + R["bulk_pair_echo"]:
        d = r["link_delta"]
        inbound_payload = r["sent"]
        inbound_frames = d["tapA.tx_bytes"]  # the kernel's tx on the TAP = frames into ftap
        lo.append({"mode": r["mode"],
                   "log_bytes_per_payload_byte": d["logA.tx_bytes"] / inbound_payload,
                   "log_bytes_per_frame_byte": d["logA.tx_bytes"] / inbound_frames,
                   "ack_bytes_per_payload_byte": d["logA.rx_bytes"] / inbound_payload,
                   "ack_packets_per_inbound_frame": d["logA.rx_packets"] / max(1, d["tapA.tx_packets"]),
                   "log_packets_per_inbound_frame": d["logA.tx_packets"] / max(1, d["tapA.tx_packets"]),
                   "inbound_frames": d["tapA.tx_packets"], "log_tx_bytes": d["logA.tx_bytes"],
                   "ack_rx_bytes": d["logA.rx_bytes"]})
    for mode in ("discard", "echo"):
        rows = [x for x in lo if x["mode"] == mode]
        s[f"log_overhead_{mode}"] = {k: round(med([x[k] for x in rows]), 4)
                                     for k in rows[0] if k != "mode"} if rows else None
    # Ratios and differences are taken within each repetition (the runs of one
    # repetition are seconds apart, under the same background load) and then
    # the median over repetitions is reported.
    def paired(a, b, field, op):
        vals = [op(x[field], y[field]) for x, y in zip(R[a], R[b])]
        return round(med(vals), 2) if vals else None
    div = lambda x, y: x / y  # noqa: E731
    sub = lambda x, y: x - y  # noqa: E731
    s["paired"] = {
        "lat_counter_repl_over_solo": paired("lat_pair_counter", "lat_solo_counter", "median_us", div),
        "lat_counter_added_us": paired("lat_pair_counter", "lat_solo_counter", "median_us", sub),
        "lat_echo_repl_over_solo": paired("lat_pair_echo", "lat_solo_echo", "median_us", div),
        "lat_echo_solo_over_kernel": paired("lat_solo_echo", "lat_kernel_echo", "median_us", div),
        "bulk_discard_repl_over_solo": paired("bulk_pair_discard", "bulk_solo_discard", "mbit_s", div),
        "bulk_echo_repl_over_solo": paired("bulk_pair_echo", "bulk_solo_echo", "mbit_s", div),
        "bulk_solo_over_kernel_offload_off": paired("bulk_solo_discard_offload_off", "bulk_iperf_offload_off",
                                                    "mbit_s", div),
        "udp_repl_over_solo": paired("udp_pair", "udp_solo", "pps", div),
        # Issue 14: with TAP offloads, against the kernel with its offloads on.
        "bulk_solo_discard_over_iperf": paired("bulk_solo_discard", "bulk_iperf_offload_on", "mbit_s", div),
        "bulk_solo_echo_over_kernel_echo": paired("bulk_solo_echo", "bulk_kernel_echo", "mbit_s", div),
        "udp_solo_over_kernel": paired("udp_solo", "udp_kernel", "pps", div),
    }
    s["paired"]["added_minus_log_rtt_us"] = round(med(
        [x["median_us"] - y["median_us"] - z["median_us"]
         for x, y, z in zip(R["lat_pair_counter"], R["lat_solo_counter"], R["log_ping"])]), 1)
    s["failover"] = failover_summary(res["failover"])
    if res.get("failover_mirror"):
        s["failover_mirror"] = failover_summary(res["failover_mirror"])
    return s


def failover_summary(fo: list[dict]) -> dict:
    stalls = [c["max_stall_ms"] for t in fo for c in t["clients"]]
    kstalls = [c["kill_stall_ms"] for t in fo for c in t["clients"]]
    garps = [t["kill_to_garp_ms"] for t in fo if t["kill_to_garp_ms"] is not None]
    return {
        "trials": len(fo),
        "stall_median_ms": round(med(stalls), 1) if stalls else None,
        "stall_max_ms": round(max(stalls), 1) if stalls else None,
        "kill_stall_median_ms": round(med(kstalls), 1) if kstalls else None,
        "kill_stall_max_ms": round(max(kstalls), 1) if kstalls else None,
        "garp_median_ms": round(med(garps), 1) if garps else None,
        "garp_max_ms": round(max(garps), 1) if garps else None,
        "garp_missing": sum(1 for t in fo if t["kill_to_garp_ms"] is None),
        "lost": sum(t["lost"] for t in fo),
        "duplicated": sum(t["duplicated"] for t in fo),
        "resets": sum(t["resets"] for t in fo),
        "errors": sum(t["errors"] for t in fo),
        "not_live": sum(1 for t in fo if not t["backup_went_live"]),
        "requests": sum(t["total"] for t in fo),
        "client_rto": sum(t.get("client_tcp", {}).get("TcpExtTCPTimeouts", 0) for t in fo),
        "trials_with_client_rto": sum(1 for t in fo if t.get("client_tcp", {}).get("TcpExtTCPTimeouts", 0) > 0),
        "client_loss_probes": sum(t.get("client_tcp", {}).get("TcpExtTCPLossProbes", 0) for t in fo),
        "standby_applied": sum(t.get("standby_applied") or 0 for t in fo),
    }


def targets(s: dict) -> list[dict]:
    """The targets of issues 6 and 14. Ratios are medians of per-repetition ratios."""
    t = []
    q = s["paired"]

    def add(name, value, goal, ok, detail=""):
        t.append({"target": name, "value": value, "goal": goal, "met": bool(ok), "detail": detail})
    r = q["lat_counter_repl_over_solo"]
    add("replicated/solo median INCR latency", r, "<= 1.5", r <= 1.5,
        f"{s['lat_pair_counter']['median_us']} / {s['lat_solo_counter']['median_us']} us")
    added, over = q["lat_counter_added_us"], q["added_minus_log_rtt_us"]
    add("added latency of replication", f"{added:.1f} us", "<= log RTT + 20 us", over <= 20,
        f"added - log-link ping RTT = {over:+.1f} us; ping RTT median {s['log_ping']['median_us']} us, "
        f"TCP round trip on the log link {s['log_tcp_rtt']['median_us']} us")
    r = q["bulk_discard_repl_over_solo"]
    add("replicated/solo bulk, receive (discard)", r, ">= 0.8", r >= 0.8,
        f"{s['bulk_pair_discard']['mbit_s']} / {s['bulk_solo_discard']['mbit_s']} Mbit/s")
    r = q["bulk_echo_repl_over_solo"]
    add("replicated/solo bulk, transmit (echo)", r, ">= 0.9", r >= 0.9,
        f"{s['bulk_pair_echo']['mbit_s']} / {s['bulk_solo_echo']['mbit_s']} Mbit/s")
    r = q["bulk_solo_over_kernel_offload_off"]
    add("solo bulk / kernel, offloads off", r, ">= 0.5", r >= 0.5,
        f"ftap discard {s['bulk_solo_discard_offload_off']['mbit_s']} / iperf3 "
        f"{s['bulk_iperf_offload_off']['mbit_s']} Mbit/s, tso/gso/gro off on the client path for both")
    r = q["bulk_solo_discard_over_iperf"]
    add("solo bulk receive / kernel, offloads on", r, ">= 0.5 (issue 14)", r >= 0.5,
        f"ftap discard {s['bulk_solo_discard']['mbit_s']} / iperf3 {s['bulk_iperf_offload_on']['mbit_s']} Mbit/s")
    r = q["bulk_solo_echo_over_kernel_echo"]
    add("solo bulk echo / kernel echo, offloads on", r, ">= 0.5 (issue 14)", r >= 0.5,
        f"ftap echo {s['bulk_solo_echo']['mbit_s']} / kernel echo {s['bulk_kernel_echo']['mbit_s']} Mbit/s; "
        f"an echo transmits what it receives")
    r = q["udp_repl_over_solo"]
    add("UDP echo replicated/solo", r, ">= 0.9 (issue 14)", r >= 0.9,
        f"{s['udp_pair']['pps']} / {s['udp_solo']['pps']} packets/s")
    f = s["failover"]
    add("failover stall median", f"{f['stall_median_ms']} ms", "<= 150 ms",
        f["stall_median_ms"] is not None and f["stall_median_ms"] <= 150, f"{f['trials']} trials")
    add("failover stall max", f"{f['stall_max_ms']} ms", "<= 400 ms",
        f["stall_max_ms"] is not None and f["stall_max_ms"] <= 400, f"{f['trials']} trials")
    bad = f["lost"] + f["duplicated"] + f["resets"] + f["errors"] + f["not_live"]
    add("failover lost/duplicated/resets", f"{f['lost']}/{f['duplicated']}/{f['resets']}", "0/0/0",
        bad == 0 and f["trials"] > 0,
        f"{f['requests']} requests; other errors {f['errors']}, takeovers missing {f['not_live']}")
    if s.get("failover_mirror"):
        f = s["failover_mirror"]
        add("failover stall max, switch mirroring", f"{f['stall_max_ms']} ms", "<= 50 ms",
            f["stall_max_ms"] is not None and f["stall_max_ms"] <= 50,
            f"{f['trials']} trials; client loss probes {f['client_loss_probes']}, RTOs {f['client_rto']}")
        bad = f["lost"] + f["duplicated"] + f["resets"] + f["errors"] + f["not_live"]
        add("failover lost/duplicated/resets, mirroring", f"{f['lost']}/{f['duplicated']}/{f['resets']}", "0/0/0",
            bad == 0 and f["trials"] > 0, f"{f['requests']} requests")
    return t


def loss_summary(res: dict) -> list[dict]:
    """Per loss rate and ftap mode (solo, pair): median Mbit/s of kernel and
    ftap in the same run, and their ratio."""
    rows = []
    for pct in res["parameters"]["loss_rates"]:
        k = res["loss"].get(f"kernel_{pct}", [])
        kc = res["loss"].get(f"kernel_cubic_{pct}", [])
        kcm = med([r["mbit_s"] for r in kc]) if kc else None
        for who in ("solo", "pair"):
            f = res["loss"].get(f"{who}_{pct}", [])
            if not k or not f:
                continue
            km, fm = med([r["mbit_s"] for r in k]), med([r["mbit_s"] for r in f])
            # Ratios within each repetition (kernel and ftap measured seconds apart).
            per = [fr["mbit_s"] / kr["mbit_s"] for kr, fr in zip(k, f) if kr["mbit_s"]]
            # What each server keeps of its own lossless rate (the 0 % row of the same run).
            k0, f0 = res["loss"].get("kernel_0", []), res["loss"].get(f"{who}_0", [])
            k0m = med([r["mbit_s"] for r in k0]) if k0 else None
            f0m = med([r["mbit_s"] for r in f0]) if f0 else None
            rows.append({"loss_pct": pct, "ftap": who, "kernel_mbit_s": km, "ftap_mbit_s": fm,
                         "ratio": round(fm / km, 3) if km else None,
                         "kernel_cubic_mbit_s": kcm, "ratio_cubic": round(fm / kcm, 3) if kcm else None,
                         "kernel_retained": round(km / k0m, 3) if k0m else None,
                         "ftap_retained": round(fm / f0m, 3) if f0m else None,
                         "ratio_min": round(min(per), 3) if per else None,
                         "ratio_max": round(max(per), 3) if per else None,
                         "kernel_range": [min(r["mbit_s"] for r in k), max(r["mbit_s"] for r in k)],
                         "ftap_range": [min(r["mbit_s"] for r in f), max(r["mbit_s"] for r in f)],
                         "kernel_seconds": med([r["seconds"] for r in k]),
                         "ftap_seconds": med([r["seconds"] for r in f]),
                         "ftap_failed": sum(1 for r in f if r["result"] != "ok"),
                         "kernel_failed": sum(1 for r in k if r["result"] != "ok"), "runs": len(f)})
    return rows


def fmt_flood_row(r: dict) -> str:
    def ms(xs, p):
        return f"{1000 * pctl(xs, p):.1f}" if xs else "-"
    cd, ca, rd = r.get("connect_during_s", []), r.get("connect_after_s", []), r.get("request_during_s", [])
    s = (f"hping3 sent {r.get('syns_sent')} SYNs; client connects during {len(cd)} (median {ms(cd, 0.5)} ms, "
         f"max {ms(cd, 1.0)}), after {len(ca)} (median {ms(ca, 0.5)} ms); requests during {len(rd)} "
         f"(median {ms(rd, 0.5)} ms, max {ms(rd, 1.0)}); failures {len(r.get('failures', []))}")
    if "segments_in" in r:
        s += f"; {r['segments_in']} segments reached the stack, {r['syncookies_sent']} cookies"
        if "syn_shed" in r:
            s += f", {r['syn_shed']} SYNs shed before logging"
        if r.get("protected_after") is not None and "log_bytes" in r:
            s += f", protected after: {r['protected_after']}"
    if "log_bytes" in r:
        secs = r.get("flood_seconds") or 1
        s += f"; log link {r['entries'] / secs:.0f} entries/s, {r['log_bytes'] / secs / 1e6:.2f} MB/s"
    return s


def fmt_synflood(res: dict) -> str:
    p = res["parameters"]
    L = [f"SYN flood (issue 13): hping3 --flood --rand-source -S for {p['synflood_seconds']} s at the echo port; "
         f"a client connects every 0.2 s and echoes 5 requests per connection"]
    for who in ("kernel", "solo", "pair"):
        if who in res.get("synflood", {}):
            L.append(f"  {who:6s} {fmt_flood_row(res['synflood'][who])}")
    return "\n".join(L)


def fmt_loss(res: dict) -> str:
    p = res["parameters"]
    cc = res["loss"].get("kernel_congestion_control", "?")
    L = [f"Loss (issue 13): {p['loss_bytes']} B echo, random loss on the client's switch port "
         f"({p['loss_direction']}), offloads off; median of {p['loss_reps']}; kernel = {cc} (this machine's "
         f"default), kernel CUBIC = the same echo with TCP_CONGESTION cubic; kept = this rate / the same "
         f"server's 0 % rate",
         f"  {'loss':>5s} {'ftap':>5s} {'kernel Mbit/s':>14s} {'ftap Mbit/s':>12s} {'ftap/kernel':>12s} "
         f"{'kernel s':>9s} {'ftap s':>8s} {'kept k/f':>11s}  per-run ratio min-max; ftap Mbit/s min-max; "
         f"kernel CUBIC Mbit/s, ftap/CUBIC"]
    rows = loss_summary(res)
    for r in rows:
        fail = f"  ({r['ftap_failed']} ftap / {r['kernel_failed']} kernel runs incomplete)" \
            if r["ftap_failed"] or r["kernel_failed"] else ""
        L.append(f"  {r['loss_pct']:>4d}% {r['ftap']:>5s} {r['kernel_mbit_s']:>14.2f} {r['ftap_mbit_s']:>12.2f} "
                 f"{r['ratio'] if r['ratio'] is not None else 'n/a':>12} {r['kernel_seconds']:>9.3f} "
                 f"{r['ftap_seconds']:>8.3f} "
                 f"{(str(r['kernel_retained']) + '/' + str(r['ftap_retained'])) if r.get('ftap_retained') else '-':>11s}  "
                 f"{r['ratio_min']}-{r['ratio_max']}; "
                 f"{r['ftap_range'][0]:.1f}-{r['ftap_range'][1]:.1f}"
                 + (f"; {r['kernel_cubic_mbit_s']:.1f}, {r['ratio_cubic']}" if r.get("kernel_cubic_mbit_s") else "")
                 + fail)
    for r in rows:
        if r["loss_pct"] == 3 and r["ratio"] is not None:
            L.append(f"  target (issue 13): {r['ftap']} echo at 3 % loss >= 0.5 of the kernel's: {r['ratio']} "
                     f"{'MET' if r['ratio'] >= 0.5 else 'NOT MET'}")
    return "\n".join(L)


def fmt_table(res: dict, s: dict, tg: list[dict]) -> str:
    p = res["parameters"]
    m = res["machine"]
    L = []
    W = 46

    def cpu(k):
        d = s[k].get("daemon_cpu_pct", {})
        parts = [f"{n[0].upper()}{v:.0f}" for n, v in d.items()]
        if "client_cpu_pct" in s[k]:
            parts.append(f"C{s[k]['client_cpu_pct']:.0f}")
        return " ".join(parts)

    def hold(k):
        h = s[k].get("output_hold_mean_us")
        return f"{h:.0f}" if h is not None else ""
    L.append(f"ftap benchmark  {m['date']}  {m['cores']} cores, kernel {m['kernel']}, "
             f"{'QUICK' if res['quick'] else 'full'} run ({p['reps']} repetition(s), {res['elapsed_s']} s)")
    L.append(f"{m['ftap_version']} ({m['git']}); CPUs {m.get('busy_pct_before')}% busy just before the run; "
             f"load average {' '.join(m['loadavg_start'])} at start, {' '.join(m.get('loadavg_end', []))} at end")
    if m.get("busy_pct_before", 0) > 15:
        L.append(f"WARNING: the machine was {m['busy_pct_before']}% busy before the run started: other load "
                 f"competes for the CPUs, figures are noisy")
    L.append("CPU column: percent of one core used during the run by S(olo)/P(rimary)/B(ackup) and C(lient);")
    L.append("hold: mean time the primary held an output frame for the backup's ack (us).")
    L.append("Figures are medians over repetitions; ratios are medians of per-repetition ratios (each")
    L.append("repetition runs kernel, solo and replicated seconds apart, under the same background load).")
    L.append("")
    L.append(f"Request latency: one TCP connection, 'INCR\\n' (5 bytes), {p['lat_requests']} round trips x {p['reps']}")
    L.append(f"  {'':{W}s} {'median':>10s} {'p99':>10s}  {'CPU %':<14s} {'hold':>5s}")
    rows = [("kernel echo (C server on 10.0.0.200)", "lat_kernel_echo"),
            ("ftap echo, solo", "lat_solo_echo"),
            ("ftap echo, replicated", "lat_pair_echo"),
            ("ftap counter INCR, solo", "lat_solo_counter"),
            ("ftap counter INCR, replicated", "lat_pair_counter"),
            (f"log link ping RTT ({p['ping_count']} x {p['ping_interval']} s)", "log_ping"),
            ("log link TCP round trip (same client, a -> b)", "log_tcp_rtt")]
    for label, k in rows:
        L.append(f"  {label:{W}s} {s[k]['median_us']:>7.1f} us {s[k]['p99_us']:>7.1f} us  {cpu(k):<14s} {hold(k):>5s}")
    q = s["paired"]
    L.append(f"  {'added by replication (INCR repl - solo)':{W}s} {q['lat_counter_added_us']:>7.1f} us"
             f"   (repl/solo {q['lat_counter_repl_over_solo']:.2f}; echo repl/solo "
             f"{q['lat_echo_repl_over_solo']:.2f}, solo/kernel {q['lat_echo_solo_over_kernel']:.2f})")
    L.append("")
    L.append(f"Bulk TCP: one connection, {p['bulk_seconds']} s (iperf3 {p['iperf_seconds']} s), "
             f"median of {p['reps']}, Mbit/s")
    for label, k in (("kernel iperf3, offloads on", "bulk_iperf_offload_on"),
                     ("kernel iperf3, offloads off (tso/gso/gro)", "bulk_iperf_offload_off"),
                     ("ftap discard solo, offloads off", "bulk_solo_discard_offload_off"),
                     ("kernel echo (C server), through", "bulk_kernel_echo")):
        L.append(f"  {label:{W}s} {s[k]['mbit_s']:>10.1f}  {cpu(k)}")
    L.append(f"  {'':{W}s} {'solo':>10s} {'replicated':>11s} {'repl/solo':>10s}  "
             f"{'CPU % solo | repl':<22s} {'hold':>5s}")
    for label, a, b, rk in (("ftap discard (receive)", "bulk_solo_discard", "bulk_pair_discard",
                             "bulk_discard_repl_over_solo"),
                            ("ftap echo (through)", "bulk_solo_echo", "bulk_pair_echo", "bulk_echo_repl_over_solo")):
        x, y = s[a]["mbit_s"], s[b]["mbit_s"]
        L.append(f"  {label:{W}s} {x:>10.1f} {y:>11.1f} {s['paired'][rk]:>10.2f}  "
                 f"{cpu(a) + ' | ' + cpu(b):<22s} {hold(b):>5s}")
    def per(k, field):
        d = s[k].get(field, {})
        return " ".join(f"{n[0].upper()}{v:g}" for n, v in d.items()) or "-"
    L.append(f"  system calls per MB sent, CPU % per Gbit/s (issue 14; S(olo)/P(rimary)/B(ackup)):")
    for label, k in (("discard solo, offloads off on the client path", "bulk_solo_discard_offload_off"),
                     ("discard solo", "bulk_solo_discard"), ("discard replicated", "bulk_pair_discard"),
                     ("echo solo", "bulk_solo_echo"), ("echo replicated", "bulk_pair_echo")):
        L.append(f"    {label:{W - 2}s} {per(k, 'syscalls_per_mb'):>18s}   {per(k, 'cpu_pct_per_gbit_s')}")
    L.append("")
    L.append(f"UDP echo: {p['udp_size']}-byte datagrams, window {p['udp_window']}, {p['udp_seconds']} s, "
             f"median of {p['reps']}")
    L.append(f"  {'':{W}s} {'packets/s':>10s} {'lost':>8s}  {'CPU %':<14s} {'hold':>5s}")
    for label, k in (("kernel (C server)", "udp_kernel"), ("ftap udp-echo, solo", "udp_solo"),
                     ("ftap udp-echo, replicated", "udp_pair")):
        L.append(f"  {label:{W}s} {s[k]['pps']:>10d} {s[k]['lost']:>8d}  {cpu(k):<14s} {hold(k):>5s}")
    L.append(f"  {'replicated/solo, solo/kernel':{W}s} {s['paired']['udp_repl_over_solo']:>10.2f} "
             f"{s['paired']['udp_solo_over_kernel']:>8.2f}")
    L.append("")
    for key, title in (("failover", ""), ("failover_mirror", ", the switch mirroring the primary's port to the backup's")):
        if key not in s:
            continue
        f = s[key]
        L.append(f"Failover: {f['trials']} SIGKILLs of the primary, {p['failover_clients']} clients streaming INCR "
                 f"(fresh pair per trial){title}")
        L.append(f"  {'longest stall per client: median / max':{W}s} {f['stall_median_ms']} / {f['stall_max_ms']} ms")
        L.append(f"  {'  of which the gap spanning the kill':{W}s} {f['kill_stall_median_ms']} / "
                 f"{f['kill_stall_max_ms']} ms")
        L.append(f"  {'kill -> first GARP on br0: median / max':{W}s} {f['garp_median_ms']} / {f['garp_max_ms']} ms"
                 + (f"  ({f['garp_missing']} trials without GARP)" if f["garp_missing"] else ""))
        L.append(f"  {'requests; lost / duplicated / resets':{W}s} {f['requests']}; {f['lost']} / {f['duplicated']} / "
                 f"{f['resets']}  (other errors {f['errors']}, no takeover {f['not_live']})")
        L.append(f"  {'client TCP loss probes / RTOs (all trials)':{W}s} {f['client_loss_probes']} / {f['client_rto']}  "
                 f"(trials with an RTO: {f['trials_with_client_rto']})")
        if key == "failover_mirror":
            L.append(f"  {'frames applied from the standby buffer':{W}s} {f['standby_applied']}")
        L.append("")
    L.append("Log overhead: logA counters in the primary's namespace around the replicated bulk runs")
    for mode in ("discard", "echo"):
        o = s[f"log_overhead_{mode}"]
        if o:
            L.append(f"  {mode + ': log bytes per inbound payload byte':{W}s} {o['log_bytes_per_payload_byte']:>10.3f}"
                     f"  (per inbound frame byte {o['log_bytes_per_frame_byte']:.3f})")
            L.append(f"  {mode + ': ack bytes per inbound payload byte':{W}s} {o['ack_bytes_per_payload_byte']:>10.4f}"
                     f"  (acks per inbound frame {o['ack_packets_per_inbound_frame']:.3f}; "
                     f"log packets per frame {o['log_packets_per_inbound_frame']:.3f})")
    L.append("")
    mm = res["memory"]
    n = mm["connections"]

    def mib(k):
        v = mm.get(k)
        return f"{v / 1024:.1f} MiB" if v else "n/a"
    L.append(f"Memory (VmRSS)  {'idle':>10s} {f'{n} conns':>11s} {'after bench':>12s}   "
             f"(connections open: solo {mm.get('solo_tcp_connections_seen')}, "
             f"pair {mm.get('pair_tcp_connections_seen')})")
    for who in ("solo", "primary", "backup"):
        L.append(f"  {who:13s} {mib(who + '_idle'):>10s} {mib(f'{who}_{n}_conns'):>11s} "
                 f"{mib(who + '_after_bench'):>12s}")
    L.append("")
    if res.get("loss"):
        L.append(fmt_loss(res))
    if res.get("synflood"):
        L.append(fmt_synflood(res))
        L.append("")
    L.append("Targets (issues 6 and 14)")
    for t in tg:
        L.append(f"  {'MET    ' if t['met'] else 'NOT MET'}  {t['target']:40s} {str(t['value']):>10s}  "
                 f"(goal {t['goal']}; {t['detail']})")
    return "\n".join(L)


def busy_pct(seconds: float = 2.0) -> float:
    """Percent of all CPUs busy over the next `seconds` (from /proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total
    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return round(100.0 * (1 - (i1 - i0) / max(1, t1 - t0)), 1)


def machine_info(ftap: str) -> dict:
    def cmd(*a):
        try:
            return subprocess.run(list(a), capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else ""
    except OSError:
        pass
    git = cmd("git", "-C", REPO, "rev-parse", "--short", "HEAD")
    if cmd("git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"):
        git += " + uncommitted changes"
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(), "nproc": cmd("nproc"), "kernel": cmd("uname", "-r"), "cpu": cpu,
            "ftap_version": cmd(ftap, "--version"), "git": git, "loadavg_start": load,
            "busy_pct_before": busy_pct()}


def update_doc(res: dict, table: str):
    """Replaces the block between the bench:begin/bench:end markers of
    BENCHMARKS.md with this run's date, machine, command and table."""
    path = os.path.join(REPO, "BENCHMARKS.md")
    with open(path) as f:
        doc = f.read()
    m = re.search(r"(<!-- bench:begin[^>]*-->\n)(.*?)(<!-- bench:end -->)", doc, re.S)
    if not m:
        print("BENCHMARKS.md has no bench:begin/bench:end block; not updated", file=sys.stderr)
        return
    mi = res["machine"]
    busy = mi.get("busy_pct_before", 0)
    note = (f"\n**The machine was {busy}% busy just before this run** (other processes); figures are noisy.\n"
            if busy > 15 else "")
    block = (f"Date: {mi['date']}. Machine: {mi['nproc']} cores (`nproc`), kernel {mi['kernel']} (`uname -r`), "
             f"{mi['cpu']}. Command: `{res['command']}`. ftap {mi['ftap_version']} at {mi['git']}.\n{note}\n"
             f"```\n{table}\n```\n")
    doc = doc[:m.start(2)] + block + doc[m.end(2):]
    with open(path, "w") as f:
        f.write(doc)
    print(f"updated {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--ftap", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--trials", type=int, default=0)
    ap.add_argument("--command", default="scripts/bench")
    ap.add_argument("--update-doc", action="store_true",
                    help="rewrite the marked block of BENCHMARKS.md with this run's table")
    ap.add_argument("--ftap-arg", action="append", default=[],
                    help="extra flag for every `ftap run` (repeat; recorded in the JSON)")
    ap.add_argument("--loss", choices=["on", "off", "only"], default="on",
                    help="the loss section (issue 13): with the rest, skipped, or alone")
    ap.add_argument("--loss-rates", default="0,1,3,8",
                    help="loss percentages, comma-separated (0: the same echo without loss, the ceiling "
                         "each server's lossy rates are compared with)")
    ap.add_argument("--loss-timeout", type=float, default=300, help="give up on one transfer after this many seconds")
    ap.add_argument("--loss-no-pair", action="store_true", help="loss section: ftap solo only, no replicated pair")
    ap.add_argument("--loss-reps", type=int, default=0, help="runs per loss rate and server (default 3, quick 1)")
    ap.add_argument("--loss-bytes", type=int, default=32_000_000,
                    help="bytes echoed per loss transfer (1 MB lasted 6-30 ms: one timeout decided a median; "
                         "8 MB took the kernel 20-40 ms, and its per-run rates varied 10x)")
    ap.add_argument("--synflood", choices=["on", "off", "only"], default="on",
                    help="the SYN-flood row (issue 13): with the rest, skipped, or alone")
    ap.add_argument("--synflood-seconds", type=float, default=5, help="length of each flood")
    ap.add_argument("--loss-direction", choices=["both", "up", "down"], default="both",
                    help="which way frames are dropped: both, up (client to server) or down")
    ap.add_argument("--realtime", action="store_true",
                    help="run the ftap daemons with chrt -f 10 (SCHED_FIFO)")
    args = ap.parse_args()
    args.rt_prefix = ["chrt", "-f", "10"] if args.realtime else []
    b = Bench(args)
    info = machine_info(args.ftap)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        res = b.run()
    except KeyboardInterrupt:
        print("bench.py: interrupted; stopping what it started", file=sys.stderr)
        sys.exit(130)
    except Exception:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"bench.py: failed; daemon and tool logs in {b.logdir}", file=sys.stderr)
        sys.exit(1)
    finally:
        try:
            b.offloads(True)
        except Exception as e:  # noqa: BLE001
            print(f"restoring offloads failed: {e}", file=sys.stderr)
        b.stop_all()
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().split()[:3]
    res["machine"] = info
    res["command"] = args.command
    res["ftap_extra_args"] = args.ftap_arg
    if args.synflood == "only":
        table = fmt_synflood(res)
        with open(os.path.join(args.out, "bench-synflood.json"), "w") as f:
            json.dump(res, f, indent=1)
        with open(os.path.join(args.out, "bench-synflood.txt"), "w") as f:
            f.write(table + "\n")
        print()
        print(table)
        return
    if args.loss == "only":
        res["loss_summary"] = loss_summary(res)
        table = fmt_loss(res)
        with open(os.path.join(args.out, "bench-loss.json"), "w") as f:
            json.dump(res, f, indent=1)
        with open(os.path.join(args.out, "bench-loss.txt"), "w") as f:
            f.write(table + "\n")
        print()
        print(table)
        return
    if res.get("loss"):
        res["loss_summary"] = loss_summary(res)
    res["summary"] = summarise(res)
    res["targets"] = targets(res["summary"])
    table = fmt_table(res, res["summary"], res["targets"])
    res["table"] = table
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, "bench.txt"), "w") as f:
        f.write(table + "\n")
    if args.update_doc:
        update_doc(res, table)
    print()
    print(table)
    print()
    print(f"JSON: {os.path.relpath(os.path.join(args.out, 'bench.json'), REPO)}")


if __name__ == "__main__":
    main()
