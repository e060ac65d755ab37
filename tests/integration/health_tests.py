#!/usr/bin/env python3
"""Integration tests of health tracking and failover that picks the healthy
node (issue 11), run from the client namespace of scripts/netns.sh:

    ip netns exec ${P}-c python3 tests/integration/health_tests.py --prefix P --only NAME --out-dir DIR

Each test starts its own pair (primary A in ${P}-a, backup B in ${P}-b, fresh
arbiter directory under --out-dir) on a topology that scripts/health-test.sh
builds fresh for every test. The daemons track their bridge's other port
(upA / upB, the uplink to the switch) by default (--bridge). A real Linux
TCP client (INCR back to back on one connection, pairlib.IncrLoad) runs
through every scenario; each test reports its longest stall, lost or
duplicated values and resets (any reset/EOF/timeout fails the test).

Tests:
  s1_uplink_down_primary     upA down (log link up): A unhealthy, hands over to B at once;
                             upA back: A healthy again (as backup)
  s2_cable_pull_primary      upA and logA down at once: B takes over; A never wins an epoch,
                             not even when its links come back
  s3_uplink_down_backup      upB down: no takeover, the primary stays; switchover refused
                             (POST /switchover 409 and `ftap switchover` fails)
  s4_uplink_restored_switchover  upB down then up: B healthy again, switchover to B succeeds
  s5_arbiter_unwritable      arbiter directory immutable, SIGKILL A: B retries
                             (arbiter_unavailable grows), never exits, takes over once writable
  s5b_arbiter_unwritable_handover  the same during a health handover (upA down)
  s5c_arbiter_unwritable_switchover  operator switchover during an arbiter outage: the pair survives
  s6_unhealthy_backup_waits  upB down, SIGKILL A: B does not claim; upB up: B claims and serves
  s8_alone_links_back_garp   B serving alone loses upB and gets it back: stays live, then GARPs again
  s9_track_interface_and_script  --no-track-bridge, --track-interface (a veth link), --track-script:
                             each makes A hand over; healthy again when it passes
  s10_both_unhealthy         both uplinks down: the primary stays; upB back: A hands over at once
  s11_alternating_uplink_failures  the primary's uplink fails six times in turn: six handovers
  s12_alone_superseded       B alone, epoch-3 appears in the arbiter dir: B exits 2 within ~T/2
  s13_unhealthy_during_switchover  upB down racing a switchover (FTAP_HEALTH_RACE_ATTEMPTS, 8):
                             the healthy A must serve within 1 s whatever the interleaving
  s7_different_arbiters      A and B with different arbiter directories must be refused at
                             hello, naming both store identities; B exits 3
  trials_cable_pull          FTAP_HEALTH_TRIALS (default 2) trials of each kind: uplink only
                             (alternately node side upA and switch side sw-a) and uplink+log
                             (alternately both at once and logA 20 ms before upA); per-trial stall;
                             the healthy node serves every time, the client sees every value once
  trials_stall_bound         FTAP_HEALTH_BOUND_TRIALS (10) pulls of each kind: every stall
                             <= failover timeout + 100 ms (the issue's "done when")
  k1_keepalived_comparison   only with FTAP_HEALTH_KEEPALIVED=1: keepalived (VRRP through the switch,
                             and over the log link) with the same pulls, recorded for comparison

Environment: FTAP_RUN_BIN, FTAP_PIDFILE, FTAP_LOG_LEVEL (see pairlib);
FTAP_HEALTH_TRIALS (trials per kind, default 2); FTAP_HEALTH_FAILOVER_MS
(--failover-timeout-ms, default 500); FTAP_HEALTH_STALL_SLACK_MS (allowed
stall above the failover timeout in the trials, default 100); FTAP_HEALTH_KEEPALIVED=1
adds k1_keepalived_comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from ftaplib import TestFailure, check, check_eq, test  # noqa: E402
from pairlib import Pair  # noqa: E402
from scenario import Scenario, finish_load, links, ms  # noqa: E402

AMAC = PL.APPLIANCE_MAC
T_MS = int(os.environ.get("FTAP_HEALTH_FAILOVER_MS", "500") or 500)
TRIALS = int(os.environ.get("FTAP_HEALTH_TRIALS", "2") or 2)
REP = int(os.environ.get("FTAP_REP", "1") or 1)
SLACK_MS = int(os.environ.get("FTAP_HEALTH_STALL_SLACK_MS", "100") or 100)
# Headers of the client's TCP and of ARP on br0 during each pull (cheap; for
# reading a stall afterwards: tcpdump -ttnr .../br0.pcap).
CAPTURE = os.environ.get("FTAP_CAPTURE", "1") != "0"


def check_fdb(topo, want_port, what):
    ports = PL.fdb_ports(topo)
    check(ports == [want_port], f"{what}: switch FDB for {AMAC} is {ports or 'absent'}, want [{want_port}]")


def remove_file(path: str):
    if os.path.exists(path):
        os.unlink(path)


def healthy_pair(pair: Pair):
    """Starts the pair and checks both nodes report themselves (and each other) healthy."""
    a, b = pair.start()
    a.wait_status("healthy, its backup healthy", 5, healthy=True, peer_healthy=True)
    b.wait_status("healthy, its primary healthy", 5, healthy=True, peer_healthy=True)
    return a, b


def healthy_pair_under_load(sc: Scenario, req_timeout: float = 15.0):
    """``healthy_pair`` on a pair of ``sc`` (failover timeout T_MS), then the
    INCR client running on it. Returns (pair, A, B, load)."""
    pair = sc.pair(failover_timeout_ms=T_MS)
    a, b = healthy_pair(pair)
    return pair, a, b, sc.load(req_timeout=req_timeout)


def backup_uplink_down(sc: Scenario, a, b):
    """upB down: B reports itself unhealthy, then A sees it. Returns (B's
    /status, when B was seen unhealthy, when A saw it)."""
    sc.links(sc.topo.node_b, "upB down")
    sb, tb = b.wait_status("B unhealthy", 5, healthy=False)
    _, tp = a.wait_status("A sees its backup unhealthy", 5, peer_healthy=False)
    return sb, tb, tp


# --- 1. uplink down on the primary ------------------------------------------------

@test("s1_uplink_down_primary", timeout=120)
def s1_uplink_down_primary(ctx):
    """upA down, log link up: A reports itself unhealthy and hands over at once
    (planned switchover path: B claims epoch 2, no failover), the client's
    connection continues; upA back up: A healthy again, B sees it."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair = sc.pair(failover_timeout_ms=T_MS)
        a, b = healthy_pair(pair)
        check_fdb(topo, "sw-a", "before")
        load = sc.load()
        time.sleep(0.5)
        t0 = time.monotonic()
        sc.links(topo.node_a, "upA down")
        sa, ta = a.wait_status("unhealthy after upA down", 5, healthy=False)
        check("upA" in sa["health_reason"], f"A's health_reason does not name upA: {sa['health_reason']!r}")
        sb, tb = b.wait_status("primary by handover", 10, role="primary", live=True, epoch=2)
        a.wait_status("backup after handing over", 10, role="backup", mode="backup")
        load.wait_progress_after(tb, 200, 20)
        sb = b.status()
        check_eq(sb["failovers"], 0, "B's failovers (a handover, not a takeover)")
        check(sb["switchovers"] >= 1, f"B's switchovers: {sb['switchovers']}, want >= 1")
        check_eq(sb["peer_healthy"], False, "B's peer_healthy (A's uplink is down)")
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        check_fdb(topo, "sw-b", "after the handover")
        # The uplink comes back: A reports healthy again and B learns it.
        t1 = time.monotonic()
        sc.links(topo.node_a, "upA up")
        _, th = a.wait_status("healthy again after upA up", 10, healthy=True)
        b.wait_status("peer healthy again", 5, peer_healthy=True)
        st_a = a.status()
        check(st_a["role"] == "backup" and st_a["in_sync"], f"A after upA up: {PL.brief(st_a)}")
        time.sleep(0.3)
        r = finish_load(ctx, load, t0, "uplink down on the primary")
        ctx.note(f"A unhealthy {ms(ta - t0)} after upA down, B primary (epoch 2) {ms(tb - t0)} after; "
                 f"A healthy {ms(th - t1)} after upA up")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, detect_ms=(ta - t0) * 1000,
                         handover_ms=(tb - t0) * 1000)


