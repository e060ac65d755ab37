# shellcheck shell=bash
# Shared shell helpers for the namespace test scripts and demos.
# Source it after `set -euo pipefail`; it defines functions and a few variables:
#   FTAP_REPO   repository root
#   FTAP_CMD    array: the command that runs the daemon (set by ftap_build)
#   FTAP_PIDS   array: daemons started by ftap_start (killed by ftap_cleanup)
# Environment knobs:
#   FTAP_BIN=path         use this ftap binary, do not build
#   FTAP_SCRATCH_PATH=dir swift build --scratch-path (default: swift's own .build)
#   FTAP_BUILD_CONFIG     release (default) or debug

FTAP_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FTAP_CMD=()
FTAP_PIDS=()
FTAP_CAPTURE_PID=""

ftap_say() { printf '==> %s\n' "$*"; }
ftap_warn() { printf 'WARNING: %s\n' "$*" >&2; }

# Makes sure the tools the harness needs exist; installs Debian packages for
# missing ones when possible (CI machines start without iputils-ping).
ftap_need_tools() {
    local missing=() pkgs=() t
    for t in ip ping python3 tc tcpdump; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    for t in "${missing[@]}"; do
        case $t in
            ip|tc) pkgs+=(iproute2) ;;
            ping) pkgs+=(iputils-ping) ;;
            python3) pkgs+=(python3) ;;
            tcpdump) pkgs+=(tcpdump) ;;
        esac
    done
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        ftap_say "installing missing tools: ${missing[*]} (${pkgs[*]})"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1; then
            apt-get update -qq >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
        fi
    fi
    for t in "${missing[@]}"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            [ "$t" = tcpdump ] && { ftap_warn "tcpdump missing: no capture"; continue; }
            echo "missing tool: $t" >&2
            return 1
        fi
    done
}

ftap_check_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "must run as root (network namespaces, TAP devices)" >&2
        return 1
    fi
    [ -c /dev/net/tun ] || { echo "/dev/net/tun missing" >&2; return 1; }
}

# Sets FTAP_CMD. Builds unless FTAP_BIN is given.
ftap_build() {
    if [ -n "${FTAP_BIN:-}" ]; then
        [ -x "$FTAP_BIN" ] || { echo "FTAP_BIN=$FTAP_BIN is not executable" >&2; return 1; }
        FTAP_CMD=("$(cd "$(dirname "$FTAP_BIN")" && pwd)/$(basename "$FTAP_BIN")")
        ftap_say "using $FTAP_BIN"
        return 0
    fi
    local args=(-c "${FTAP_BUILD_CONFIG:-release}")
    [ -n "${FTAP_SCRATCH_PATH:-}" ] && args+=(--scratch-path "$FTAP_SCRATCH_PATH")
    ftap_say "swift build ${args[*]}"
    (cd "$FTAP_REPO" && swift build "${args[@]}" 2>&1 | tail -n 20) || return 1
    local bin
    bin=$(cd "$FTAP_REPO" && swift build "${args[@]}" --show-bin-path)/ftap
    [ -x "$bin" ] || { echo "no ftap binary at $bin" >&2; return 1; }
    FTAP_CMD=("$bin")
}

# ftap_start NS TAP BRIDGE LOGFILE [extra ftap args...]: starts the solo daemon
# in NS with the standard appliance identity and services, and its admin
# endpoint on 127.0.0.1:7410 inside NS (`ip netns exec NS ftap status`); sets FTAP_PID.
ftap_start() {
    local ns=$1 tap=$2 br=$3 log=$4
    shift 4
    ip netns exec "$ns" "${FTAP_CMD[@]}" run --role solo --tap "$tap" --bridge "$br" \
        --mac 02:00:00:00:00:10 --ip 10.0.0.100/24 \
        --service counter:7000 --service echo:7 --service discard:9 \
        --service udp-echo:7001 --service udp-counter:7002 \
        --admin 127.0.0.1:7410 --log-level "${FTAP_LOG_LEVEL:-info}" "$@" >>"$log" 2>&1 &
    FTAP_PID=$!
    FTAP_PIDS+=("$FTAP_PID")
}

ftap_alive() { kill -0 "$1" 2>/dev/null; }

