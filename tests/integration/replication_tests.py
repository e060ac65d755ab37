#!/usr/bin/env python3
"""Integration tests of the replicated pair (issue 3, and issue 4's
determinism checks), run from the client namespace of scripts/netns.sh:

    ip netns exec ${P}-c python3 tests/integration/replication_tests.py --prefix P --only NAME --out-dir DIR

Each test starts its own pair (primary in ${P}-a, backup in ${P}-b, fresh
arbiter directory under --out-dir) on a topology that scripts/replication-test.sh
builds fresh for every test; run one test per invocation (--only NAME).
Prints "PASS name (secs)" / "FAIL name (secs)" with notes (measurements), and
writes measurements to DIR/measure.json.

Environment: FTAP_RUN_BIN (the ftap binary), FTAP_REP (repetition number,
varies the fault-hook counts), FTAP_PIDFILE, FTAP_LOG_LEVEL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from ftaplib import TestFailure, check, check_eq, test  # noqa: E402
from frames import is_garp, parse_frame  # noqa: E402
from pairlib import Capture, IncrLoad, Pair, UdpCounterClient  # noqa: E402

REP = int(os.environ.get("FTAP_REP", "1") or 1)
AMAC = PL.APPLIANCE_MAC
AIP = PL.APPLIANCE_IP


def out(ctx, name):
    return os.path.join(ctx.out_dir, name)


def ms(x):
    return f"{x * 1000:.1f} ms"


def garps_in(frames, since_wall=None):
    return [(ts, f) for ts, f in frames
            if is_garp(f, AIP) and parse_frame(f)["eth_src"] == AMAC and (since_wall is None or ts >= since_wall)]


def resets_from_appliance(frames):
    res = []
    for ts, f in frames:
        d = parse_frame(f)
        if d["type"] == "tcp" and d["ip_src"] == AIP and d["flags"] & L.TCP_RST:
            res.append(d)
    return res


def check_fdb(topo, want_port, what):
    ports = PL.fdb_ports(topo)
    check(ports == [want_port], f"{what}: switch FDB for {AMAC} is {ports or 'absent'}, want [{want_port}]")


def check_clean_exit(d, what):
    rc = d.stop(signal.SIGTERM, timeout=10)
    check(rc == 0, f"{what}: exit status {rc} after SIGTERM (None: had to be SIGKILLed); last lines:\n{d.tail()}")


# --- 1. failover under load ------------------------------------------------------

@test("s1_failover_under_load", timeout=120)
def s1_failover_under_load(ctx):
    """INCR back to back on one connection, a second idle connection, SIGKILL
    of the primary: consecutive values, no reset/error, both connections work,
    FDB moves to sw-b, GARP from B seen on br0."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    caps, load, idle = [], None, None
    try:
        pair.start()
        check_fdb(topo, "sw-a", "before the failover")
        idle = L.LineClient(port=PL.PORT_COUNTER, timeout=15)
        base = idle.get()
        br0 = Capture(topo.switch, "br0", out(ctx, "br0.pcap"),
                      bpf="arp or (tcp[tcpflags] & tcp-rst != 0)").start()
        swb = Capture(topo.switch, "sw-b", out(ctx, "sw-b-in.pcap"), bpf="arp", direction="in").start()
        caps = [br0, swb]
        load = IncrLoad(req_timeout=15).start()
        load.wait_count(100, 10)
        time.sleep(1.5)
        n_before = load.count()
        t_kill, w_kill = time.monotonic(), time.time()
        pair.a.send_signal(signal.SIGKILL)
        rc = pair.a.wait_exit(5)
        check(rc == -signal.SIGKILL, f"primary: status {rc} after SIGKILL")
        st, _ = pair.b.wait_status("live after the takeover", 10, live=True)
        check_eq(st["epoch"], 2, "epoch B went live in")
        load.wait_progress_after(t_kill, 200, 20)
        time.sleep(1.0)
        load.stop()
        check(load.error is None, f"load client error (reset/EOF/timeout): {load.error}; "
                                  f"{PL.describe_values(load.values)}")
        values = load.values
        PL.check_consecutive(values, base + 1, "INCR replies on the loaded connection")
        last = values[-1]
        check_eq(idle.get(), last, "GET on the idle connection after the failover")
        check_eq(idle.incr(), last + 1, "INCR on the idle connection after the failover")
        check_eq(load.client.incr(), last + 2, "INCR on the loaded connection after the failover")
        time.sleep(0.3)
        for c in caps:
            c.stop()
        check_fdb(topo, "sw-b", "after the failover")
        g_br0 = garps_in(br0.frames(), w_kill - 0.01)
        g_b = garps_in(swb.frames())
        check(len(g_br0) >= 1, f"no gratuitous ARP on br0 after the kill (capture {br0.path}, {br0.stats})")
        check(len(g_b) >= 1, f"no gratuitous ARP received from sw-b (B's port) (capture {swb.path})")
        rst = resets_from_appliance(br0.frames())
        check(not rst, f"the appliance sent {len(rst)} RST(s): {rst[:3]}")
        claims = pair.arbiter_claims()
        check_eq(claims, {1: "tapA", 2: "tapB"}, "arbiter claims")
        st = pair.b.status()
        check(st.get("epoch") == 2 and st.get("mode") == "alone" and st.get("live") is True,
              f"B's /status after takeover: {st}")
        stall, sv, st0 = load.max_latency()
        fstall, fv = load.stall_around(t_kill)
        istall, iv = load.stall_around(t_kill, before=0.0, after=0.02)
        garp_after = g_br0[0][0] - w_kill
        check_clean_exit(pair.b, "new primary B")
        ctx.note(f"longest stall seen by the client: {ms(stall)} (the INCR that returned {sv}, sent "
                 f"{(st0 - t_kill) * 1000:+.0f} ms from the kill); around the failover (in flight at the kill "
                 f"or sent up to 2 s after): {ms(fstall)} (value {fv}); the INCR in flight at the kill: {ms(istall)} "
                 f"(value {iv}); first GARP from B {ms(garp_after)} after the kill")
        ctx.note(f"{PL.describe_values(values)}; {n_before} before the kill; GARPs after the kill on br0: "
                 f"{len(g_br0)} (from sw-b: {len(g_b)}); FDB sw-a -> sw-b")
        PL.write_measure(ctx.out_dir, stall_ms=stall * 1000, failover_stall_ms=fstall * 1000,
                         inflight_stall_ms=istall * 1000, garps=len(g_br0),
                         values=len(values), kill_to_garp_ms=garp_after * 1000)
    finally:
        if load:
            load.close()
        if idle:
            idle.close()
        for c in caps:
            c.stop()
        pair.close()


# --- 2. duplicated output (the seed's case) -----------------------------------------