# --- 2. cable pull on the primary -----------------------------------------------

def cable_pull_trial(sc: Scenario, pair: Pair, kind: str, variant: int) -> dict:
    """One trial on a fresh protected pair: ``kind`` "uplink" (the uplink
    alone; variant 0: upA down in A's namespace, 1: sw-a down on the switch)
    or "cable" (uplink and log link; variant 0: both in one ip -batch, upA
    first; 1: logA, then upA 20 ms later). Checks that B serves, A never wins an epoch, the client continues.
    Returns measurements. The links stay down until ``sc`` ends; the
    trial's client and capture end with the trial."""
    topo = pair.topo
    a, b = healthy_pair(pair)
    with Scenario(sc.ctx, pair.out_dir) as trial:
        if CAPTURE:
            trial.capture(topo.switch, "br0", "br0.pcap", bpf=f"arp or tcp port {PL.PORT_COUNTER}", snaplen=128)
        load = trial.load()
        time.sleep(0.3)
        if kind == "uplink":
            how = "upA down (node side)" if variant == 0 else "sw-a down (switch side)"
            t0 = time.monotonic()
            if variant == 0:
                sc.links(topo.node_a, "upA down")
            else:
                sc.links(topo.switch, "sw-a down")
        elif variant == 0:
            how = "upA down + logA down (one ip -batch)"
            t0 = time.monotonic()
            sc.links(topo.node_a, "upA down", "logA down")
        else:
            # The log cable a moment first: the client's next request reaches
            # A, which cannot log it, so B never sees it (the worst case for
            # the client's stall; the same order in one ip -batch hits it
            # about half the time).
            how = "logA down, 20 ms, upA down"
            t0 = time.monotonic()
            sc.links(topo.node_a, "logA down")
            time.sleep(0.02)
            sc.links(topo.node_a, "upA down")
        sa, ta = a.wait_status("unhealthy", 5, healthy=False)
        sb, tb = b.wait_status("B live (epoch 2 or 3)", 10, role="primary", live=True, cond=lambda s: s["epoch"] >= 2)
        load.wait_progress_after(tb, 100, 20)
        if kind == "cable":
            # B serves alone once it finds the log link dead (at once after a
            # takeover; a failover timeout after a handover).
            b.wait_status("B live alone", 5, role="primary", live=True, mode="alone")
        else:
            b.wait_status("B the protected primary, A its backup", 5, role="primary", live=True, mode="protected")
        time.sleep(0.3)
        check(a.alive(), f"A exited: {pair.describe_exit(a)}\n{a.tail()}")
        st_a = a.status()
        check(st_a["live"] is False, f"A is live after the {kind} pull: {PL.brief(st_a)}")
        sb = b.status()
        claims = pair.arbiter_claims()
        check_b_owns(claims, sb, "arbiter claims after the pull")
        r = finish_load(sc.ctx, load, t0, f"{kind} pull: {how}")
        r.update(kind=kind, how=how, detect_ms=(ta - t0) * 1000, live_ms=(tb - t0) * 1000,
                 b_failovers=sb["failovers"], b_switchovers=sb["switchovers"], a_mode=st_a["mode"],
                 a_role=st_a["role"], claims=claims)
        return r

def check_b_owns(claims: dict, sb: dict, what: str):
    """A pull of A's cable: epoch 1 is A's, every later epoch B's, and B
    serves in the highest. (upA going down a moment before logA lets A hand
    over, B wins epoch 2 by switchover and then epoch 3 alone when the log
    link is found dead; logA first: B takes over in epoch 2.)"""
    check(claims.get(1) == "tapA" and len(claims) >= 2 and all(v == "tapB" for e, v in claims.items() if e >= 2),
          f"{what}: {claims}, want epoch 1 tapA and every later epoch tapB")
    check(sb["epoch"] == max(claims) and sb["live"], f"{what}: {claims}, B is {PL.brief(sb)}")


@test("s2_cable_pull_primary", timeout=120)
def s2_cable_pull_primary(ctx):
    """upA and logA down at once: B takes over and serves, the client
    continues; the isolated A never claims (arbiter epoch files), and when its
    links come back it still wins nothing and emits nothing onto the switch."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair = sc.pair(failover_timeout_ms=T_MS)
        # Run 1 (CI): logA 20 ms before upA, so A cannot hand over and B must
        # take over; even runs: both at once (A may hand over first).
        r = cable_pull_trial(sc, pair, "cable", 1 if REP % 2 else 0)
        a, b = pair.a, pair.b
        # A stays isolated for several failover timeouts: it must not claim.
        time.sleep(3 * T_MS / 1000)
        claims0 = r["claims"]
        check_eq(pair.arbiter_claims(), claims0, "arbiter claims while A is isolated")
        st_a = a.status()
        check(st_a["live"] is False, f"A went live while isolated: {PL.brief(st_a)}")
        # Its links come back: it must still not win, nor emit as the appliance.
        cap = sc.capture(topo.switch, "sw-a", "sw-a-in.pcap", bpf=f"ether src {AMAC}", direction="in", snaplen=96)
        load = sc.load()
        t_back = time.monotonic()
        w_back = time.time()
        links(topo.node_a, "upA up", "logA up")
        dl = L.Deadline(5 + 4 * T_MS / 1000)
        while not dl.expired() and a.alive():
            time.sleep(0.05)
        time.sleep(0.5)
        rc_a = a.poll()
        st_b = b.wait_status("B still the live primary", 5, role="primary", live=True, epoch=max(claims0))[0]
        claims = pair.arbiter_claims()
        check(all(v != "tapA" for e, v in claims.items() if e >= 2),
              f"A won an epoch after its links came back: {claims}")
        check_eq(claims, claims0, "arbiter claims after A's links came back")
        if rc_a is None:
            st_a = a.status()
            check(st_a["live"] is False, f"A went live after its links came back: {PL.brief(st_a)}")
            a_after = f"A still running, {PL.brief(st_a)}"
        else:
            check(rc_a in (2, 3), f"A exited {rc_a} after its links came back (want 2: lost the epoch, "
                                  f"or 3: refused); log:\n{a.tail()}")
            a_after = f"A exited {rc_a} {ms(a.exit_wall - w_back)} after its links came back"
        load.wait_progress_after(time.monotonic(), 100, 10)
        cap.stop()
        frames = [ts for ts, _ in cap.frames() if ts >= w_back]
        check(not frames, f"A emitted {len(frames)} frames as the appliance after its links came back "
                          f"(first {frames[0] - w_back:.3f}s after)" if frames else "")
        r2 = finish_load(ctx, load, t_back, "A's links back", first=r["values"] + 1)
        ctx.note(f"{r['how']}: A unhealthy {r['detect_ms']:.0f} ms, B live {r['live_ms']:.0f} ms after the pull "
                 f"(B failovers {r['b_failovers']}, switchovers {r['b_switchovers']}); A while isolated: "
                 f"role {r['a_role']}, mode {r['a_mode']}; {a_after}; B then: {PL.brief(st_b)}")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_ms=r["live_ms"],
                         rejoin_stall_ms=r2["stall"] * 1000)


# --- 3. uplink down on the backup -----------------------------------------------

def post_switchover(d) -> tuple[int, str]:
    try:
        return d.admin_request("POST", "/switchover")
    except OSError as e:
        raise TestFailure(f"{d.name}: POST /switchover failed: {e}") from None


@test("s3_uplink_down_backup", timeout=120)
def s3_uplink_down_backup(ctx):
    """upB down: B unhealthy, A learns it; no takeover, no handover to B, A
    keeps serving in epoch 1; a switchover is refused (HTTP 409 and the
    `ftap switchover` tool fails)."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc)
        t0 = time.monotonic()
        sb, tb, tp = backup_uplink_down(sc, a, b)
        check("upB" in sb["health_reason"], f"B's health_reason does not name upB: {sb['health_reason']!r}")
        time.sleep(3 * T_MS / 1000)
        sa = a.status()
        check(sa["role"] == "primary" and sa["mode"] == "protected" and sa["epoch"] == 1 and sa["live"],
              f"A after upB down: {PL.brief(sa)}, want the protected primary in epoch 1")
        code, body = post_switchover(a)
        check(code == 409, f"POST /switchover with an unhealthy backup: HTTP {code} {body.strip()!r}, want 409")
        cp = L.run([PL.ftap_bin(), "switchover", "--admin", a.admin, "--admin-token-file", a.token_file],
                   ns=a.ns, timeout=10, check=False)
        tool = (cp.stdout + cp.stderr).strip()
        check(cp.returncode != 0, f"`ftap switchover` with an unhealthy backup succeeded: {cp.stdout.strip()!r}")
        check("unhealthy" in tool, f"`ftap switchover` failed for another reason than the unhealthy backup: {tool!r}")
        time.sleep(3 * T_MS / 1000)
        sa, sb = a.status(), b.status()
        check(sa["role"] == "primary" and sa["mode"] == "protected" and sa["epoch"] == 1 and sa["live"],
              f"A after the refused switchover: {PL.brief(sa)}")
        check(sb["role"] == "backup" and sb["live"] is False and sb["epoch"] == 1,
              f"B after the refused switchover: {PL.brief(sb)}")
        check_eq(sa["switchovers"], 0, "A's switchovers")
        check_eq(pair.arbiter_claims(), {1: "tapA"}, "arbiter claims")
        check_fdb(topo, "sw-a", "after upB down")
        load.wait_progress_after(time.monotonic(), 100, 10)
        r = finish_load(ctx, load, t0, "uplink down on the backup")
        ctx.note(f"B unhealthy {ms(tb - t0)}, A peer_healthy false {ms(tp - t0)} after upB down; "
                 f"switchover refused: HTTP {code} {body.strip()!r}; tool exit {cp.returncode}: {tool[-200:]!r}")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000)