# ftap_wait_ping NS_CLIENT PID TIMEOUT_S: waits until 10.0.0.100 answers ping
# from the client namespace; fails early if the daemon exits.
ftap_wait_ping() {
    local ns=$1 pid=$2 timeout=$3 start
    start=$(date +%s)
    while :; do
        if ! ftap_alive "$pid"; then
            echo "daemon (pid $pid) exited before answering ping" >&2
            return 1
        fi
        if ip netns exec "$ns" ping -n -c 1 -W 1 10.0.0.100 >/dev/null 2>&1; then
            return 0
        fi
        if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
            echo "no ping reply from 10.0.0.100 within ${timeout}s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# ftap_stop PID SIGNAL TIMEOUT_S: signals the daemon and reaps it; sets
# FTAP_STATUS to its exit status (124 when it had to be killed after
# TIMEOUT_S). Must run in the shell that started the daemon (not in $(...)).
ftap_stop() {
    local pid=$1 sig=$2 timeout=$3 i
    FTAP_STATUS=0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        ftap_alive "$pid" || break
        # A zombie child is done: `wait` reaps it below.
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
        sleep 0.1
    done
    if ftap_alive "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        ftap_forget "$pid"
        FTAP_STATUS=124
        return 0
    fi
    # shellcheck disable=SC2034  # FTAP_STATUS is read by the callers
    wait "$pid" 2>/dev/null || FTAP_STATUS=$?
    ftap_forget "$pid"
}

ftap_forget() {
    local p keep=()
    for p in "${FTAP_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    FTAP_PIDS=(${keep[@]+"${keep[@]}"})
}

# ftap_capture_start NS IFACE FILE: background tcpdump (headers only).
ftap_capture_start() {
    command -v tcpdump >/dev/null 2>&1 || return 0
    ip netns exec "$1" tcpdump -i "$2" -s "${FTAP_SNAPLEN:-128}" -U -Z root -w "$3" >"$3.log" 2>&1 &
    FTAP_CAPTURE_PID=$!
    sleep 0.3
}

ftap_capture_stop() {
    [ -n "$FTAP_CAPTURE_PID" ] || return 0
    kill -INT "$FTAP_CAPTURE_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do ftap_alive "$FTAP_CAPTURE_PID" || break; sleep 0.1; done
    kill -KILL "$FTAP_CAPTURE_PID" 2>/dev/null || true
    wait "$FTAP_CAPTURE_PID" 2>/dev/null || true
    FTAP_CAPTURE_PID=""
}

# Kills what we started (by pid) and removes our namespaces. For `trap ... EXIT`.
ftap_cleanup() {
    local prefix=$1 p
    for p in ${FTAP_PIDS[@]+"${FTAP_PIDS[@]}"}; do
        if ftap_alive "$p"; then
            kill -TERM "$p" 2>/dev/null || true
            sleep 0.5
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    FTAP_PIDS=()
    ftap_capture_stop
    # Anything still running inside our namespaces (e.g. an impairment relay
    # or injector orphaned by a killed test run) would keep them alive
    # unnamed: end those processes, by pid.
    local ns pids
    for ns in "${prefix}-c" "${prefix}-sw" "${prefix}-a" "${prefix}-b"; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        for p in $pids; do
            [ "$p" = $$ ] && continue
            kill -TERM "$p" 2>/dev/null || true
        done
        [ -n "$pids" ] && sleep 0.3
        for p in $(ip netns pids "$ns" 2>/dev/null || true); do
            [ "$p" = $$ ] && continue
            kill -KILL "$p" 2>/dev/null || true
        done
    done
    "$FTAP_REPO/scripts/netns.sh" down "$prefix" || true
    if ip netns list | awk '{print $1}' | grep -qE "^${prefix}-(c|sw|a|b)$"; then
        ftap_warn "namespaces of prefix $prefix left behind: $(ip netns list | tr '\n' ' ')"
    fi
}

# ftap_print_log FILE [MAXLINES]
ftap_print_log() {
    local f=$1 max=${2:-400} n
    [ -f "$f" ] || { echo "(no log at $f)"; return 0; }
    n=$(wc -l <"$f")
    echo "----- $f ($n lines) -----"
    if [ "$n" -gt "$max" ]; then
        head -n 50 "$f"
        echo "... ($((n - max - 50)) lines skipped) ..."
        tail -n "$max" "$f"
    else
        cat "$f"
    fi
    echo "----- end of $f -----"
}

# Suite bookkeeping shared by the test scripts: PASS/FAIL lines with timings,
# counted in the caller's PASSED and FAILED.
result() {  # result PASS|FAIL name seconds [detail...]
    local r=$1 name=$2 secs=$3
    shift 3
    printf '%s %s (%ss)\n' "$r" "$name" "$secs"
    local line
    for line in "$@"; do printf '    %s\n' "$line"; done
    if [ "$r" = PASS ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
