#!/usr/bin/env bash
# Re-protection tests of an ftap pair in network namespaces (issue 7): a node
# restarted after a failure joins the survivor by state transfer, planned
# switchover, a join with 1,000 open connections, a corrupted snapshot chunk.
#
#   scripts/rejoin-test.sh [rejoin_tests.py options, e.g. --only switchover]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set, builds the
# topology of scripts/netns.sh under prefix $FTAP_NS (default "ftaprj") and
# runs tests/integration/rejoin_tests.py from ${P}-c; the tests start and kill
# the daemons themselves (in ${P}-a and ${P}-b). Everything it created
# (daemons, namespaces) is removed on exit, failure or interrupt.
#
# Environment: FTAP_BIN, FTAP_SCRATCH_PATH, FTAP_BUILD_CONFIG (see
# scripts/lib.sh); FTAP_NS; FTAP_OUT (artifacts, default out/rejoin);
# FTAP_LOG_LEVEL (default info); FTAP_SUITE_TIMEOUT (seconds, default 600);
# FTAP_CYCLES (5), FTAP_SWITCHOVERS (10), FTAP_CONNS (1000), FTAP_LOAD_PACE_MS (1),
# FTAP_DWELL_MS (300), FTAP_CAPTURE (1: capture the switch ports to explain stalls).
#
# Output: "PASS name (secs)" / "FAIL name (secs)" lines with measurements
# ("note:" lines), the daemon logs of failed tests, and a final line
# "N passed, M failed". Exit status 0 iff nothing failed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

P=${FTAP_NS:-ftaprj}
OUT=${FTAP_OUT:-$FTAP_REPO/out/rejoin}
export FTAP_OUT=$OUT
PIDFILE=$OUT/pids
export FTAP_PIDFILE=$PIDFILE
PASSED=0
FAILED=0
FINISHED=0
SUITE_PID=""


# Kills, by pid, every process the suite recorded in $PIDFILE that still runs
# an ftap/tcpdump command line, then anything left inside our own node
# namespaces (all of it was started by this harness).
kill_ours() {
    local pid name ns
    if [ -f "$PIDFILE" ]; then
        while read -r pid name; do
            [ -n "$pid" ] || continue
            if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'ftap|tcpdump'; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$PIDFILE"
    fi
    for ns in "${P}-a" "${P}-b" "${P}-c" "${P}-sw"; do
        if ip netns list | awk '{print $1}' | grep -qxF "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
        fi
    done
}

print_failed_logs() {
    local t f
    [ -s "$OUT/failed-tests" ] || return 0
    while read -r t; do
        [ -d "$OUT/$t" ] || continue
        echo "===== daemon logs of failed test $t ====="
        for f in "$OUT/$t"/[AB][0-9]*.log; do
            [ -f "$f" ] && ftap_print_log "$f" 150
        done
    done < <(sort -u "$OUT/failed-tests")
}

on_exit() {
    local rc=$?
    set +e
    if [ -n "$SUITE_PID" ] && kill -0 "$SUITE_PID" 2>/dev/null; then
        kill -TERM "$SUITE_PID" 2>/dev/null
        sleep 1
        kill -KILL "$SUITE_PID" 2>/dev/null
    fi
    if [ "$FINISHED" != 1 ]; then
        [ "$rc" = 0 ] && rc=1
        FAILED=$((FAILED + 1))
        echo "harness aborted (exit $rc)"
    fi
    if [ "$FINISHED" != 1 ]; then
        cleanup_all
        if [ "$FAILED" -gt 0 ]; then
            print_failed_logs
            echo "artifacts: $OUT"
        fi
        echo "$PASSED passed, $FAILED failed"
    fi
    exit "$rc"
}

CLEANED=0
cleanup_all() {
    [ "$CLEANED" = 1 ] && return 0
    CLEANED=1
    mkdir -p "$OUT"
    kill_ours 2>/dev/null
    # `ip netns list` may complain about namespaces being deleted: keep real warnings only.
    ftap_cleanup "$P" 2>"$OUT/cleanup.err"
    grep -v "Peer netns reference is invalid" "$OUT/cleanup.err" >&2 || true
    rm -f "$OUT/cleanup.err"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ftap_check_root
ftap_need_tools
rm -rf "$OUT"
mkdir -p "$OUT"
T_ALL=$(now)

t0=$(now)
if ! ftap_build; then
    result FAIL build "$(since "$t0")" "build failed"
    cleanup_all; FINISHED=1; echo "$PASSED passed, $FAILED failed"; exit 1
fi
ftap_say "daemon: ${FTAP_CMD[*]}"

# 1,000 client connections in one process.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ftap_say "topology $P"
"$FTAP_REPO/scripts/netns.sh" up "$P"
for ns in "${P}-a" "${P}-b"; do  # --admin 127.0.0.1:7410 needs lo (netns.sh brings it up; make sure)
    ip -n "$ns" link set lo up
done

RESULTS=$OUT/suite-results
set +e
FTAP_RUN_BIN="${FTAP_CMD[0]}" timeout -k 10 "${FTAP_SUITE_TIMEOUT:-600}" \
    ip netns exec "${P}-c" python3 -u "$FTAP_REPO/tests/integration/rejoin_tests.py" \
    --prefix "$P" --results "$RESULTS" --no-summary --out-dir "$OUT" "$@" &
SUITE_PID=$!
wait "$SUITE_PID"
suite_rc=$?
SUITE_PID=""
set -e
if [ -s "$RESULTS" ]; then
    read -r sp sf <"$RESULTS"
    PASSED=$((PASSED + sp)); FAILED=$((FAILED + sf))
    if [ "$suite_rc" != 0 ] && [ "$sf" = 0 ]; then
        result FAIL rejoin_tests_exit 0.00 "rejoin_tests.py exited $suite_rc"
    fi
else
    result FAIL rejoin_tests 0.00 "rejoin_tests.py exited $suite_rc without results (timeout or crash)"
fi

if [ -s "$OUT/rejoin-measure.json" ]; then
    ftap_say "measurements: $OUT/rejoin-measure.json"
fi
cleanup_all
if [ "$FAILED" -gt 0 ]; then
    print_failed_logs
    echo "artifacts: $OUT"
fi
ftap_say "total $(since "$T_ALL")s"
FINISHED=1
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