@test("s2_duplicated_output", timeout=90)
def s2_duplicated_output(ctx):
    """FTAP_FAULT=after-release:K: the primary dies right after sending reply K.
    The new primary sends the same segment again (same seq, same payload);
    the client application gets reply K exactly once."""
    topo = ctx.topo
    K = 10 + 7 * REP
    pair = Pair(topo, ctx.out_dir)
    caps, c = [], None
    try:
        pair.start(primary_env={"FTAP_FAULT": f"after-release:{K}"})
        swa = Capture(topo.switch, "sw-a", out(ctx, "sw-a-in.pcap"), bpf="tcp", direction="in").start()
        swb = Capture(topo.switch, "sw-b", out(ctx, "sw-b-in.pcap"), bpf="tcp", direction="in").start()
        br0 = Capture(topo.switch, "br0", out(ctx, "br0.pcap"), bpf=f"tcp port {PL.PORT_COUNTER}").start()
        caps = [swa, swb, br0]
        c = L.LineClient(port=PL.PORT_COUNTER, timeout=15)
        values = []
        for i in range(K + 5):
            t0 = time.monotonic()
            values.append(c.incr(15))
            if i + 1 == K + 1:
                stall = time.monotonic() - t0
        rc = pair.a.wait_exit(5)
        check(rc == -signal.SIGKILL, f"primary: status {rc}, want killed by the fault hook; last lines:\n"
                                     f"{pair.a.tail()}")
        # About logging: a process killed by its own fault hook must say so.
        check(pair.a.search(r"test fault hook"), "primary log does not mention the fault hook")
        pair.b.wait_status("live in epoch 2", 10, live=True, epoch=2, role="primary")
        PL.check_consecutive(values, 1, "INCR replies")
        time.sleep(0.3)
        for cap in caps:
            cap.stop()

        def payload_segments(cap):
            segs = []
            for ts, f in cap.frames():
                d = parse_frame(f)
                if d["type"] == "tcp" and d["ip_src"] == AIP and d["sport"] == PL.PORT_COUNTER and d["payload"]:
                    d["ts"] = ts
                    d["raw"] = f
                    segs.append(d)
            return segs

        a_segs = payload_segments(swa)
        b_segs = payload_segments(swb)
        check(len(a_segs) == K, f"A sent {len(a_segs)} payload segments on port {PL.PORT_COUNTER}, want {K} "
                                f"({swa.stats})")
        last_a = a_segs[-1]
        check_eq(last_a["payload"], f"{K}\n".encode(), "payload of A's last reply")
        dup = [d for d in b_segs if d["seq"] == last_a["seq"] and d["payload"] == last_a["payload"]
               and d["dport"] == last_a["dport"]]
        check(dup, f"B never re-sent A's last reply (seq {last_a['seq']}, payload {last_a['payload']!r}); "
                   f"B's payload segments: {[(d['seq'], d['payload']) for d in b_segs[:5]]}")
        check(b_segs[0] is dup[0], f"B's first payload segment is not the re-sent reply: "
                                   f"{(b_segs[0]['seq'], b_segs[0]['payload'])}")
        same_ack = dup[0]["ack"] == last_a["ack"]
        on_br0 = [d for d in payload_segments(br0)
                  if d["seq"] == last_a["seq"] and d["payload"] == last_a["payload"] and d["dport"] == last_a["dport"]]
        check_eq(len(on_br0), 1 + len(dup), "copies of reply K seen on br0")
        check(values.count(K) == 1, f"the client application received value {K} {values.count(K)} times")
        # The TCP/IP headers other than IP id and checksum should be the very same.
        ra, rb = last_a["raw"], dup[0]["raw"]
        same_tcp = ra[34:] == rb[34:]
        check_clean_exit(pair.b, "new primary B")
        ctx.note(f"K={K}: A's reply {K} seq={last_a['seq']} ack={last_a['ack']} payload={last_a['payload']!r}; "
                 f"B re-sent it {ms(dup[0]['ts'] - last_a['ts'])} later ({len(dup)}x, ack "
                 f"{'equal' if same_ack else 'different: ' + str(dup[0]['ack'])}, TCP header+payload "
                 f"{'identical' if same_tcp else 'different'}); client values 1..{values[-1]} each once; "
                 f"stall of INCR {K + 1}: {ms(stall)}")
        PL.write_measure(ctx.out_dir, stall_ms=stall * 1000, resend_after_ms=(dup[0]["ts"] - last_a["ts"]) * 1000)
    finally:
        if c:
            c.close()
        for cap in caps:
            cap.stop()
        pair.close()


# --- 3. UDP exactly-once ------------------------------------------------------------

def udp_replies(cap, cid):
    """[(seq, reply text)] of udp-counter replies to client cid in a capture."""
    res = []
    for _, f in cap.frames():
        d = parse_frame(f)
        if d["type"] == "udp" and d["sport"] == PL.PORT_UDP_COUNTER:
            parts = d["payload"].decode(errors="replace").split()
            if len(parts) >= 3 and parts[0] == cid:
                res.append((int(parts[1]), " ".join(parts[2:])))
    return res


def udp_exactly_once(ctx, fault: str | None, capture: bool = False):
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    u = None
    caps = []
    try:
        pair.start(primary_env={"FTAP_FAULT": fault} if fault else None)
        if capture:
            caps = [Capture(topo.switch, port, out(ctx, f"{port}-in.pcap"), direction="in", snaplen=128,
                            bpf=f"udp src port {PL.PORT_UDP_COUNTER}").start() for port in ("sw-a", "sw-b")]
        u = UdpCounterClient(f"c{os.getpid()}r{REP}", retry_s=0.05, max_wait_s=15)
        values = []
        t_kill = None
        killer = None
        if not fault:
            def kill():
                nonlocal t_kill
                t_kill = time.monotonic()
                pair.a.send_signal(signal.SIGKILL)
            killer = threading.Timer(1.0, kill)
            killer.start()
        dl = L.Deadline(30)
        live_at = None
        next_look = 0.0
        while True:
            dl.check(f"UDP load ({len(values)} values)")
            values.append(u.incr())
            if live_at is None and time.monotonic() >= next_look:
                next_look = time.monotonic() + 0.02
                try:
                    live = pair.b.status().get("live") is True
                except TestFailure:
                    live = False  # B went away: the checks below say so
                if live:
                    live_at = time.monotonic()
                    n_at_live = len(values)
            if live_at is not None and time.monotonic() - live_at > 1.0 and len(values) - n_at_live >= 100:
                break
        if killer:
            killer.join()
        rc = pair.a.wait_exit(5)
        check(rc == -signal.SIGKILL, f"primary: status {rc} (want SIGKILL)")
        PL.check_consecutive(values, 1, "UDP INCR values")
        last, last_seq = values[-1], u.seq
        # The same request again: the cached reply, not a second increment.
        check_eq(u.request("INCR", seq=last_seq), str(last), f"INCR seq {last_seq} sent again")
        # An older one: stale.
        check_eq(u.request("INCR", seq=last_seq - 1), "ERR stale", f"INCR seq {last_seq - 1} (older)")
        total = u.get()
        check_eq(total, last, "GET after the failover (counter total)")
        st = pair.b.status()
        check(st.get("epoch") == 2 and st.get("live") is True, f"B's /status: {st}")
        check_clean_exit(pair.b, "new primary B")
        ctx.note(f"{PL.describe_values(values)}; GET {total}; {u.sends} datagrams for {u.seq} requests "
                 f"({u.retries} retries, {u.stray} stray replies); longest request {ms(u.max_latency)} "
                 f"(seq {u.max_latency_seq})")
        PL.write_measure(ctx.out_dir, stall_ms=u.max_latency * 1000, retries=u.retries)
        for c in caps:
            c.stop()
        return values, u, caps
    finally:
        if u:
            u.close()
        for c in caps:
            c.stop()
        pair.close()


