#!/usr/bin/env python3
"""Operating ftap as a production daemon (issue 16), in the namespaces of
scripts/netns.sh. Run by scripts/ops-test.sh inside the client namespace.

Tests:
  config_and_check       TOML config: every `ftap run` option is a key, check-config
                         accepts a good file and names every problem of a bad one
                         with FILE:LINE in one run (exit 64), syntax errors with
                         FILE:LINE:COL, all missing flags at once, --config=FILE and
                         --config FILE, --version shows the commit, and
                         `systemd-analyze verify` on contrib/ftap@.service
  config_runs_a_pair     a pair from TOML files: booleans (start-alone), arrays
                         (service), the command line wins (node-name)
  readiness_and_journal  sd_notify on a test datagram socket (a path, then an
                         abstract '@' name): READY=1, WATCHDOG=1 repeatedly at
                         about half of WATCHDOG_USEC, STOPPING=1, in that order;
                         journald priority prefixes with JOURNAL_STREAM
  hooks_and_metrics      --notify-script events across join, switchover, failover
                         and rejoin, with FTAP_* environment; /status last_event,
                         ftap_role_changes_total, # HELP for every metric,
                         ftap_build_info, the arbiter claim histogram
  restart_same_flags     five cycles: kill -9 the primary, restart it with its
                         usual flags (A always --role primary, B always --role
                         backup): it joins as backup and the pair is protected
                         again; a TCP client's counter is continuous throughout
  cold_restart           both nodes killed and restarted with their usual flags:
                         neither serves (/status waiting_reason); --new-pair on one
                         starts a new pair and the other joins it

Everything waited for is read from /status (JSON) or the notification socket.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from ftaplib import TestFailure, check, test  # noqa: E402
from scenario import Scenario  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def ftap(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return L.run([PL.ftap_bin()] + args, timeout=timeout, check=False)


def write(path: str, text: str, mode: int = 0o644) -> str:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def secret_file(d: str) -> str:
    return write(os.path.join(d, "secret"), PL.ISN_KEY + "\n", 0o600)


def node_toml(pair: PL.Pair, node: str, role: str, extra: str = "") -> str:
    """A complete configuration file for node A or B of ``pair``."""
    me, other = (L.LOG_IP_A, L.LOG_IP_B) if node == "A" else (L.LOG_IP_B, L.LOG_IP_A)
    tap, br = ("tapA", "brA") if node == "A" else ("tapB", "brB")
    return f"""# node {node}
role = "{role}"
tap = "{tap}"
bridge = "{br}"
mac = "{PL.APPLIANCE_MAC}"
ip = "{PL.APPLIANCE_IP}/24"
service = ["counter:{PL.PORT_COUNTER}", "echo:{PL.PORT_ECHO}", "udp-counter:{PL.PORT_UDP_COUNTER}"]
listen = "{me}:{PL.LOG_PORT}"
peer = "{other}:{PL.LOG_PORT}"
arbiter = "file:{pair.arb}"
secret-file = "{secret_file(pair.out_dir)}"
admin = "{PL.ADMIN}"
admin-token-file = "{pair.token_file}"
log-level = "{os.environ.get('FTAP_LOG_LEVEL', 'info')}"
{extra}"""


def first_incr_is_one(ctx, daemons: list[PL.Daemon], what: str):
    """Once the client reaches the appliance, the counter's first INCR answers 1."""
    PL.wait_ping(ctx.topo, 15, daemons)
    with L.LineClient(port=PL.PORT_COUNTER) as c:
        check(c.incr() == 1, what)


# --- configuration ---------------------------------------------------------------

