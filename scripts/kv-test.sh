#!/usr/bin/env bash
# The kv service (issue 17: Redis protocol) with real Redis clients, and its
# failover side by side with Redis Sentinel, in network namespaces.
#
#   scripts/kv-test.sh [--only NAME[,NAME...]] [--repeat N] [--list]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set. For every test
# of tests/integration/kv_tests.py, FTAP_REPEAT times (default 1), it builds a
# fresh topology (scripts/netns.sh, prefix $FTAP_NS, default "ftapkv"), runs
# that one test from ${P}-c, kills anything the test left running and removes
# the namespaces. Needs redis-server, redis-sentinel and redis-tools
# (scripts/deps.sh installs them). Tests:
#   solo_clients       redis-cli session (output identical to real Redis's), --pipe 100,000 keys + DBSIZE,
#                      redis-benchmark (-P 16 and not), against ftap solo
#   pair_clients       the same against the pair; the backup catches up without divergence
#   ftap_failover      FTAP_KV_TRIALS (5) SIGKILLs of the primary under a writer: no acknowledged write
#                      lost, no reset, no client error
#   sentinel_failover  the same writer against redis-server master+replica+3 sentinels
#                      (down-after-milliseconds FTAP_KV_SENTINEL_DOWN_MS, 1000), master SIGKILLed: measured
#   compare_table      prints the comparison table (also written to $FTAP_OUT/table.md)
#
# The table alone, from one command: scripts/kv-test.sh --only ftap_failover,sentinel_failover,compare_table
#
# Environment: as scripts/replication-test.sh (FTAP_BIN, FTAP_NS, FTAP_OUT
# (default out/kv), FTAP_REPEAT, FTAP_TEST_TIMEOUT, FTAP_LOG_LEVEL), and
# FTAP_KV_TRIALS, FTAP_KV_PIPE_KEYS, FTAP_KV_BENCH_N, FTAP_KV_WRITE_S,
# FTAP_KV_SENTINEL_DOWN_MS (see tests/integration/kv_tests.py).
set -euo pipefail
case ${1:-} in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
for t in redis-server redis-sentinel redis-cli redis-benchmark; do
    command -v "$t" >/dev/null || { echo "kv-test.sh: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${FTAP_OUT:-$REPO/out/kv}
# The failover tests leave their trials here for compare_table.
export FTAP_KV_TABLE_DIR=${FTAP_KV_TABLE_DIR:-$OUTDIR/table}
rm -rf "$FTAP_KV_TABLE_DIR"
FTAP_SUITE_PY=kv_tests.py FTAP_SUITE_NS=ftapkv FTAP_SUITE_OUT=kv FTAP_SUITE_REPEAT=1 \
    "$(dirname "$0")/replication-test.sh" "$@"
