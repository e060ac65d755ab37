#!/usr/bin/env python3
"""Integration tests of the etcd arbiter (issue 15), run from the client
namespace of scripts/netns.sh by scripts/etcd-test.sh:

    ip netns exec ${P}-c python3 tests/integration/etcd_tests.py --prefix P --only NAME --out-dir DIR

Every test starts a real three-member etcd cluster (Debian's etcd-server 3.4)
in its own namespace ${P}-e: members ftap-etcd-m1..m3 on 10.77.0.11-13 (ports
2379/2380) on a bridge that nodes A and B reach through their own "arbiter
links" arbA (10.77.0.1) and arbB (10.77.0.2), apart from the log link and
the uplinks. The pair runs with --arbiter etcd://10.77.0.11:2379,...:2379/ftap/t
?ttl=$FTAP_ETCD_TTL (default 2 s). Captures on the switch's ports sw-a and
sw-b (frames the nodes send, source = the appliance's MAC) check that the
appliance's frames come from one port at a time: the sequence of ports, with
runs collapsed, must be exactly the expected one (e.g. a then b).

Tests:
  e1_failover              SIGKILL A under INCR load: B claims epoch 2 in etcd, serves; client continues;
                           `ftap arbiter status` lists epoch 1 tapA, epoch 2 tapB and B's alone lease
  e2_member_killed_during_takeover  the etcd leader and A SIGKILLed together: B's claim
                           succeeds (after the election), the client continues
  e3_etcd_down_during_takeover  all members SIGKILLed, then A: B retries (arbiter_unavailable
                           grows), never exits, never goes live; members restarted: B takes over
  e4_cable_pull            upA + logA down at once (A's arbiter link up): B takes over; A never
                           wins an epoch; links back: A wins nothing and emits nothing
  e4b_host_cut             upA + logA + arbA down (A's host cut off): B takes over, A never wins
  e6_partition_log_link    logA down only (both healthy, both reach etcd): both claim epoch 2,
                           exactly one wins and serves, the other exits 2 ("lost epoch")
  e7_start_alone_renew_release  A started alone serves for 2.5 lease bounds (renewals work);
                           B joins: A gives the lease up; SIGKILL A: B takes over within 1 s
  e5_alone_lease_bound     B serving alone loses its arbiter link: B exits 2 within its bound,
                           and only after B exited can another claimant win epoch 3
                           (`ftap arbiter claim` polled from A's namespace); the timing argument

Environment: FTAP_RUN_BIN, FTAP_PIDFILE, FTAP_LOG_LEVEL (see pairlib);
FTAP_ETCD_TTL (lease seconds, default 2); FTAP_ETCD_FAILOVER_MS (default 500).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from ftaplib import check, check_eq, test  # noqa: E402
import scenario as S  # noqa: E402
from pairlib import Capture  # noqa: E402
from scenario import Scenario, links, ms  # noqa: E402
from etcdlib import EtcdCluster, MEMBERS, TTL, arbiter_status, claimed, ftap_in  # noqa: E402

AMAC = PL.APPLIANCE_MAC
T_MS = int(os.environ.get("FTAP_ETCD_FAILOVER_MS", "500") or 500)
# Spec.ownershipBound: TTL·0.99/1.01 − 100 ms.
BOUND = TTL * 0.99 / 1.01 - 0.1


# --- at most one emitter ---------------------------------------------------------

class EmitterWatch:
    """Frames with the appliance's source MAC entering the switch from each
    node's port; ``sequence`` is the list of ports they came from, in time
    order with runs collapsed (one port at a time: ["a", "b"] for one failover)."""

    def __init__(self, topo, out_dir):
        self.caps = {p: Capture(topo.switch, f"sw-{p}", os.path.join(out_dir, f"sw-{p}-in.pcap"),
                                bpf=f"ether src {AMAC}", direction="in", snaplen=96).start() for p in ("a", "b")}

    def stop(self):
        for c in self.caps.values():
            c.stop()

    def sequence(self) -> tuple[list[str], dict]:
        self.stop()
        frames = sorted((ts, p) for p, c in self.caps.items() for ts, _ in c.frames())
        seq: list[str] = []
        switches = {}
        last = {}
        for ts, p in frames:
            if not seq or seq[-1] != p:
                if seq:
                    switches[f"{seq[-1]}->{p}"] = ts - last[seq[-1]]
                seq.append(p)
            last[p] = ts
        return seq, {"frames": len(frames), "gaps": switches, "list": frames}

    def check(self, ctx, want: list[str]):
        seq, info = self.sequence()
        ctx.note(f"appliance-MAC frames on the switch: {info['frames']}, from ports {seq}; "
                 f"silence at each change {', '.join(f'{k} {ms(v)}' for k, v in info['gaps'].items()) or 'none'}")
        check_eq(seq, want, "ports the appliance's frames came from (runs collapsed): two emitters at once?")


def emitter_watch(sc: Scenario) -> EmitterWatch:
    watch = EmitterWatch(sc.topo, sc.out_dir)
    sc.callback(watch.stop)
    return watch


def finish_load(ctx, load, t_event: float, what: str, after: float = 3.0) -> dict:
    return S.finish_load(ctx, load, t_event, what, after=after, detail=False)


def setup(sc: Scenario):
    """The etcd cluster, `ftap arbiter init` on it and a protected pair using
    it; all of it undone when ``sc`` ends."""
    cluster = EtcdCluster(sc.topo, sc.out_dir)
    sc.callback(cluster.close)
    cp = ftap_in(sc.topo.node_a, "arbiter", "init", "--arbiter", cluster.url())
    check(cp.returncode == 0, f"ftap arbiter init failed: {cp.stdout} {cp.stderr}")
    pair = sc.pair(failover_timeout_ms=T_MS, arbiter=cluster.url())
    a, b = pair.start()
    return cluster, pair, a, b


def takeover(b, timeout: float, epoch: int = 2):
    return b.wait_status(f"B live in epoch {epoch}", timeout, role="primary", live=True, epoch=epoch)


def check_claims(ctx, cluster, want: dict, what: str = "claims"):
    check_eq(claimed(arbiter_status(ctx.topo, cluster)), want, what)


# --- tests -------------------------------------------------------------------------

@test("e1_failover", timeout=120)
def e1_failover(ctx):
    """SIGKILL A under load: B claims epoch 2 in etcd and serves."""
    with Scenario(ctx) as sc:
        cluster, pair, a, b = setup(sc)
        check_claims(ctx, cluster, {1: "tapA"}, "claims before the failover")
        watch = emitter_watch(sc)
        load = sc.load()
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL)
        _, t1 = takeover(b, 10)
        load.wait_progress_after(t1, 100, 10)
        r = finish_load(ctx, load, t0, "SIGKILL A")
        st = arbiter_status(ctx.topo, cluster)
        check_eq(claimed(st), {1: "tapA", 2: "tapB"}, "claims after the failover")
        check("serving alone under a lease: tapB (epoch 2" in st, f"B's alone lease missing:\n{st}")
        watch.check(ctx, ["a", "b"])
        ctx.note(f"B live {ms(t1 - t0)} after the kill")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_ms=(t1 - t0) * 1000)


@test("e2_member_killed_during_takeover", timeout=120)
def e2_member_killed_during_takeover(ctx):
    """The etcd leader and A die together: B's claim goes through once the
    remaining two members elected a leader."""
    with Scenario(ctx) as sc:
        cluster, pair, a, b = setup(sc)
        watch = emitter_watch(sc)
        load = sc.load(req_timeout=30)
        leader = cluster.leader()
        t0 = time.monotonic()
        cluster.kill(leader)
        a.send_signal(signal.SIGKILL)
        st, t1 = takeover(b, 15)
        load.wait_progress_after(t1, 100, 10)
        r = finish_load(ctx, load, t0, f"SIGKILL A and etcd leader {leader}", after=15)
        check_claims(ctx, cluster, {1: "tapA", 2: "tapB"})
        check(b.alive(), "B exited")
        watch.check(ctx, ["a", "b"])
        ctx.note(f"leader {leader} killed with A; B live {ms(t1 - t0)} later "
                 f"(arbiter_unavailable {st['arbiter_unavailable']})")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_ms=(t1 - t0) * 1000,
                         arbiter_unavailable=st["arbiter_unavailable"])


@test("e3_etcd_down_during_takeover", timeout=150)
def e3_etcd_down_during_takeover(ctx):
    """Every member down, then A dies: B keeps retrying (never exits, never
    live); members back: B takes over and the client's connection continues."""
    HOLD = 3.0
    with Scenario(ctx) as sc:
        cluster, pair, a, b = setup(sc)
        watch = emitter_watch(sc)
        load = sc.load(req_timeout=40)
        for n, _ in MEMBERS:
            cluster.kill(n)
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL)
        s1, _ = b.wait_status("arbiter unavailable at least twice", 15, cond=lambda s: s["arbiter_unavailable"] >= 2)
        time.sleep(HOLD)
        s2 = b.status()
        check(b.alive(), f"B exited while etcd was down: {pair.describe_exit(b)}\n{b.tail()}")
        check(s2["live"] is False, f"B went live without etcd: {PL.brief(s2)}")
        check(s2["arbiter_unavailable"] > s1["arbiter_unavailable"], "arbiter_unavailable did not grow")
        t_back = time.monotonic()
        for n, _ in MEMBERS:
            cluster.start(n)
        s3, t3 = takeover(b, 30)
        load.wait_progress_after(t3, 100, 20)
        r = finish_load(ctx, load, t0, "etcd down during the takeover", after=HOLD + 30)
        check_claims(ctx, cluster, {1: "tapA", 2: "tapB"})
        watch.check(ctx, ["a", "b"])
        ctx.note(f"arbiter_unavailable {s1['arbiter_unavailable']} -> {s2['arbiter_unavailable']} "
                 f"-> {s3['arbiter_unavailable']}; B live {ms(t3 - t_back)} after the members restarted")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_after_restart_ms=(t3 - t_back) * 1000)