@test("s3a_udp_exactly_once_sigkill", timeout=90)
def s3a_udp_exactly_once_sigkill(ctx):
    """UDP client retrying the same <client> <seq> every 50 ms; primary SIGKILLed mid-run."""
    udp_exactly_once(ctx, None)


@test("s3b_udp_exactly_once_before_release", timeout=90)
def s3b_udp_exactly_once_before_release(ctx):
    """FTAP_FAULT=before-release:K: INCR K was applied (and acknowledged by the
    backup) but its reply never left; the client's retry gets the cached reply
    from the new primary: value K once, never K applied twice."""
    K = 20 + 5 * REP
    values, u, (swa, swb) = udp_exactly_once(ctx, f"before-release:{K}", capture=True)
    check(u.max_latency_seq == K, f"the longest wait was for seq {u.max_latency_seq}, want {K} (the reply "
                                  f"the primary never sent)")
    check(u.retries >= 1, f"no retries: the reply of seq {K} was not withheld?")
    a_rep, b_rep = udp_replies(swa, u.cid), udp_replies(swb, u.cid)
    check_eq([q for q, _ in a_rep], list(range(1, K)), f"seqs A answered (capture on sw-a, {swa.stats})")
    check(b_rep and b_rep[0] == (K, str(K)), f"B's first reply: {b_rep[:3]}, want ({K}, '{K}')")
    ctx.note(f"K={K}: A answered seqs 1..{K - 1} and died before reply {K}; the client's retry of seq {K} "
             f"got '{b_rep[0][1]}' from B ({len(b_rep)} replies from B; {u.retries} retries)")


# --- 4. output rule -------------------------------------------------------------------

@test("s4_output_rule_frozen_backup", timeout=90)
def s4_output_rule(ctx):
    """SIGSTOP the backup: a new request gets no reply until the failover
    timeout; then the primary claims epoch 2 and answers; the resumed backup
    finds the epoch taken and exits with "lost epoch"."""
    topo = ctx.topo
    T = 500
    pair = Pair(topo, ctx.out_dir, failover_timeout_ms=T)
    c = None
    try:
        pair.start()
        c = L.LineClient(port=PL.PORT_COUNTER, timeout=15)
        for i in range(5):
            check_eq(c.incr(), i + 1, "INCR before freezing the backup")
        pair.b.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        v = c.incr(10)
        lat = time.monotonic() - t0
        check_eq(v, 6, "INCR while the backup is frozen")
        check(lat >= 0.8 * T / 1000, f"reply after {ms(lat)}, before 80% of the failover timeout ({T} ms): "
                                     f"the output rule was not enforced")
        check(lat <= T / 1000 + 1.5, f"reply only after {ms(lat)} (timeout {T} ms)")
        pair.a.wait_status("alone in epoch 2 (continued without the frozen backup)", 5, mode="alone", epoch=2,
                           live=True, failovers=1)
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapA"}, "arbiter claims")
        check(pair.b.alive(), f"frozen backup is gone: {pair.describe_exit(pair.b)}")
        t_cont = time.monotonic()
        pair.b.send_signal(signal.SIGCONT)
        rc = pair.b.wait_exit(10)
        exit_after = time.monotonic() - t_cont
        check(rc is not None, f"resumed backup still running 10 s after SIGCONT; last lines:\n{pair.b.tail()}")
        check(rc != 0, "resumed backup exited 0; want non-zero (lost epoch)")
        check_eq(rc, 2, "resumed backup's exit status (2: lost the epoch)")
        # About logging: the operator must read why it exited.
        check(pair.b.search(PL.LOST_RE), f"resumed backup's log does not say it lost the epoch:\n{pair.b.tail()}")
        for i in range(20):
            check_eq(c.incr(), 7 + i, "INCR on the primary alone")
        st = pair.a.status()
        check(st.get("epoch") == 2 and st.get("mode") == "alone", f"A's /status: {st}")
        check_clean_exit(pair.a, "primary A")
        m = pair.b.search(r"(lost epoch[^\n]*)")
        ctx.note(f"reply latency with the backup frozen: {ms(lat)} (failover timeout {T} ms, heartbeat 50 ms); "
                 f"resumed backup exited {rc} {ms(exit_after)} after SIGCONT: {m.group(1)[:120]}")
        PL.write_measure(ctx.out_dir, held_reply_ms=lat * 1000)
    finally:
        if c:
            c.close()
        pair.close()


# --- 5. partition -------------------------------------------------------------------

