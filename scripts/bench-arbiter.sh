#!/usr/bin/env bash
# Claim latency of the arbiters (issue 15), run by scripts/bench (its
# "arbiter" section; FTAP_BENCH_ARBITER=off skips it, =only runs just it).
#
#   scripts/bench-arbiter.sh    (as root; FTAP_BIN = the ftap binary)
#
# file:   `ftap arbiter bench --arbiter file:DIR` in $OUT/arb-file (a fresh
#         directory on the disk that holds $OUT): O_CREAT|O_EXCL, fsync of the
#         file and the directory, per claim.
# etcd:   a three-member etcd 3.4 cluster on 127.0.1.1-3 inside namespace
#         ${P}-arb (data in $OUT/arb-etcd, on the same disk), and
#         `ftap arbiter bench --arbiter etcd://...`: per claim a lease grant and
#         the claim txn (each a fresh HTTP connection, each a raft commit with
#         its WAL fsync); the lease revoke after each claim is not timed.
# Prints one line per arbiter: claims, median, p90 and max in ms; writes
# $OUT/bench-arbiter.txt. Removes the namespace and the members at exit.
#
# Environment: FTAP_BIN (required), FTAP_NS (default ftapbench), FTAP_BENCH_OUT
# (default out/bench), FTAP_BENCH_ARBITER_CLAIMS (default 200; 30 with FTAP_BENCH_QUICK=1).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
P=${FTAP_NS:-ftapbench}
NS=${P}-arb
OUT=${FTAP_BENCH_OUT:-$REPO/out/bench}
FTAP=${FTAP_BIN:?FTAP_BIN must name the ftap binary}
N=${FTAP_BENCH_ARBITER_CLAIMS:-$([ "${FTAP_BENCH_QUICK:-0}" = 1 ] && echo 30 || echo 200)}
command -v etcd >/dev/null && command -v etcdctl >/dev/null || {
    echo "bench-arbiter.sh: etcd and etcdctl are needed (scripts/deps.sh installs them)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-arbiter.sh: run as root" >&2; exit 2; }

PIDS=()
cleanup() {
    local p
    for p in ${PIDS[@]+"${PIDS[@]}"}; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ip netns delete "$NS" 2>/dev/null || true
    rm -rf "$OUT/arb-file" "$OUT/arb-etcd"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
rm -rf "$OUT/arb-file" "$OUT/arb-etcd"
ip netns delete "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up

CLUSTER=ftap-bench-m1=http://127.0.1.1:2380,ftap-bench-m2=http://127.0.1.2:2380,ftap-bench-m3=http://127.0.1.3:2380
for i in 1 2 3; do
    ip netns exec "$NS" etcd --name "ftap-bench-m$i" --data-dir "$OUT/arb-etcd/m$i" \
        --listen-client-urls "http://127.0.1.$i:2379" --advertise-client-urls "http://127.0.1.$i:2379" \
        --listen-peer-urls "http://127.0.1.$i:2380" --initial-advertise-peer-urls "http://127.0.1.$i:2380" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token ftap-bench \
        --logger zap >"$OUT/arb-etcd-m$i.log" 2>&1 &
    PIDS+=($!)
done
EPS=127.0.1.1:2379,127.0.1.2:2379,127.0.1.3:2379
for _ in $(seq 100); do
    ip netns exec "$NS" etcdctl --endpoints "$EPS" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
done
ip netns exec "$NS" etcdctl --endpoints "$EPS" endpoint health >/dev/null 2>&1 || {
    echo "bench-arbiter.sh: the etcd cluster did not become healthy (logs $OUT/arb-etcd-m*.log)" >&2; exit 1; }

file_line=$("$FTAP" arbiter bench --arbiter "file:$OUT/arb-file" --count "$N")
etcd_line=$(ip netns exec "$NS" "$FTAP" arbiter bench --arbiter "etcd://$EPS/ftap/bench" --count "$N")
{
    echo "arbiter claim latency ($N claims each; etcd: 3 members on loopback, data on the same disk)"
    echo "  file:DIR          $file_line"
    echo "  etcd (3 members)  $etcd_line"
} | tee "$OUT/bench-arbiter.txt"
