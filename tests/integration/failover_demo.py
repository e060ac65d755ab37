#!/usr/bin/env python3
"""The failover demo's driver (run by scripts/demo.sh from the client namespace):

    ip netns exec ${P}-c python3 tests/integration/failover_demo.py --prefix P --out-dir DIR

Starts the pair (primary in ${P}-a, backup in ${P}-b), runs a client doing INCR
back to back on one TCP connection, SIGKILLs the primary after --before
seconds, keeps the client running --after seconds more, and prints what
happened. Exit status 0 iff the values were continuous, the FDB moved, a GARP
was seen and B claimed epoch 2.
"""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from frames import is_garp  # noqa: E402


def say(msg=""):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", default=os.environ.get("FTAP_NS", "ftapdemo"))
    ap.add_argument("--out-dir", default=os.environ.get("FTAP_OUT", "/tmp/ftap-demo"))
    ap.add_argument("--before", type=float, default=2.0, help="seconds of load before the kill")
    ap.add_argument("--after", type=float, default=2.0, help="seconds of load after the kill")
    ap.add_argument("--etcd", action="store_true", help="a three-member etcd cluster as the arbiter (etcdlib)")
    args = ap.parse_args()
    topo = L.Topology(args.prefix)
    os.makedirs(args.out_dir, exist_ok=True)

    cluster = None
    if args.etcd:
        import etcdlib
        say(f"==> etcd: three members in {topo.prefix}-e ({etcdlib.MEMBERS[0][1]}..{etcdlib.MEMBERS[-1][1]}), "
            f"reached by the nodes over arbA/arbB")
        cluster = etcdlib.EtcdCluster(topo, args.out_dir)
        say(f"    --arbiter {cluster.url()}")
    pair = PL.Pair(topo, args.out_dir, arbiter=cluster.url() if cluster else None)
    cap = None
    load = None
    ok = True
    try:
        say(f"==> starting the primary in {topo.node_a} (tapA) and the backup in {topo.node_b} (tapB): "
            f"{PL.APPLIANCE_IP} / {PL.APPLIANCE_MAC}, log channel {L.LOG_IP_A} <-> {L.LOG_IP_B}")
        pair.start()
        say(f"    primary: {PL.brief(pair.a.status())}")
        say(f"    backup:  {PL.brief(pair.b.status())}")
        fdb_before = PL.fdb_ports(topo)
        say(f"    switch FDB: {PL.APPLIANCE_MAC} on {', '.join(fdb_before) or '?'}")
        cap = PL.Capture(topo.switch, "br0", os.path.join(args.out_dir, "br0-arp.pcap"), bpf="arp").start()

        say(f"==> client in {topo.client}: INCR back to back on {PL.APPLIANCE_IP}:{PL.PORT_COUNTER}")
        load = PL.IncrLoad(req_timeout=15).start()
        t_start = time.monotonic()
        t_kill = t_start + args.before
        t_end = t_kill + args.after
        killed = False
        w_kill = None
        last_n = 0
        last_t = t_start
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            if load.error:
                say(f"    client error: {load.error}")
                ok = False
                break
            n = load.count()
            vals = load.values[-1:] if n else []
            rate = (n - last_n) / max(1e-6, now - last_t)
            say(f"    t={now - t_start:4.2f}s  value={vals[0] if vals else '-':>7}  {rate:8.0f} replies/s"
                f"{'   <- primary killed' if killed and now - t_kill < 0.26 else ''}")
            last_n, last_t = n, now
            if not killed and now >= t_kill:
                w_kill = time.time()
                pair.a.send_signal(signal.SIGKILL)
                killed = True
                t_kill = time.monotonic()
                t_end = t_kill + args.after
                say(f"==> SIGKILL primary (pid {pair.a.pid}) at t={t_kill - t_start:.2f}s")
            if killed and now >= t_end:
                break
        load.stop()
        pair.a.wait_exit(5)
        try:
            live, _ = pair.b.wait_status("live after the takeover", 5, live=True, role="primary")
        except L.TestFailure as e:
            say(f"    {e}")
            live = None
        time.sleep(0.2)
        cap.stop()
        values = load.values
        stall, sv, st0 = load.max_latency()
        fdb_after = PL.fdb_ports(topo)
        garps = [(ts, f) for ts, f in cap.frames() if is_garp(f, PL.APPLIANCE_IP) and (w_kill is None or ts >= w_kill)]
        if cluster:
            import etcdlib
            status = etcdlib.arbiter_status(topo, cluster)
            say("==> ftap arbiter status --arbiter " + cluster.url())
            for line in status.splitlines():
                say("    " + line)
            claims = etcdlib.claimed(status)
        else:
            claims = pair.arbiter_claims()

        say()
        say("==> what happened")
        gaps = sum(1 for a, b in zip(values, values[1:]) if b > a + 1)
        dups = sum(1 for a, b in zip(values, values[1:]) if b <= a)
        continuous = bool(values) and values == list(range(values[0], values[0] + len(values))) and values[0] == 1
        say(f"    values:       {values[0] if values else '-'}..{values[-1] if values else '-'}, {len(values)} replies, "
            f"{gaps} gaps, {dups} duplicates -> {'CONTINUOUS' if continuous else 'NOT CONTINUOUS'}"
            f"{'' if not load.error else f'; client error: {load.error}'}")
        if sv is not None:
            istall, iv = load.stall_around(t_kill, before=0.0, after=0.02)
            say(f"    longest stall: {stall * 1000:.1f} ms (the INCR that returned {sv}, sent "
                f"{(st0 - t_kill) * 1000:+.0f} ms from the kill); the INCR in flight at the kill "
                f"(returned {iv}) waited {istall * 1000:.1f} ms")
        say(f"    switch FDB:   {PL.APPLIANCE_MAC} on {', '.join(fdb_before) or '?'} before, "
            f"{', '.join(fdb_after) or '?'} after -> {'MOVED to B' if fdb_after == ['sw-b'] else 'NOT MOVED'}")
        if garps:
            say(f"    gratuitous ARP seen on the switch: {len(garps)} (who-has {PL.APPLIANCE_IP} tell "
                f"{PL.APPLIANCE_IP}), first {(garps[0][0] - w_kill) * 1000:.1f} ms after the kill")
        else:
            say("    gratuitous ARP seen on the switch: NONE")
        say(f"    arbiter:      " + ", ".join(f"epoch {e} -> {n}" for e, n in sorted(claims.items())))
        say(f"    backup B:     {PL.brief(live) if live else 'did NOT go live'}")
        ok = ok and continuous and not load.error and fdb_after == ["sw-b"] and bool(garps) \
            and claims.get(2) == "tapB" and bool(live)
        rc = pair.b.stop(signal.SIGTERM, timeout=10)
        say(f"    B stopped with SIGTERM: exit {rc}")
        say(f"    logs: {pair.a.log_path}, {pair.b.log_path}; capture: {cap.path}")
        say()
        say("RESULT: " + ("failover OK: nothing lost, nothing applied twice" if ok else "FAILOVER PROBLEM (see above)"))
        return 0 if ok else 1
    finally:
        if load:
            load.close()
        if cap:
            cap.stop()
        pair.close()
        if cluster:
            cluster.close()
        L.run_cleanups()


if __name__ == "__main__":
    sys.exit(main())
