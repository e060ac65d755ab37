"""Shared helpers for ftap's network-namespace integration tests.

Python 3 standard library only. The test programs run inside the client
namespace (``ip netns exec ${P}-c python3 ...``); anything that must happen in
another namespace is done by shelling out to ``ip netns exec``.

Contents:
  * constants of the topology built by scripts/netns.sh
  * ``Topology``: namespace names for a prefix, ``run`` in a namespace
  * ``LineClient``: a line-oriented TCP client with timeouts
  * ``udp_request``: one UDP request/reply with bounded retries
  * ``ping`` / ``neighbour_mac``
  * ``bulk_echo`` / ``bulk_discard``: threaded bulk transfers with sha256
  * ``Impairment``: loss/delay/reorder on the client link (tc netem when the
    kernel has it, else the userspace relay tests/integration/impair.py)
  * packet builders (Ethernet/IPv4/TCP/UDP/ICMP, checksums)
  * a tiny test runner: ``@test(name, timeout)``, ``check``, ``run_tests``
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import os
import random
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frames import parse_frame, tcp_options  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# --- topology (scripts/netns.sh) -------------------------------------------

APPLIANCE_IP = "10.0.0.100"
APPLIANCE_MAC = "02:00:00:00:00:10"
CLIENT_IP = "10.0.0.1"
CLIENT_IF = "c0"
LOG_IP_A = "192.168.77.1"
LOG_IP_B = "192.168.77.2"

PORT_COUNTER = 7000
PORT_ECHO = 7
PORT_DISCARD = 9
PORT_UDP_ECHO = 7001
PORT_UDP_COUNTER = 7002

MB = 1024 * 1024


class Topology:
    """Names of the namespaces built by ``scripts/netns.sh up PREFIX``."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.client = f"{prefix}-c"
        self.switch = f"{prefix}-sw"
        self.node_a = f"{prefix}-a"
        self.node_b = f"{prefix}-b"

    def ns(self, role: str) -> str:
        return {"c": self.client, "sw": self.switch, "a": self.node_a, "b": self.node_b}[role]


def current_netns() -> str | None:
    """The name of the namespace we run in, if it is a named one."""
    try:
        me = os.stat("/proc/self/ns/net")
        for name in os.listdir("/run/netns"):
            st = os.stat(os.path.join("/run/netns", name))
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                return name
    except OSError:
        pass
    return None


def run(cmd, ns: str | None = None, timeout: float = 30, check: bool = True,
        input: bytes | None = None) -> subprocess.CompletedProcess:
    """Runs ``cmd`` (list or shell string) in namespace ``ns`` (None: here).

    Output is captured (text). Raises ``TestFailure`` when ``check`` and the
    exit status is non-zero, or on timeout.
    """
    if isinstance(cmd, str):
        argv = ["sh", "-c", cmd]
    else:
        argv = list(cmd)
    if ns is not None and ns != current_netns():
        argv = ["ip", "netns", "exec", ns] + argv
    try:
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"command timed out after {timeout}s: {shlex.join(argv)}") from e
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check and p.returncode != 0:
        raise TestFailure(f"command failed (exit {p.returncode}): {shlex.join(argv)}\n"
                          f"stdout: {out.strip()}\nstderr: {err.strip()}")
    return cp


# --- failures and checks ---------------------------------------------------

class TestFailure(AssertionError):
    pass


def check(cond, msg: str):
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what: str):
    if got != want:
        raise TestFailure(f"{what}: got {got!r}, want {want!r}")


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def check(self, what: str):
        if self.expired():
            raise TestFailure(f"timed out after {self.seconds}s: {what}")


# --- TCP line client -------------------------------------------------------

