#!/usr/bin/env python3
"""Integration tests of the kv service (issue 17: Redis protocol), run from
the client namespace of scripts/netns.sh by scripts/kv-test.sh:

    ip netns exec ${P}-c python3 tests/integration/kv_tests.py --prefix P --only NAME --out-dir DIR

Real Redis clients from Debian's redis-tools against ftap, and Redis Sentinel
from Debian's redis-sentinel as the anchor of the failover comparison.

Tests:
  solo_clients        ftap --role solo with --service kv:6379 (node A): the
                      redis-cli session of SESSION, its output compared line for
                      line with a real redis-server's (same redis-cli, same
                      script); `redis-cli --pipe` of FTAP_KV_PIPE_KEYS (100,000)
                      SETs, then DBSIZE; redis-benchmark (pipelined -P 16 and
                      not) with zero errors
  pair_clients        the same against the pair (A primary, B backup); then
                      the backup's applied index reaches the primary's and
                      neither reports a divergence
  ftap_failover       FTAP_KV_TRIALS (5) trials: a writer on one persistent
                      connection doing INCR and SET of unique keys back to back,
                      the primary SIGKILLed; read everything back from the new
                      primary: zero acknowledged writes lost, zero resets
  sentinel_failover   the same writer against redis-server master (node A's
                      namespace) + replica (node B's) + three redis-sentinel
                      (down-after-milliseconds FTAP_KV_SENTINEL_DOWN_MS, 1000),
                      the master SIGKILLed, the writer following Sentinel to
                      the new master. Measured, not checked (Redis documents
                      that acknowledged writes can be lost)
  compare_table       prints the ftap vs Sentinel table from the two tests'
                      trials.json (run after them in the same output directory)

Environment: FTAP_RUN_BIN, FTAP_PIDFILE, FTAP_LOG_LEVEL (see pairlib);
FTAP_KV_TRIALS (5), FTAP_KV_PIPE_KEYS (100000), FTAP_KV_BENCH_N (requests per
redis-benchmark test, 20000), FTAP_KV_WRITE_S (seconds the writer runs before
the kill, 1.5), FTAP_KV_SENTINEL_DOWN_MS (1000).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from ftaplib import TestFailure, check, check_eq, test  # noqa: E402
from pairlib import Pair  # noqa: E402

KV_PORT = 6379
IP = PL.APPLIANCE_IP
TRIALS = int(os.environ.get("FTAP_KV_TRIALS", "5") or 5)
PIPE_KEYS = int(os.environ.get("FTAP_KV_PIPE_KEYS", "100000") or 100000)
BENCH_N = int(os.environ.get("FTAP_KV_BENCH_N", "20000") or 20000)
WRITE_S = float(os.environ.get("FTAP_KV_WRITE_S", "1.5") or 1.5)
DOWN_MS = int(os.environ.get("FTAP_KV_SENTINEL_DOWN_MS", "1000") or 1000)
REDIS_A, REDIS_B = "10.0.0.11", "10.0.0.12"  # the Redis master and replica, on the nodes' bridges
SENTINEL_PORTS = (26379, 26380, 26381)

# A redis-cli session: every line's reply must equal real Redis's. No command
# whose answer legitimately differs (INFO, the order of KEYS with several
# matches, SCAN cursors, TIME).
SESSION = """PING
PING hello
ECHO "two words"
SELECT 0
SELECT x
SET k v
GET k
GET missing
SET k w NX
SET k2 w XX
SET k w XX GET
GETSET k z
SETNX k q
SETNX n 10
INCR n
INCRBY n -21
DECR n
DECRBY n 9
INCR k
INCRBY n 1x
SET big 9223372036854775807
INCR big
MSET a 1 b 2
MSET a 1 b
MGET a missing b
APPEND a 23
STRLEN a
GETRANGE a 1 -1
GETRANGE a 5 9
SETRANGE a 5 x
SETRANGE a -1 x
EXISTS a a missing
DEL a missing
TYPE b
TYPE missing
GET
FOO a b
SET k v BOGUS
SET k v EX 0
SET k v EX x
SET k v NX XX
SET t v EX 100
TTL t
PERSIST t
TTL t
EXPIRE t 50
TTL t
PEXPIRE t 100000 GT
TTL t
EXPIRE missing 5
TTL missing
LPUSH b x
HSET h f1 a f2 b
HSET h f1 c f3 d
HSET h f1
HGET h f1
HGET h zz
HLEN h
HGETALL h
HINCRBY h n 5
HINCRBY h f1 5
HDEL h f1 f2 zz
RPUSH l a b
LPUSH l z y
LRANGE l 0 -1
LRANGE l -2 100
LLEN l
LPOP l
RPOP l 2
RPOP l -1
LPOP l 5
LPOP l
LPOP l 3
GET h
KEYS h
DBSIZE
FLUSHDB
DBSIZE
"""


def resp_cmd(*parts) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespConn:
    """A minimal RESP2 client on one TCP connection (no pipelining)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionResetError("EOF")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionResetError("EOF")
                self.buf += d
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ValueError(f"bad reply line {line!r}")

    def call(self, *parts):
        self.sock.sendall(resp_cmd(*parts))
        return self._read()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RespError(str):
    pass