def a_cut_off(ctx, down: tuple[str, ...], up: tuple[str, ...], event: str, while_cut):
    """A's links ``down`` go down in one ip -batch under load: B takes over;
    ``while_cut(a, cluster)`` checks A three failover timeouts later; the
    links ``up`` again: B stays the live primary of epoch 2, A wins no epoch
    and the appliance's frames came from A's port, then B's, never both."""
    with Scenario(ctx) as sc:
        cluster, pair, a, b = setup(sc)
        watch = emitter_watch(sc)
        load = sc.load()
        t0 = time.monotonic()
        sc.links(ctx.topo.node_a, *(f"{n} down" for n in down))
        _, t1 = takeover(b, 10)
        load.wait_progress_after(t1, 100, 10)
        time.sleep(3 * T_MS / 1000)
        while_cut(a, cluster)
        links(ctx.topo.node_a, *(f"{n} up" for n in up))
        time.sleep(2 + 2 * T_MS / 1000)
        b.wait_status("B still the live primary", 5, role="primary", live=True, epoch=2)
        check_claims(ctx, cluster, {1: "tapA", 2: "tapB"}, "claims after A's links came back")
        rc_a = a.poll()
        check(rc_a in (None, 2, 3), f"A exited {rc_a}")
        r = finish_load(ctx, load, t0, f"{event} on A", after=8)
        watch.check(ctx, ["a", "b"])
        ctx.note(f"B live {ms(t1 - t0)} after the {event.split()[-1]}; A afterwards: "
                 f"{'running, not live' if rc_a is None else f'exit {rc_a}'}")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_ms=(t1 - t0) * 1000)