# --- 4. uplink restored: switchover to the node succeeds --------------------------

@test("s4_uplink_restored_switchover", timeout=120)
def s4_uplink_restored_switchover(ctx):
    """upB down (B unhealthy), then up: B reports healthy again, A sees it, and
    a switchover to B succeeds (B primary in epoch 2, A its backup), the
    client's connection continues."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc)
        backup_uplink_down(sc, a, b)
        t1 = time.monotonic()
        sc.links(topo.node_b, "upB up")
        sb, th = b.wait_status("B healthy again", 10, healthy=True)
        _, tp = a.wait_status("A sees its backup healthy", 5, peer_healthy=True)
        t0 = time.monotonic()
        out = a.switchover()
        check("switchover started" in out, f"switchover: unexpected reply {out!r}")
        _, tb = b.wait_status("B primary by switchover", 10, role="primary", live=True, epoch=2)
        a.wait_status("A backup after the switchover", 10, role="backup", mode="backup", in_sync=True)
        load.wait_progress_after(tb, 200, 20)
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        check_fdb(topo, "sw-b", "after the switchover")
        r = finish_load(ctx, load, t0, "switchover to the restored node")
        ctx.note(f"B healthy {ms(th - t1)}, A peer_healthy true {ms(tp - t1)} after upB up "
                 f"(health_reason {sb['health_reason']!r}); B primary {ms(tb - t0)} after the switchover request")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, healthy_again_ms=(th - t1) * 1000)


# --- 5. arbiter unwritable during a takeover ---------------------------------------

class ReadOnlyDir:
    """Makes a directory refuse new entries for everyone, root included:
    `chattr +i` (EPERM on create; file system wide, so the daemons' own mount
    namespaces see it), or, where chattr is not supported, a read-only bind
    mount made inside the given process's mount namespace (EROFS)."""

    def __init__(self, path: str, pid: int):
        self.path, self.pid = path, pid
        self.how = None
        self.key = None

    def __enter__(self):
        if shutil.which("chattr"):
            cp = L.run(["chattr", "+i", self.path], check=False, timeout=10)
            if cp.returncode == 0:
                self.how = "chattr +i"
        if self.how is None:
            L.run(["nsenter", "-t", str(self.pid), "-m", "--", "sh", "-c",
                   f"mount --bind '{self.path}' '{self.path}' && mount -o remount,ro,bind '{self.path}'"],
                  timeout=10)
            self.how = f"read-only bind mount in pid {self.pid}'s mount namespace"
        self.key = L.register_cleanup(f"arbiter directory writable again ({self.how})", self.release)
        # Proof, as root, that creating a file there fails now (for chattr; the
        # bind mount is only visible in the daemon's namespace).
        if self.how == "chattr +i":
            probe = os.path.join(self.path, "probe")
            try:
                open(probe, "x").close()
                os.unlink(probe)
                raise TestFailure(f"{self.path} still accepts new files after {self.how}")
            except PermissionError:
                pass
        return self

    def release(self):
        if self.how is None:
            return
        if self.how == "chattr +i":
            L.run(["chattr", "-i", self.path], check=False, timeout=10)
        else:
            L.run(["nsenter", "-t", str(self.pid), "-m", "--", "umount", self.path], check=False, timeout=10)
        self.how = None
        if self.key is not None:
            L.unregister_cleanup(self.key)
            self.key = None

    def __exit__(self, *exc):
        self.release()


@test("s5_arbiter_unwritable", timeout=120)
def s5_arbiter_unwritable(ctx):
    """The arbiter directory stops accepting new files; SIGKILL of the primary:
    B tries to claim epoch 2, gets no answer, retries with backoff
    (/status arbiter_unavailable grows), never exits and never goes live;
    once the directory is writable again B takes over and the client's
    connection continues."""
    HOLD = 4.0
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        ro = sc.enter_context(ReadOnlyDir(pair.arb, b.pid))
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL)
        check(a.wait_exit(5) == -signal.SIGKILL, "A did not die of SIGKILL")
        s1, t1 = b.wait_status("arbiter unavailable at least twice", 10,
                               cond=lambda s: s["arbiter_unavailable"] >= 2)
        time.sleep(HOLD)
        s2 = b.status()
        check(b.alive(), f"B exited while the arbiter was unavailable: {pair.describe_exit(b)}\n{b.tail()}")
        check(s2["arbiter_unavailable"] > s1["arbiter_unavailable"],
              f"arbiter_unavailable did not grow: {s1['arbiter_unavailable']} then {s2['arbiter_unavailable']} "
              f"{HOLD}s later")
        check(s2["live"] is False, f"B went live without the arbiter: {PL.brief(s2)}")
        check_eq(pair.arbiter_claims(), {1: "tapA"}, "arbiter claims while unwritable")
        how = ro.how
        t_w = time.monotonic()
        ro.release()
        s3, t3 = b.wait_status("live in epoch 2 once the arbiter is writable", 5 + 2 * T_MS / 1000,
                               role="primary", live=True, epoch=2)
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        load.wait_progress_after(t3, 100, 30)
        r = finish_load(ctx, load, t0, "arbiter unavailable during the takeover", after=HOLD + 5)
        ctx.note(f"arbiter made unwritable by {how}; arbiter_unavailable {s1['arbiter_unavailable']} "
                 f"{ms(t1 - t0)} after the kill, {s2['arbiter_unavailable']} {HOLD:.0f} s later, "
                 f"{s3['arbiter_unavailable']} at go-live; B live {ms(t3 - t_w)} after the directory became "
                 f"writable (retry backoff is capped at the failover timeout, {T_MS} ms)")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_after_writable_ms=(t3 - t_w) * 1000,
                         arbiter_unavailable=s3["arbiter_unavailable"])