def cli(args: list[str], stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["redis-cli"] + args, input=stdin, capture_output=True, timeout=timeout)


def wait_kv(host: str, port: int, timeout: float = 15):
    dl = L.Deadline(timeout)
    while True:
        try:
            c = RespConn(host, port, timeout=1)
            r = c.call("PING")
            c.close()
            if r == "PONG":
                return
        except OSError:
            pass
        dl.check(f"PONG from {host}:{port}")
        time.sleep(0.1)


def redis_reference_session(ctx) -> bytes:
    """SESSION through redis-cli against a real redis-server (loopback of the client namespace)."""
    port = 6390
    d = tempfile.mkdtemp(prefix="redis-ref-", dir=ctx.out_dir)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", d, "--daemonize", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_kv("127.0.0.1", port)
        return cli(["-h", "127.0.0.1", "-p", str(port)], SESSION.encode()).stdout
    finally:
        L.stop_process(p, signal.SIGTERM, 5)


def check_session(ctx, host: str, port: int):
    want = redis_reference_session(ctx)
    got = cli(["-h", host, "-p", str(port)], SESSION.encode())
    check_eq(got.returncode, 0, "redis-cli exit status")
    wl, gl = want.decode(errors="replace").splitlines(), got.stdout.decode(errors="replace").splitlines()
    cmds = SESSION.strip().splitlines()
    # Replies can span lines (arrays): compare whole outputs, report the first difference.
    if gl != wl:
        for i, (g, w) in enumerate(zip(gl, wl)):
            if g != w:
                raise TestFailure(f"redis-cli output line {i + 1} differs from real Redis: got {g!r}, want {w!r}"
                                  f" (session has {len(cmds)} commands)")
        raise TestFailure(f"redis-cli output has {len(gl)} lines, real Redis's {len(wl)}")
    ctx.note(f"redis-cli session: {len(cmds)} commands, output identical to redis-server {redis_version()}'s")


def redis_version() -> str:
    cp = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    m = re.search(r"v=(\S+)", cp.stdout)
    return m.group(1) if m else "?"


def check_pipe(ctx, host: str, port: int):
    data = b"".join(resp_cmd("SET", f"pipe:{i}", f"value-{i}") for i in range(PIPE_KEYS))
    t0 = time.monotonic()
    cp = cli(["-h", host, "-p", str(port), "--pipe"], data, timeout=180)
    dt = time.monotonic() - t0
    out = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    check_eq(cp.returncode, 0, f"redis-cli --pipe exit status ({out.strip()})")
    check(f"errors: 0, replies: {PIPE_KEYS}" in out, f"redis-cli --pipe: {out.strip()}")
    c = RespConn(host, port)
    n = c.call("DBSIZE")
    v = c.call("GET", f"pipe:{PIPE_KEYS - 1}")
    c.close()
    check_eq(n, PIPE_KEYS, "DBSIZE after --pipe")
    check_eq(v, f"value-{PIPE_KEYS - 1}".encode(), "the last key")
    ctx.note(f"redis-cli --pipe: {PIPE_KEYS} keys in {dt:.2f}s ({PIPE_KEYS / dt:.0f}/s), DBSIZE {n}")


