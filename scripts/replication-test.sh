#!/usr/bin/env bash
# End-to-end tests of the replicated pair (primary/backup) in network namespaces.
#
#   scripts/replication-test.sh [--only NAME[,NAME...]] [--repeat N] [--list]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set. For every test
# of tests/integration/replication_tests.py, FTAP_REPEAT times (default 3, to
# catch flakiness), it builds a fresh topology (scripts/netns.sh, prefix
# $FTAP_NS, default "ftaprep"), runs that one test from ${P}-c (the test
# starts its own pair with a fresh arbiter directory), kills anything the test
# left running and removes the namespaces. Tests:
#   s1_failover_under_load            SIGKILL primary under INCR load (+ idle connection)
#   s2_duplicated_output              FTAP_FAULT=after-release:K: same segment re-sent by B
#   s3a_udp_exactly_once_sigkill      UDP same-seq retries across a SIGKILL of the primary
#   s3b_udp_exactly_once_before_release  FTAP_FAULT=before-release:K with UDP
#   s4_output_rule_frozen_backup      SIGSTOP backup: no reply before the failover timeout
#   s5_partition_log_link             logA down: exactly one emitter, loser exits "lost epoch"
#   s6_backup_death                   SIGKILL backup under load
#   s7_metrics                        /metrics before/after traffic and after failover
#   s8a_determinism_pcaps_and_replay  out.pcap == shadow.pcap, replay, flipped byte
#   s8b_replay_across_failover        backup recording across a failover replays
#
# Environment: FTAP_BIN, FTAP_SCRATCH_PATH, FTAP_BUILD_CONFIG (see scripts/lib.sh);
# FTAP_NS; FTAP_REPEAT; FTAP_OUT (artifacts, default out/replication: one
# directory per run, r<rep>/<test>/ with A1.log, B1.log (one per daemon started), captures, recordings);
# FTAP_TEST_TIMEOUT (seconds per test run, default 300); FTAP_LOG_LEVEL;
# FTAP_KEEP=1 keeps the artifacts of passing runs (default: deleted, except
# measure.json and the logs).
#
# Output: "PASS name[rN] (secs)" / "FAIL name[rN] (secs)" lines with notes
# (measurements), the daemon logs of failed runs, a per-test summary of the
# measurements over the runs, and a final line "N passed, M failed".
# Exit status 0 iff nothing failed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# Other pair suites run through this script with their own test file and
# defaults (scripts/health-test.sh sets these).
SUITE_PY=${FTAP_SUITE_PY:-replication_tests.py}
P=${FTAP_NS:-${FTAP_SUITE_NS:-ftaprep}}
OUT=${FTAP_OUT:-$FTAP_REPO/out/${FTAP_SUITE_OUT:-replication}}
REPEAT=${FTAP_REPEAT:-${FTAP_SUITE_REPEAT:-3}}
TEST_TIMEOUT=${FTAP_TEST_TIMEOUT:-300}
PIDFILE=$OUT/pids
TESTS_PY=$FTAP_REPO/tests/integration/$SUITE_PY
PASSED=0
FAILED=0
XFAILED=0
FINISHED=0
ONLY=""
LIST=0

while [ $# -gt 0 ]; do
    case $1 in
        --only) ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --repeat=*) REPEAT=${1#--repeat=}; shift ;;
        --list) LIST=1; shift ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case $REPEAT in ''|*[!0-9]*|0) echo "bad repeat count '$REPEAT'" >&2; exit 2 ;; esac

ALL_LIST=$(python3 "$TESTS_PY" --list) || { echo "cannot list the tests of $TESTS_PY" >&2; exit 2; }
mapfile -t ALL_TESTS < <(awk '{print $1}' <<<"$ALL_LIST")
TESTS=()
for t in "${ALL_TESTS[@]}"; do
    if [ -z "$ONLY" ]; then TESTS+=("$t"); continue; fi
    IFS=, read -ra pats <<<"$ONLY"
    for p in "${pats[@]}"; do
        if [ -n "$p" ] && [[ $t == *"$p"* ]]; then TESTS+=("$t"); break; fi
    done