@test("s5b_arbiter_unwritable_handover", timeout=120)
def s5b_arbiter_unwritable_handover(ctx):
    """The arbiter directory refuses new files, then upA goes down: A hands
    over, B cannot claim epoch 2 and retries without exiting (nobody emits
    meanwhile); once writable, B serves and the client's connection continues."""
    topo = ctx.topo
    HOLD = 3.0
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        ro = sc.enter_context(ReadOnlyDir(pair.arb, b.pid))
        t0 = time.monotonic()
        sc.links(topo.node_a, "upA down")
        a.wait_status("A unhealthy", 5, healthy=False)
        s1, _ = b.wait_status("B's claim of epoch 2 unavailable at least twice", 10,
                              cond=lambda s: s["arbiter_unavailable"] >= 2)
        time.sleep(HOLD)
        sa, sb = a.status(), b.status()
        check(a.alive() and b.alive(), f"a node exited: A {pair.describe_exit(a)}, B {pair.describe_exit(b)}")
        check(not sb["live"], f"B live without the arbiter: {PL.brief(sb)}")
        check(sb["arbiter_unavailable"] > s1["arbiter_unavailable"], f"arbiter_unavailable did not grow: "
              f"{s1['arbiter_unavailable']} then {sb['arbiter_unavailable']}")
        check_eq(pair.arbiter_claims(), {1: "tapA"}, "arbiter claims while unwritable")
        t_w = time.monotonic()
        ro.release()
        _, tb = b.wait_status("B live in epoch 2", 5 + 2 * T_MS / 1000, role="primary", live=True, epoch=2)
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        load.wait_progress_after(tb, 100, 30)
        sa = a.status()
        r = finish_load(ctx, load, t0, "arbiter unavailable during a handover", after=HOLD + 5)
        # What becomes of A once its uplink is back (recorded, not checked: with
        # the channel closed during the outage A claims epoch 2 and loses,
        # the bug s5c checks).
        sc.links(topo.node_a, "upA up")
        time.sleep(1.0 + T_MS / 1000)
        a_fate = PL.brief(a.status()) if a.alive() else pair.describe_exit(a)
        ctx.note(f"while unwritable: A {PL.brief(sa)}, peer_connected {sa['peer_connected']}; B {PL.brief(sb)}, "
                 f"arbiter_unavailable {sb['arbiter_unavailable']}; B live {ms(tb - t_w)} after the directory "
                 f"became writable; A once upA is back: {a_fate}")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_after_writable_ms=(tb - t_w) * 1000)


@test("s5c_arbiter_unwritable_switchover", timeout=120)
def s5c_arbiter_unwritable_switchover(ctx):
    """Both healthy, the arbiter directory refuses new files, the operator
    asks for a switchover: B cannot claim epoch 2 and retries. The pair must
    survive it: once the directory is writable B serves in epoch 2 with A as
    its backup (protected), neither node exits, and A claims nothing."""
    HOLD = 3.0
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        ro = sc.enter_context(ReadOnlyDir(pair.arb, b.pid))
        t0 = time.monotonic()
        out = a.switchover()
        check("switchover started" in out, f"switchover: {out!r}")
        s1, _ = b.wait_status("B's claim of epoch 2 unavailable at least twice", 10,
                              cond=lambda s: s["arbiter_unavailable"] >= 2)
        time.sleep(HOLD)
        sa, sb = a.status(), b.status()
        check(a.alive() and b.alive(), f"a node exited: A {pair.describe_exit(a)}, B {pair.describe_exit(b)}")
        check(not sb["live"] and not sa["live"], f"a node is live without the arbiter: A {PL.brief(sa)}, "
                                                 f"B {PL.brief(sb)}")
        ctx.note(f"while unwritable ({HOLD:.0f} s): A {PL.brief(sa)}, peer_connected {sa['peer_connected']}; "
                 f"B {PL.brief(sb)}, peer_connected {sb['peer_connected']}, arbiter_unavailable "
                 f"{sb['arbiter_unavailable']}")
        ro.release()
        dl = L.Deadline(5 + 2 * T_MS / 1000)
        while not dl.expired() and a.alive() and b.alive():
            try:
                if b.status()["live"]:
                    break
            except TestFailure:
                pass
            time.sleep(0.02)
        time.sleep(1.0)
        # What the client saw, whoever serves now (checked after the pair).
        client_err = None
        try:
            load.wait_progress_after(time.monotonic(), 100, 20)
            finish_load(ctx, load, t0, "switchover during an arbiter outage", after=HOLD + 5)
        except TestFailure as e:
            client_err = e
        claims = pair.arbiter_claims()
        fate = {d.node: (PL.brief(d.status()) if d.alive() else pair.describe_exit(d)) for d in (a, b)}
        ctx.note(f"after the directory became writable: A {fate['A']}; B {fate['B']}; claims {claims}")
        # The bug this guards against: B, claiming epoch 2 after the handover,
        # sends nothing to A, so A declares it failed after the failover
        # timeout, closes the channel and claims epoch 2 too; whichever retry
        # reaches the arbiter first wins and the other node exits 2.
        said = "; ".join(m.group(0) for m in (a.search(r"peer failed: [^\n]*"),
                                               a.search(r"claiming epoch 2[^\n]*")) if m)
        check(a.alive() and b.alive(),
              f"the pair broke up after a switchover during an arbiter outage: A {fate['A']}, B {fate['B']}, "
              f"claims {claims}; A's log says: {said}")
        sa2, sb2 = a.status(), b.status()
        check(sb2["role"] == "primary" and sb2["live"] and sb2["epoch"] == 2 and sb2["mode"] == "protected"
              and sa2["role"] == "backup", f"want B the protected primary in epoch 2 and A its backup: "
                                          f"A {PL.brief(sa2)}, B {PL.brief(sb2)}")
        check_eq(claims, {1: "tapA", 2: "tapB"}, "arbiter claims")
        if client_err:
            raise client_err


# --- 6. unhealthy backup when the primary dies ---------------------------------------

@test("s6_unhealthy_backup_waits", timeout=120)
def s6_unhealthy_backup_waits(ctx):
    """upB down, then SIGKILL of A: B (unhealthy) does not claim epoch 2 and
    stays dark; upB up: B claims, goes live, the client's connection continues."""
    topo = ctx.topo
    HOLD = 2.0
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        backup_uplink_down(sc, a, b)
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL)
        a.wait_exit(5)
        time.sleep(HOLD + T_MS / 1000)
        sb = b.status()
        check(b.alive() and sb["live"] is False, f"B while unhealthy after the primary died: {PL.brief(sb)}")
        check_eq(pair.arbiter_claims(), {1: "tapA"}, "arbiter claims while B is unhealthy")
        t1 = time.monotonic()
        sc.links(topo.node_b, "upB up")
        s3, t3 = b.wait_status("live in epoch 2 once healthy", 10, role="primary", live=True, epoch=2)
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        load.wait_progress_after(t3, 100, 30)
        r = finish_load(ctx, load, t0, "unhealthy backup, then healthy", after=HOLD + 5)
        ctx.note(f"B held {HOLD + T_MS / 1000:.1f} s without claiming (mode {sb['mode']}); live "
                 f"{ms(t3 - t1)} after upB up")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_after_up_ms=(t3 - t1) * 1000)


# --- 8. serving alone: links come back, GARP again ------------------------------------

