#!/usr/bin/env bash
# End-to-end test of one ftap appliance (role solo) in network namespaces.
#
#   scripts/integration-test.sh [solo_tests.py options, e.g. --only echo,ping]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set, builds the
# topology of scripts/netns.sh under prefix $FTAP_NS (default "ftapit"),
# starts the daemon in ${P}-a on tapA/brA, waits for ping, runs
# tests/integration/solo_tests.py from ${P}-c, then checks that SIGTERM and
# SIGINT each make the daemon exit 0. Everything it created is removed on
# exit, failure or interrupt.
#
# Environment: FTAP_BIN, FTAP_SCRATCH_PATH, FTAP_BUILD_CONFIG (see
# scripts/lib.sh); FTAP_NS; FTAP_OUT (artifacts, default out/integration);
# FTAP_CAPTURE=0 to skip the br0 capture; FTAP_KEEP_PCAP=1 to keep it on
# success; FTAP_LOG_LEVEL (default info); FTAP_BULK_MB (default 20);
# FTAP_SUITE_TIMEOUT (seconds, default 1800); FTAP_SKIP / FTAP_ONLY
# (comma-separated test names or substrings, passed to solo_tests.py);
# FTAP_IMPAIR=netem|relay (how loss is made; default: netem if the kernel
# has it, else the userspace relay tests/integration/impair.py).
#
# Output: "PASS name (secs)" / "FAIL name (secs)" lines and a final line
# "N passed, M failed". Exit status 0 iff nothing failed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

P=${FTAP_NS:-ftapit}
OUT=${FTAP_OUT:-$FTAP_REPO/out/integration}
export FTAP_OUT=$OUT
PASSED=0
FAILED=0
FINISHED=0
DAEMON_LOG=$OUT/ftap-a.log
PCAP=$OUT/br0.pcap
SUITE_PID=""