@test("e4_cable_pull", timeout=120)
def e4_cable_pull(ctx):
    """upA and logA down at once (A still reaches etcd): B takes over; A,
    unhealthy, never claims; its links back, it wins nothing, emits nothing."""
    def isolated(a, cluster):
        check_claims(ctx, cluster, {1: "tapA", 2: "tapB"}, "claims while A is isolated")
        st_a = a.status()
        check(st_a["live"] is False, f"A live while isolated: {PL.brief(st_a)}")
    a_cut_off(ctx, ("logA", "upA"), ("upA", "logA"), "cable pull", isolated)


@test("e4b_host_cut", timeout=120)
def e4b_host_cut(ctx):
    """A's host loses every link (uplink, log link, arbiter link): B takes
    over; A cannot reach etcd and never wins; links back, it wins nothing."""
    def cut_off(a, cluster):
        check(a.poll() is None or a.poll() in (2, 3), f"A exited {a.poll()}")
        if a.alive():
            check(a.status()["live"] is False, f"A live while cut off: {PL.brief(a.status())}")
    a_cut_off(ctx, ("arbA", "logA", "upA"), ("arbA", "upA", "logA"), "host cut", cut_off)


@test("e6_partition_log_link", timeout=120)
def e6_partition_log_link(ctx):
    """Only the log link fails: both nodes are healthy and reach etcd, both
    claim epoch 2; exactly one wins and serves, the other exits 2."""
    with Scenario(ctx) as sc:
        cluster, pair, a, b = setup(sc)
        watch = emitter_watch(sc)
        load = sc.load(req_timeout=20)
        t0 = time.monotonic()
        sc.links(ctx.topo.node_a, "logA down")
        dl = L.Deadline(10)
        winner = loser = None
        while not dl.expired():
            for me, other in ((a, b), (b, a)):
                if not other.alive() and other.poll() == 2 and me.alive():
                    winner, loser = me, other
            if winner:
                break
            time.sleep(0.02)
        check(winner is not None, f"no single winner: A {pair.describe_exit(a)}, B {pair.describe_exit(b)}")
        st, t1 = winner.wait_status("the winner live in epoch 2", 5, role="primary", live=True, epoch=2)
        check(loser.search(PL.LOST_RE), f"{loser.name} did not log that it lost the epoch")
        load.wait_progress_after(t1, 100, 15)
        r = finish_load(ctx, load, t0, "log link partition", after=10)
        check_claims(ctx, cluster, {1: "tapA", 2: f"tap{winner.node}"})
        watch.check(ctx, ["a"] if winner.node == "A" else ["a", "b"])
        ctx.note(f"winner {winner.node} live {ms(t1 - t0)} after the partition; {loser.node} exited 2")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_ms=(t1 - t0) * 1000)