@test("s8_alone_links_back_garp", timeout=120)
def s8_alone_links_back_garp(ctx):
    """B serving alone (A SIGKILLed) loses its uplink: it stays live (nobody
    to hand over to); when upB comes back it reports healthy and sends
    gratuitous ARP again (seen arriving from sw-b), and the client's
    connection continues."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        a.send_signal(signal.SIGKILL)
        a.wait_exit(5)
        b.wait_status("B alone in epoch 2", 10, role="primary", live=True, mode="alone", epoch=2)
        load.wait_progress_after(time.monotonic(), 100, 20)
        cap = sc.capture(topo.switch, "sw-b", "sw-b-in.pcap", bpf="arp", direction="in")
        t0 = time.monotonic()
        sc.links(topo.node_b, "upB down")
        sb, _ = b.wait_status("B unhealthy", 5, healthy=False)
        time.sleep(1.0)
        sb = b.status()
        check(b.alive() and sb["live"] and sb["mode"] == "alone",
              f"B alone and unhealthy: {PL.brief(sb)}, want it still live and alone")
        w_up = time.time()
        t1 = time.monotonic()
        sc.links(topo.node_b, "upB up")
        _, th = b.wait_status("B healthy again", 10, healthy=True)
        load.wait_progress_after(th, 100, 30)
        time.sleep(0.5)
        cap.stop()
        from frames import is_garp, parse_frame
        garps = [ts for ts, f in cap.frames()
                 if is_garp(f, PL.APPLIANCE_IP) and parse_frame(f)["eth_src"] == AMAC and ts >= w_up]
        check(garps, f"no gratuitous ARP from B (sw-b) after upB came back ({cap.path}, {cap.stats})")
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        check_fdb(topo, "sw-b", "after upB came back")
        r = finish_load(ctx, load, t0, "B alone loses and regains its uplink", after=5)
        ctx.note(f"B healthy {ms(th - t1)} after upB up; {len(garps)} GARPs from sw-b after it, first "
                 f"{ms(garps[0] - w_up)} after")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, garps=len(garps),
                         first_garp_ms=(garps[0] - w_up) * 1000)


# --- 9. --track-interface, --no-track-bridge, --track-script -----------------------------

@test("s9_track_interface_and_script", timeout=150)
def s9_track_interface_and_script(ctx):
    """A runs with --no-track-bridge --track-interface trkA (a veth link)
    --track-script 'test ! -e FILE' (100 ms, fall 2, rise 2). upA down: A
    stays healthy (the bridge is not tracked) and primary. trkA down: A
    unhealthy, hands over to B; trkA up: healthy; switchover back to A.
    FILE created: A unhealthy by its script, hands over again; removed:
    healthy. The client's connection continues through all of it."""
    topo = ctx.topo
    flag = os.path.join(ctx.out_dir, "A-unhealthy")
    remove_file(flag)
    with Scenario(ctx) as sc:
        # A veth pair inside A's namespace (this kernel has no dummy driver).
        L.run(["ip", "link", "add", "trkA", "type", "veth", "peer", "name", "trkA-peer"], ns=topo.node_a)
        sc.callback(L.run, ["ip", "link", "del", "trkA"], ns=topo.node_a, check=False)
        links(topo.node_a, "trkA up", "trkA-peer up")
        pair = sc.pair(failover_timeout_ms=T_MS)
        sc.callback(remove_file, flag)
        a, b = pair.start(primary_extra=["--no-track-bridge", "--track-interface", "trkA",
                                         "--track-script", f"test ! -e {flag}", "--track-interval-ms", "100",
                                         "--track-fall", "2", "--track-rise", "2"])
        a.wait_status("A healthy", 5, healthy=True, peer_healthy=True)
        load = sc.load(req_timeout=30)
        t0 = time.monotonic()
        # 1. The untracked uplink.
        sc.links(topo.node_a, "upA down")
        time.sleep(1.0)
        sa = a.status()
        check(sa["healthy"] and sa["role"] == "primary" and sa["epoch"] == 1,
              f"A with an untracked uplink down: {PL.brief(sa)}, healthy {sa['healthy']} "
              f"({sa['health_reason']!r}); want a healthy primary (--no-track-bridge)")
        sc.links(topo.node_a, "upA up")
        load.wait_progress_after(time.monotonic(), 50, 20)
        # 2. The tracked interface.
        t1 = time.monotonic()
        sc.links(topo.node_a, "trkA down")
        sa, ta = a.wait_status("A unhealthy (trkA down)", 5, healthy=False)
        check("trkA" in sa["health_reason"], f"health_reason {sa['health_reason']!r} does not name trkA")
        _, tb = b.wait_status("B primary by handover", 10, role="primary", live=True, epoch=2)
        a.wait_status("A backup", 10, role="backup", mode="backup", in_sync=True)
        sc.links(topo.node_a, "trkA up")
        a.wait_status("A healthy again", 5, healthy=True)
        b.wait_status("B sees A healthy", 5, peer_healthy=True)
        out = b.switchover()
        check("switchover started" in out, f"switchover back to A: {out!r}")
        a.wait_status("A primary again", 10, role="primary", live=True, epoch=3)
        b.wait_status("B backup again", 10, role="backup", mode="backup", in_sync=True)
        load.wait_progress_after(time.monotonic(), 50, 20)
        # 3. The script.
        t2 = time.monotonic()
        open(flag, "w").close()
        sa, ts = a.wait_status("A unhealthy (track script)", 5, healthy=False)
        check("script" in sa["health_reason"], f"health_reason {sa['health_reason']!r} does not name the script")
        _, tb2 = b.wait_status("B primary by handover", 10, role="primary", live=True, epoch=4)
        os.unlink(flag)
        t3 = time.monotonic()
        _, tr = a.wait_status("A healthy again (script passes)", 5, healthy=True)
        load.wait_progress_after(time.monotonic(), 50, 20)
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB", 3: "tapA", 4: "tapB"}, "arbiter claims")
        r = finish_load(ctx, load, t0, "track interface and script", after=30)
        ctx.note(f"trkA down: A unhealthy {ms(ta - t1)}, B primary {ms(tb - t1)}; script failing: A unhealthy "
                 f"{ms(ts - t2)} (100 ms x fall 2), B primary {ms(tb2 - t2)}; script passing again: healthy "
                 f"{ms(tr - t3)} (rise 2)")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, script_unhealthy_ms=(ts - t2) * 1000)


# --- 10. both unhealthy -------------------------------------------------------------------