class LineClient:
    """A line-oriented TCP client. Every operation has a timeout."""

    def __init__(self, host: str = APPLIANCE_IP, port: int = PORT_COUNTER, timeout: float = 5.0,
                 connect_timeout: float | None = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.buf = b""
        self.sock = socket.create_connection((host, port), timeout=connect_timeout or timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def local(self):
        return self.sock.getsockname()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_line(self, line: str | bytes):
        if isinstance(line, str):
            line = line.encode()
        self.sock.sendall(line + b"\n")

    def read_line(self, timeout: float | None = None) -> str:
        """The next line without its newline. EOF before a newline fails."""
        dl = Deadline(timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            rem = dl.remaining()
            if rem <= 0:
                raise TestFailure(f"no reply line within {dl.seconds}s from {self.host}:{self.port} "
                                  f"(buffered {self.buf[:80]!r})")
            self.sock.settimeout(rem)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise TestFailure(f"connection closed by {self.host}:{self.port} while waiting for a line "
                                  f"(buffered {self.buf[:80]!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def request(self, line: str, timeout: float | None = None) -> str:
        self.send_line(line)
        return self.read_line(timeout)

    def incr(self, timeout: float | None = None) -> int:
        r = self.request("INCR", timeout)
        try:
            return int(r)
        except ValueError:
            raise TestFailure(f"INCR: non-numeric reply {r!r}") from None

    def get(self, timeout: float | None = None) -> int:
        r = self.request("GET", timeout)
        try:
            return int(r)
        except ValueError:
            raise TestFailure(f"GET: non-numeric reply {r!r}") from None

    def wait_eof(self, timeout: float = 5.0) -> str:
        """Reads until the peer closes. Returns 'fin' (clean EOF) or 'rst'.
        Raises on timeout. Data received meanwhile is kept in ``buf``."""
        dl = Deadline(timeout)
        while True:
            rem = dl.remaining()
            if rem <= 0:
                raise TestFailure(f"connection to {self.host}:{self.port} not closed within {timeout}s")
            self.sock.settimeout(rem)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return "rst"
            if not chunk:
                return "fin"
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def counter_get(timeout: float = 5.0) -> int:
    with LineClient(port=PORT_COUNTER, timeout=timeout) as c:
        return c.get()


# --- UDP -------------------------------------------------------------------

def udp_request(payload: bytes, port: int, host: str = APPLIANCE_IP, timeout: float = 1.0,
                retries: int = 3, sock: socket.socket | None = None) -> bytes:
    """Sends ``payload`` and returns the first reply; resends the same payload
    up to ``retries`` times on timeout (safe for idempotent requests)."""
    own = sock is None
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        for attempt in range(retries + 1):
            s.sendto(payload, (host, port))
            try:
                data, src = s.recvfrom(65536)
            except socket.timeout:
                continue
            if src[0] != host or src[1] != port:
                raise TestFailure(f"UDP reply from unexpected source {src}")
            return data
        raise TestFailure(f"no UDP reply from {host}:{port} after {retries + 1} tries of {payload[:60]!r}")
    finally:
        if own:
            s.close()


# --- ping and neighbours ---------------------------------------------------

def ping(host: str = APPLIANCE_IP, count: int = 3, interval: float = 0.2, ns: str | None = None,
         wait: float = 1.0, ipv6: bool = False, size: int | None = None) -> tuple[int, int, str]:
    """Returns (transmitted, received, output)."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait)]
    if ipv6:
        argv.insert(1, "-6")
    if size is not None:
        argv += ["-s", str(size)]
    argv.append(host)
    cp = run(argv, ns=ns, timeout=count * (interval + wait) + 10, check=False)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", cp.stdout)
    if not m:
        return (0, 0, cp.stdout + cp.stderr)
    return int(m.group(1)), int(m.group(2)), cp.stdout


def neighbour_mac(ip: str, dev: str = CLIENT_IF, ns: str | None = None) -> str | None:
    cp = run(["ip", "neigh", "show", ip, "dev", dev], ns=ns, check=False)
    m = re.search(r"lladdr ([0-9a-f:]{17})", cp.stdout)
    return m.group(1) if m else None


def interface_mac(dev: str = CLIENT_IF) -> str:
    with open(f"/sys/class/net/{dev}/address") as f:
        return f.read().strip()


# --- daemon liveness -------------------------------------------------------

def pid_alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- bulk transfers --------------------------------------------------------

def pattern_bytes(n: int, seed: int = 1) -> bytes:
    """n pseudo-random bytes, cheap to make (repeats a 1 MiB random block
    with a per-block counter so no two MiB are equal)."""
    rnd = random.Random(seed)
    block = rnd.randbytes(MB)
    out = bytearray()
    i = 0
    while len(out) < n:
        out += struct.pack(">Q", i) + block[8:]
        i += 1
    return bytes(out[:n])


def bulk_echo(nbytes: int = 20 * MB, host: str = APPLIANCE_IP, port: int = PORT_ECHO,
              timeout: float = 120.0, seed: int = 7, chunk: int = 64 * 1024) -> dict:
    """Sends nbytes to an echo service in one thread while another reads the
    echo. Returns a dict with sha/byte counts, elapsed time and errors."""
    data = pattern_bytes(nbytes, seed)
    want = hashlib.sha256(data).hexdigest()
    dl = Deadline(timeout)
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(1.0)
    result = {"sent": 0, "received": 0, "send_error": None, "recv_error": None,
              "want_sha": want, "got_sha": None, "eof": None}
    t0 = time.monotonic()

    def sender():
        try:
            view = memoryview(data)
            off = 0
            while off < nbytes:
                if dl.expired():
                    raise TestFailure("send timed out")
                try:
                    n = s.send(view[off:off + chunk])
                except socket.timeout:
                    continue
                off += n
                result["sent"] = off
            s.shutdown(socket.SHUT_WR)
        except Exception as e:  # noqa: BLE001
            result["send_error"] = repr(e)

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    h = hashlib.sha256()
    got = 0
    first_diff = None
    try:
        while True:
            if dl.expired():
                result["recv_error"] = f"timed out after {timeout}s"
                break
            try:
                buf = s.recv(256 * 1024)
            except socket.timeout:
                continue
            except OSError as e:
                result["recv_error"] = repr(e)
                break
            if not buf:
                result["eof"] = "fin"
                break
            if first_diff is None and data[got:got + len(buf)] != buf:
                for i, b in enumerate(buf):
                    if got + i >= nbytes or data[got + i] != b:
                        first_diff = got + i
                        break
            h.update(buf)
            got += len(buf)
            result["received"] = got
    finally:
        th.join(timeout=max(1.0, dl.remaining()))
        s.close()
    result["got_sha"] = h.hexdigest()
    result["first_diff"] = first_diff
    result["elapsed"] = time.monotonic() - t0
    return result


def check_bulk_echo(r: dict, nbytes: int):
    mbps = r["received"] / MB / max(r["elapsed"], 1e-6)
    summary = (f"sent {r['sent']} received {r['received']} of {nbytes} bytes in {r['elapsed']:.1f}s "
               f"({mbps:.1f} MiB/s), send_error={r['send_error']} recv_error={r['recv_error']} "
               f"eof={r['eof']} first_diff={r['first_diff']}")
    check(r["send_error"] is None and r["recv_error"] is None, summary)
    check(r["received"] == nbytes, "short echo: " + summary)
    check(r["got_sha"] == r["want_sha"], f"sha256 mismatch: {summary}")
    return summary


def bulk_discard(nbytes: int = 20 * MB, host: str = APPLIANCE_IP, port: int = PORT_DISCARD,
                 timeout: float = 120.0) -> dict:
    data = pattern_bytes(nbytes, 11)
    dl = Deadline(timeout)
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(1.0)
    r = {"sent": 0, "close": None, "stray": 0, "error": None}
    try:
        view = memoryview(data)
        off = 0
        while off < nbytes:
            dl.check(f"sending to discard ({off} of {nbytes} sent)")
            try:
                off += s.send(view[off:off + 64 * 1024])
            except socket.timeout:
                continue
        r["sent"] = off
        s.shutdown(socket.SHUT_WR)
        while True:
            dl.check("waiting for discard to close")
            try:
                buf = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                r["close"] = "rst"
                break
            if not buf:
                r["close"] = "fin"
                break
            r["stray"] += len(buf)
    except TestFailure:
        raise
    except OSError as e:
        r["error"] = repr(e)
    finally:
        s.close()
    r["elapsed"] = time.monotonic() - t0
    return r


# --- link impairment -------------------------------------------------------

def kernel_has_netem(ns: str) -> bool:
    """Probes by adding and removing a netem qdisc on the switch's lo."""
    cp = run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"], ns=ns, check=False)
    if cp.returncode != 0:
        return False
    run(["tc", "qdisc", "del", "dev", "lo", "root"], ns=ns, check=False)
    return True


# Everything that must be undone even if a test thread is abandoned.
_cleanups: dict[int, tuple[str, callable]] = {}
_cleanup_lock = threading.Lock()
_cleanup_seq = [0]


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
    """Sends sig to a child we started (if it still runs), waits up to
    timeout for it to exit, then SIGKILLs and reaps it. Returns its exit
    status, or None if it had to be killed."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            return None
    return proc.returncode


def register_cleanup(what: str, fn) -> int:
    with _cleanup_lock:
        _cleanup_seq[0] += 1
        _cleanups[_cleanup_seq[0]] = (what, fn)
        return _cleanup_seq[0]


def unregister_cleanup(key: int):
    with _cleanup_lock:
        _cleanups.pop(key, None)


def run_cleanups():
    with _cleanup_lock:
        items = list(_cleanups.items())
        _cleanups.clear()
    for _, (what, fn) in sorted(items, reverse=True):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            print(f"  cleanup '{what}' failed: {e}", flush=True)


class Impairment:
    """netem-like loss/delay/reorder on the client link.

    ``upstream`` impairs client -> appliance (like netem on c0 egress),
    ``downstream`` impairs appliance -> client (like netem on sw-c egress).
    Each is a dict like ``dict(loss=5, delay_ms=1, reorder=25, corr=50, dup=2)`` or None
    (``dup``: percent of frames sent twice).

    With tc netem available the equivalent qdiscs are installed on c0 and/or
    sw-c. Otherwise (kernels without CONFIG_NET_SCH_NETEM) sw-c is taken off
    br0 and the userspace relay impair.py forwards between sw-c and a new
    veth imp-c/imp-br (imp-br on br0), applying the same model. The relay
    needs whole, checksummed frames, so TSO/GSO/tx-checksum offloads are off
    on c0 while it runs.
    """

    def __init__(self, topo: Topology, upstream: dict | None = None, downstream: dict | None = None,
                 mode: str | None = None, log_path: str | None = None):
        self.topo = topo
        self.up = upstream
        self.down = downstream
        self.mode = mode or os.environ.get("FTAP_IMPAIR") or ("netem" if kernel_has_netem(topo.switch) else "relay")
        self.log_path = log_path or os.path.join(os.environ.get("FTAP_OUT", "/tmp"), "impair-relay.log")
        self.proc = None
        self.key = None
        self.saved_offloads = None
        self.stats = None

    @staticmethod
    def _netem_args(p: dict) -> list[str]:
        a = ["netem"]
        if p.get("loss"):
            a += ["loss", f"{p['loss']}%"]
        a += ["delay", f"{p.get('delay_ms', 0)}ms"]
        if p.get("reorder"):
            a += ["reorder", f"{p['reorder']}%", f"{p.get('corr', 0)}%"]
        if p.get("dup"):
            a += ["duplicate", f"{p['dup']}%"]
        return a

    @staticmethod
    def _relay_arg(p: dict | None) -> str:
        if not p:
            return "none"
        return (f"loss={p.get('loss', 0)},delay={p.get('delay_ms', 0)},reorder={p.get('reorder', 0)},"
                f"corr={p.get('corr', 0)},dup={p.get('dup', 0)}")

    def describe(self) -> str:
        return f"{self.mode}: up={self._relay_arg(self.up)} down={self._relay_arg(self.down)}"

    def __enter__(self):
        self.key = register_cleanup("impairment", self.remove)
        try:
            if self.mode == "netem":
                if self.up:
                    run(["tc", "qdisc", "add", "dev", CLIENT_IF, "root"] + self._netem_args(self.up),
                        ns=self.topo.client)
                if self.down:
                    run(["tc", "qdisc", "add", "dev", "sw-c", "root"] + self._netem_args(self.down),
                        ns=self.topo.switch)
            else:
                self._start_relay()
        except BaseException:
            self.remove()
            raise
        return self

    def _start_relay(self):
        sw = self.topo.switch
        self.saved_offloads = set_offloads(CLIENT_IF, False, ns=self.topo.client)
        run(["ip", "link", "add", "imp-c", "type", "veth", "peer", "name", "imp-br"], ns=sw)
        run(["ip", "link", "set", "imp-br", "master", "br0"], ns=sw)
        for dev in ("imp-c", "imp-br"):
            run(["ip", "link", "set", dev, "up"], ns=sw)
        run(["ip", "link", "set", "sw-c", "nomaster"], ns=sw)
        self.stats_path = self.log_path + ".stats"
        try:
            os.unlink(self.stats_path)
        except OSError:
            pass
        argv = ["ip", "netns", "exec", sw, sys.executable, os.path.join(HERE, "impair.py"),
                "--a", "sw-c", "--b", "imp-c", "--a2b", self._relay_arg(self.up),
                "--b2a", self._relay_arg(self.down), "--stats", self.stats_path,
                "--seed", str(random.randrange(1 << 30))]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT)
        # Wait for the relay to report readiness.
        dl = Deadline(10)
        while not dl.expired():
            if self.proc.poll() is not None:
                raise TestFailure(f"impairment relay exited with {self.proc.returncode}; see {self.log_path}")
            if os.path.exists(self.stats_path):
                break
            time.sleep(0.05)
        else:
            raise TestFailure("impairment relay did not start")

    def remove(self):
        if self.key is not None:
            unregister_cleanup(self.key)
            self.key = None
        if self.mode == "netem":
            run(["tc", "qdisc", "del", "dev", CLIENT_IF, "root"], ns=self.topo.client, check=False)
            run(["tc", "qdisc", "del", "dev", "sw-c", "root"], ns=self.topo.switch, check=False)
            return
        sw = self.topo.switch
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            self.proc = None
            try:
                with open(self.stats_path) as f:
                    self.stats = f.read().strip()
            except OSError:
                pass
            self.logf.close()
        run(["ip", "link", "set", "sw-c", "master", "br0"], ns=sw, check=False)
        run(["ip", "link", "del", "imp-c"], ns=sw, check=False)
        if self.saved_offloads is not None:
            restore_offloads(CLIENT_IF, self.saved_offloads, ns=self.topo.client)
            self.saved_offloads = None

    def __exit__(self, *exc):
        self.remove()


# --- ethtool offloads via ioctl (no ethtool binary needed) ------------------

SIOCETHTOOL = 0x8946
_ETHTOOL = {  # feature: (get cmd, set cmd)
    "tx": (0x16, 0x17),    # ETHTOOL_GTXCSUM / STXCSUM
    "sg": (0x18, 0x19),    # ETHTOOL_GSG / SSG
    "tso": (0x1e, 0x1f),   # ETHTOOL_GTSO / STSO
    "gso": (0x23, 0x24),   # ETHTOOL_GGSO / SGSO
    "gro": (0x2b, 0x2c),   # ETHTOOL_GGRO / SGRO
}


def _ethtool_value(dev: str, cmd: int, value: int | None = None) -> int:
    ev = ctypes.create_string_buffer(struct.pack("II", cmd, value or 0), 8)
    ifr = struct.pack("16sP", dev.encode(), ctypes.addressof(ev)) + b"\0" * 16
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    return struct.unpack("II", ev.raw)[1]


def _in_ns(ns: str | None, fn):
    """Runs fn() here if ns is None or the current namespace, else in a child
    python in that namespace (ioctl needs the namespace of the device)."""
    if ns is None or ns == current_netns():
        return fn()
    raise RuntimeError("offload changes must run in the device's namespace")


def set_offloads(dev: str, on: bool, ns: str | None = None) -> dict:
    """Turns tx-checksum, sg, tso, gso and gro on/off; returns the old values."""
    def do():
        old = {}
        for name, (get, _) in _ETHTOOL.items():
            try:
                old[name] = _ethtool_value(dev, get)
            except OSError:
                pass
        # Order matters: tso depends on sg and tx csum.
        order = ["tso", "gso", "gro", "sg", "tx"] if not on else ["tx", "sg", "tso", "gso", "gro"]
        for name in order:
            if name in old:
                try:
                    _ethtool_value(dev, _ETHTOOL[name][1], 1 if on else 0)
                except OSError:
                    pass
        return old
    return _in_ns(ns, do)


def restore_offloads(dev: str, old: dict, ns: str | None = None):
    def do():
        for name in ["tx", "sg", "tso", "gso", "gro"]:
            if name in old:
                try:
                    _ethtool_value(dev, _ETHTOOL[name][1], old[name])
                except OSError:
                    pass
    _in_ns(ns, do)


# --- packet building --------------------------------------------------------

def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def ip_bytes(ip: str) -> bytes:
    return socket.inet_aton(ip)


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17


def ether(dst: str | bytes, src: str | bytes, ethertype: int, payload: bytes) -> bytes:
    d = mac_bytes(dst) if isinstance(dst, str) else dst
    s = mac_bytes(src) if isinstance(src, str) else src
    return d + s + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 0,
         flags: int = 0, frag_offset: int = 0, options: bytes = b"", tos: int = 0,
         total_length: int | None = None, ihl: int | None = None, version: int = 4,
         checksum: int | None = None) -> bytes:
    """An IPv4 header + payload; every field can be forced to a wrong value."""
    if ihl is None:
        ihl = 5 + (len(options) + 3) // 4
    options = options + b"\0" * (-len(options) % 4)
    if total_length is None:
        total_length = 20 + len(options) + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xF), tos, total_length & 0xFFFF, ident & 0xFFFF,
                      ((flags & 7) << 13) | (frag_offset & 0x1FFF), ttl, proto, 0, ip_bytes(src), ip_bytes(dst))
    hdr += options
    c = inet_checksum(hdr) if checksum is None else checksum
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, length)


TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 1, 2, 4, 8, 16, 32


def tcp(src: str, dst: str, sport: int, dport: int, seq: int = 0, ack: int = 0, flags: int = TCP_SYN,
        window: int = 65535, payload: bytes = b"", options: bytes = b"", data_offset: int | None = None,
        checksum: int | None = None, bad_checksum: bool = False) -> bytes:
    options = options + b"\0" * (-len(options) % 4)
    off = data_offset if data_offset is not None else 5 + len(options) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (off & 0xF) << 4,
                      flags & 0xFF, window, 0, 0) + options + payload
    c = inet_checksum(_pseudo(src, dst, PROTO_TCP, len(seg)) + seg) if checksum is None else checksum
    if bad_checksum:
        c = (c ^ 0x5A5A) or 1
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, length: int | None = None,
        checksum: int | None = None, bad_checksum: bool = False) -> bytes:
    ln = 8 + len(payload) if length is None else length
    seg = struct.pack("!HHHH", sport, dport, ln & 0xFFFF, 0) + payload
    if checksum is None:
        c = inet_checksum(_pseudo(src, dst, PROTO_UDP, len(seg)) + seg) or 0xFFFF
    else:
        c = checksum
    if bad_checksum:
        c = (c ^ 0x5A5A) or 1
        if c == 0xFFFF or c == 0:
            c = 0x1234
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def icmp_echo(ident: int, seq: int, payload: bytes = b"ftap", bad_checksum: bool = False) -> bytes:
    m = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    c = inet_checksum(m)
    if bad_checksum:
        c = (c ^ 0x5A5A) or 1
    return m[:2] + struct.pack("!H", c) + m[4:]


def arp(op: int, sender_mac: str, sender_ip: str, target_mac: str, target_ip: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, op, mac_bytes(sender_mac), ip_bytes(sender_ip),
                       mac_bytes(target_mac), ip_bytes(target_ip))


class RawSocket:
    """An AF_PACKET raw socket bound to one interface (current namespace)."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.s.bind((ifname, 0))

    def send(self, frame: bytes) -> bool:
        try:
            self.s.send(frame)
            return True
        except OSError:
            return False

    def close(self):
        self.s.close()


# --- test runner ------------------------------------------------------------

_TESTS: list[tuple[str, float, callable]] = []
# Tests expected to fail (a feature not built yet): name -> why. A failure
# prints "XFAIL name" and counts as neither passed nor failed; a pass prints
# "XPASS name" and counts as failed, so the mark is removed once it works.
_XFAIL: dict[str, str] = {}


def test(name: str, timeout: float = 60.0, xfail: str | None = None):
    def deco(fn):
        _TESTS.append((name, timeout, fn))
        if xfail:
            _XFAIL[name] = xfail
        return fn
    return deco


class Context:
    """What a test function receives."""

    def __init__(self, args):
        self.args = args
        self.topo = Topology(args.prefix)
        self.daemon_pid = args.daemon_pid
        self.notes: list[str] = []
        self.out_dir = args.out_dir

    def note(self, msg: str):
        self.notes.append(msg)


def _run_one(fn, ctx, timeout):
    box = {}

    def target():
        try:
            fn(ctx)
            box["ok"] = True
        except BaseException as e:  # noqa: BLE001
            box["error"] = e
            box["tb"] = traceback.format_exc()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        return False, f"timed out after {timeout:.0f}s (test thread abandoned)"
    if box.get("ok"):
        return True, None
    e = box["error"]
    if isinstance(e, TestFailure):
        return False, str(e)
    return False, box["tb"].rstrip()


def main(description: str):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--prefix", default=os.environ.get("FTAP_NS", "ftap"))
    ap.add_argument("--daemon-pid", type=int, default=int(os.environ.get("FTAP_DAEMON_PID", "0") or 0))
    ap.add_argument("--only", default="", help="comma-separated test names or substrings")
    ap.add_argument("--skip", default="", help="comma-separated test names or substrings")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--results", help="write 'PASSED FAILED' here")
    ap.add_argument("--no-summary", action="store_true", help="do not print the final 'N passed, M failed'")
    ap.add_argument("--out-dir", default=os.environ.get("FTAP_OUT", "/tmp"))
    ap.add_argument("--timeout-scale", type=float, default=float(os.environ.get("FTAP_TIMEOUT_SCALE", "1")))
    args = ap.parse_args()

    only = [x for x in args.only.split(",") if x]
    skip = [x for x in args.skip.split(",") if x]
    selected = [(n, t, f) for (n, t, f) in _TESTS
                if (not only or any(o in n for o in only)) and not any(s in n for s in skip)]
    if args.list:
        for n, t, _ in selected:
            print(f"{n}  (timeout {t:.0f}s)")
        return 0

    os.makedirs(args.out_dir, exist_ok=True)
    ctx = Context(args)
    passed = failed = xfailed = 0
    daemon_dead = False

    def on_signal(signum, frame):
        run_cleanups()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        for name, timeout, fn in selected:
            if daemon_dead:
                print(f"FAIL {name} (0.00s)\n    not run: the daemon (pid {ctx.daemon_pid}) is dead", flush=True)
                failed += 1
                continue
            ctx.notes = []
            t0 = time.monotonic()
            ok, err = _run_one(fn, ctx, timeout * args.timeout_scale)
            if not ok:
                run_cleanups()  # an abandoned thread may hold an impairment
            dt = time.monotonic() - t0
            if ctx.daemon_pid and not pid_alive(ctx.daemon_pid):
                daemon_dead = True
                if ok:
                    ok, err = False, f"the daemon (pid {ctx.daemon_pid}) died during this test"
                else:
                    err = f"{err}\nthe daemon (pid {ctx.daemon_pid}) died during this test"
            if name in _XFAIL:
                if ok:
                    failed += 1
                    print(f"XPASS {name} ({dt:.2f}s)\n    expected to fail ({_XFAIL[name]}) but passed: "
                          f"remove its xfail mark", flush=True)
                else:
                    xfailed += 1
                    print(f"XFAIL {name} ({dt:.2f}s)\n    expected failure: {_XFAIL[name]}", flush=True)
                    for line in (err or "").splitlines():
                        print(f"    {line}", flush=True)
            elif ok:
                passed += 1
                print(f"PASS {name} ({dt:.2f}s)", flush=True)
            else:
                failed += 1
                print(f"FAIL {name} ({dt:.2f}s)", flush=True)
                for line in (err or "").splitlines():
                    print(f"    {line}", flush=True)
            for n in ctx.notes:
                print(f"    note: {n}", flush=True)
    finally:
        run_cleanups()

    if args.results:
        with open(args.results, "w") as f:
            f.write(f"{passed} {failed}\n")
    if not args.no_summary:
        print(f"{passed} passed, {failed} failed" + (f", {xfailed} expected failures (XFAIL)" if xfailed else ""),
              flush=True)
    return 0 if failed == 0 else 1


# --- a scripted TCP peer over a raw socket ------------------------------------

class RawTCPPeer:
    """A hand-driven TCP client on a raw socket, with its own IP and MAC (so
    the client namespace's kernel stays out of the conversation: frames to a
    MAC that is not c0's are dropped by the kernel but seen by AF_PACKET)."""

    def __init__(self, ifname: str = CLIENT_IF, src_ip: str = "10.0.0.50", src_mac: str = "02:00:00:00:00:50",
                 dst_ip: str = APPLIANCE_IP, dst_mac: str = APPLIANCE_MAC, dport: int = PORT_ECHO,
                 sport: int | None = None):
        self.src_ip, self.src_mac, self.dst_ip, self.dst_mac = src_ip, src_mac, dst_ip, dst_mac
        self.sport = sport or random.randrange(20000, 60000)
        self.dport = dport
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.s.bind((ifname, 0))
        self.iss = random.getrandbits(32)
        self.snd_nxt = self.iss
        self.rcv_nxt = 0
        self.irs = 0
        self.peer_wscale = 0
        self.peer_wnd = 0
        self.log: list[str] = []

    def close(self):
        self.s.close()

    def send(self, flags: int, seq: int | None = None, ack: int | None = None, payload: bytes = b"",
             window: int = 65535, options: bytes = b""):
        seq = self.snd_nxt if seq is None else seq
        ack = self.rcv_nxt if ack is None else ack
        seg = tcp(self.src_ip, self.dst_ip, self.sport, self.dport, seq=seq, ack=ack, flags=flags, window=window,
                  payload=payload, options=options)
        self.s.send(ether(self.dst_mac, self.src_mac, ETH_IPV4, ipv4(self.src_ip, self.dst_ip, PROTO_TCP, seg)))
        self.log.append(f"> flags={flags:#x} seq={seq & 0xFFFFFFFF} ack={ack & 0xFFFFFFFF} len={len(payload)}")

    def recv(self, timeout: float = 2.0) -> dict | None:
        """The next TCP segment of this connection from the appliance, or None."""
        dl = Deadline(timeout)
        mine = mac_bytes(self.src_mac)
        while not dl.expired():
            self.s.settimeout(max(0.01, dl.remaining()))
            try:
                f = self.s.recv(65536)
            except socket.timeout:
                return None
            if f[12:14] == b"\x08\x06" and len(f) >= 42 and f[20:22] == b"\x00\x01" \
                    and f[38:42] == ip_bytes(self.src_ip):
                # Answer ARP for our made-up address (a kernel peer asks; ftap does not).
                smac, sip = f[22:28], socket.inet_ntoa(f[28:32])
                self.s.send(ether(smac, self.src_mac, ETH_ARP,
                                  arp(2, self.src_mac, self.src_ip, ":".join(f"{b:02x}" for b in smac), sip)))
                continue
            if f[0:6] != mine:
                continue
            d = parse_frame(f)
            if d["type"] != "tcp" or d["dport"] != self.sport or d["sport"] != self.dport:
                continue
            d["t"] = time.monotonic()
            self.log.append(f"< flags={d['flags']:#x} seq={d['seq']} ack={d['ack']} win={d['win']} "
                            f"len={len(d['payload'])}")
            return d
        return None

    def recv_all(self, seconds: float) -> list[dict]:
        out, dl = [], Deadline(seconds)
        while not dl.expired():
            d = self.recv(dl.remaining())
            if d is None:
                break
            out.append(d)
        return out

    def connect(self, mss: int = 1460, wscale: int | None = 7, timeout: float = 3.0) -> dict:
        opts = struct.pack("!BBH", 2, 4, mss)
        if wscale is not None:
            opts += struct.pack("!BBBB", 1, 3, 3, wscale)
        self.send(TCP_SYN, seq=self.iss, ack=0, options=opts)
        d = self.recv(timeout)
        check(d is not None, "no SYN-ACK from the appliance")
        check(d["flags"] & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK), f"expected SYN-ACK, got flags {d['flags']:#x}")
        check_eq(d["ack"], (self.iss + 1) & 0xFFFFFFFF, "SYN-ACK ack")
        o = tcp_options(d["tcp_options"])
        self.peer_wscale = o.get("wscale", 0) if wscale is not None else 0
        self.irs = d["seq"]
        self.rcv_nxt = (d["seq"] + 1) & 0xFFFFFFFF
        self.snd_nxt = (self.iss + 1) & 0xFFFFFFFF
        self.send(TCP_ACK)
        self.syn_ack = d
        return d

    def window_bytes(self, d: dict) -> int:
        return d["win"] << self.peer_wscale

    def reset(self):
        try:
            self.send(TCP_RST, seq=self.snd_nxt, ack=0)
        except OSError:
            pass