@test("e7_start_alone_renew_release", timeout=120)
def e7_start_alone_renew_release(ctx):
    """A primary started alone serves for several lease bounds (its renewals
    work), holds the alone lease; once B joined (protected) it gives the
    lease up, so B's takeover after SIGKILL of A does not wait for it."""
    with Scenario(ctx) as sc:
        cluster = EtcdCluster(ctx.topo, ctx.out_dir)
        sc.callback(cluster.close)
        pair = sc.pair(failover_timeout_ms=T_MS, arbiter=cluster.url())
        a = pair.start_node("A", "primary", extra=["--start-alone"])
        a.wait_status("A alone in epoch 1", 15, mode="alone", epoch=1, live=True)
        PL.wait_ping(ctx.topo, 15, [a])
        load = sc.load()
        time.sleep(2.5 * BOUND)
        st = a.status()
        check(a.alive() and st["mode"] == "alone", f"A stopped serving alone: {pair.describe_exit(a)} {PL.brief(st)}")
        s1 = arbiter_status(ctx.topo, cluster)
        check("serving alone under a lease: tapA (epoch 1" in s1, f"A's alone lease missing:\n{s1}")
        b = pair.start_node("B", "backup")
        a.wait_status("A protected", 20, mode="protected")
        b.wait_status("B in sync", 20, mode="backup", in_sync=True)
        dl = L.Deadline(5)
        while "serving alone under a lease: nobody" not in arbiter_status(ctx.topo, cluster):
            check(not dl.expired(), "A did not give its lease up once protected")
            time.sleep(0.1)
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL)
        st_b, t1 = takeover(b, 10)
        check(t1 - t0 < 1.0, f"B took {ms(t1 - t0)} to take over: waited for a lease?")
        load.wait_progress_after(t1, 100, 10)
        r = finish_load(ctx, load, t0, "start alone, join, SIGKILL A", after=5)
        check_claims(ctx, cluster, {1: "tapA", 2: "tapB"})
        ctx.note(f"A alone for {2.5 * BOUND:.1f} s (bound {ms(BOUND)}); lease released once protected; "
                 f"B live {ms(t1 - t0)} after the kill")
        PL.write_measure(ctx.out_dir, stall_ms=r["stall"] * 1000, live_ms=(t1 - t0) * 1000)


