#!/usr/bin/env python3
"""The kv section of scripts/bench (issue 17): redis-benchmark against ftap
solo, the ftap pair and redis-server on a kernel host on the same switch, in
one run, with requests/s and p50/p99 per command and the ratios.

    scripts/bench with FTAP_BENCH_KV=only (or on), as root; or directly:
    python3 scripts/bench_kv.py --prefix P --ftap BIN --out DIR   (topology P up)

redis-server runs in node A's namespace on 10.0.0.11 (brA), the kernel host
behind the same switch port as ftap's node A; the client is redis-benchmark
in the client namespace. Each target gets `-t ping,set,get,incr,lpush,mset
-c 50 -n N`, pipelined (-P 16) and not (-P 1), --csv.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import ftaplib as L  # noqa: E402
import pairlib as PL  # noqa: E402
from kv_tests import REDIS_A, solo_argv  # noqa: E402

TESTS = "ping,set,get,incr,lpush,mset"


def wait_ping_kv(topo, host: str, timeout: float = 15):
    """PONG from host:6379, asked from the client namespace (this script runs outside it)."""
    dl = L.Deadline(timeout)
    while True:
        cp = L.run(["redis-cli", "-h", host, "-p", "6379", "PING"], ns=topo.client, check=False, timeout=5)
        if cp.stdout.strip() == "PONG":
            return
        dl.check(f"PONG from {host}:6379")
        time.sleep(0.1)


def bench(ns: str, host: str, pipe: int, n: int) -> dict:
    cp = subprocess.run(["ip", "netns", "exec", ns, "redis-benchmark", "-h", host, "-p", "6379", "-t", TESTS,
                         "-P", str(pipe), "-c", "50", "-n", str(n), "--csv"], capture_output=True, text=True, timeout=900)
    if cp.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {cp.stderr[-500:]}")
    rows = {}
    for r in csv.DictReader(io.StringIO(cp.stdout)):
        rows[r["test"]] = {"rps": float(r["rps"]), "p50_ms": float(r["p50_latency_ms"]), "p99_ms": float(r["p99_latency_ms"])}
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--ftap", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=200000, help="requests per test (-n)")
    ap.add_argument("--update-doc", action="store_true", help="put the table into BENCHMARKS.md (kv block)")
    a = ap.parse_args()
    os.environ["FTAP_RUN_BIN"] = a.ftap
    os.environ.pop("FTAP_PIDFILE", None)
    topo = L.Topology(a.prefix)
    out = os.path.join(a.out, "kv")
    os.makedirs(out, exist_ok=True)
    res: dict = {"n": a.n, "clients": 50, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for pipe in (16, 1):
        # redis-server: a kernel host on the switch (node A's namespace, no ftap running).
        L.run(["ip", "addr", "add", f"{REDIS_A}/24", "dev", "brA"], ns=topo.node_a, check=False)
        p = subprocess.Popen(["ip", "netns", "exec", topo.node_a, "redis-server", "--port", "6379", "--bind", REDIS_A,
                              "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ping_kv(topo, REDIS_A)
            res[f"redis_P{pipe}"] = bench(topo.client, REDIS_A, pipe, a.n)
        finally:
            L.stop_process(p, signal.SIGTERM, 5)
            L.run(["ip", "addr", "del", f"{REDIS_A}/24", "dev", "brA"], ns=topo.node_a, check=False)
        print(f"redis -P {pipe}: done", flush=True)
        pair = PL.Pair(topo, os.path.join(out, f"solo{pipe}"))
        try:
            d = PL.Daemon("A", "A1", "solo", topo.node_a, solo_argv(pair), os.path.join(out, f"solo{pipe}", "A1.log"))
            pair.nodes.append(d)
            d.start()
            d.wait_status("solo serving", 15, live=True)
            PL.wait_ping(topo, 15, [d])
            wait_ping_kv(topo, PL.APPLIANCE_IP)
            res[f"solo_P{pipe}"] = bench(topo.client, PL.APPLIANCE_IP, pipe, a.n)
        finally:
            pair.close()
        print(f"ftap solo -P {pipe}: done", flush=True)
        pair = PL.Pair(topo, os.path.join(out, f"pair{pipe}"), extra=["--service", "kv:6379"])
        try:
            pair.start()
            wait_ping_kv(topo, PL.APPLIANCE_IP)
            res[f"pair_P{pipe}"] = bench(topo.client, PL.APPLIANCE_IP, pipe, a.n)
        finally:
            pair.close()
        print(f"ftap pair -P {pipe}: done", flush=True)
    table = fmt(res)
    print(table)
    with open(os.path.join(a.out, "bench-kv.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(a.out, "bench-kv.txt"), "w") as f:
        f.write(table + "\n")
    if a.update_doc:
        doc = os.path.join(HERE, "..", "BENCHMARKS.md")
        text = open(doc).read()
        begin, end = "<!-- kv-bench:begin -->", "<!-- kv-bench:end -->"
        if begin in text and end in text:
            text = text[:text.index(begin) + len(begin)] + "\n" + table + "\n" + text[text.index(end):]
            open(doc, "w").write(text)


def fmt(res: dict) -> str:
    lines = [f"redis-benchmark -c {res['clients']} -n {res['n']} ({res['date']}); requests/s, p50/p99 ms; "
             "ratios ftap/redis-server", "",
             "| command | -P | redis-server rps (p50/p99) | ftap solo rps (p50/p99) | ftap pair rps (p50/p99) | solo/redis | pair/redis |",
             "|---|---|---|---|---|---|---|"]
    for pipe in (16, 1):
        r, s, p = res[f"redis_P{pipe}"], res[f"solo_P{pipe}"], res[f"pair_P{pipe}"]
        for t in r:
            if t not in s or t not in p:
                continue

            def c(x):
                return f"{x[t]['rps']:.0f} ({x[t]['p50_ms']:.2f}/{x[t]['p99_ms']:.2f})"
            lines.append(f"| {t} | {pipe} | {c(r)} | {c(s)} | {c(p)} | {s[t]['rps'] / r[t]['rps']:.2f} | "
                         f"{p[t]['rps'] / r[t]['rps']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
