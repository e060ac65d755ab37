"""Helpers to run and observe an ftap primary/backup pair in the namespaces of
scripts/netns.sh. Python 3 standard library only; builds on ftaplib.

The driver normally runs inside the client namespace (``ip netns exec ${P}-c``);
daemons and captures are started with ``ip netns exec`` in their own
namespaces (``ip netns exec`` execs the command, so every pid kept here is the
pid of ftap or tcpdump itself). Admin requests (/status, /metrics) are made
from a socket created in the node's namespace (``socket_in_netns``).

What a test waits for comes from ``/status`` (JSON), not from log text.

Contents:
  * ``Daemon``: one ``ftap run`` process: log file, exit status, signals,
    admin endpoint (/metrics parsed, /status JSON, ``wait_status``), switchover
  * ``Pair``: the one launcher of daemons: node A in ${P}-a on tapA/brA and
    node B in ${P}-b, restartable in either role, a fresh arbiter directory,
    the standard appliance identity; ``start`` brings up a protected pair
  * ``Capture``: tcpdump in the switch namespace (br0 or one port, one direction)
  * pcap reading (frames are parsed by frames.parse_frame)
  * ``IncrLoad``: a thread running INCR back to back on one TCP connection,
    recording every value and its latency
  * ``UdpCounterClient``: ``<client> <seq> INCR|GET`` with same-seq retries
  * ``fdb_ports``, ``check_consecutive``

Environment:
  FTAP_RUN_BIN   the ftap binary (set by scripts/replication-test.sh)
  FTAP_PIDFILE   every process started here is appended to it ("pid name"),
                 so the shell can kill leftovers if this process dies
  FTAP_LOG_LEVEL daemon log level (default info)
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import ftaplib as L
from ftaplib import TestFailure, check

APPLIANCE_MAC = L.APPLIANCE_MAC
APPLIANCE_IP = L.APPLIANCE_IP
ISN_KEY = "00112233445566778899aabbccddeeff"  # the pair's shared secret (--secret)
# Requests that change anything (POST /switchover) need --admin-token-file's token.
ADMIN_TOKEN = "pair-tests-admin-token-0123456789"
PORT_COUNTER = 7000
PORT_ECHO = 7
PORT_UDP_COUNTER = 7001
LOG_PORT = 7400
ADMIN = "127.0.0.1:7410"

# The one log line the tests check for its own sake: a node that lost the
# epoch must tell the operator why it exits (exit status 2 is checked too).
LOST_RE = r"lost epoch"


def ftap_bin() -> str:
    b = os.environ.get("FTAP_RUN_BIN") or os.environ.get("FTAP_BIN")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", ".build-rep", "release", "ftap")
    b = os.path.abspath(b)
    if not os.access(b, os.X_OK):
        raise TestFailure(f"ftap binary {b} is not executable (set FTAP_RUN_BIN)")
    return b


def record_pid(pid: int, what: str):
    path = os.environ.get("FTAP_PIDFILE")
    if not path:
        return
    try:
        with open(path, "a") as f:
            f.write(f"{pid} {what}\n")
    except OSError:
        pass


def wall() -> float:
    return time.time()


# --- admin requests inside a node's namespace ------------------------------------

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_netns_lock = threading.Lock()


def socket_in_netns(ns: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket (TCP unless told) created in network namespace ``ns`` (the socket stays in
    it). Only the calling thread switches namespace, and back at once, so
    polling /status costs a millisecond instead of starting a process under
    ``ip netns exec`` every time."""
    with _netns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(target, _CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
                try:
                    return socket.socket(family, type)
                finally:
                    if _libc.setns(own, _CLONE_NEWNET) != 0:
                        # This thread would stay in the node's namespace: give up.
                        os.write(2, f"setns back to the driver's namespace failed: "
                                    f"{os.strerror(ctypes.get_errno())}\n".encode())
                        os._exit(70)
            finally:
                os.close(target)
        finally:
            os.close(own)


def http_in_netns(ns: str, addr: str, method: str, path: str, timeout: float = 3.0,
                  token: str | None = None) -> tuple[int, str]:
    """(status code, body) of one HTTP/1.0 request to addr (IP:PORT) in ns,
    with ``Authorization: Bearer token`` if given. Raises OSError if nothing
    listens there (yet)."""
    host, port = addr.rsplit(":", 1)
    s = socket_in_netns(ns)
    try:
        s.settimeout(timeout)
        s.connect((host, int(port)))
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        s.sendall(f"{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    first = head.split(b"\r\n", 1)[0].split()
    if len(first) < 2 or not first[1].isdigit():
        raise OSError(f"{method} {path} on {addr} in {ns}: malformed reply {data[:80]!r}")
    return int(first[1]), body.decode(errors="replace")


# --- one daemon --------------------------------------------------------------

class Daemon:
    """One ``ftap run`` process (one incarnation of node A or B) in a namespace.
    ``node`` is "A" or "B", ``label`` e.g. "A2" (second incarnation), ``name``
    e.g. "A2(backup)" for messages. Its facts come from ``/status`` of its
    --admin endpoint; its log file is for people and for the few checks that
    are about what it logs."""

    def __init__(self, node: str, label: str, role: str, ns: str, argv: list[str], log_path: str,
                 env: dict | None = None, admin: str | None = ADMIN, token_file: str | None = None):
        self.node, self.label, self.role = node, label, role
        self.name = f"{label}({role})"
        self.ns, self.argv, self.log_path = ns, argv, log_path
        self.env = env or {}
        self.admin = admin
        self.token_file = token_file
        self.proc: subprocess.Popen | None = None
        self.exit_wall: float | None = None
        self.started_at = 0.0
        self.stopped = False  # SIGSTOPped by us

    def start(self):
        env = dict(os.environ)
        env.pop("FTAP_FAULT", None)
        env.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.logf.write(f"=== {time.strftime('%H:%M:%S')} ip netns exec {self.ns} "
                        f"{' '.join(self.argv)} env={self.env}\n".encode())
        self.logf.flush()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        record_pid(self.proc.pid, f"ftap-{self.label}")
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is not None and self.exit_wall is None:
            self.exit_wall = wall()
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.poll() is None

    def send_signal(self, sig: int):
        if self.alive():
            os.kill(self.proc.pid, sig)
            if sig == signal.SIGSTOP:
                self.stopped = True
            elif sig == signal.SIGCONT:
                self.stopped = False

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status (negative: killed by that signal), None if still running."""
        dl = L.Deadline(timeout)
        while not dl.expired():
            rc = self.poll()
            if rc is not None:
                return rc
            time.sleep(0.02)
        return self.poll()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signals (continuing it first if stopped) and waits; SIGKILL after timeout.
        Returns the exit status, or None if it had to be SIGKILLed."""
        if self.proc is None:
            return None
        if self.stopped:
            self.send_signal(signal.SIGCONT)
        rc = L.stop_process(self.proc, sig, timeout)
        self.poll()
        return rc

    def kill(self):
        """SIGKILL, and reap."""
        if self.proc is not None:
            L.stop_process(self.proc, signal.SIGKILL, 5)
        self.poll()

    def close(self):
        self.kill()
        try:
            self.logf.close()
        except Exception:  # noqa: BLE001
            pass

    # the log (for people, and for checks about logging)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def search(self, regex: str):
        return re.search(regex, self.log())

    def findall(self, regex: str) -> list:
        return re.findall(regex, self.log())

    def tail(self, n: int = 12) -> str:
        return "\n".join("    | " + x for x in self.log().splitlines()[-n:])

    # admin endpoint

    def admin_request(self, method: str, path: str, timeout: float = 3.0) -> tuple[int, str]:
        """(status code, body); OSError if the endpoint does not answer."""
        check(self.admin, f"{self.name} runs without --admin")
        return http_in_netns(self.ns, self.admin, method, path, timeout,
                             token=ADMIN_TOKEN if self.token_file and method != "GET" else None)

    def admin_get(self, path: str, timeout: float = 3.0) -> str:
        try:
            code, body = self.admin_request("GET", path, timeout)
        except OSError as e:
            raise TestFailure(f"{self.name}: GET {path} on {self.admin} in {self.ns} failed: {e}") from None
        check(code == 200, f"{self.name}: GET {path}: HTTP {code}: {body.strip()[:300]}")
        return body

    def metrics(self) -> dict:
        return parse_prometheus(self.admin_get("/metrics"))

    def status(self) -> dict:
        return json.loads(self.admin_get("/status"))

    def wait_status(self, what: str, timeout: float, cond=None, poll: float = 0.005,
                    allow_exit: bool = False, **want) -> tuple[dict, float]:
        """Polls /status until every field named in ``want`` has that value
        and ``cond(status)`` (if given) is true. Returns the status and the
        monotonic time it was read. Fails if the daemon exits first (unless
        allow_exit) or on timeout, showing the last status and log lines."""
        dl = L.Deadline(timeout)
        last: dict | str = "no answer yet"
        while True:
            if not allow_exit and not self.alive():
                raise TestFailure(f"{self.name}: exited with status {self.poll()} before /status showed {what}; "
                                  f"last /status: {last}; last log lines:\n{self.tail()}")
            try:
                code, body = self.admin_request("GET", "/status", timeout=max(0.5, min(3.0, dl.remaining())))
                if code == 200:
                    st = json.loads(body)
                    last = st
                    if all(st.get(k) == v for k, v in want.items()) and (cond is None or cond(st)):
                        return st, time.monotonic()
                else:
                    last = f"HTTP {code}"
            except (OSError, ValueError) as e:
                last = f"no answer ({e})"
            if dl.expired():
                raise TestFailure(f"{self.name}: /status did not show {what} within {timeout}s; last /status: "
                                  f"{last}; last log lines:\n{self.tail()}")
            time.sleep(poll)

    def switchover(self) -> str:
        """`ftap switchover --admin ADDR` in the node's namespace (the operator's tool)."""
        argv = [ftap_bin(), "switchover", "--admin", self.admin]
        if self.token_file:
            argv += ["--admin-token-file", self.token_file]
        cp = L.run(argv, ns=self.ns, timeout=10, check=False)
        if cp.returncode != 0:
            raise TestFailure(f"{self.name}: ftap switchover failed (exit {cp.returncode}): "
                              f"{(cp.stdout + cp.stderr).strip()[-400:]}")
        return cp.stdout.strip()


def parse_prometheus(text: str) -> dict:
    """{'name' or 'name{labels}': float} from Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def brief(st: dict) -> str:
    """One line of the /status fields the tests look at."""
    return (f"{st.get('node')}: role {st.get('role')}, mode {st.get('mode')}, epoch {st.get('epoch')}, "
            f"live {st.get('live')}, in_sync {st.get('in_sync')}, applied {st.get('applied_index')}")


# --- the pair ------------------------------------------------------------------

class Pair:
    """Node A (${P}-a: tapA on brA, log link 192.168.77.1) and node B (${P}-b),
    one fresh arbiter directory under out_dir, and the standard appliance
    identity. Nodes can be killed and started again in either role; every
    incarnation logs to out_dir/<node><n>.log (A1.log, A2.log, B1.log...) and
    runs with --admin on 127.0.0.1:7410 inside its own namespace. ``a`` and
    ``b`` are the latest incarnations of A and B."""

    def __init__(self, topo: L.Topology, out_dir: str, heartbeat_ms: int | None = None,
                 failover_timeout_ms: int | None = None, extra: list[str] | None = None,
                 arbiter: str | None = None):
        """``arbiter``: an --arbiter URL (e.g. etcd://...) instead of the fresh
        file:out_dir/arbiter directory."""
        self.topo = topo
        self.arbiter = arbiter
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        for f in os.listdir(out_dir):
            if re.match(r"[AB]\d+\.log$", f):
                os.unlink(os.path.join(out_dir, f))
        self.arb = os.path.join(out_dir, "arbiter")
        os.makedirs(self.arb, exist_ok=True)
        for f in os.listdir(self.arb):
            os.unlink(os.path.join(self.arb, f))
        self.bin = ftap_bin()
        self.token_file = os.path.join(out_dir, "admin-token")
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (ADMIN_TOKEN + "\n").encode())
        os.close(fd)
        os.chmod(self.token_file, 0o600)
        self.heartbeat_ms = heartbeat_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.extra = extra or []
        self.incarnations = {"A": 0, "B": 0}
        self.nodes: list[Daemon] = []
        self.latest: dict[str, Daemon] = {}
        kill_leftovers(topo)
        self.cleanup_key = L.register_cleanup("pair daemons", self.close)

    @property
    def a(self) -> Daemon | None:
        return self.latest.get("A")

    @property
    def b(self) -> Daemon | None:
        return self.latest.get("B")

    def common(self) -> list[str]:
        c = ["--mac", APPLIANCE_MAC, "--ip", f"{APPLIANCE_IP}/24",
             "--service", f"counter:{PORT_COUNTER}", "--service", f"echo:{PORT_ECHO}",
             "--service", f"udp-counter:{PORT_UDP_COUNTER}",
             "--secret", ISN_KEY, "--arbiter", self.arbiter or f"file:{self.arb}", "--admin", ADMIN,
             "--admin-token-file", self.token_file,
             "--log-level", os.environ.get("FTAP_LOG_LEVEL", "info")]
        if self.heartbeat_ms is not None:
            c += ["--heartbeat-ms", str(self.heartbeat_ms)]
        if self.failover_timeout_ms is not None:
            c += ["--failover-timeout-ms", str(self.failover_timeout_ms)]
        return c + self.extra

    def argv(self, node: str, role: str, extra: list[str]) -> list[str]:
        if node == "A":
            link = ["--tap", "tapA", "--bridge", "brA", "--listen", f"{L.LOG_IP_A}:{LOG_PORT}",
                    "--peer", f"{L.LOG_IP_B}:{LOG_PORT}"]
        else:
            link = ["--tap", "tapB", "--bridge", "brB", "--listen", f"{L.LOG_IP_B}:{LOG_PORT}",
                    "--peer", f"{L.LOG_IP_A}:{LOG_PORT}"]
        return [self.bin, "run", "--role", role] + link + self.common() + extra

    def start_node(self, node: str, role: str, env: dict | None = None, extra: list[str] | None = None,
                   argv: list[str] | None = None) -> Daemon:
        """Starts a new incarnation of node "A" or "B" in ``role``; does not
        wait. ``argv``: a whole command line of its own (e.g. a config file)
        instead of the pair's flags and ``extra``."""
        self.incarnations[node] += 1
        label = f"{node}{self.incarnations[node]}"
        ns = self.topo.node_a if node == "A" else self.topo.node_b
        d = Daemon(node, label, role, ns, argv or self.argv(node, role, extra or []),
                   os.path.join(self.out_dir, f"{label}.log"), env=env, token_file=self.token_file)
        self.nodes.append(d)
        self.latest[node] = d
        return d.start()

    def start(self, primary_env: dict | None = None, primary_extra: list[str] | None = None,
              backup_extra: list[str] | None = None, timeout: float = 30.0) -> tuple[Daemon, Daemon]:
        """Starts A as primary and, once it holds epoch 1, B as backup; waits
        until A is protected, B is an in-sync backup and the client reaches
        the appliance. Returns (A, B)."""
        a = self.start_node("A", "primary", env=primary_env, extra=primary_extra)
        a.wait_status("epoch 1 claimed, waiting for the backup", timeout, epoch=1, mode="waiting-for-peer")
        b = self.start_node("B", "backup", extra=backup_extra)
        a.wait_status("protected (the backup joined)", timeout, role="primary", mode="protected", epoch=1)
        b.wait_status("joined as an in-sync backup", timeout, role="backup", mode="backup", epoch=1, in_sync=True)
        wait_ping(self.topo, timeout, [a, b])
        return a, b

    def daemons(self) -> list[Daemon]:
        return list(self.nodes)

    def log_paths(self) -> list[str]:
        return [d.log_path for d in self.nodes]

    def close(self):
        for d in self.nodes:
            if d.alive():
                d.stop(signal.SIGTERM, timeout=3)
            d.close()
        if self.cleanup_key is not None:
            L.unregister_cleanup(self.cleanup_key)
            self.cleanup_key = None

    def arbiter_claims(self) -> dict:
        """{epoch: node name} from the arbiter directory."""
        out = {}
        for f in sorted(os.listdir(self.arb)):
            m = re.match(r"epoch-(\d+)$", f)
            if m:
                with open(os.path.join(self.arb, f)) as fh:
                    out[int(m.group(1))] = fh.read().strip()
        return out

    def describe_exit(self, d: Daemon) -> str:
        rc = d.poll()
        return "running" if rc is None else f"exit {rc}"


def kill_leftovers(topo: L.Topology):
    """SIGKILLs every process still running in our node namespaces (only our
    prefix's namespaces: everything in them was started by this harness)."""
    for ns in (topo.node_a, topo.node_b):
        cp = L.run(["ip", "netns", "pids", ns], timeout=10, check=False)
        pids = [int(x) for x in cp.stdout.split() if x.isdigit()]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if pids:
            dl = L.Deadline(5)
            while not dl.expired() and any(L.pid_alive(p) for p in pids):
                time.sleep(0.05)


def wait_ping(topo: L.Topology, timeout: float, daemons: list[Daemon] = ()):
    """Until the client gets a ping reply from the appliance; fails early if a daemon exits."""
    dl = L.Deadline(timeout)
    while True:
        cp = L.run(["ping", "-n", "-c", "1", "-W", "1", APPLIANCE_IP], ns=topo.client, check=False, timeout=5)
        if cp.returncode == 0:
            return
        if dl.expired():
            raise TestFailure(f"no ping reply from the appliance within {timeout}s")
        for d in daemons:
            check(d.alive(), f"{d.name} exited while waiting for ping: status {d.poll()}\n{d.tail()}")


# --- captures --------------------------------------------------------------------

class Capture:
    """tcpdump in a namespace. ``direction`` 'in' = frames the interface
    received (on a switch port: frames sent by the node behind it)."""

    def __init__(self, ns: str, iface: str, path: str, bpf: str = "", direction: str | None = None,
                 snaplen: int = 0, buffer_kib: int = 16384):
        self.ns, self.iface, self.path = ns, iface, path
        self.bpf, self.direction, self.snaplen, self.buffer_kib = bpf, direction, snaplen, buffer_kib
        self.proc = None
        self.key = None
        self.stats = ""

    def start(self, timeout: float = 10.0):
        # --immediate-mode: with TPACKET_V3 and a timeout, frames of a capture
        # shorter than the block timeout would still sit in the ring at SIGINT.
        argv = ["ip", "netns", "exec", self.ns, "tcpdump", "-i", self.iface, "-n", "-U", "--immediate-mode",
                "-Z", "root",
                "-B", str(self.buffer_kib), "-s", str(self.snaplen), "-w", self.path]
        if self.direction:
            argv += ["-Q", self.direction]
        if self.bpf:
            argv += [self.bpf]
        self.log_path = self.path + ".log"
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        record_pid(self.proc.pid, f"tcpdump-{self.iface}")
        self.key = L.register_cleanup(f"tcpdump {self.iface}", self.stop)
        dl = L.Deadline(timeout)
        while True:
            with open(self.log_path, errors="replace") as f:
                if "listening on" in f.read():
                    break
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as f:
                    raise TestFailure(f"tcpdump on {self.ns}/{self.iface} exited: {f.read().strip()}")
            if dl.expired():
                raise TestFailure(f"tcpdump on {self.ns}/{self.iface} not ready within {timeout}s")
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is not None:
            L.stop_process(self.proc, signal.SIGINT)
            self.proc = None
            self.logf.close()
            with open(self.log_path, errors="replace") as f:
                self.stats = " ".join(x.strip() for x in f if "packets" in x)
        if self.key is not None:
            L.unregister_cleanup(self.key)
            self.key = None

    def dropped(self) -> int:
        m = re.search(r"(\d+) packets? dropped by kernel", self.stats)
        return int(m.group(1)) if m else 0

    def frames(self) -> list[tuple[float, bytes]]:
        return read_pcap(self.path)


def read_pcap(path: str) -> list[tuple[float, bytes]]:
    """[(timestamp seconds, frame bytes)] of a classic pcap file (us or ns)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise TestFailure(f"{path}: not a pcap file ({len(data)} bytes)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise TestFailure(f"{path}: bad pcap magic {magic.hex()}")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    check(linktype == 1, f"{path}: link type {linktype}, want 1 (Ethernet)")
    out = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            break  # truncated last record (capture still running)
        out.append((sec + frac / (1e9 if nano else 1e6), data[off:off + incl]))
        off += incl
    return out


# --- switch state -----------------------------------------------------------------

def fdb_ports(topo: L.Topology, mac: str = APPLIANCE_MAC) -> list[str]:
    """Ports of br0 in the switch namespace that the FDB maps ``mac`` to."""
    cp = L.run(["bridge", "fdb", "show", "br", "br0"], ns=topo.switch, timeout=10)
    ports = []
    for line in cp.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].lower() == mac.lower() and "dev" in parts:
            ports.append(parts[parts.index("dev") + 1])
    return ports


# --- clients ------------------------------------------------------------------------

def check_consecutive(values: list[int], first: int | None, what: str):
    """values must be first, first+1, ... (first None: values[0])."""
    if not values:
        raise TestFailure(f"{what}: no values")
    start = values[0] if first is None else first
    for i, v in enumerate(values):
        if v != start + i:
            ctx = values[max(0, i - 3):i + 3]
            kind = "duplicate/regression" if v < start + i else "gap (skipped values)"
            raise TestFailure(f"{what}: value #{i} is {v}, want {start + i} ({kind}); around it: {ctx}; "
                              f"{len(values)} values {values[0]}..{values[-1]}")


def describe_values(values: list[int]) -> str:
    if not values:
        return "no values"
    gaps = sum(1 for a, b in zip(values, values[1:]) if b > a + 1)
    dups = sum(1 for a, b in zip(values, values[1:]) if b <= a)
    return f"{len(values)} values {values[0]}..{values[-1]}, {gaps} gaps, {dups} duplicates/regressions"


class IncrLoad:
    """INCR back to back (optionally paced) on one TCP connection, in a thread.

    Records (send time, receive time, value) per reply; any exception (reset,
    EOF, timeout, bad reply) stops the thread and is kept in ``error``."""

    def __init__(self, port: int = PORT_COUNTER, pace_s: float = 0.0, req_timeout: float = 15.0):
        self.port, self.pace_s, self.req_timeout = port, pace_s, req_timeout
        self.client = L.LineClient(port=port, timeout=req_timeout)
        self.samples: list[tuple[float, float, int]] = []
        self.error: str | None = None
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.lock = threading.Lock()

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self.stop_flag.is_set():
                t0 = time.monotonic()
                v = self.client.incr(self.req_timeout)
                t1 = time.monotonic()
                with self.lock:
                    self.samples.append((t0, t1, v))
                if self.pace_s:
                    time.sleep(self.pace_s)
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"

    def count(self) -> int:
        with self.lock:
            return len(self.samples)

    def last_time(self) -> float:
        with self.lock:
            return self.samples[-1][1] if self.samples else 0.0

    def wait_count(self, n: int, timeout: float):
        dl = L.Deadline(timeout)
        while self.count() < n:
            if self.error:
                raise TestFailure(f"load client failed: {self.error}")
            if dl.expired():
                raise TestFailure(f"load client: only {self.count()} replies of {n} within {timeout}s")
            time.sleep(0.01)

    def wait_progress_after(self, t: float, n: int, timeout: float):
        """Waits until n replies arrived after monotonic time t."""
        dl = L.Deadline(timeout)
        while True:
            with self.lock:
                k = sum(1 for s in self.samples[-n:] if s[1] > t) if len(self.samples) >= n else 0
            if k >= n:
                return
            if self.error:
                raise TestFailure(f"load client failed: {self.error}")
            if dl.expired():
                raise TestFailure(f"load client: fewer than {n} replies within {timeout}s after the event "
                                  f"({self.count()} in all)")
            time.sleep(0.01)

    def stop(self, timeout: float | None = None):
        self.stop_flag.set()
        self.thread.join(timeout if timeout is not None else self.req_timeout + 5)
        if self.thread.is_alive():
            raise TestFailure("load client thread did not stop")

    @property
    def values(self) -> list[int]:
        with self.lock:
            return [s[2] for s in self.samples]

    def max_latency(self) -> tuple[float, int | None, float]:
        """(longest request latency in s, the value it returned, its send time)."""
        with self.lock:
            if not self.samples:
                return 0.0, None, 0.0
            s = max(self.samples, key=lambda x: x[1] - x[0])
            return s[1] - s[0], s[2], s[0]

    def stall_around(self, t: float, before: float = 0.05, after: float = 2.0) -> tuple[float, int | None]:
        """(longest latency, its value) among requests in flight at t or sent
        within [t - before, t + after]: the stall the event caused."""
        with self.lock:
            sel = [s for s in self.samples if (s[0] <= t <= s[1]) or (t - before <= s[0] <= t + after)]
        if not sel:
            return 0.0, None
        s = max(sel, key=lambda x: x[1] - x[0])
        return s[1] - s[0], s[2]

    def max_gap(self) -> float:
        """Longest time between two consecutive replies (includes pacing)."""
        with self.lock:
            ts = [s[1] for s in self.samples]
        return max((b - a for a, b in zip(ts, ts[1:])), default=0.0)

    def close(self):
        self.stop_flag.set()
        self.client.close()


class UdpCounterClient:
    """``<client> <seq> INCR|GET`` against udp-counter, retrying the same
    request (same seq) every ``retry_s`` until a reply with that seq arrives.
    Replies for other seqs (late duplicates) are counted and ignored."""

    def __init__(self, client_id: str, port: int = PORT_UDP_COUNTER, retry_s: float = 0.05,
                 max_wait_s: float = 15.0):
        self.cid, self.port, self.retry_s, self.max_wait_s = client_id, port, retry_s, max_wait_s
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.seq = 0
        self.sends = 0
        self.retries = 0
        self.stray = 0
        self.max_latency = 0.0
        self.max_latency_seq = 0

    def request(self, op: str, seq: int | None = None) -> str:
        """Sends op with the next seq (or the given one); returns the reply's
        third field onwards (the value, or 'ERR stale')."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        msg = f"{self.cid} {seq} {op}".encode()
        prefix = f"{self.cid} {seq} "
        t0 = time.monotonic()
        dl = L.Deadline(self.max_wait_s)
        first = True
        while True:
            if dl.expired():
                raise TestFailure(f"UDP {msg!r}: no reply within {self.max_wait_s}s ({self.sends} datagrams sent)")
            self.s.sendto(msg, (APPLIANCE_IP, self.port))
            self.sends += 1
            if not first:
                self.retries += 1
            first = False
            until = time.monotonic() + self.retry_s
            while True:
                rem = until - time.monotonic()
                if rem <= 0:
                    break
                self.s.settimeout(rem)
                try:
                    data, src = self.s.recvfrom(2048)
                except socket.timeout:
                    break
                text = data.decode(errors="replace").rstrip("\n")
                if src != (APPLIANCE_IP, self.port):
                    raise TestFailure(f"UDP reply from unexpected source {src}: {text!r}")
                if text.startswith(prefix):
                    lat = time.monotonic() - t0
                    if lat > self.max_latency:
                        self.max_latency, self.max_latency_seq = lat, seq
                    return text[len(prefix):]
                self.stray += 1

    def incr(self) -> int:
        r = self.request("INCR")
        try:
            return int(r)
        except ValueError:
            raise TestFailure(f"UDP INCR seq {self.seq}: reply {r!r}") from None

    def get(self) -> int:
        r = self.request("GET")
        try:
            return int(r)
        except ValueError:
            raise TestFailure(f"UDP GET seq {self.seq}: reply {r!r}") from None

    def close(self):
        self.s.close()


# --- misc ---------------------------------------------------------------------------

def write_measure(out_dir: str, **kv):
    """Adds measurements to OUT/measure.json (read by replication-test.sh)."""
    path = os.path.join(out_dir, "measure.json")
    data = {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        pass
    data.update(kv)
    with open(path, "w") as f:
        json.dump(data, f)


def run_ftap(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs an ftap subcommand here (replay, log show); never raises on exit status."""
    return L.run([ftap_bin()] + args, timeout=timeout, check=False)