on_exit() {
    local rc=$?
    set +e
    if [ "$FINISHED" != 1 ]; then
        # Interrupted or a harness step failed before the summary.
        [ "$rc" = 0 ] && rc=1
        FAILED=$((FAILED + 1))
        echo "harness aborted (exit $rc)"
    fi
    if [ -n "$SUITE_PID" ]; then
        # timeout(1) passes TERM on to the suite, which undoes its impairments.
        kill -TERM "$SUITE_PID" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$SUITE_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$SUITE_PID" 2>/dev/null
        wait "$SUITE_PID" 2>/dev/null
    fi
    ftap_cleanup "$P"
    if [ "$FAILED" -gt 0 ]; then
        ftap_print_log "$DAEMON_LOG"
        [ -f "$PCAP" ] && echo "capture on ${P}-sw br0: $PCAP (tcpdump -nr $PCAP)"
        echo "artifacts: $OUT"
    elif [ "${FTAP_KEEP_PCAP:-0}" != 1 ]; then
        rm -f "$PCAP"
    fi
    if [ "$FINISHED" != 1 ]; then
        echo "$PASSED passed, $FAILED failed"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ftap_check_root
ftap_need_tools
rm -rf "$OUT"
mkdir -p "$OUT"

t0=$(now)
if ! ftap_build; then
    result FAIL build "$(since "$t0")" "build failed"
    FINISHED=1; echo "$PASSED passed, $FAILED failed"; exit 1
fi
ftap_say "daemon: ${FTAP_CMD[*]}"

ftap_say "topology $P"
"$FTAP_REPO/scripts/netns.sh" up "$P"
[ "${FTAP_CAPTURE:-1}" = 1 ] && ftap_capture_start "${P}-sw" br0 "$PCAP"

# 1. The daemon starts and answers ping.
t0=$(now)
ftap_start "${P}-a" tapA brA "$DAEMON_LOG"
PID=$FTAP_PID
if err=$(ftap_wait_ping "${P}-c" "$PID" 30 2>&1); then
    result PASS daemon_starts_and_answers_ping "$(since "$t0")"
else
    result FAIL daemon_starts_and_answers_ping "$(since "$t0")" "$err"
    FINISHED=1; echo "$PASSED passed, $FAILED failed"; exit 1
fi
if ip -n "${P}-a" -d link show tapA 2>/dev/null | grep -q "master brA"; then
    result PASS tap_enslaved_to_bridge 0.00
else
    result FAIL tap_enslaved_to_bridge 0.00 "$(ip -n "${P}-a" -d link show tapA 2>&1 | head -3)"
fi

# 2. The suite, from the client namespace.
RESULTS=$OUT/suite-results
SUITE_ARGS=()
[ -n "${FTAP_SKIP:-}" ] && SUITE_ARGS+=(--skip "$FTAP_SKIP")
[ -n "${FTAP_ONLY:-}" ] && SUITE_ARGS+=(--only "$FTAP_ONLY")
# In the background + wait, so that an INT/TERM to this script runs its trap
# at once (bash defers traps while a foreground command runs).
timeout -k 10 "${FTAP_SUITE_TIMEOUT:-1800}" \
    ip netns exec "${P}-c" python3 -u "$FTAP_REPO/tests/integration/solo_tests.py" \
    --prefix "$P" --daemon-pid "$PID" --results "$RESULTS" --no-summary --out-dir "$OUT" \
    ${SUITE_ARGS[@]+"${SUITE_ARGS[@]}"} "$@" &
SUITE_PID=$!
suite_rc=0
wait "$SUITE_PID" || suite_rc=$?
SUITE_PID=""
if [ -s "$RESULTS" ]; then
    read -r sp sf <"$RESULTS"
    PASSED=$((PASSED + sp)); FAILED=$((FAILED + sf))
    if [ "$suite_rc" != 0 ] && [ "$sf" = 0 ]; then
        result FAIL solo_tests_exit 0.00 "solo_tests.py exited $suite_rc"
    fi
else
    result FAIL solo_tests 0.00 "solo_tests.py exited $suite_rc without results (timeout or crash)"
fi

# 3. SIGTERM -> exit 0 (and the TAP goes away with the process).
t0=$(now)
if ftap_alive "$PID"; then
    ftap_stop "$PID" TERM 15
    st=$FTAP_STATUS
    if [ "$st" = 0 ]; then
        result PASS daemon_sigterm_exit0 "$(since "$t0")"
    elif [ "$st" = 124 ]; then
        result FAIL daemon_sigterm_exit0 "$(since "$t0")" "still running 15s after SIGTERM (killed)"
    else
        result FAIL daemon_sigterm_exit0 "$(since "$t0")" "exit status $st after SIGTERM"
    fi
else
    wait "$PID" 2>/dev/null && st=0 || st=$?
    ftap_forget "$PID"
    result FAIL daemon_sigterm_exit0 "$(since "$t0")" "daemon was already gone before SIGTERM (exit status $st)"
fi
if ip -n "${P}-a" link show tapA >/dev/null 2>&1; then
    echo "    note: tapA still exists after the daemon exited"
fi

# 4. It starts again on the same names, and SIGINT -> exit 0.
t0=$(now)
echo "--- restart for SIGINT ---" >>"$DAEMON_LOG"
ftap_start "${P}-a" tapA brA "$DAEMON_LOG"
PID=$FTAP_PID
if err=$(ftap_wait_ping "${P}-c" "$PID" 30 2>&1); then
    if out=$(ip netns exec "${P}-c" python3 -c '
import sys; sys.path.insert(0, sys.argv[1]); import ftaplib as L
with L.LineClient() as c: print(c.get())' "$FTAP_REPO/tests/integration" 2>&1); then
        ftap_stop "$PID" INT 15
        st=$FTAP_STATUS
        if [ "$st" = 0 ]; then
            result PASS daemon_restart_then_sigint_exit0 "$(since "$t0")" "counter after restart: $out"
        else
            result FAIL daemon_restart_then_sigint_exit0 "$(since "$t0")" "exit status $st after SIGINT (124: killed)"
        fi
    else
        result FAIL daemon_restart_then_sigint_exit0 "$(since "$t0")" "GET after restart failed: $out"
    fi
else
    result FAIL daemon_restart_then_sigint_exit0 "$(since "$t0")" "restart: $err"
fi

FINISHED=1
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
