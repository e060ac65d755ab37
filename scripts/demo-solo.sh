#!/usr/bin/env bash
# A short demo of one ftap appliance (role solo) in network namespaces:
# builds ftap (unless FTAP_BIN is set), builds the topology of
# scripts/netns.sh under prefix $FTAP_NS (default "ftapdemo"), starts the
# daemon in ${P}-a, and from the client namespace pings it, talks to the
# counter, echo and udp-counter services, prints a summary, and cleans up.
#
#   scripts/demo-solo.sh       # FTAP_BIN=..., FTAP_SCRATCH_PATH=... as in lib.sh
# (scripts/demo.sh is the failover demo; its --solo mode is a shorter version of this.)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

P=${FTAP_NS:-ftapdemo}
WORK=$(mktemp -d /tmp/ftap-demo.XXXXXX)
LOG=$WORK/ftap.log
STATUS=1

on_exit() {
    local rc=$?
    set +e
    ftap_cleanup "$P"
    if [ "$STATUS" != 0 ] || [ "$rc" != 0 ]; then
        echo "demo failed; daemon log:"
        ftap_print_log "$LOG" 100
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ftap_check_root
ftap_need_tools
ftap_build

ftap_say "building the topology (namespaces ${P}-c, ${P}-sw, ${P}-a, ${P}-b)"
"$FTAP_REPO/scripts/netns.sh" up "$P"

ftap_say "starting the appliance in ${P}-a: 10.0.0.100/24, MAC 02:00:00:00:00:10, on tapA in bridge brA"
ftap_start "${P}-a" tapA brA "$LOG"
PID=$FTAP_PID
START=$(date +%s.%N)
ftap_wait_ping "${P}-c" "$PID" 30
UP_MS=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", (b - a) * 1000 }')
ftap_say "the appliance answers ping after ${UP_MS} ms (daemon pid $PID)"
echo

ftap_say "client ${P}-c (10.0.0.1) -> ping -c 3 10.0.0.100"
ip netns exec "${P}-c" ping -n -c 3 -i 0.2 10.0.0.100 | sed 's/^/    /'
echo "    neighbour entry: $(ip -n "${P}-c" neigh show 10.0.0.100 dev c0)"
echo

ip netns exec "${P}-c" python3 - "$FTAP_REPO/tests/integration" <<'PY'
import socket, sys, time
sys.path.insert(0, sys.argv[1])
import ftaplib as L

print("==> counter service, TCP 10.0.0.100:7000")
with L.LineClient(port=L.PORT_COUNTER) as c:
    for cmd in ["GET", "INCR", "INCR", "INCR", "GET", "HELLO"]:
        print(f"    > {cmd:<6} < {c.request(cmd)}")
    final = c.get()
print()
print("==> echo service, TCP 10.0.0.100:7")
msg = b"hello from the client namespace"
with L.LineClient(port=L.PORT_ECHO) as c:
    t0 = time.monotonic()
    c.send_line(msg)
    back = c.read_line().encode()
    rtt = (time.monotonic() - t0) * 1000
print(f"    > {msg.decode()}\n    < {back.decode()}   ({rtt:.2f} ms, {'identical' if back == msg else 'DIFFERENT'})")
r = L.bulk_echo(4 * L.MB, timeout=60)
ok = r["got_sha"] == r["want_sha"] and r["received"] == 4 * L.MB
print(f"    4 MiB round trip: {'intact (sha256 matches)' if ok else 'CORRUPT'} in {r['elapsed']:.2f} s")
print()
print("==> udp-counter service, UDP 10.0.0.100:7002 (exactly-once by request id)")
for req in ["demo 1 INCR", "demo 1 INCR", "demo 2 INCR", "demo 1 INCR"]:
    rep = L.udp_request(req.encode(), L.PORT_UDP_COUNTER).decode().strip()
    print(f"    > {req:<12} < {rep}")
value = L.counter_get()
print()
print("==> summary")
print(f"    appliance 10.0.0.100 / {L.APPLIANCE_MAC} answered ARP and ping")
print(f"    counter: 3 TCP INCR -> {final}; 2 UDP INCR (one repeated, one stale) -> {value}")
print(f"    echo: line and 4 MiB returned {'intact' if ok and back == msg else 'NOT intact'}")
sys.exit(0 if ok and back == msg and final == 3 and value == 5 else 1)
PY
echo

ftap_say "stopping the appliance (SIGTERM)"
ftap_stop "$PID" TERM 15
if [ "$FTAP_STATUS" = 0 ]; then
    echo "    daemon exited with status 0"
else
    echo "    daemon exit status $FTAP_STATUS (124: had to be killed)"
    exit 1
fi
STATUS=0
ftap_say "demo complete; removing namespaces"