@test("config_and_check", timeout=120)
def config_and_check(ctx):
    d = ctx.out_dir
    with Scenario(ctx) as sc:
        pair = sc.pair()
        # Every option of `ftap run` is a key of the file (ArgumentParser's own list).
        cp = ftap(["run", "--experimental-dump-help"])
        check(cp.returncode == 0, f"dump-help: {cp.stderr}")
        args = json.loads(cp.stdout)["command"]["arguments"]
        names = []
        for a in args:
            longs = [n["name"] for n in a.get("names", []) if n["kind"] == "long"]
            if longs and longs[0] not in ("help", "version", "config", "new-pair"):
                names.append((longs[0], a["kind"]))
        check(len(names) >= 35, f"only {len(names)} options found in dump-help")
        lines = [f'{n} = {"true" if k == "flag" else chr(34) + "x" + chr(34)}' for n, k in names]
        probe = write(os.path.join(d, "all-keys.toml"), "\n".join(lines) + "\n")
        cp = ftap(["check-config", probe])
        unknown = [x for x in cp.stderr.splitlines() if "unknown key" in x]
        check(not unknown, f"options of `ftap run` the file does not know: {unknown}")
        ctx.note(f"{len(names)} options of `ftap run`, every one a key of the file")

        good = write(os.path.join(d, "good.toml"), node_toml(pair, "A", "primary", "start-alone = true\n"))
        cp = ftap(["check-config", good])
        check(cp.returncode == 0 and "OK" in cp.stdout, f"good file: exit {cp.returncode}: {cp.stdout}{cp.stderr}")

        bad_text = node_toml(pair, "A", "primary").replace('mac = "02', 'mac = "03') + "\n".join([
            "servce = \"echo:7\"",            # unknown key
            "mtu = \"big\"",                  # wrong type
            "start-alone = \"yes\"",          # wrong type for a boolean
            "new-pair = true",                # never in the file
            "heartbeat-ms = 900",             # heartbeat >= failover timeout
        ]) + "\n"
        bad = write(os.path.join(d, "bad.toml"), bad_text)
        lineno = {k: i + 1 for i, ln in enumerate(bad_text.splitlines()) for k in [ln.split("=")[0].strip()]}
        cp = ftap(["check-config", bad])
        err = cp.stderr
        check(cp.returncode == 64, f"bad file: exit {cp.returncode} (want 64): {err}")
        for key, what in [("servce", "unknown key 'servce'"), ("mtu", "mtu must be an integer"),
                          ("start-alone", "start-alone must be true or false"), ("new-pair", "unknown key 'new-pair'")]:
            check(f"{bad}:{lineno[key]}: {what}" in err, f"check-config did not say '{bad}:{lineno[key]}: {what}':\n{err}")
        check("multicast" in err, f"the multicast MAC is not named:\n{err}")
        check("--heartbeat-ms" in err, f"heartbeat >= failover timeout is not named:\n{err}")
        ctx.note(f"check-config named {len(err.strip().splitlines())} problems of one file in one run")

        # A syntax error: FILE:LINE:COL.
        syn = write(os.path.join(d, "syntax.toml"), 'tap = "tapA"\nrole = primary\n')
        cp = ftap(["check-config", syn])
        check(cp.returncode == 64 and re.search(re.escape(syn) + r":2:\d+: ", cp.stderr),
              f"syntax error: exit {cp.returncode}: {cp.stderr}")

        # Flag validation names every missing flag at once.
        cp = ftap(["run", "--role", "primary"])
        check(cp.returncode == 64, f"run without flags: exit {cp.returncode}: {cp.stderr}")
        for flag in ["--tap", "--mac", "--ip", "--service", "--listen", "--peer", "--arbiter", "--secret-file"]:
            check(flag in cp.stderr, f"run without flags does not name {flag}: {cp.stderr}")

        # --config=FILE and --config FILE both read the file (the bad one: exit 64, FILE:LINE).
        for form in (["--config=" + bad], ["--config", bad]):
            cp = ftap(["run"] + form)
            check(cp.returncode == 64 and f"{bad}:{lineno['servce']}: unknown key" in cp.stderr,
                  f"ftap run {' '.join(form)}: exit {cp.returncode}: {cp.stderr}")
        cp = ftap(["run", "--config=" + os.path.join(d, "missing.toml")])
        check(cp.returncode == 64 and "missing.toml" in cp.stderr, f"missing file: exit {cp.returncode}: {cp.stderr}")

        # --version: version and commit.
        cp = ftap(["--version"])
        m = re.match(r"^(\S+) \(commit ([0-9a-f]{12}|unknown)\)$", cp.stdout.strip())
        check(cp.returncode == 0 and m, f"--version: {cp.stdout!r}")
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0 and os.path.realpath(PL.ftap_bin()).startswith(REPO + os.sep):
            # A binary built from this checkout names its HEAD.
            check(m.group(2) == head.stdout.strip(), f"--version says {m.group(2)}, HEAD is {head.stdout.strip()}")
        ctx.note(f"--version: {cp.stdout.strip()}")

        # The systemd unit, where systemd-analyze runs here.
        if shutil.which("systemd-analyze"):
            unit_dir = os.path.join(d, "unit")
            os.makedirs(unit_dir, exist_ok=True)
            with open(os.path.join(REPO, "contrib", "ftap@.service")) as f:
                unit = f.read().replace("/usr/bin/ftap", PL.ftap_bin())
            write(os.path.join(unit_dir, "ftap@a.service"), unit)
            cp = L.run(["systemd-analyze", "verify", os.path.join(unit_dir, "ftap@a.service")], check=False, timeout=60)
            problems = [x for x in (cp.stdout + cp.stderr).splitlines()
                        if x.strip() and "man ftap" not in x and "ftap.8" not in x]
            check(not problems, f"systemd-analyze verify: {problems}")
            ctx.note("systemd-analyze verify: clean but for man:ftap(8), which the .deb installs")
        else:
            ctx.note("systemd-analyze not installed: unit not verified")