@test("s5_partition_log_link", timeout=120)
def s5_partition(ctx):
    """logA down with both nodes alive and a client running: exactly one node
    emits afterwards, the client is served with consecutive values, the other
    node exits with "lost epoch"."""
    topo = ctx.topo
    T = 500
    pair = Pair(topo, ctx.out_dir, failover_timeout_ms=T)
    caps, load = [], None
    try:
        pair.start()
        swa = Capture(topo.switch, "sw-a", out(ctx, "sw-a-in.pcap"), bpf=f"ether src {AMAC}", direction="in",
                      snaplen=96).start()
        swb = Capture(topo.switch, "sw-b", out(ctx, "sw-b-in.pcap"), bpf=f"ether src {AMAC}", direction="in",
                      snaplen=96).start()
        caps = [swa, swb]
        load = IncrLoad(pace_s=0.001, req_timeout=15).start()
        load.wait_count(50, 10)
        time.sleep(1.0)
        t_cut, w_cut = time.monotonic(), time.time()
        L.run(["ip", "link", "set", "logA", "down"], ns=topo.node_a)
        # Exactly one daemon must exit, with "lost epoch".
        dl = L.Deadline(15)
        while pair.a.alive() and pair.b.alive():
            dl.check("neither daemon exited after the partition")
            time.sleep(0.02)
        loser = pair.a if not pair.a.alive() else pair.b
        winner = pair.b if loser is pair.a else pair.a
        t_exit = time.monotonic()
        rc = loser.poll()
        check_eq(rc, 2, f"{loser.name}'s exit status (2: lost the epoch); log:\n{loser.tail()}")
        # About logging: the operator must read why it exited.
        check(loser.search(PL.LOST_RE), f"{loser.name}'s log does not say it lost the epoch:\n{loser.tail()}")
        winner.wait_status("live and alone in epoch 2", 5, role="primary", mode="alone", epoch=2, live=True)
        settle = time.time() + 0.3
        load.wait_progress_after(time.monotonic() + 0.3, 300, 20)
        time.sleep(0.5)
        check(winner.alive(), f"{winner.name} exited too: {pair.describe_exit(winner)}")
        load.stop()
        w_end = time.time()
        check(load.error is None, f"load client error: {load.error}; {PL.describe_values(load.values)}")
        PL.check_consecutive(load.values, 1, "INCR replies across the partition")
        for cap in caps:
            cap.stop()
        win_port, lose_port = ("sw-a", "sw-b") if winner is pair.a else ("sw-b", "sw-a")
        frames = {"sw-a": swa.frames(), "sw-b": swb.frames()}
        lose_after_cut = [ts for ts, _ in frames[lose_port] if ts > w_cut + 0.1]
        win_after_settle = [ts for ts, _ in frames[win_port] if settle <= ts <= w_end]
        lose_after_settle = [ts for ts, _ in frames[lose_port] if ts >= settle]
        check(not lose_after_cut, f"{lose_port} ({loser.name}, the loser) emitted {len(lose_after_cut)} frames "
                                  f"more than 100 ms after the cut, first {lose_after_cut[0] - w_cut:.3f}s after"
                                  if lose_after_cut else "")
        check(not lose_after_settle, "loser emitted after settle")
        check(len(win_after_settle) > 0, f"{win_port} ({winner.name}) emitted nothing after the settle time")
        check_fdb(topo, win_port, "after the partition")
        claims = pair.arbiter_claims()
        win_node = "tapA" if winner is pair.a else "tapB"
        check_eq(claims, {1: "tapA", 2: win_node}, "arbiter claims")
        check_clean_exit(winner, f"winner {winner.name}")
        stall, sv, _ = load.max_latency()
        fstall, _ = load.stall_around(t_cut)
        ctx.note(f"winner {winner.name} (port {win_port}), loser {loser.name} exited {rc} "
                 f"{(t_exit - t_cut) * 1000:.0f} ms after the cut; after settle: {len(win_after_settle)} frames "
                 f"from {win_port}, 0 from {lose_port}; longest stall {ms(stall)} (around the cut {ms(fstall)}); "
                 f"{PL.describe_values(load.values)}")
        PL.write_measure(ctx.out_dir, stall_ms=stall * 1000, failover_stall_ms=fstall * 1000, winner=win_node,
                         loser_exit_ms=(t_exit - t_cut) * 1000)
    finally:
        if load:
            load.close()
        for cap in caps:
            cap.stop()
        pair.close()


# --- 6. backup death -------------------------------------------------------------------

@test("s6_backup_death", timeout=90)
def s6_backup_death(ctx):
    """SIGKILL of the backup under load: the primary continues alone, nothing lost."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    load = None
    try:
        pair.start()
        load = IncrLoad(req_timeout=15).start()
        load.wait_count(100, 10)
        time.sleep(1.0)
        t_kill = time.monotonic()
        pair.b.send_signal(signal.SIGKILL)
        rc = pair.b.wait_exit(5)
        check(rc == -signal.SIGKILL, f"backup: status {rc} after SIGKILL")
        pair.a.wait_status("alone in epoch 2", 10, mode="alone", epoch=2, live=True)
        t_alone = time.monotonic()
        load.wait_progress_after(t_kill, 200, 20)
        time.sleep(1.0)
        load.stop()
        check(load.error is None, f"load client error: {load.error}; {PL.describe_values(load.values)}")
        values = load.values
        PL.check_consecutive(values, 1, "INCR replies")
        check_eq(load.client.get(), values[-1], "GET after the backup's death (nothing lost)")
        check(pair.a.alive(), f"primary exited: {pair.describe_exit(pair.a)}")
        st = pair.a.status()
        check(st.get("epoch") == 2 and st.get("mode") == "alone", f"A's /status: {st}")
        check_eq(pair.arbiter_claims(), {1: "tapA", 2: "tapA"}, "arbiter claims")
        check_fdb(topo, "sw-a", "after the backup's death")
        check_clean_exit(pair.a, "primary A")
        stall, sv, st0 = load.max_latency()
        fstall, _ = load.stall_around(t_kill)
        ctx.note(f"longest stall {ms(stall)} (around the kill {ms(fstall)}); kill -> A alone (observed) "
                 f"{ms(t_alone - t_kill)}; {PL.describe_values(values)}")
        PL.write_measure(ctx.out_dir, stall_ms=stall * 1000, failover_stall_ms=fstall * 1000)
    finally:
        if load:
            load.close()
        pair.close()


# --- 7. metrics ------------------------------------------------------------------------

@test("s7_metrics", timeout=90)
def s7_metrics(ctx):
    """/metrics moves with traffic; after a failover the new primary reports
    ftap_failovers_total 1 and ftap_epoch 2."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    try:
        pair.start()
        m0 = pair.a.metrics()
        for k in ("ftap_frames_in_total", "ftap_applied_index", "ftap_epoch", "ftap_failovers_total",
                  "ftap_replication_lag_entries", "ftap_output_hold_seconds_count"):
            check(k in m0, f"primary /metrics lacks {k}")
        check_eq(m0["ftap_epoch"], 1.0, "primary ftap_epoch")
        N = 300
        with L.LineClient(port=PL.PORT_COUNTER, timeout=10) as c:
            for i in range(N):
                c.incr()
            # /connections, while the connection is open: the primary's and,
            # once it applied the same entries, the backup's copy of it.
            # Both read at one applied index (the client's delayed ACK may
            # add an entry between reads: then read again).
            dl = L.Deadline(10)
            while True:
                dl.check("no quiet moment to read both copies of the connection at one applied index")
                i0 = pair.a.status()["applied_index"]
                ca = json.loads(pair.a.admin_get("/connections"))
                if pair.a.status()["applied_index"] != i0:
                    continue
                pair.b.wait_status("the primary's applied index", 5, cond=lambda st: st["applied_index"] >= i0)
                cb = json.loads(pair.b.admin_get("/connections"))
                if pair.b.status()["applied_index"] == i0:
                    break
            mine = [x for x in ca["connections"] if x["local_port"] == PL.PORT_COUNTER]
            check_eq(len(mine), 1, f"counter connections in the primary's /connections: {ca}")
            x = mine[0]
            check_eq(x["state"], "ESTABLISHED", "connection state")
            check(x["cwnd"] > 0 and x["srtt_us"] > 0 and x["min_rtt_us"] > 0 and x["delivery_rate"] > 0,
                  f"congestion and path state of a connection that answered {N} requests: {x}")
            twin = [y for y in cb["connections"] if y["id"] == x["id"]]
            check_eq(len(twin), 1, f"the backup's copy of connection {x['id']}: {cb}")
            for k in ("remote", "snd_una", "rcv_nxt", "cwnd", "srtt_us", "min_rtt_us", "delivery_rate"):
                check_eq(twin[0][k], x[k], f"{k}: backup's replica of the connection against the primary's")
            ctx.note(f"/connections: {x}")
        m1 = pair.a.metrics()
        d_in = m1["ftap_frames_in_total"] - m0["ftap_frames_in_total"]
        d_idx = m1["ftap_applied_index"] - m0["ftap_applied_index"]
        d_hold = m1["ftap_output_hold_seconds_count"] - m0["ftap_output_hold_seconds_count"]
        check(d_in >= N, f"ftap_frames_in_total moved by {d_in} over {N} INCR")
        check(d_idx >= N, f"ftap_applied_index moved by {d_idx} over {N} INCR")
        check(d_hold >= N, f"ftap_output_hold_seconds_count moved by {d_hold} over {N} replies")
        # The backup follows.
        dl = L.Deadline(5)
        while True:
            mb = pair.b.metrics()
            if mb.get("ftap_applied_index") == pair.a.metrics()["ftap_applied_index"]:
                break
            dl.check(f"backup applied index {mb.get('ftap_applied_index')} never reached the primary's")
            time.sleep(0.05)
        check_eq(mb.get("ftap_failovers_total"), 0.0, "backup ftap_failovers_total before the failover")
        pair.a.send_signal(signal.SIGKILL)
        pair.a.wait_exit(5)
        pair.b.wait_status("live after the takeover", 10, live=True, epoch=2)
        with L.LineClient(port=PL.PORT_COUNTER, timeout=10) as c:
            check_eq(c.incr(), N + 1, "INCR after the failover")
        mb = pair.b.metrics()
        check_eq(mb.get("ftap_failovers_total"), 1.0, "new primary ftap_failovers_total")
        check_eq(mb.get("ftap_epoch"), 2.0, "new primary ftap_epoch")
        cp = L.run(["ip", "netns", "exec", topo.node_b, PL.ftap_bin(), "status", "--admin", PL.ADMIN],
                   timeout=10, check=False)
        check(cp.returncode == 0 and "epoch 2" in cp.stdout, f"ftap status on B: exit {cp.returncode}: "
                                                             f"{cp.stdout.strip()} {cp.stderr.strip()}")
        check_clean_exit(pair.b, "new primary B")
        hold = m1["ftap_output_hold_seconds_sum"] / max(1.0, m1["ftap_output_hold_seconds_count"])
        ctx.note(f"primary over {N} INCR: frames_in +{d_in:.0f}, applied_index +{d_idx:.0f}, mean output hold "
                 f"{hold * 1e6:.0f} us; after failover B: failovers_total 1, epoch 2; "
                 f"`ftap status`: {cp.stdout.strip().splitlines()[0]}")
    finally:
        pair.close()