@test("s10_both_unhealthy", timeout=120)
def s10_both_unhealthy(ctx):
    """upB down (B unhealthy), then upA down: both unhealthy, the primary
    stays (no handover, no takeover). upB back: A is unhealthy and its backup
    healthy again, so A hands over to B at once."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        backup_uplink_down(sc, a, b)
        t0 = time.monotonic()
        sc.links(topo.node_a, "upA down")
        a.wait_status("A unhealthy", 5, healthy=False)
        time.sleep(3 * T_MS / 1000)
        sa, sb = a.status(), b.status()
        check(sa["role"] == "primary" and sa["mode"] == "protected" and sa["epoch"] == 1,
              f"both unhealthy: A {PL.brief(sa)}, want it still the protected primary in epoch 1")
        check(sb["role"] == "backup" and not sb["live"], f"both unhealthy: B {PL.brief(sb)}")
        check_eq(pair.arbiter_claims(), {1: "tapA"}, "arbiter claims while both are unhealthy")
        t1 = time.monotonic()
        sc.links(topo.node_b, "upB up")
        b.wait_status("B healthy", 5, healthy=True)
        _, tb = b.wait_status("B primary by handover", 10, role="primary", live=True, epoch=2)
        a.wait_status("A its backup", 10, role="backup", mode="backup")
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapB"}, "arbiter claims")
        load.wait_progress_after(tb, 100, 30)
        r = finish_load(ctx, load, t0, "both unhealthy, then B healthy", after=5)
        ctx.note(f"both unhealthy for {3 * T_MS} ms: A stayed primary; B primary by handover {ms(tb - t1)} "
                 f"after upB up")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, handover_after_up_ms=(tb - t1) * 1000)


# --- 11. alternating uplink failures ------------------------------------------------------

@test("s11_alternating_uplink_failures", timeout=150)
def s11_alternating_uplink_failures(ctx):
    """The primary's uplink fails, is repaired, then the new primary's fails,
    six times: each failure hands the appliance to the other node (epochs 2..7,
    alternating owners), no failback when a link is repaired, one TCP
    connection throughout with every value exactly once."""
    topo = ctx.topo
    N = 6
    with Scenario(ctx) as sc:
        pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
        nodes = {"A": (a, topo.node_a, "upA"), "B": (b, topo.node_b, "upB")}
        prim, back = "A", "B"
        stalls, t_first = [], time.monotonic()
        for i in range(N):
            pd, pns, pup = nodes[prim]
            bd, _, _ = nodes[back]
            time.sleep(0.3)
            t0 = time.monotonic()
            sc.links(pns, f"{pup} down")
            _, tb = bd.wait_status(f"#{i + 1}: {back} primary by handover", 10, role="primary", live=True,
                                   epoch=i + 2)
            pd.wait_status(f"#{i + 1}: {prim} backup", 10, role="backup", mode="backup")
            sc.links(pns, f"{pup} up")
            pd.wait_status(f"#{i + 1}: {prim} healthy again", 5, healthy=True)
            bd.wait_status(f"#{i + 1}: {back} sees it", 5, peer_healthy=True)
            load.wait_progress_after(time.monotonic(), 50, 20)
            stalls.append(load.stall_around(t0, 0.05, 1.0)[0])
            time.sleep(0.5)
            s_new = bd.status()
            check(s_new["role"] == "primary" and s_new["epoch"] == i + 2,
                  f"#{i + 1}: {back} after {prim}'s link came back: {PL.brief(s_new)} (no failback expected)")
            prim, back = back, prim
        claims = pair.arbiter_claims()
        want = {1: "tapA"}
        for e in range(2, N + 2):
            want[e] = "tapB" if e % 2 == 0 else "tapA"
        check_eq(claims, want, "arbiter claims")
        finish_load(ctx, load, t_first, "alternating uplink failures", after=60)
        ctx.note(f"{N} health-driven handovers; client stall per handover: "
                 + ", ".join(f"{x * 1000:.0f}" for x in stalls) + " ms")
        PL.write_measure(ctx.out_dir, stall_max_ms=max(stalls) * 1000,
                         stall_median_ms=statistics.median(stalls) * 1000)


# --- 12. serving alone: a higher epoch appears ---------------------------------------------

@test("s12_alone_superseded", timeout=90)
def s12_alone_superseded(ctx):
    """B serving alone in epoch 2 (A SIGKILLed): an epoch-3 file appears in the
    arbiter directory (another node claimed it). B re-checks every half
    failover timeout, so it must exit 2 within about that, and emit nothing
    afterwards; its log says why."""
    topo = ctx.topo
    with Scenario(ctx) as sc:
        pair = sc.pair(failover_timeout_ms=T_MS)
        a, b = healthy_pair(pair)
        a.send_signal(signal.SIGKILL)
        a.wait_exit(5)
        b.wait_status("B alone in epoch 2", 10, role="primary", live=True, mode="alone", epoch=2)
        cap = sc.capture(topo.switch, "sw-b", "sw-b-in.pcap", bpf=f"ether src {AMAC}", direction="in", snaplen=96)
        c = L.LineClient(port=PL.PORT_COUNTER, timeout=5)
        c.incr()
        t0, w0 = time.monotonic(), time.time()
        with open(os.path.join(pair.arb, "epoch-3"), "x") as f:
            f.write("intruder\n")
        rc = b.wait_exit(5)
        t_exit = time.monotonic()
        check_eq(rc, 2, f"B's exit status after epoch 3 appeared (log:\n{b.tail()})")
        # About logging: the operator must read why it stopped.
        check(b.search(r"epoch 3 was claimed"), f"B's log does not say epoch 3 was claimed:\n{b.tail()}")
        # Nothing from the appliance's MAC after B stopped.
        try:
            c.send_line("INCR")
        except OSError:
            pass
        time.sleep(0.5)
        c.close()
        cap.stop()
        after = [ts for ts, _ in cap.frames() if ts > w0 + (t_exit - t0) + 0.01]
        check(not after, f"{len(after)} frames from the appliance MAC on sw-b after B exited")
        ctx.note(f"B exited 2 {ms(t_exit - t0)} after epoch-3 appeared (re-check every {T_MS // 2} ms)")
        check(t_exit - t0 <= T_MS / 1000 / 2 + 0.2, f"B took {ms(t_exit - t0)} to notice epoch 3, want about "
                                                    f"{T_MS // 2} ms (half the failover timeout)")
        PL.write_measure(ctx.out_dir, superseded_exit_ms=(t_exit - t0) * 1000)


# --- 13. the backup's uplink fails during a switchover ----------------------------------

RACE_ATTEMPTS = int(os.environ.get("FTAP_HEALTH_RACE_ATTEMPTS", "8") or 8)


@test("s13_unhealthy_during_switchover", timeout=60 + 10 * RACE_ATTEMPTS)
def s13_unhealthy_during_switchover(ctx):
    """upB goes down while the operator's switchover is under way (the `ip`
    command started, then POST /switchover at once), FTAP_HEALTH_RACE_ATTEMPTS
    times on fresh pairs. Whatever the interleaving, within a second the
    appliance must be served by the healthy node A: the switchover refused,
    or B handing straight back (an unhealthy protected primary with a healthy
    backup hands over), or A taking over. Checked from /status; the client's
    values must stay consecutive."""
    topo = ctx.topo
    outcomes, bad = [], []
    for i in range(RACE_ATTEMPTS):
        with Scenario(ctx, os.path.join(ctx.out_dir, f"attempt-{i + 1}")) as sc:
            sc.restore_link(topo.node_b, "upB")  # taken down by the racing `ip` below
            pair, a, b, load = healthy_pair_under_load(sc, req_timeout=30)
            p = subprocess.Popen(["ip", "-n", topo.node_b, "link", "set", "upB", "down"])
            code, body = a.admin_request("POST", "/switchover")
            p.wait(10)
            time.sleep(1.0)
            sa = a.status() if a.alive() else None
            sb = b.status() if b.alive() else None
            served_by_a = sa is not None and sa["live"] and sa["role"] == "primary"
            what = (f"#{i + 1}: switchover HTTP {code}; 1 s later A "
                    f"{PL.brief(sa) if sa else pair.describe_exit(a)}, B {PL.brief(sb) if sb else pair.describe_exit(b)}"
                    f" healthy {sb['healthy'] if sb else '-'}")
            print(f"    {what}", flush=True)
            outcomes.append(code)
            if not served_by_a:
                bad.append(what)
            links(topo.node_b, "upB up")
            load.wait_progress_after(time.monotonic(), 50, 30)
            finish_load(ctx, load, time.monotonic(), f"attempt {i + 1}", after=1)
    ctx.notes = [n for n in ctx.notes if not n.startswith("client (")]
    ctx.note(f"{RACE_ATTEMPTS} attempts: switchover accepted {outcomes.count(200)}, refused {outcomes.count(409)}; "
             f"the unhealthy B left serving (A healthy) in {len(bad)}")
    check(not bad, f"{len(bad)} of {RACE_ATTEMPTS} attempts left the appliance on the unhealthy B "
                   f"(its uplink down) although A was healthy:\n" + "\n".join(bad))


# --- 7. different arbiters -------------------------------------------------------------

@test("s7_different_arbiters", timeout=60)
def s7_different_arbiters(ctx):
    """A with one arbiter directory, B with another: the pair must not form
    (two arbiters would let both nodes win the same epoch). A refuses B at
    hello naming both store identities; B exits 3 (refused by the primary)."""
    # Not created here: the daemon creates its arbiter directory, which proves
    # B took this --arbiter (given after the pair's own) and not the first.
    other = os.path.join(ctx.out_dir, f"arbiter-other-{os.getpid()}")
    with Scenario(ctx) as sc:
        pair = sc.pair(failover_timeout_ms=T_MS)
        a = pair.start_node("A", "primary")
        a.wait_status("epoch 1 claimed, waiting for the backup", 15, epoch=1, mode="waiting-for-peer")
        b = pair.start_node("B", "backup", extra=["--arbiter", f"file:{other}"])
        code = b.wait_exit(10)
        check(os.path.isdir(other), f"B did not create {other}: it is not using the other arbiter "
                                    f"(test setup problem, not the feature)")
        check(code == 3, f"B with another arbiter: {pair.describe_exit(b) if code is not None else 'still running'}")
        ids = [open(os.path.join(d, "arbiter-id")).read().strip() for d in (pair.arb, other)]
        # A fact about logging: the operator is told which stores differ.
        line = b.search(r"different arbiter stores[^\n]*")
        check(line and ids[0] in line.group(0) and ids[1] in line.group(0),
              f"B's exit does not name both arbiter identities {ids}:\n{b.tail()}")
        sa = a.status()
        check(sa["mode"] == "waiting-for-peer" and not sa["live"], f"A after refusing B: {PL.brief(sa)}")
        check(sorted(os.listdir(other)) == ["arbiter-id"], f"B claimed in its arbiter: {os.listdir(other)}")
        ctx.note(f"refused at hello: {line.group(0)[:160]}")


# --- trials -----------------------------------------------------------------------------

def path_of(r: dict) -> str:
    """How B came to serve: by handover, by takeover (failover timeout), or a
    handover then alone once the log link was found dead."""
    if r["b_switchovers"] and r["b_failovers"]:
        return "handover+alone"
    return "handover" if r["b_switchovers"] else "takeover"


def run_trials(ctx, enforce_stall: bool, kinds: tuple = ("uplink", "cable")):
    """FTAP_HEALTH_TRIALS trials of each kind, each on a fresh pair; prints one
    line per trial; fails if any trial failed (and, with enforce_stall, if a
    stall exceeded the failover timeout + FTAP_HEALTH_STALL_SLACK_MS)."""
    rows, failures = [], []
    bound = T_MS + SLACK_MS
    for kind in kinds:
        for i in range(TRIALS):
            d = os.path.join(ctx.out_dir, f"{kind}-{i + 1}")
            try:
                with Scenario(ctx, d) as sc:
                    sc.callback(time.sleep, 0.3)  # last: a pause between two trials
                    pair = sc.pair(failover_timeout_ms=T_MS)
                    r = cable_pull_trial(sc, pair, kind, i % 2)
                    r["trial"] = i + 1
                    r["path"] = path_of(r)
                    rows.append(r)
                    over = r["stall"] * 1000 > bound
                    print(f"    trial {kind} #{i + 1}: {r['how']}: client stall {ms(r['stall'])}, B live "
                          f"{r['live_ms']:.0f} ms after the pull by {r['path']}, {r['values']} values consecutive"
                          + (f"  STALL OVER {bound} ms" if over else ""), flush=True)
                    if over and enforce_stall:
                        failures.append(f"{kind} #{i + 1} ({r['how']}, B by {r['path']}): stall {ms(r['stall'])} > "
                                        f"{bound} ms (failover timeout {T_MS} + {SLACK_MS})")
            except TestFailure as e:
                print(f"    trial {kind} #{i + 1}: FAILED: {str(e).splitlines()[0]}", flush=True)
                failures.append(f"{kind} #{i + 1}: {e}")
    ctx.notes = [n for n in ctx.notes if not n.startswith("client (")]  # one line per trial is enough
    with open(os.path.join(ctx.out_dir, "trials.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "claims"} for r in rows], f, indent=1)
    m = {}
    for kind in ("uplink", "cable"):
        st = [r["stall"] * 1000 for r in rows if r["kind"] == kind]
        lv = [r["live_ms"] for r in rows if r["kind"] == kind]
        if st:
            m[f"{kind}_stall_median_ms"] = statistics.median(st)
            m[f"{kind}_stall_max_ms"] = max(st)
            paths = {}
            for r in rows:
                if r["kind"] == kind:
                    paths.setdefault(r["path"], []).append(r["stall"] * 1000)
            by_path = "; ".join(f"{p} x{len(v)}: median {statistics.median(v):.0f} ms, max {max(v):.0f} ms"
                                for p, v in sorted(paths.items()))
            ctx.note(f"{kind}: {len(st)} of {TRIALS} trials served by B (A never won an epoch); client stall "
                     f"median {statistics.median(st):.0f} ms, max {max(st):.0f} ms ({by_path}); B live median "
                     f"{statistics.median(lv):.0f} ms, max {max(lv):.0f} ms after the pull")
    PL.write_measure(ctx.out_dir, **m)
    check(not failures, f"{len(failures)} of {len(kinds) * TRIALS} trials failed:\n" + "\n".join(failures))


@test("trials_cable_pull", timeout=60 + 40 * TRIALS)
def trials_cable_pull(ctx):
    """FTAP_HEALTH_TRIALS pulls of each kind (uplink only; uplink and log link),
    each on a fresh pair: B serves every time, A never wins an epoch, the
    client continues with consecutive values and no reset. Stalls are
    printed; their bound is trials_stall_bound's."""
    run_trials(ctx, enforce_stall=False)