@test("e5_alone_lease_bound", timeout=120)
def e5_alone_lease_bound(ctx):
    """B serves alone in epoch 2 and loses its link to etcd: it must stop
    (exit 2, "lost epoch") within its bound, and another claimant of epoch 3
    (polling `ftap arbiter claim` from A's namespace) wins only after B exited."""
    with Scenario(ctx) as sc:
        cluster, pair, a, b = setup(sc)
        a.send_signal(signal.SIGKILL)
        takeover(b, 10)
        time.sleep(1.0)  # a few renewals
        watch = emitter_watch(sc)
        # B's exit time to within ~2 ms (Daemon.poll stamps it when first seen).
        stop = threading.Event()

        def watch_exit():
            while not stop.is_set() and b.poll() is None:
                time.sleep(0.002)
        threading.Thread(target=watch_exit, daemon=True).start()
        t_cut = time.time()
        sc.links(ctx.topo.node_b, "arbB down")
        answers = []
        t_won = None
        dl = L.Deadline(TTL * 3 + 10)
        while not dl.expired():
            cp = ftap_in(ctx.topo.node_a, "arbiter", "claim", "--arbiter", cluster.url(), "--epoch", "3",
                         "--node", "intruder", timeout=10)
            now = time.time()
            answers.append((now - t_cut, cp.returncode))
            if cp.returncode == 0:
                t_won = now
                break
            check(cp.returncode == 75, f"claim of epoch 3 answered {cp.returncode}: {cp.stdout} {cp.stderr}")
            check("tapB serves epoch 2 alone under lease" in cp.stdout,
                  f"claim of epoch 3 refused for another reason: {cp.stdout.strip()}")
            time.sleep(0.05)
        check(t_won is not None, f"epoch 3 never granted after B lost etcd (answers {answers[-3:]})")
        rc = b.wait_exit(5)
        stop.set()
        check_eq(rc, 2, "B's exit status (lost epoch)")
        t_exit = b.exit_wall
        check(t_exit < t_won, f"B exited {t_exit - t_won:.3f}s AFTER epoch 3 was granted: two owners")
        check(b.search(PL.LOST_RE), "B did not log why it stopped")
        waited = sum(1 for _, rc in answers if rc == 75)
        check(waited >= 1, "the intruder's claim was never refused while B's lease lived")
        seq, info = watch.sequence()
        check(seq in ([], ["b"]), f"appliance frames came from ports {seq} after B lost etcd")
        late = [ts for ts, _ in info["list"] if ts > t_exit]
        check(not late, f"{len(late)} appliance frames on the switch after B exited")
        ctx.note(f"arbiter link cut; B exited {ms(t_exit - t_cut)} later (bound {ms(BOUND)} from its last "
                 f"renewal request); epoch 3 granted {ms(t_won - t_cut)} after the cut, {ms(t_won - t_exit)} after "
                 f"B's exit; {waited} refused claims meanwhile")
        PL.write_measure(ctx.out_dir, exit_after_cut_ms=(t_exit - t_cut) * 1000,
                         granted_after_exit_ms=(t_won - t_exit) * 1000)


if __name__ == "__main__":
    sys.exit(L.main(__doc__.splitlines()[0]))