# --- 8. determinism: captures, recordings, replay ------------------------------------------

def pcapng_epbs(data: bytes):
    """[(offset of block, interface, packet data offset, caplen, packetid, comment)] of a
    little-endian pcapng file."""
    res = []
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if blen < 12 or off + blen > len(data):
            raise TestFailure(f"pcapng: bad block length {blen} at offset {off}")
        if btype == 6:
            iface, _hi, _lo, caplen, _orig = struct.unpack_from("<IIIII", data, off + 8)
            pdata = off + 28
            opt = pdata + caplen + (-caplen % 4)
            end = off + blen - 4
            pid, comment = None, ""
            while opt + 4 <= end:
                code, ln = struct.unpack_from("<HH", data, opt)
                val = data[opt + 4:opt + 4 + ln]
                if code == 0:
                    break
                if code == 5 and ln == 8:
                    lo, hi = struct.unpack("<II", val)
                    pid = lo | hi << 32
                elif code == 1:
                    comment = val.decode(errors="replace")
                opt += 4 + ln + (-ln % 4)
            res.append((off, iface, pdata, caplen, pid, comment))
        off += blen
    return res


def pcapng_blocks(data: bytes):
    """[(offset, length)] of every block."""
    res, off = [], 0
    while off + 12 <= len(data):
        blen = struct.unpack_from("<I", data, off + 4)[0]
        if blen < 12:
            break
        res.append((off, blen))
        off += blen
    return res


def move_checkpoint(data: bytes, idx: int, new_idx: int) -> bytes | None:
    """A copy of a recording whose digest checkpoint labelled idx is moved
    after entry new_idx (and its outputs) and relabelled new_idx."""
    epbs = {e[0]: e for e in pcapng_epbs(data)}
    dig = next((e for e in epbs.values() if e[1] == 0 and "kind=digest" in e[5] and e[4] == idx), None)
    if dig is None:
        return None
    last = None
    for off, ln in pcapng_blocks(data):
        e = epbs.get(off)
        if e and e[4] == new_idx and "kind=digest" not in e[5]:
            last = (off, ln)
    if last is None:
        return None
    dlen = struct.unpack_from("<I", data, dig[0] + 4)[0]
    blk = bytearray(data[dig[0]:dig[0] + dlen])
    i = blk.find(struct.pack("<HH", 5, 8), 28)
    struct.pack_into("<II", blk, i + 4, new_idx & 0xFFFFFFFF, new_idx >> 32)
    end = last[0] + last[1]
    return data[:dig[0]] + data[dig[0] + dlen:end] + bytes(blk) + data[end:]


def replay_checked(rec: str, scratch: str) -> str:
    """Runs `ftap replay rec`; returns its summary line. On a digest mismatch
    at a checkpoint, tries the same checkpoint after each of the next 16
    entries to tell the reader which state the recorded digest really is."""
    cp = PL.run_ftap(["replay", rec], timeout=120)
    if cp.returncode == 0:
        return cp.stdout.strip().splitlines()[-1] if cp.stdout.strip() else ""
    msg = f"ftap replay {rec}: exit {cp.returncode}\n{cp.stdout[-1500:]}{cp.stderr[-500:]}"
    m = re.search(r"MISMATCH at log index (\d+): state digest differs", cp.stdout)
    if m:
        idx = int(m.group(1))
        with open(rec, "rb") as f:
            data = f.read()
        for k in range(1, 17):
            moved = move_checkpoint(data, idx, idx + k)
            if moved is None:
                break
            with open(scratch, "wb") as f:
                f.write(moved)
            c2 = PL.run_ftap(["replay", scratch], timeout=120)
            m2 = re.search(r"MISMATCH at log index (\d+)", c2.stdout)
            if c2.returncode == 0 or (m2 and int(m2.group(1)) > idx + k):
                msg += (f"\ndiagnosis: the digest recorded as the checkpoint of entry {idx} equals the replayed "
                        f"state after entry {idx + k} (replay of a copy with that checkpoint moved after entry "
                        f"{idx + k}: {'identical' if c2.returncode == 0 else m2.group(0)}; {scratch}): the "
                        f"recorder read the replica's digest after the rest of the batch was applied")
                break
        else:
            msg += f"\ndiagnosis: the checkpoint of entry {idx} matches none of the next 16 entries' states"
    raise TestFailure(msg)