BOUND_TRIALS = int(os.environ.get("FTAP_HEALTH_BOUND_TRIALS", "10") or 10)


@test("trials_stall_bound", timeout=60 + 80 * BOUND_TRIALS)
def trials_stall_bound(ctx):
    """Issue 11's "done when": FTAP_HEALTH_BOUND_TRIALS (10) pulls of each
    kind, 20 in all, and in every one the healthy node serves and the
    client's stall stays within the failover timeout + 100 ms
    (FTAP_HEALTH_STALL_SLACK_MS). Cable pulls meet it because the switch
    floods the client's retransmissions to the backup once the primary's
    port is down, the backup's host bridge passes them to its TAP (the
    appliance MAC is pinned there) and the standby buffer applies them at
    go-live (issue 18); before, they were drained and the stall was ~850 ms."""
    global TRIALS
    saved, TRIALS = TRIALS, BOUND_TRIALS
    try:
        run_trials(ctx, enforce_stall=True)
    finally:
        TRIALS = saved


# --- comparison: keepalived (optional) ---------------------------------------------------

KEEPALIVED_CONF = """global_defs {{
    router_id {name}
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 0
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface {log}
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_router_id 51
    version 3
    priority {prio}
    advert_int {advert}
    track_interface {{
        {up}
    }}
    virtual_ipaddress {{
        {vip}/24 dev {br}
    }}
}}
"""

# A line-protocol counter like ftap's, but each node keeps its own (keepalived
# moves an address, not state). Its replies carry the node's name.
COUNTER_SERVER = r"""
import socketserver, sys, threading
name, lock, n = sys.argv[1], threading.Lock(), [0]
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            with lock:
                n[0] += 1
                v = n[0]
            self.wfile.write(f"{v} {name}\n".encode())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("0.0.0.0", 7000), H).serve_forever()
"""


