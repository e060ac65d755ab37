#!/usr/bin/env bash
# The ftap demo: a replicated appliance survives the death of its primary.
#
#   scripts/demo.sh            failover demo (as root)
#   scripts/demo.sh --solo     the single-node appliance only
#   scripts/demo.sh --mirror   failover demo with the switch mirroring A's port to B's
#                              (scripts/netns.sh mirror a): B applies what A never logged
#   scripts/demo.sh --etcd     failover demo with an etcd arbiter (FTAP_DEMO_ARBITER=etcd does the same):
#                              a three-member etcd cluster in namespace ${P}-e (tests/integration/etcdlib.py),
#                              `--arbiter etcd://10.77.0.11:2379,...`; prints `ftap arbiter status` at the end
#   scripts/demo.sh --kv       the kv service (Redis protocol): a writer doing INCR and SET through a
#                              SIGKILL of the primary, side by side with Redis + Sentinel; prints the table
#                              (scripts/kv-test.sh --only ftap_failover,sentinel_failover,compare_table)
#
# Failover demo: installs what it needs (scripts/deps.sh), builds ftap
# (release), builds the namespace topology of scripts/netns.sh (prefix
# $FTAP_NS, default "ftapdemo"), starts the primary (node A) and the backup
# (node B), runs a client doing INCR back to back, SIGKILLs the primary after
# ~2 s, keeps the client running ~2 s more, then prints what happened: values
# continuous (first..last, count, gaps, duplicates), the longest stall, the
# switch's FDB entry moving from A's port to B's, the gratuitous ARPs seen on
# the switch, the epoch B claimed. Everything is removed at exit.
#
# Environment: FTAP_BIN (skip the build), FTAP_SCRATCH_PATH, FTAP_BUILD_CONFIG
# (see scripts/lib.sh), FTAP_NS, FTAP_OUT (logs and capture, default
# out/demo), FTAP_DEMO_BEFORE / FTAP_DEMO_AFTER (seconds, default 2 / 2).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MODE=failover
MIRROR=0
ETCD=0
[ "${FTAP_DEMO_ARBITER:-file}" = etcd ] && ETCD=1
for a in "$@"; do
    case $a in
        --solo) MODE=solo ;;
        --mirror) MIRROR=1 ;;
        --etcd) ETCD=1 ;;
        --kv)
            "$(dirname "$0")/deps.sh"
            FTAP_NS=${FTAP_NS:-ftapdemo} exec "$(dirname "$0")/kv-test.sh" --only ftap_failover,sentinel_failover,compare_table ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $a (try --help)" >&2; exit 2 ;;
    esac
done

P=${FTAP_NS:-ftapdemo}
OUT=${FTAP_OUT:-$FTAP_REPO/out/demo}

ftap_check_root
"$FTAP_REPO/scripts/deps.sh"
ftap_need_tools
ftap_build
ftap_say "ftap: ${FTAP_CMD[*]}"

cleanup() {
    local rc=$?
    set +e
    ftap_cleanup "$P"
    if ip netns list | awk '{print $1}' | grep -qxF "${P}-e"; then
        for pid in $(ip netns pids "${P}-e" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns delete "${P}-e"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$OUT"
mkdir -p "$OUT"
ftap_say "topology $P: client ${P}-c (10.0.0.1) -- switch ${P}-sw (br0) -- nodes ${P}-a / ${P}-b (+ log link)"
"$FTAP_REPO/scripts/netns.sh" up "$P"
if [ "$MIRROR" = 1 ]; then
    "$FTAP_REPO/scripts/netns.sh" mirror a "$P"
    ftap_say "switch mirrors what it sends A's port (sw-a) to B's (sw-b), appliance MAC only"
fi

if [ "$MODE" = solo ]; then
    ftap_say "solo appliance in ${P}-a"
    ftap_start "${P}-a" tapA brA "$OUT/ftap-a.log"
    PID=$FTAP_PID
    ftap_wait_ping "${P}-c" "$PID" 30
    ip netns exec "${P}-c" ping -n -c 3 -i 0.2 10.0.0.100
    ip netns exec "${P}-c" python3 - "$FTAP_REPO/tests/integration" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import ftaplib as L
with L.LineClient(port=7000) as c:
    print("counter :7000  INCR x5 ->", [c.incr() for _ in range(5)], " GET ->", c.get())
with L.LineClient(port=7) as c:
    print("echo    :7     'hello ftap' ->", repr(c.request("hello ftap")))
print("udp-counter :7002 ->", L.udp_request(b"demo 1 INCR", 7002).decode().strip())
EOF
    ftap_stop "$PID" TERM 10
    ftap_say "daemon stopped with SIGTERM: exit $FTAP_STATUS; log: $OUT/ftap-a.log"
    exit 0
fi

PIDFILE=$OUT/pids
: >"$PIDFILE"
set +e
timeout -k 10 120 ip netns exec "${P}-c" env FTAP_RUN_BIN="${FTAP_CMD[0]}" FTAP_PIDFILE="$PIDFILE" \
    python3 -u "$FTAP_REPO/tests/integration/failover_demo.py" --prefix "$P" --out-dir "$OUT" \
    --before "${FTAP_DEMO_BEFORE:-2}" --after "${FTAP_DEMO_AFTER:-2}" $([ "$ETCD" = 1 ] && echo --etcd)
rc=$?
set -e
# Anything the driver left behind (it stops what it started; this is for crashes).
while read -r pid what; do
    [ -e "/proc/$pid" ] || continue
    case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
        *ftap*|*tcpdump*) kill -KILL "$pid" 2>/dev/null && echo "killed leftover $what (pid $pid)" ;;
    esac
done <"$PIDFILE"
exit "$rc"