def tcpdump_count(path: str) -> int:
    cp = L.run(["tcpdump", "-n", "-r", path], timeout=60, check=False)
    check(cp.returncode == 0, f"tcpdump -r {path}: exit {cp.returncode}: {cp.stderr.strip()[-300:]}")
    return len([x for x in cp.stdout.splitlines() if x.strip()])


def wait_quiescent(d, seconds: float = 1.0, timeout: float = 20.0) -> dict:
    """Waits until d's applied index stays put for `seconds`, nothing is
    held and the backup acknowledged everything."""
    dl = L.Deadline(timeout)
    last, since = None, time.monotonic()
    while True:
        st = d.status()
        key = (st.get("applied_index"), st.get("acked_index"))
        if key != last:
            last, since = key, time.monotonic()
        elif time.monotonic() - since >= seconds and st.get("lag_entries") == 0:
            return st
        dl.check(f"appliance never quiescent (last status {st})")
        time.sleep(0.1)


def mixed_workload(ctx, udp_id: str):
    """Counter on two connections, echo, UDP counter with retries, ping."""
    errors = []
    results = {}

    def counter(name):
        try:
            with L.LineClient(port=PL.PORT_COUNTER, timeout=20) as c:
                got = [c.incr() for _ in range(150)]
                results[name] = got
        except Exception as e:  # noqa: BLE001
            errors.append(f"{name}: {e}")

    def echo():
        try:
            r = L.bulk_echo(256 * 1024, port=PL.PORT_ECHO, timeout=60, chunk=8192)
            results["echo"] = L.check_bulk_echo(r, 256 * 1024)
        except Exception as e:  # noqa: BLE001
            errors.append(f"echo: {e}")

    def udp():
        u = UdpCounterClient(udp_id, retry_s=0.05, max_wait_s=20)
        try:
            results["udp"] = [u.incr() for _ in range(100)]
            results["udp_retries"] = u.retries
        except Exception as e:  # noqa: BLE001
            errors.append(f"udp: {e}")
        finally:
            u.close()

    ths = [threading.Thread(target=f, args=a, daemon=True)
           for f, a in ((counter, ("tcp1",)), (counter, ("tcp2",)), (echo, ()), (udp, ()))]
    for t in ths:
        t.start()
    L.run(["ping", "-n", "-c", "5", "-i", "0.1", "-W", "1", AIP], check=False, timeout=20)
    for t in ths:
        t.join(90)
    check(not any(t.is_alive() for t in ths), "mixed workload did not finish within 90 s")
    check(not errors, f"mixed workload errors: {errors}")
    # counter and udp-counter share the appliance's counter.
    for k in ("tcp1", "tcp2", "udp"):
        check(results[k] == sorted(results[k]) and len(set(results[k])) == len(results[k]),
              f"{k}: values not strictly increasing: {PL.describe_values(results[k])}")
    PL.check_consecutive(sorted(results["tcp1"] + results["tcp2"] + results["udp"]), 1,
                         "counter values over both TCP connections and UDP")
    return results