class ReconnectingClient:
    """INCR on one TCP connection; on reset/EOF it reconnects at once (what a
    client of a keepalived pair must do). Records (time, node) of replies and
    every reset."""

    def __init__(self, ip: str):
        import socket as _s
        import threading as _t
        self.ip, self._s = ip, _s
        self.replies: list[tuple[float, str]] = []
        self.resets: list[tuple[float, str]] = []
        self.stop_flag = _t.Event()
        self.thread = _t.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        conn, buf = None, b""
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = self._s.create_connection((self.ip, PL.PORT_COUNTER), timeout=1.0)
                    conn.settimeout(10.0)
                    buf = b""
                conn.sendall(b"INCR\n")
                while b"\n" not in buf:
                    d = conn.recv(4096)
                    if not d:
                        raise ConnectionError("EOF")
                    buf += d
                line, _, buf = buf.partition(b"\n")
                self.replies.append((time.monotonic(), line.decode().split()[1]))
                time.sleep(0.001)
            except OSError as e:
                self.resets.append((time.monotonic(), f"{type(e).__name__}: {e}"))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    def stall_after(self, t: float) -> float:
        """From the last reply by A to the first by B after t (the gap the
        client saw while the address moved)."""
        first_b = next((x for x, n in self.replies if x > t and n == "B"), None)
        last_a = max((x for x, n in self.replies if n == "A" and (first_b is None or x < first_b)), default=None)
        if first_b is None or last_a is None:
            return float("inf")
        return first_b - last_a

    def stop(self):
        self.stop_flag.set()
        self.thread.join(15)


def keepalived_trial(ctx, kind: str, advert: float, vrrp_on: str) -> dict:
    """vrrp_on "service": VRRP between brA and brB through the switch (the
    usual deployment); "log": VRRP over the log link (logA/logB)."""
    topo = ctx.topo
    d = os.path.join(ctx.out_dir, f"keepalived-{vrrp_on}-{kind}-{len(os.listdir(ctx.out_dir))}")
    os.makedirs(d, exist_ok=True)
    if vrrp_on == "service":
        nodes = {"A": (topo.node_a, "brA", "brA", "upA", "10.0.0.11", "10.0.0.11", "10.0.0.12", 150),
                 "B": (topo.node_b, "brB", "brB", "upB", "10.0.0.12", "10.0.0.12", "10.0.0.11", 100)}
    else:
        nodes = {"A": (topo.node_a, "brA", "logA", "upA", "10.0.0.11", L.LOG_IP_A, L.LOG_IP_B, 150),
                 "B": (topo.node_b, "brB", "logB", "upB", "10.0.0.12", L.LOG_IP_B, L.LOG_IP_A, 100)}
    procs = []
    try:
        for name, (ns, br, log, up, addr, me, peer, prio) in nodes.items():
            L.run(["ip", "addr", "replace", f"{addr}/24", "dev", br], ns=ns)
            conf = os.path.join(d, f"{name}.conf")
            with open(conf, "w") as f:
                f.write(KEEPALIVED_CONF.format(name=name, log=log, me=me, peer=peer, prio=prio, advert=advert,
                                               up=up, vip=PL.APPLIANCE_IP, br=br))
            logf = open(os.path.join(d, f"{name}.log"), "wb")
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, "keepalived", "-n", "-l", "-D", "-P", "-f", conf,
                 "-p", os.path.join(d, f"{name}.pid"), "-r", os.path.join(d, f"{name}.vrrp.pid")],
                stdout=logf, stderr=subprocess.STDOUT))
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", COUNTER_SERVER, name],
                                          stdout=logf, stderr=subprocess.STDOUT))
        for p in procs:
            PL.record_pid(p.pid, "keepalived-comparison")

        def has_vip(ns, br):
            return f"{PL.APPLIANCE_IP}/" in L.run(["ip", "-o", "addr", "show", "dev", br], ns=ns).stdout

        dl = L.Deadline(15)
        while not (has_vip(topo.node_a, "brA") and not has_vip(topo.node_b, "brB")):
            dl.check("keepalived: A never became master with the VIP")
            time.sleep(0.05)
        time.sleep(1.0)
        client = ReconnectingClient(PL.APPLIANCE_IP).start()
        dl = L.Deadline(10)
        while len(client.replies) < 50:
            dl.check("keepalived: the client got no replies from A")
            time.sleep(0.01)
        time.sleep(0.3)
        t0 = time.monotonic()
        if kind == "uplink":
            links(topo.node_a, "upA down")
        else:
            links(topo.node_a, "logA down", "upA down")
        dl = L.Deadline(5)
        while not has_vip(topo.node_b, "brB") and not dl.expired():
            time.sleep(0.005)
        t_vip = time.monotonic() if has_vip(topo.node_b, "brB") else None
        dl = L.Deadline(10 if t_vip else 0.5)
        while not any(x > t0 and n == "B" for x, n in client.replies) and not dl.expired():
            time.sleep(0.01)
        time.sleep(0.3)
        client.stop()
        stall = client.stall_after(t0)
        resets = [r for r in client.resets if r[0] > t0]
        with open(os.path.join(d, "B.log"), errors="replace") as f:
            b_state = [x.split(": ", 1)[1].strip() for x in f if "Entering" in x][-1:]
        return {"kind": kind, "vrrp_on": vrrp_on, "stall": stall,
                "vip_ms": (t_vip - t0) * 1000 if t_vip else None, "resets": len(resets),
                "reset_what": resets[0][1] if resets else "", "b_state": b_state[0] if b_state else "?"}
    finally:
        for p in procs:
            L.stop_process(p, signal.SIGTERM, 5)
        PL.kill_leftovers(topo)
        for n in ("upA", "logA"):  # what the pulls took down
            L.run(["ip", "link", "set", n, "up"], ns=topo.node_a, check=False, timeout=10)
        for name, (ns, br, *_rest) in nodes.items():
            L.run(["ip", "addr", "flush", "dev", br], ns=ns, check=False)


if os.environ.get("FTAP_HEALTH_KEEPALIVED") == "1":
    @test("k1_keepalived_comparison", timeout=60 + 40 * TRIALS)
    def k1_keepalived_comparison(ctx):
        """Not ftap: a keepalived VRRP pair (VRRPv3, unicast, advert_int 0.15 s
        so the master-down interval is about ftap's 500 ms failover timeout;
        track_interface upA/upB; the VIP on brA/brB), VRRP either through the
        switch (usual) or over the log link, with the same pulls. Does the
        healthy node take the VIP, and what does a client (reconnecting on
        reset; state is not replicated) see? Recorded, not checked."""
        check(shutil.which("keepalived"), "keepalived is not installed (apt-get install keepalived)")
        rows = []
        for vrrp_on in ("service", "log"):
            for kind in ("uplink", "cable"):
                for i in range(TRIALS):
                    r = keepalived_trial(ctx, kind, 0.15, vrrp_on)
                    rows.append(r)
                    took = f"B has the VIP {r['vip_ms']:.0f} ms after the pull" if r["vip_ms"] is not None \
                        else f"B never took the VIP (B: {r['b_state']})"
                    print(f"    keepalived (VRRP on the {vrrp_on} link) {kind} #{i + 1}: {took}; client stall "
                          f"{ms(r['stall'])}; resets {r['resets']} {r['reset_what']}", flush=True)
        for vrrp_on in ("service", "log"):
            for kind in ("uplink", "cable"):
                sel = [r for r in rows if r["kind"] == kind and r["vrrp_on"] == vrrp_on]
                ok = [r for r in sel if r["vip_ms"] is not None]
                st = [r["stall"] * 1000 for r in ok]
                rs = sum(r["resets"] for r in sel)
                ctx.note(f"keepalived, VRRP on the {vrrp_on} link, {kind} pull: B took the VIP in {len(ok)} of "
                         f"{len(sel)}" + (f" (median {statistics.median([r['vip_ms'] for r in ok]):.0f} ms); client "
                                          f"stall median {statistics.median(st):.0f} ms, max {max(st):.0f} ms"
                                          if ok else "") +
                         f"; connection resets {rs} (no shared state: the counter restarts on B)")
        with open(os.path.join(ctx.out_dir, "keepalived.json"), "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(L.main("ftap health and failover-to-the-healthy-node tests"))