done
if [ "$LIST" = 1 ]; then printf '%s\n' "${TESTS[@]}"; exit 0; fi
[ ${#TESTS[@]} -gt 0 ] || { echo "no test matches '$ONLY'" >&2; exit 2; }


# Kills every process a test run recorded in $PIDFILE that is still alive
# (checking it is still ftap or tcpdump, so a recycled pid is left alone).
kill_leftovers() {
    [ -f "$PIDFILE" ] || return 0
    local pid what cmd left=()
    while read -r pid what; do
        [ -n "$pid" ] || continue
        [ -e "/proc/$pid" ] || continue
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        case $cmd in
            *ftap*|*tcpdump*) ;;
            *) continue ;;
        esac
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && continue
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        left+=("$pid:$what")
    done <"$PIDFILE"
    if [ ${#left[@]} -gt 0 ]; then
        sleep 1
        local e
        for e in "${left[@]}"; do kill -KILL "${e%%:*}" 2>/dev/null || true; done
        echo "    note: killed leftover processes: ${left[*]}"
    fi
    : >"$PIDFILE"
}

CASE_PID=""

on_exit() {
    local rc=$? i
    set +e
    if [ -n "$CASE_PID" ] && kill -0 "$CASE_PID" 2>/dev/null; then
        kill -TERM "$CASE_PID" 2>/dev/null
        for ((i = 0; i < 150; i++)); do kill -0 "$CASE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CASE_PID" 2>/dev/null
        wait "$CASE_PID" 2>/dev/null
    fi
    if [ "$FINISHED" != 1 ]; then
        [ "$rc" = 0 ] && rc=1
        FAILED=$((FAILED + 1))
        echo "harness aborted (exit $rc)"
    fi
    kill_leftovers
    ftap_cleanup "$P"
    if [ "$FINISHED" != 1 ]; then
        echo "artifacts: $OUT"
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
: >"$PIDFILE"
SUITE_T0=$(now)

t0=$(now)
if ! ftap_build; then
    result FAIL build "$(since "$t0")" "build failed"
    FINISHED=1; echo "$PASSED passed, $FAILED failed"; exit 1
fi
ftap_say "daemon: ${FTAP_CMD[*]}"
ftap_say "tests: ${TESTS[*]} (x$REPEAT, prefix $P)"

print_logs() {  # print_logs DIR
    local f
    for f in "$1"/[AB][0-9]*.log; do [ -f "$f" ] && ftap_print_log "$f" 200; done
    for f in "$1"/*.pcap; do [ -f "$f" ] && echo "capture: $f (tcpdump -nr $f)"; done
    echo "artifacts: $1"
}

run_case() {  # run_case REP NAME
    local rep=$1 name=$2 dir t0 rc sp sf
    dir=$OUT/r$rep/$name
    mkdir -p "$dir"
    t0=$(now)
    if ! "$FTAP_REPO/scripts/netns.sh" up "$P" >"$dir/netns.log" 2>&1; then
        result FAIL "$name[r$rep]" "$(since "$t0")" "topology: $(tail -n 5 "$dir/netns.log")"
        "$FTAP_REPO/scripts/netns.sh" down "$P" >/dev/null 2>&1 || true
        return 0
    fi
    # In the background, so that a signal to this script is handled at once
    # (on_exit stops the run: timeout forwards SIGTERM to the test, which
    # stops its daemons).
    timeout -k 10 "$TEST_TIMEOUT" \
        ip netns exec "${P}-c" env FTAP_REP="$rep" FTAP_PIDFILE="$PIDFILE" FTAP_RUN_BIN="${FTAP_CMD[0]}" \
        FTAP_OUT="$dir" python3 -u "$TESTS_PY" --prefix "$P" --only "$name" --results "$dir/results" \
        --no-summary --out-dir "$dir" \
        > >(sed -u -E "s/^(PASS|FAIL|XFAIL|XPASS) ([^ ]+) /\1 \2[r$rep] /" | tee "$dir/test.out") 2>&1 &
    CASE_PID=$!
    rc=0
    wait "$CASE_PID" || rc=$?
    CASE_PID=""
    sleep 0.1  # let sed/tee drain
    kill_leftovers
    "$FTAP_REPO/scripts/netns.sh" down "$P" >>"$dir/netns.log" 2>&1 || echo "    note: netns.sh down $P failed"
    if [ -s "$dir/results" ]; then
        read -r sp sf <"$dir/results"
        PASSED=$((PASSED + sp)); FAILED=$((FAILED + sf))
        XFAILED=$((XFAILED + $(grep -c '^XFAIL ' "$dir/test.out" || true)))
        if [ "$sf" != 0 ]; then
            print_logs "$dir"
        elif [ "$rc" != 0 ]; then
            result FAIL "$name[r$rep]-exit" 0.00 "$SUITE_PY exited $rc"
        elif [ "${FTAP_KEEP:-0}" != 1 ]; then
            find "$dir" -type f \( -name '*.pcap' -o -name '*.rec' -o -name '*.pcap.1' \) -delete
        fi
    else
        result FAIL "$name[r$rep]" "$(since "$t0")" \
            "$SUITE_PY exited $rc without results ($( [ "$rc" = 124 ] && echo "timeout after ${TEST_TIMEOUT}s" || echo crash))"
        print_logs "$dir"
    fi
}

for ((rep = 1; rep <= REPEAT; rep++)); do
    for name in "${TESTS[@]}"; do
        echo "--- $name (run $rep of $REPEAT)"
        run_case "$rep" "$name"
    done
done

echo
echo "=== measurements over $REPEAT run(s)"
python3 - "$OUT" "${TESTS[@]}" <<'EOF' || true
import json, os, statistics, sys
out, tests = sys.argv[1], sys.argv[2:]
for t in tests:
    rows = []
    for d in sorted(os.listdir(out)):
        p = os.path.join(out, d, t, "measure.json")
        if d.startswith("r") and os.path.exists(p):
            with open(p) as f:
                rows.append(json.load(f))
    if not rows:
        continue
    parts = []
    for k in sorted({k for r in rows for k in r}):
        vals = [r[k] for r in rows if k in r]
        if all(isinstance(v, (int, float)) for v in vals):
            parts.append(f"{k} median {statistics.median(vals):.1f} max {max(vals):.1f}")
        else:
            parts.append(f"{k} {','.join(str(v) for v in vals)}")
    print(f"{t}: " + "; ".join(parts) + f" ({len(rows)} runs)")
EOF
echo "suite time: $(since "$SUITE_T0")s; artifacts: $OUT"
FINISHED=1
echo "$PASSED passed, $FAILED failed$( [ "$XFAILED" = 0 ] || echo ", $XFAILED expected failures (XFAIL)")"
[ "$FAILED" = 0 ]