@test("s8a_determinism_pcaps_and_replay", timeout=240)
def s8a_determinism(ctx):
    """Mixed workload under 5% loss with --pcap-dir and --record on both
    nodes: A's out.pcap == B's shadow.pcap (minus GARPs), in.pcap equal,
    tcpdump reads every file, both recordings replay, a flipped byte in one
    inbound TCP frame fails replay at that entry."""
    topo = ctx.topo
    pa, pb = out(ctx, "pcap-a"), out(ctx, "pcap-b")
    ra, rb = out(ctx, "a.rec"), out(ctx, "b.rec")
    for p in (pa, pb):
        shutil.rmtree(p, ignore_errors=True)
    pair = Pair(topo, ctx.out_dir)
    try:
        pair.start(primary_extra=["--pcap-dir", pa, "--record", ra], backup_extra=["--pcap-dir", pb, "--record", rb])
        # Loss and duplication both ways: the replay must reproduce what the
        # stack made of duplicated segments too.
        imp = L.Impairment(topo, upstream=dict(loss=5, dup=3), downstream=dict(loss=5, dup=3),
                           log_path=out(ctx, "impair-relay.log"))
        with imp:
            res = mixed_workload(ctx, f"d{os.getpid()}r{REP}")
        wait_quiescent(pair.a)
        # Stop both: the backup first (the primary then claims epoch 2 and emits
        # nothing more: no input arrives), then the primary.
        check_clean_exit(pair.b, "backup B")
        check_clean_exit(pair.a, "primary A")

        files = {}
        for node, d in (("A", pa), ("B", pb)):
            for f in ("in.pcap", "out.pcap", "shadow.pcap"):
                p = os.path.join(d, f)
                check(os.path.exists(p), f"{node}: {p} missing")
                n = tcpdump_count(p)
                frames = PL.read_pcap(p)
                check_eq(n, len(frames), f"tcpdump -r {p}: lines vs frames")
                files[(node, f)] = frames
        a_out = [x for x in files[("A", "out.pcap")] if not is_garp(x[1], AIP)]
        b_shadow = [x for x in files[("B", "shadow.pcap")] if not is_garp(x[1], AIP)]
        garps = len(files[("A", "out.pcap")]) - len(a_out)
        check(len(a_out) > 500, f"A emitted only {len(a_out)} frames")

        def first_diff(x, y):
            for i, (p, q) in enumerate(zip(x, y)):
                if p[1] != q[1] or abs(p[0] - q[0]) > 1e-6:
                    return i
            return None if len(x) == len(y) else min(len(x), len(y))

        i = first_diff(a_out, b_shadow)
        if i is not None:
            def show(lst, k):
                if k >= len(lst):
                    return "(none)"
                d = parse_frame(lst[k][1])
                return f"t={lst[k][0]:.6f} {d.get('type')} {d.get('ip_src')}:{d.get('sport')} > " \
                       f"{d.get('ip_dst')}:{d.get('dport')} seq={d.get('seq')} len={len(d.get('payload', b''))} " \
                       f"{lst[k][1][:64].hex()}"
            raise TestFailure(f"A out.pcap ({len(a_out)} frames without GARPs) != B shadow.pcap ({len(b_shadow)}); "
                              f"first difference at frame #{i}:\n  A: {show(a_out, i)}\n  B: {show(b_shadow, i)}")
        a_in, b_in = files[("A", "in.pcap")], files[("B", "in.pcap")]
        check(first_diff(a_in, b_in) is None, f"A in.pcap ({len(a_in)}) != B in.pcap ({len(b_in)}) at "
                                              f"#{first_diff(a_in, b_in)}")
        check_eq(len(files[("A", "shadow.pcap")]), 0, "frames in A's shadow.pcap")
        check_eq(len(files[("B", "out.pcap")]), 0, "frames in B's out.pcap")

        # Replays.
        summaries = {}
        for name, rec in (("A", ra), ("B", rb)):
            summaries[name] = replay_checked(rec, rec + ".moved")
        # Flip one byte in the TCP payload of one inbound INCR frame of B's recording.
        with open(rb, "rb") as f:
            data = bytearray(f.read())
        cands = []
        for (boff, iface, pdata, caplen, pid, comment) in pcapng_epbs(bytes(data)):
            if iface != 0 or not re.search(r"kind=(offload-)?frame ", comment + " ") or caplen == 0:
                continue
            d = parse_frame(bytes(data[pdata:pdata + caplen]))
            if d["type"] == "tcp" and d["dport"] == PL.PORT_COUNTER and d["payload"] == b"INCR\n":
                ihl = (data[pdata + 14] & 0xF) * 4
                doff = (data[pdata + 14 + ihl + 12] >> 4) * 4
                cands.append((pid, pdata + 14 + ihl + doff))
        check(len(cands) >= 100, f"only {len(cands)} INCR frames in {rb}")
        pid, at = cands[len(cands) // 2]
        data[at] ^= 0x20  # "INCR" -> "iNCR"
        flipped = out(ctx, "b-flipped.rec")
        with open(flipped, "wb") as f:
            f.write(data)
        cp = PL.run_ftap(["replay", flipped], timeout=120)
        check(cp.returncode != 0, f"ftap replay of the corrupted recording exited 0:\n{cp.stdout[-800:]}")
        check(re.search(rf"\b{pid}\b", cp.stdout + cp.stderr),
              f"ftap replay of the corrupted recording does not name entry {pid}:\n{cp.stdout[-1500:]}"
              f"{cp.stderr[-500:]}")
        mm = re.search(r"MISMATCH at log index (\d+)", cp.stdout)
        check(mm and int(mm.group(1)) == pid, f"replay reports {mm.group(0) if mm else 'no MISMATCH line'}, "
                                              f"flipped entry {pid}")
        ctx.note(f"A out.pcap == B shadow.pcap: {len(a_out)} frames (+{garps} GARPs only in A), in.pcap "
                 f"{len(a_in)} frames equal; UDP retries {res.get('udp_retries')}; impairment {imp.describe()} "
                 f"{imp.stats or ''}")
        ctx.note(f"replay A: {summaries['A'][:160]}")
        ctx.note(f"replay B: {summaries['B'][:160]}")
        ctx.note(f"flipped byte at file offset {at} (entry {pid}): replay exit {cp.returncode}, "
                 f"'{mm.group(0)}'")
    finally:
        pair.close()


@test("s8b_replay_across_failover", timeout=120)
def s8b_replay_failover(ctx):
    """The backup's recording across a failover (kill the primary mid-workload,
    then SIGTERM the new primary) replays identically, go-live included."""
    topo = ctx.topo
    rb = out(ctx, "b.rec")
    pair = Pair(topo, ctx.out_dir)
    load = None
    try:
        pair.start(backup_extra=["--record", rb])
        load = IncrLoad(pace_s=0.0005, req_timeout=15).start()
        u = UdpCounterClient(f"f{os.getpid()}r{REP}", retry_s=0.05)
        udp_vals = []
        stop = threading.Event()
        udp_err = []

        def udp_loop():
            try:
                while not stop.is_set():
                    udp_vals.append(u.incr())
                    time.sleep(0.002)
            except Exception as e:  # noqa: BLE001
                udp_err.append(str(e))
        ut = threading.Thread(target=udp_loop, daemon=True)
        ut.start()
        load.wait_count(100, 10)
        time.sleep(1.0)
        t_kill = time.monotonic()
        pair.a.send_signal(signal.SIGKILL)
        pair.a.wait_exit(5)
        pair.b.wait_status("live after the takeover", 10, live=True, epoch=2)
        load.wait_progress_after(t_kill, 200, 20)
        time.sleep(1.0)
        load.stop()
        stop.set()
        ut.join(20)
        u.close()
        check(load.error is None, f"load client: {load.error}")
        check(not udp_err, f"UDP client: {udp_err}")
        # counter and udp-counter share the appliance's counter: together, every value once.
        for what, vs in (("TCP", load.values), ("UDP", udp_vals)):
            check(all(b > a for a, b in zip(vs, vs[1:])), f"{what} INCR values not increasing: "
                                                            f"{PL.describe_values(vs)}")
        PL.check_consecutive(sorted(load.values + udp_vals), 1, "TCP and UDP INCR values together")
        wait_quiescent_alone(pair.b)
        check_clean_exit(pair.b, "new primary B")
        summary = replay_checked(rb, rb + ".moved")
        check(re.search(r"epochs 1,2\b", summary), f"replay summary does not cover epochs 1 and 2: {summary}")
        cp2 = PL.run_ftap(["log", "show", rb, "--kind", "go-live"], timeout=60)
        check(cp2.returncode == 0, f"ftap log show --kind go-live: exit {cp2.returncode}: {cp2.stderr[-300:]}")
        lines = [x for x in cp2.stdout.splitlines() if x.strip() and not x.startswith("#")]
        check_eq(len(lines), 1, f"go-live entries listed by `ftap log show --kind go-live` ({lines})")
        gl = int(lines[0].split()[0])
        check(" e2 " in f" {lines[0]} ", f"go-live entry not in epoch 2: {lines[0]}")
        # Entries and outputs after the go-live entry are in the file too.
        with open(rb, "rb") as f:
            epbs = pcapng_epbs(f.read())
        after_in = [e for e in epbs if e[1] == 0 and e[4] is not None and e[4] > gl and re.search(r"kind=(offload-)?frame ", e[5] + " ")]
        after_out = [e for e in epbs if e[1] == 1 and e[4] is not None and e[4] >= gl]
        check(len(after_in) >= 100 and len(after_out) >= 100,
              f"recording after go-live {gl}: {len(after_in)} frame entries, {len(after_out)} outputs")
        ctx.note(f"go-live entry: {lines[0].strip()}; after it {len(after_in)} frame entries and {len(after_out)} "
                 f"outputs; replay: {summary[:200]}")
    finally:
        if load:
            load.close()
        pair.close()


# --- 9. a stranger on the log channel (issue 12) ------------------------------------

STRANGER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stranger.py")


def stranger(ns: str, mode: str, where: str, seconds: float, log_path: str) -> PL.Daemon:
    """tests/integration/stranger.py in namespace ns: knows the message formats, not the secret."""
    d = PL.Daemon("S", "stranger", mode, ns, [sys.executable, STRANGER, mode, where, str(seconds)], log_path,
                  admin=None)
    d.start()
    return d


def wait_log_fact(d: PL.Daemon, regex: str, timeout: float, what: str):
    """A check about logging itself: the node says why it refused a stranger."""
    dl = L.Deadline(timeout)
    while not d.search(regex):
        check(d.alive(), f"{d.name} exited before logging {what}:\n{d.tail()}")
        dl.check(f"{d.name} did not log {what}:\n{d.tail()}")
        time.sleep(0.02)


@test("s9a_forged_welcome_no_hijack", timeout=90)
def s9a_forged_welcome_no_hijack(ctx):
    """A stranger listens on the primary's log address and answers the waiting
    backup with well-formed welcomes (version 1 and 2) and closes: the backup
    neither joins nor claims nor goes live, and says why; then the real
    primary starts and the pair forms."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    fake = None
    try:
        fake = stranger(topo.node_a, "serve", f"{L.LOG_IP_A}:{PL.LOG_PORT}", 30, out(ctx, "stranger.log"))
        time.sleep(0.5)
        b = pair.start_node("B", "backup")
        wait_log_fact(b, r"version 1|peer refused|unexpected handshake message", 10, "a refusal of the stranger")
        time.sleep(3)
        check(b.alive(), f"the backup exited on a forged welcome:\n{b.tail()}")
        st = b.status()
        check(st["mode"] == "waiting-for-peer" and not st["live"] and st["epoch"] == 0 and not st["in_sync"],
              f"backup status after forged welcomes: {st}")
        claims = [f for f in os.listdir(pair.arb) if f.startswith("epoch-")]
        check(claims == [], f"arbiter claims after forged welcomes: {claims}")
        fake.stop(signal.SIGTERM, timeout=3)
        fake = None
        a = pair.start_node("A", "primary")
        a.wait_status("protected, serving", 20, mode="protected")
        b.wait_status("joined as backup", 20, mode="backup", in_sync=True)
        reasons = sorted(set(re.findall(r"(peer speaks log protocol version 1|unexpected handshake message type \d+)", b.log())))
        ctx.note(f"backup refused the stranger: {reasons}")
    finally:
        if fake:
            fake.close()
        pair.close()


@test("s9b_stranger_cannot_hold_peer_slot", timeout=90)
def s9b_stranger_cannot_hold_peer_slot(ctx):
    """A stranger keeps connecting to the primary's log port (silent
    connections held open, old and new hellos, bogus proofs): the real
    backup joins anyway, and the pair stays protected while it goes on."""
    topo = ctx.topo
    pair = Pair(topo, ctx.out_dir)
    fake = None
    try:
        a = pair.start_node("A", "primary")
        a.wait_status("claimed epoch 1", 20, epoch=1, mode="waiting-for-peer")
        fake = stranger(topo.node_b, "connect", f"{L.LOG_IP_A}:{PL.LOG_PORT}", 12, out(ctx, "stranger.log"))
        time.sleep(1.5)
        t0 = time.monotonic()
        b = pair.start_node("B", "backup")
        a.wait_status("protected, serving", 20, mode="protected")
        b.wait_status("joined as backup", 20, mode="backup", in_sync=True)
        joined = time.monotonic() - t0
        check(fake.alive(), "the stranger stopped before the backup joined")
        time.sleep(4)
        st = a.status()
        check(st["mode"] == "protected" and st["peer_connected"] and st["protected"], f"primary status {st}")
        check(b.status()["mode"] == "backup", f"backup status {b.status()}")
        client = L.LineClient(port=PL.PORT_COUNTER, timeout=10)
        v = client.incr()
        check_eq(client.incr(), v + 1, "INCR through the protected pair")
        client.close()
        fake.wait_exit(15)
        refused = len(a.findall(r"refused a log-channel connection|did not authenticate within|authenticating at once|"
                                r"log-channel connections refused"))
        check(refused >= 1, f"the primary logged no refusal of the stranger:\n{a.tail(30)}")
        ctx.note(f"backup joined {joined:.2f} s after start while the stranger connected; "
                 f"primary refusal lines: {refused}; {fake.log().strip().splitlines()[-1:]}")
    finally:
        if fake:
            fake.close()
        pair.close()


@test("s10_tap_offloads", timeout=120)
def s10_tap_offloads(ctx):
    """Issue 14: with TAP offloads (the default) the primary reads the
    client's TSO super-frames and writes TSO super-segments, the backup
    applies the same log (offload-frame entries) to the same digest, and a
    bulk echo through the pair comes back intact. Under --no-offload (CI runs
    this suite through scripts/ftap-no-offload) /status says "off" and no
    super-frame moves."""
    pair = Pair(ctx.topo, ctx.out_dir)
    try:
        pair.start()
        a0, b0 = pair.a.status(), pair.b.status()
        off = a0["tap_offloads"] == "off"
        check_eq(b0["tap_offloads"], a0["tap_offloads"], "both nodes' TAP offloads")
        if not off:
            check("tso4" in a0["tap_offloads"], f"TAP offloads without TSO4: {a0['tap_offloads']!r}")
        size = 16 * 1024 * 1024
        r = L.bulk_echo(size, port=PL.PORT_ECHO, timeout=90)
        summary = L.check_bulk_echo(r, size)
        a = wait_quiescent_alone(pair.a)
        dl = L.Deadline(10)
        while True:
            b = pair.b.status()
            if b["applied_index"] == a["applied_index"]:
                break
            dl.check(f"backup at {b['applied_index']}, primary at {a['applied_index']}")
            time.sleep(0.05)
        check_eq(b["digest"], a["digest"], f"replica digests at index {a['applied_index']}")
        got = {k: a[k] for k in ("tap_super_frames_read", "tap_super_frames_written", "tap_super_frames_split")}
        if off:
            check_eq(sum(got.values()), 0, "super-frames with --no-offload")
        else:
            check(got["tap_super_frames_read"] > 0, f"the primary read no super-frame: {got}")
            check(got["tap_super_frames_written"] > 0, f"the primary wrote no TSO super-segment: {got}")
            check_eq(got["tap_super_frames_split"], 0, "super-segments split in ftap (the TAP accepted TSO)")
            check_eq(b["tap_super_frames_written"], 0, "super-segments written by the backup")
        ctx.note(f"offloads {a0['tap_offloads']!r}; {summary}; primary {got}; digests equal at {a['applied_index']}")
    finally:
        pair.close()


def wait_quiescent_alone(d, seconds: float = 0.5, timeout: float = 15.0):
    dl = L.Deadline(timeout)
    last, since = None, time.monotonic()
    while True:
        st = d.status()
        k = st.get("applied_index")
        if k != last:
            last, since = k, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return st
        dl.check("never quiescent")
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(L.main("ftap replicated-pair integration tests"))