def check_benchmark(ctx, host: str, port: int):
    for pipe in ("16", "1"):
        n = BENCH_N if pipe == "16" else max(1000, BENCH_N // 4)
        cp = subprocess.run(["redis-benchmark", "-h", host, "-p", str(port), "-t", "ping,set,get,incr,lpush,mset",
                             "-P", pipe, "-c", "50", "-n", str(n), "-q"], capture_output=True, timeout=300)
        out = (cp.stdout + cp.stderr).decode(errors="replace").replace("\r", "\n")
        check_eq(cp.returncode, 0, f"redis-benchmark -P {pipe} exit status ({out[-300:]})")
        bad = [ln for ln in out.splitlines() if re.search(r"error|warning|ERR", ln, re.I)]
        check(not bad, f"redis-benchmark -P {pipe} reported: {bad[:3]}")
        rates = re.findall(r"^([^:\n]+): ([\d.]+) requests per second", out, re.M)
        names = [r[0] for r in rates]
        for t in ("PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH"):
            check(t in names, f"redis-benchmark -P {pipe}: no result for {t}: {out[-400:]}")
        check(any(x.startswith("MSET") for x in names), f"redis-benchmark -P {pipe}: no MSET result")
        ctx.note(f"redis-benchmark -P {pipe} -c 50 -n {n}: " + ", ".join(f"{a} {float(b):.0f}/s" for a, b in rates))


def kv_flags() -> list[str]:
    return ["--service", f"kv:{KV_PORT}"]


def solo_argv(pair: Pair) -> list[str]:
    return [pair.bin, "run", "--role", "solo", "--tap", "tapA", "--bridge", "brA", "--mac", PL.APPLIANCE_MAC,
            "--ip", f"{IP}/24", "--service", f"kv:{KV_PORT}", "--secret", PL.ISN_KEY, "--admin", PL.ADMIN,
            "--log-level", os.environ.get("FTAP_LOG_LEVEL", "info")]


@test("solo_clients", timeout=300)
def solo_clients(ctx):
    """redis-cli session (compared with real Redis), --pipe 100k, redis-benchmark against ftap solo."""
    pair = Pair(ctx.topo, ctx.out_dir)
    try:
        d = PL.Daemon("A", "A1", "solo", ctx.topo.node_a, solo_argv(pair), os.path.join(ctx.out_dir, "A1.log"))
        pair.nodes.append(d)
        d.start()
        d.wait_status("solo serving", 15, live=True)
        PL.wait_ping(ctx.topo, 15, [d])
        wait_kv(IP, KV_PORT)
        check_session(ctx, IP, KV_PORT)
        check_pipe(ctx, IP, KV_PORT)
        check_benchmark(ctx, IP, KV_PORT)
        check(d.alive(), f"the daemon exited: {d.tail()}")
    finally:
        pair.close()


@test("pair_clients", timeout=300)
def pair_clients(ctx):
    """The same clients against the pair; the backup follows without divergence."""
    pair = Pair(ctx.topo, ctx.out_dir, extra=kv_flags())
    try:
        a, b = pair.start()
        wait_kv(IP, KV_PORT)
        check_session(ctx, IP, KV_PORT)
        check_pipe(ctx, IP, KV_PORT)
        check_benchmark(ctx, IP, KV_PORT)
        sa = a.status()
        b.wait_status("caught up with the primary", 20, cond=lambda s: s["applied_index"] >= sa["applied_index"])
        for d in (a, b):
            st = d.status()
            check(d.alive(), f"{d.name} exited")
            check(not st.get("diverged"), f"{d.name} reports a divergence: {PL.brief(st)}")
        check_eq(a.status()["mode"], "protected", "A's mode")
    finally:
        pair.close()


# --- the writer of the failover comparison ---------------------------------------------

class Writer:
    """On one persistent connection, back to back: INCR ctr, SET w:<i> <i>.
    Records every acknowledged write, errors, resets and reconnections; on a
    connection failure it asks ``locate()`` for the (new) master and reconnects."""

    def __init__(self, locate, op_timeout: float = 5.0):
        self.locate = locate
        self.op_timeout = op_timeout
        self.acked_keys: list[int] = []
        self.incr_acks: list[int] = []
        self.ack_times: list[float] = []
        self.errors: list[str] = []
        self.connect_failures = 0
        self.resets = 0
        self.reconnects = 0
        self.stop = False
        self.conn = None

    def connect(self, deadline: float):
        while not self.stop and time.monotonic() < deadline:
            try:
                host, port = self.locate()
                self.conn = RespConn(host, port, timeout=self.op_timeout)
                return
            except OSError as e:
                self.connect_failures += 1
                self.connect_error_kinds = getattr(self, "connect_error_kinds", set()) | {e.__class__.__name__}
                time.sleep(0.05)
        raise TestFailure("the writer could not reconnect")

    def run(self, until: float):
        import threading
        self.thread = threading.Thread(target=self._loop, args=(until,), daemon=True)
        self.thread.start()

    def _loop(self, until: float):
        i = 0
        self.connect(until)
        while not self.stop and time.monotonic() < until:
            try:
                r = self.conn.call("INCR", "ctr")
                if isinstance(r, RespError) or not isinstance(r, int):
                    self.errors.append(f"INCR: {r}")
                    raise ConnectionError(str(r))
                self.incr_acks.append(r)
                self.ack_times.append(time.monotonic())
                r = self.conn.call("SET", f"w:{i}", str(i))
                if r != "OK":
                    self.errors.append(f"SET: {r}")
                    raise ConnectionError(str(r))
                self.acked_keys.append(i)
                self.ack_times.append(time.monotonic())
                i += 1
            except (OSError, ConnectionError, ValueError) as e:
                if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionRefusedError)):
                    self.resets += 1
                self.errors.append(e.__class__.__name__ + (f": {e}" if str(e) else ""))
                self.conn.close()
                i += 1  # never reuse a key whose SET may or may not have happened
                self.reconnects += 1
                self.connect(until)
        if self.conn:
            self.conn.close()

    def join(self, timeout: float):
        self.thread.join(timeout)