@test("config_runs_a_pair", timeout=120)
def config_runs_a_pair(ctx):
    with Scenario(ctx) as sc:
        pair = sc.pair()
        fa = write(os.path.join(ctx.out_dir, "a.toml"),
                   node_toml(pair, "A", "primary", 'start-alone = true\nnode-name = "from-file"\n'))
        fb = write(os.path.join(ctx.out_dir, "b.toml"), node_toml(pair, "B", "backup"))
        a = pair.start_node("A", "primary", argv=[PL.ftap_bin(), "run", "--config=" + fa, "--node-name", "A-cli"])
        st, _ = a.wait_status("serving alone (start-alone = true)", 30, mode="alone", live=True)
        check(st["node"] == "A-cli", f"the command line's --node-name must win: {st['node']}")
        b = pair.start_node("B", "backup", argv=[PL.ftap_bin(), "run", "--config", fb])
        a.wait_status("protected", 30, mode="protected")
        st, _ = b.wait_status("in-sync backup", 30, mode="backup", in_sync=True)
        check(st["node"] == "tapB", f"B's name: {st['node']}")
        first_incr_is_one(ctx, [a, b], "first INCR")


# --- systemd readiness and journald ---------------------------------------------------

def unix_dgram_in_netns(ns: str) -> socket.socket:
    """An AF_UNIX datagram socket created in namespace ``ns`` (abstract names
    are per network namespace)."""
    return PL.socket_in_netns(ns, socket.AF_UNIX, socket.SOCK_DGRAM)


def read_notifications(s: socket.socket, until: float, stop=None) -> list[tuple[float, str]]:
    out = []
    s.settimeout(0.05)
    while time.monotonic() < until:
        try:
            data = s.recv(4096)
            out.append((time.monotonic(), data.decode()))
            if stop and stop(out):
                break
        except socket.timeout:
            pass
    return out