def read_back(host: str, port: int, w: Writer) -> dict:
    c = RespConn(host, port, timeout=10)
    missing = []
    for k in range(0, len(w.acked_keys), 500):
        batch = w.acked_keys[k:k + 500]
        vals = c.call("MGET", *[f"w:{i}" for i in batch])
        missing += [i for i, v in zip(batch, vals) if v != str(i).encode()]
    ctr = c.call("GET", "ctr")
    c.close()
    ctr = int(ctr) if ctr is not None else 0
    top = max(w.incr_acks) if w.incr_acks else 0
    return {"lost_sets": len(missing), "lost_incrs": max(0, top - ctr), "counter": ctr, "max_acked_incr": top}


def trial_result(w: Writer, kill_t: float, back: dict) -> dict:
    """The stall is the longest gap between two consecutive acknowledgements
    from just before the kill on (a SIGKILL lands a moment after kill_t, so
    acks right after kill_t can still come from the dying server)."""
    times = sorted(w.ack_times)
    before = [t for t in times if t <= kill_t]
    window = ([before[-1]] if before else [kill_t]) + [t for t in times if t > kill_t]
    gaps = [(b - a, b) for a, b in zip(window, window[1:])]
    stall, resumed = max(gaps) if gaps else (None, None)
    rate = len(before) / (before[-1] - times[0]) if len(before) > 1 and before[-1] > times[0] else 0.0
    return {"acked_writes": len(w.acked_keys) + len(w.incr_acks), "acked_sets": len(w.acked_keys),
            "lost_writes": back["lost_sets"] + back["lost_incrs"], **back,
            "resets": w.resets, "reconnects": w.reconnects, "errors": len(w.errors),
            "connect_failures": w.connect_failures,
            "error_kinds": sorted(set(e.split(":")[0] for e in w.errors)),
            "writes_per_s": round(rate),
            "stall_ms": None if stall is None else round(stall * 1000, 1),
            "recovered_ms": None if resumed is None else round((resumed - kill_t) * 1000, 1),
            "writes_after_kill": len(window) - 1}


def save_trials(ctx, name: str, rows: list[dict], meta: dict):
    with open(os.path.join(ctx.out_dir, name), "w") as f:
        json.dump({"meta": meta, "trials": rows}, f, indent=1)
    # Also beside the run's directories, so compare_table (another test run) finds them.
    shared = os.environ.get("FTAP_KV_TABLE_DIR")
    if shared:
        os.makedirs(shared, exist_ok=True)
        with open(os.path.join(shared, name), "w") as f:
            json.dump({"meta": meta, "trials": rows}, f, indent=1)


@test("ftap_failover", timeout=300)
def ftap_failover(ctx):
    """SIGKILL the primary while a writer runs: zero acknowledged writes lost, zero resets."""
    rows = []
    for trial in range(TRIALS):
        pair = Pair(ctx.topo, os.path.join(ctx.out_dir, f"t{trial + 1}"), extra=kv_flags())
        try:
            a, b = pair.start()
            wait_kv(IP, KV_PORT)
            w = Writer(lambda: (IP, KV_PORT), op_timeout=10)
            w.run(time.monotonic() + WRITE_S + 3.0)
            time.sleep(WRITE_S)
            kill_t = time.monotonic()
            a.kill()
            b.wait_status("B live after the kill", 10, live=True, epoch=2)
            w.join(15)
            check(not w.thread.is_alive(), "the writer did not finish")
            r = trial_result(w, kill_t, read_back(IP, KV_PORT, w))
            rows.append(r)
            print(f"    ftap trial {trial + 1}: {r['acked_writes']} acked writes, lost {r['lost_writes']}, "
                  f"resets {r['resets']}, errors {r['errors']}, stall {r['stall_ms']} ms", flush=True)
        finally:
            pair.close()
    meta = {"failover_timeout_ms": 500, "trials": TRIALS, "write_s": WRITE_S}
    save_trials(ctx, "ftap_trials.json", rows, meta)
    for i, r in enumerate(rows):
        check_eq(r["lost_writes"], 0, f"trial {i + 1}: acknowledged writes lost")
        check_eq(r["resets"], 0, f"trial {i + 1}: connection resets")
        check_eq(r["errors"], 0, f"trial {i + 1}: errors the client saw")
        check_eq(r["connect_failures"], 0, f"trial {i + 1}: failed reconnections")
        check(r["writes_after_kill"] > 0, f"trial {i + 1}: no write succeeded after the kill")
    st = [r["stall_ms"] for r in rows]
    ctx.note(f"ftap: {TRIALS} trials, lost 0, resets 0, stall median {statistics.median(st):.0f} ms max {max(st):.0f} ms")
    PL.write_measure(ctx.out_dir, stall_ms_median=statistics.median(st), stall_ms_max=max(st))


# --- Redis Sentinel --------------------------------------------------------------------------