@test("readiness_and_journal", timeout=120)
def readiness_and_journal(ctx):
    with Scenario(ctx) as sc:
        pair = sc.pair()
        for variant in ("path", "abstract"):
            if variant == "path":
                addr = os.path.join(ctx.out_dir, "notify.sock")
                if os.path.exists(addr):
                    os.unlink(addr)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.bind(addr)
                env_addr = addr
            else:
                name = f"ftap-ops-test-{os.getpid()}"
                s = unix_dgram_in_netns(ctx.topo.node_a)
                s.bind("\0" + name)
                env_addr = "@" + name
            try:
                a = pair.start_node("A", "primary", extra=["--start-alone"],
                                    env={"NOTIFY_SOCKET": env_addr, "WATCHDOG_USEC": "200000"})
                t0 = time.monotonic()
                msgs = read_notifications(s, t0 + 20, stop=lambda m: sum("WATCHDOG=1" in x for _, x in m) >= 8
                                          and any("READY=1" in x for _, x in m))
                a.wait_status("serving alone", 10, mode="alone", systemd_ready=True)
                a.stop(signal.SIGTERM)
                check(a.poll() == 0, f"SIGTERM: exit {a.poll()}")
                msgs += read_notifications(s, time.monotonic() + 1.0)
            finally:
                s.close()
            kinds = []
            for _, m in msgs:
                for k in ("READY=1", "WATCHDOG=1", "STOPPING=1"):
                    if k in m.split("\n"):
                        kinds.append(k)
            check("READY=1" in kinds and "STOPPING=1" in kinds, f"{variant}: messages {kinds}")
            ready = kinds.index("READY=1")
            check(kinds.count("READY=1") == 1 and kinds.count("STOPPING=1") == 1, f"{variant}: {kinds}")
            check(kinds[-1] == "STOPPING=1", f"{variant}: STOPPING=1 must be last: {kinds}")
            check(kinds[ready + 1:].count("WATCHDOG=1") >= 5, f"{variant}: WATCHDOG=1 after READY: {kinds}")
            status = [m for _, m in msgs if "READY=1" in m][0]
            check(re.search(r"STATUS=tapA: \S+ epoch 1 ", status), f"{variant}: READY carries STATUS: {status!r}")
            wd = [t for t, m in msgs if "WATCHDOG=1" in m.split("\n")]
            gaps = sorted(b - x for x, b in zip(wd, wd[1:]))
            med = gaps[len(gaps) // 2]
            check(0.06 <= med <= 0.16, f"{variant}: median WATCHDOG interval {med * 1000:.0f} ms, want ~100 (half of 200 ms)")
            ctx.note(f"{variant} socket: READY, {kinds.count('WATCHDOG=1')} x WATCHDOG (median {med * 1000:.0f} ms), STOPPING")
            for f in os.listdir(pair.arb):
                os.unlink(os.path.join(pair.arb, f))

        # journald: JOURNAL_STREAM names stderr's device:inode. A node whose
        # arbiter has history and whose peer is down logs at every level from
        # debug (connect refused) to warning (why it does not serve).
        write(os.path.join(pair.arb, "epoch-1"), "tapB")
        logp = os.path.join(ctx.out_dir, "journal.log")
        with open(logp, "wb") as lf:
            st = os.fstat(lf.fileno())
            argv = [x if x != "info" else "debug" for x in pair.argv("A", "primary", [])]
            p = subprocess.Popen(["ip", "netns", "exec", ctx.topo.node_a] + argv, stdout=lf, stderr=lf,
                                 stdin=subprocess.DEVNULL,
                                 env=dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
            PL.record_pid(p.pid, "ftap-journal")
            try:
                dl = L.Deadline(20)
                while not dl.expired():
                    text = open(logp, errors="replace").read()
                    if "<4>" in text and "<5>" in text:
                        break
                    time.sleep(0.1)
            finally:
                L.stop_process(p, signal.SIGTERM, 10)
        lines = [x for x in open(logp, errors="replace").read().splitlines() if x.strip()]
        bad = [x for x in lines if not re.match(r"^<[2-7]>", x)]
        check(not bad, f"lines without a priority prefix: {bad[:5]}")
        prios = sorted({x[1] for x in lines})
        for want in ("7", "6", "5", "4"):
            check(want in prios, f"no <{want}> line (debug, info, notice, warning) in {prios}")
        ctx.note(f"journald: {len(lines)} lines, priorities {','.join(prios)}")


# --- hooks and metrics -------------------------------------------------------------

HOOK = """#!/bin/sh
echo "$1 event=$FTAP_EVENT epoch=$FTAP_EPOCH index=$FTAP_INDEX node=$FTAP_NODE peer=$FTAP_PEER" >> {out}/hooks-$FTAP_NODE.txt
"""


def hook_events(d: str, node: str) -> list[dict]:
    p = os.path.join(d, f"hooks-{node}.txt")
    if not os.path.exists(p):
        return []
    out = []
    for line in open(p).read().splitlines():
        first, *kv = line.split()
        e = dict(x.split("=", 1) for x in kv)
        check(first == e["event"], f"first argument {first} != FTAP_EVENT {e['event']}")
        out.append(e)
    return out


def wait_events(d: str, node: str, want: list[str], timeout: float = 15) -> list[dict]:
    dl = L.Deadline(timeout)
    while True:
        ev = hook_events(d, node)
        if [e["event"] for e in ev] == want:
            return ev
        if dl.expired():
            raise TestFailure(f"hook events of {node}: {[e['event'] for e in ev]}, want {want}")
        time.sleep(0.05)


@test("hooks_and_metrics", timeout=180)
def hooks_and_metrics(ctx):
    d = ctx.out_dir
    for f in os.listdir(d):
        if f.startswith("hooks-"):
            os.unlink(os.path.join(d, f))
    script = write(os.path.join(d, "hook.sh"), HOOK.format(out=d), 0o755)
    with Scenario(ctx) as sc:
        pair = sc.pair(extra=["--notify-script", script])
        a, b = pair.start()
        ea = wait_events(d, "tapA", ["primary", "protected"])
        wait_events(d, "tapB", ["backup"])
        check(ea[0]["epoch"] == "1" and ea[0]["node"] == "tapA" and ea[0]["peer"] == f"{L.LOG_IP_B}:{PL.LOG_PORT}",
              f"A's first event: {ea[0]}")
        check(all(e["index"].isdigit() for e in ea), f"FTAP_INDEX: {ea}")
        check(a.status()["last_event"] == "protected", "A's /status last_event")

        # Metrics: every metric has # HELP; build info, start time, claim histogram, role changes.
        text = a.admin_get("/metrics")
        types = re.findall(r"^# TYPE (\S+) ", text, re.M)
        helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
        missing = [t for t in types if t not in helps]
        check(types and not missing, f"metrics without # HELP: {missing}")
        m = PL.parse_prometheus(text)
        bi = [k for k in m if k.startswith("ftap_build_info{")]
        check(bi and 'commit="' in bi[0] and 'version="' in bi[0] and m[bi[0]] == 1, f"build info: {bi}")
        check(abs(m["ftap_start_time_seconds"] - time.time()) < 600, "ftap_start_time_seconds")
        check(m.get("ftap_arbiter_claim_duration_seconds_count", 0) >= 1, "claim histogram has A's epoch-1 claim")
        check(m.get('ftap_role_changes_total{event="protected"}') == 1, f"role changes: "
              f"{ {k: v for k, v in m.items() if 'role_change' in k} }")
        check(m["ftap_last_role_change_timestamp_seconds"] > 0, "last role change timestamp")
        ctx.note(f"/metrics: {len(types)} metrics, each with # HELP")

        # Switchover: A follows, B serves epoch 2.
        a.switchover()
        b.wait_status("B primary after switchover", 15, role="primary", mode="protected")
        wait_events(d, "tapA", ["primary", "protected", "backup"])
        eb = wait_events(d, "tapB", ["backup", "primary", "protected"])
        check(eb[1]["epoch"] == "2", f"B's primary event epoch: {eb[1]}")

        # Failover: kill -9 B (the primary); A takes over alone in epoch 3.
        b.kill()
        a.wait_status("A live alone", 15, mode="alone", live=True)
        ea = wait_events(d, "tapA", ["primary", "protected", "backup", "primary", "alone"])
        check(ea[3]["epoch"] == "3", f"A's takeover epoch: {ea[3]}")

        # Rejoin: B restarted with its usual flags joins A as backup.
        b = pair.start_node("B", "backup")
        b.wait_status("B rejoined", 30, mode="backup", in_sync=True)
        a.wait_status("A protected again", 30, mode="protected")
        wait_events(d, "tapA", ["primary", "protected", "backup", "primary", "alone", "protected"])
        wait_events(d, "tapB", ["backup", "primary", "protected", "backup"])

        # Stopping: SIGTERM B, the hook hears it before the process exits.
        check(b.stop(signal.SIGTERM) == 0, "B's exit status on SIGTERM")
        wait_events(d, "tapB", ["backup", "primary", "protected", "backup", "stopping"], timeout=2)
        # A lost its backup: it goes on alone (a new epoch, but no second `primary`).
        wait_events(d, "tapA", ["primary", "protected", "backup", "primary", "alone", "protected", "alone"])
        st = a.status()
        check(st["hook_failures"] == 0 and st["hook_runs"] >= 6, f"A's hooks: {st['hook_runs']} runs, "
              f"{st['hook_failures']} failures")


# --- restart semantics ---------------------------------------------------------------

@test("restart_same_flags", timeout=300)
def restart_same_flags(ctx):
    roles = {"A": "primary", "B": "backup"}  # the usual flags, never changed
    with Scenario(ctx) as sc:
        pair = sc.pair()
        pair.start()
        load = sc.load(pace_s=0.002, warm_up_timeout=15)
        primary = "A"
        cycles = int(os.environ.get("FTAP_CYCLES", "5"))
        stalls = []
        for i in range(cycles):
            dead, alive = primary, ("B" if primary == "A" else "A")
            pair.latest[dead].kill()
            t_kill = time.monotonic()
            pair.latest[alive].wait_status(f"cycle {i + 1}: {alive} serving", 15, live=True, mode="alone")
            load.wait_progress_after(t_kill, 20, 20)
            stalls.append(load.stall_around(t_kill)[0])
            d = pair.start_node(dead, roles[dead])
            st, _ = d.wait_status(f"cycle {i + 1}: {dead} rejoined as backup", 60, role="backup", mode="backup",
                                  in_sync=True)
            check(st["configured_role"] == "backup" and (roles[dead] == "backup" or st["startup_note"]),
                  f"{dead} restarted as {roles[dead]} must follow, saying why: {st.get('startup_note')}")
            pair.latest[alive].wait_status(f"cycle {i + 1}: protected again", 30, mode="protected")
            load.wait_progress_after(time.monotonic(), 20, 20)
            primary = alive
        load.stop()
        vals = load.values
        PL.check_consecutive(vals, 1, "INCR values over the restarts")
        claims = pair.arbiter_claims()
        check(sorted(claims) == list(range(1, cycles + 2)), f"arbiter epochs: {claims}")
        ctx.note(f"{cycles} kill/restart cycles with identical flags; {PL.describe_values(vals)}; "
                 f"longest stall {max(stalls) * 1000:.0f} ms")
        PL.write_measure(ctx.out_dir, restart_cycles=cycles, max_stall_ms=max(stalls) * 1000)


@test("cold_restart", timeout=180)
def cold_restart(ctx):
    with Scenario(ctx) as sc:
        pair = sc.pair()
        a, b = pair.start()
        c = L.LineClient(port=PL.PORT_COUNTER)
        for _ in range(5):
            c.incr()
        c.close()
        a.kill()
        b.kill()  # B may have claimed epoch 2 between the two kills
        before = pair.arbiter_claims()
        # Both restarted with their usual flags: the arbiter has history, no node has state.
        a = pair.start_node("A", "primary")
        b = pair.start_node("B", "backup")
        for n in (a, b):
            st, _ = n.wait_status("waiting, not serving", 15, mode="waiting-for-peer", live=False,
                                  cond=lambda s: s.get("waiting_reason"))
            check("--new-pair" in st["waiting_reason"], f"{n.name}: {st['waiting_reason']}")
        time.sleep(3)
        for n in (a, b):
            st = n.status()
            check(n.alive() and not st["live"] and st["mode"] == "waiting-for-peer", f"{n.name}: {PL.brief(st)}")
        cp = L.run(["ping", "-n", "-c", "2", "-W", "1", PL.APPLIANCE_IP], ns=ctx.topo.client, check=False, timeout=10)
        check(cp.returncode != 0, "the appliance answered while neither node may serve")
        check(pair.arbiter_claims() == before, f"no claim while waiting: {before} then {pair.arbiter_claims()}")
        n_logged = len(re.findall(r"not serving, waiting for the peer", a.log()))
        check(1 <= n_logged <= 2, f"A said why it waits {n_logged} times in ~4 s (once per 10 s interval)")
        # The operator's cold start: B with --new-pair; A (still retrying) joins it.
        b.stop(signal.SIGTERM)
        b = pair.start_node("B", "backup", extra=["--new-pair"])
        st, _ = b.wait_status("B serving a new pair", 15, live=True, role="primary")
        check(st["epoch"] == max(before) + 1, f"--new-pair claims the next free epoch: {st['epoch']} after {before}")
        a.wait_status("A joined the new pair", 30, mode="backup", in_sync=True)
        b.wait_status("protected", 30, mode="protected")
        first_incr_is_one(ctx, [a, b], "a new pair starts with an empty state")
        ctx.note(f"cold restart: both wait without --new-pair; with it B serves epoch {max(before) + 1} and A joins")


if __name__ == "__main__":
    sys.exit(L.main("ftap operations tests (config, systemd, hooks, restart)"))