class RedisSet:
    """redis-server master (node A's namespace, 10.0.0.11 on brA) + replica
    (node B's, 10.0.0.12 on brB) + three redis-sentinel in the client namespace."""

    def __init__(self, ctx, d: str):
        self.topo, self.d = ctx.topo, d
        os.makedirs(d, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.key = L.register_cleanup("redis processes", self.close)

    def spawn(self, name: str, ns: str | None, argv: list[str]):
        log = open(os.path.join(self.d, f"{name}.log"), "wb")
        cmd = (["ip", "netns", "exec", ns] if ns else []) + argv
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[name] = p
        return p

    def start(self):
        L.run(["ip", "addr", "add", f"{REDIS_A}/24", "dev", "brA"], ns=self.topo.node_a, check=False)
        L.run(["ip", "addr", "add", f"{REDIS_B}/24", "dev", "brB"], ns=self.topo.node_b, check=False)
        for name, ns, ip, extra in (("master", self.topo.node_a, REDIS_A, []),
                                    ("replica", self.topo.node_b, REDIS_B, ["--replicaof", REDIS_A, "6379"])):
            dd = os.path.join(self.d, name)
            os.makedirs(dd, exist_ok=True)
            self.spawn(name, ns, ["redis-server", "--port", "6379", "--bind", ip, "--save", "", "--appendonly", "no",
                                  "--protected-mode", "no", "--dir", dd, "--daemonize", "no"] + extra)
        wait_kv(REDIS_A, 6379)
        wait_kv(REDIS_B, 6379)
        for i, port in enumerate(SENTINEL_PORTS):
            conf = os.path.join(self.d, f"sentinel{i}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind {L.CLIENT_IP}\n"
                        f"protected-mode no\ndir {self.d}\n"
                        f"sentinel monitor mymaster {REDIS_A} 6379 2\n"
                        f"sentinel down-after-milliseconds mymaster {DOWN_MS}\n"
                        f"sentinel failover-timeout mymaster 10000\nsentinel parallel-syncs mymaster 1\n")
            self.spawn(f"sentinel{i}", None, ["redis-sentinel", conf])
        # Ready: the replica is in sync and every sentinel knows the replica and the two other sentinels.
        dl = L.Deadline(30)
        while True:
            try:
                ok = b"master_link_status:up" in RespConn(REDIS_B, 6379).call("INFO", "replication")
                for port in SENTINEL_PORTS:
                    c = RespConn(self.sentinel_ip(), port)
                    ok = ok and len(c.call("SENTINEL", "replicas", "mymaster")) == 1 \
                        and len(c.call("SENTINEL", "sentinels", "mymaster")) == 2
                    c.close()
                if ok:
                    return
            except (OSError, ConnectionError, TypeError):
                pass
            dl.check("Sentinel set-up (replica in sync, sentinels know each other)")
            time.sleep(0.2)

    def sentinel_ip(self) -> str:
        return L.CLIENT_IP

    def master(self) -> tuple[str, int]:
        for port in SENTINEL_PORTS:
            try:
                c = RespConn(self.sentinel_ip(), port, timeout=1)
                r = c.call("SENTINEL", "get-master-addr-by-name", "mymaster")
                c.close()
                if r:
                    return r[0].decode(), int(r[1])
            except OSError:
                continue
        raise ConnectionRefusedError("no sentinel answered")

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                L.stop_process(p, signal.SIGKILL, 5)
        if self.key is not None:
            L.unregister_cleanup(self.key)
            self.key = None


@test("sentinel_failover", timeout=400)
def sentinel_failover(ctx):
    """The same writer against Redis master + replica + 3 sentinels, master SIGKILLed (measured)."""
    rows = []
    for trial in range(TRIALS):
        rs = RedisSet(ctx, os.path.join(ctx.out_dir, f"t{trial + 1}"))
        try:
            rs.start()
            w = Writer(rs.master, op_timeout=2)
            w.run(time.monotonic() + WRITE_S + DOWN_MS / 1000 + 8.0)
            time.sleep(WRITE_S)
            kill_t = time.monotonic()
            rs.procs["master"].kill()
            w.join(DOWN_MS / 1000 + 20)
            check(not w.thread.is_alive(), "the writer did not finish")
            host, port = rs.master()
            check_eq(host, REDIS_B, "the master Sentinel reports after the failover")
            r = trial_result(w, kill_t, read_back(host, port, w))
            rows.append(r)
            print(f"    sentinel trial {trial + 1}: {r['acked_writes']} acked writes, lost {r['lost_writes']}, "
                  f"resets {r['resets']}, errors {r['errors']} {r['error_kinds']}, stall {r['stall_ms']} ms", flush=True)
        finally:
            rs.close()
    meta = {"down_after_ms": DOWN_MS, "trials": TRIALS, "write_s": WRITE_S, "redis": redis_version()}
    save_trials(ctx, "sentinel_trials.json", rows, meta)
    st = [r["stall_ms"] for r in rows if r["stall_ms"] is not None]
    check(st, "writes never resumed after the master was killed")
    ctx.note(f"sentinel (down-after {DOWN_MS} ms): lost {[r['lost_writes'] for r in rows]}, "
             f"stall median {statistics.median(st):.0f} ms")
    PL.write_measure(ctx.out_dir, stall_ms_median=statistics.median(st), lost_max=max(r["lost_writes"] for r in rows))


def table(ftap: dict, sent: dict) -> str:
    def col(rows, k):
        v = [r[k] for r in rows if r[k] is not None]
        return f"{statistics.median(v):.0f} (max {max(v):.0f})" if v else "-"

    def tot(rows, k):
        return f"{sum(r[k] for r in rows)} (max {max(r[k] for r in rows)})"
    lines = [f"| | ftap pair (failover timeout {ftap['meta']['failover_timeout_ms']} ms) | Redis {sent['meta'].get('redis', '')} "
             f"+ Sentinel (down-after-milliseconds {sent['meta']['down_after_ms']}) |", "|---|---|---|"]
    F, S = ftap["trials"], sent["trials"]
    lines.append(f"| trials | {len(F)} | {len(S)} |")
    lines.append(f"| writer's rate before the kill (acknowledged writes/s), median | "
                 f"{statistics.median([r['writes_per_s'] for r in F]):.0f} | {statistics.median([r['writes_per_s'] for r in S]):.0f} |")
    lines.append(f"| acknowledged writes per trial, median | {statistics.median([r['acked_writes'] for r in F]):.0f} | "
                 f"{statistics.median([r['acked_writes'] for r in S]):.0f} |")
    lines.append(f"| acknowledged writes lost, total over trials (max in one) | {tot(F, 'lost_writes')} | {tot(S, 'lost_writes')} |")
    lines.append(f"| connections reset, total (max) | {tot(F, 'resets')} | {tot(S, 'resets')} |")
    lines.append(f"| failed requests, total (max) | {tot(F, 'errors')} | {tot(S, 'errors')} |")
    lines.append(f"| failed reconnection attempts (50 ms apart), total (max) | {tot(F, 'connect_failures')} | {tot(S, 'connect_failures')} |")
    lines.append(f"| stall: longest gap between acknowledged writes from the kill on, ms, median (max) | {col(F, 'stall_ms')} | {col(S, 'stall_ms')} |")
    lines.append(f"| kill to the end of that gap (writes succeed again), ms, median (max) | {col(F, 'recovered_ms')} | {col(S, 'recovered_ms')} |")
    kinds = sorted({k for r in S for k in r["error_kinds"]})
    lines.append(f"| errors the client saw | {', '.join(sorted({k for r in F for k in r['error_kinds']})) or 'none'} | {', '.join(kinds) or 'none'} |")
    return "\n".join(lines)


@test("compare_table", timeout=30)
def compare_table(ctx):
    """The comparison table from ftap_trials.json and sentinel_trials.json (FTAP_KV_TABLE_DIR)."""
    d = os.environ.get("FTAP_KV_TABLE_DIR") or ctx.out_dir
    paths = [os.path.join(d, n) for n in ("ftap_trials.json", "sentinel_trials.json")]
    for p in paths:
        check(os.path.exists(p), f"{p} is missing: run ftap_failover and sentinel_failover first")
    with open(paths[0]) as f:
        ftap = json.load(f)
    with open(paths[1]) as f:
        sent = json.load(f)
    t = table(ftap, sent)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(t + "\n")
    print(t, flush=True)


if __name__ == "__main__":
    sys.exit(L.main("ftap kv service tests (Redis clients, Sentinel comparison)"))
