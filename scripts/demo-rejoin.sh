#!/usr/bin/env bash
# Demo: an ftap pair survives two failures in a row, because the failed node
# comes back as a backup and joins the survivor by state transfer.
#
#   scripts/demo-rejoin.sh        (as root; installs packages, builds, cleans up)
#
#   1. A primary, B backup, a client doing INCR on one TCP connection throughout
#   2. kill -9 A      -> B takes over (LIVE), serves alone
#   3. restart A      -> A joins B by state transfer, the pair is protected again
#   4. kill -9 B      -> A takes over
#   5. restart B      -> B joins A; protected again
#   then: what the client saw (values continuous, no reset, longest stalls)
#
# Environment: FTAP_BIN (skip the build), FTAP_SCRATCH_PATH, FTAP_NS (default
# "ftaprd"), FTAP_OUT (default out/demo-rejoin), FTAP_DEMO_PAUSE (seconds
# between steps, default 2).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

P=${FTAP_NS:-ftaprd}
OUT=${FTAP_OUT:-$FTAP_REPO/out/demo-rejoin}
PAUSE=${FTAP_DEMO_PAUSE:-2}
ARB=$OUT/arbiter
EVENTS=$OUT/events
STOP=$OUT/client.stop
PAUSEF=$OUT/client.pause
CLIENT_PID=""
declare -A PID LOG N

b() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n%s\n' "$*"; fi; }
say() { printf '    %s\n' "$*"; }
stamp() { printf '%s %s\n' "$(date +%s.%N)" "$*" >>"$EVENTS"; }

on_exit() {
    local rc=$?
    set +e
    [ -n "$CLIENT_PID" ] && { touch "$STOP"; sleep 1; kill -KILL "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null; }
    ftap_cleanup "$P" 2>&1 | grep -v "Peer netns reference is invalid" >&2
    if [ "$rc" != 0 ]; then
        echo "demo FAILED (exit $rc); logs:"
        for f in "$OUT"/*.log; do [ -f "$f" ] && ftap_print_log "$f" 60; done
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ftap_check_root
"$FTAP_REPO/scripts/deps.sh"
ftap_need_tools
ftap_build
FTAP=${FTAP_CMD[0]}
rm -rf "$OUT"; mkdir -p "$OUT" "$ARB"
: >"$EVENTS"

"$FTAP_REPO/scripts/netns.sh" up "$P"
ip -n "${P}-a" link set lo up; ip -n "${P}-b" link set lo up

COMMON=(--mac 02:00:00:00:00:10 --ip 10.0.0.100/24 --service counter:7000 --service echo:7
        --service udp-counter:7001 --isn-key 00112233445566778899aabbccddeeff
        --arbiter "file:$ARB" --admin 127.0.0.1:7410)
N[A]=0; N[B]=0

start_node() {  # start_node A|B ROLE
    local n=$1 role=$2 ns tap br listen peer
    if [ "$n" = A ]; then ns=${P}-a tap=tapA br=brA listen=192.168.77.1:7400 peer=192.168.77.2:7400
    else ns=${P}-b tap=tapB br=brB listen=192.168.77.2:7400 peer=192.168.77.1:7400; fi
    N[$n]=$((N[$n] + 1))
    LOG[$n]=$OUT/$n${N[$n]}.log
    ip netns exec "$ns" "$FTAP" run --role "$role" --tap "$tap" --bridge "$br" "${COMMON[@]}" \
        --listen "$listen" --peer "$peer" >"${LOG[$n]}" 2>&1 &
    PID[$n]=$!
    FTAP_PIDS+=("${PID[$n]}")
    stamp "start $n as $role"
}

kill_node() {  # kill_node A|B
    stamp "kill -9 $1"
    kill -KILL "${PID[$1]}"
    wait "${PID[$1]}" 2>/dev/null || true
    ftap_forget "${PID[$1]}"
}

wait_log() {  # wait_log A|B REGEX TIMEOUT_S -> prints the matching line
    local n=$1 re=$2 t=$3 i
    for ((i = 0; i < t * 50; i++)); do
        if grep -qE "$re" "${LOG[$n]}"; then
            grep -E "$re" "${LOG[$n]}" | tail -n 1 | sed -E 's/^[^ ]+ [a-z]+ ftap\.tap.: (\[[A-Za-z]+\] )?//'
            return 0
        fi
        ftap_alive "${PID[$n]}" || { echo "node $n exited while waiting for: $re" >&2; return 1; }
        sleep 0.02
    done
    echo "node $n: no log line matching '$re' within ${t}s" >&2
    return 1
}

status() {  # status A|B: first line of `ftap status`
    local ns=${P}-a; [ "$1" = B ] && ns=${P}-b
    ip netns exec "$ns" "$FTAP" status --admin 127.0.0.1:7410 | head -n 1
}

status_json() {
    local ns=${P}-a; [ "$1" = B ] && ns=${P}-b
    ip netns exec "$ns" "$FTAP" status --admin 127.0.0.1:7410 --json
}

# The client: one TCP connection doing INCR back to back (1 ms apart) until
# $STOP exists, then a summary that places each long wait after the event
# that preceded it.
cat >"$OUT/client.py" <<'EOF'
import json, os, socket, sys, time
stop, events_path, pause = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection(("10.0.0.100", 7000), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(30)
buf, vals, times, err = b"", [], [], None
t_start = time.time(); last_print = t_start
try:
    while not os.path.exists(stop):
        if os.path.exists(pause):  # between two requests: no request waits
            time.sleep(0.005)
            continue
        t0 = time.time()
        s.sendall(b"INCR\n")
        while b"\n" not in buf:
            d = s.recv(4096)
            if not d:
                raise ConnectionError("connection closed by the appliance")
            buf += d
        line, _, buf = buf.partition(b"\n")
        vals.append(int(line)); times.append((t0, time.time()))
        if time.time() - last_print >= 1.0:
            last_print = time.time()
            print(f"    client: {len(vals)} INCRs, last value {vals[-1]}", flush=True)
        time.sleep(0.001)
except Exception as e:
    err = f"{type(e).__name__}: {e}"
events = []
for l in open(events_path):
    t, _, what = l.strip().partition(" ")
    events.append((float(t), what))
gaps = sorted(((t1 - t0, t0) for t0, t1 in times), reverse=True)
bad = [i for i in range(1, len(vals)) if vals[i] != vals[i - 1] + 1]
print()
print("=== what the client saw (one TCP connection, INCR every ~1 ms)")
print(f"    {len(vals)} INCRs over {time.time() - t_start:.1f} s, values {vals[0] if vals else '-'}..{vals[-1] if vals else '-'}")
print(f"    consecutive, nothing lost or repeated: {'yes' if not bad and vals and vals[0] == 1 else 'NO'}"
      + (f" (first break after value {vals[bad[0] - 1]}: {vals[bad[0]]})" if bad else ""))
print(f"    connection reset or error: {err or 'none'}")
print("    longest waits for a reply (what a user would notice):")
for g, t0 in gaps[:4]:
    before = [e for e in events if e[0] <= t0 + g]
    ev = f"{before[-1][1]} {t0 - before[-1][0]:+.3f} s" if before else "-"
    print(f"      {g * 1000:7.1f} ms  (request sent {t0 - t_start:5.2f} s into the run; last event: {ev})")
if gaps and gaps[0][0] > 0.15:
    print("    (a wait of ~200 ms right after a kill: the request went to the dying node and was lost;")
    print("     the client's TCP sends it again after its minimum retransmission timeout, 200 ms on Linux,")
    print("     and the survivor, which already took over, answers it)")
json.dump({"n": len(vals), "ok": not bad and not err and bool(vals), "max_ms": gaps[0][0] * 1000 if gaps else 0},
          open(stop + ".json", "w"))
sys.exit(0 if not bad and not err and vals else 1)
EOF

b "ftap re-protection demo: a pair that survives two failures (namespaces $P-*, logs in $OUT)"

b "1. Start the pair: A primary, B backup"
start_node A primary
wait_log A "waiting for the backup" 20 >/dev/null
start_node B backup
say "A: $(wait_log A 'joined at epoch 1: protected, serving' 20)"
say "B: $(wait_log B 'joined primary as backup' 20)"
ftap_wait_ping "${P}-c" "${PID[A]}" 20
say "A: $(status A)"
say "B: $(status B)"

b "   A client starts INCR on one TCP connection (it runs through every step)"
ip netns exec "${P}-c" python3 -u "$OUT/client.py" "$STOP" "$EVENTS" "$PAUSEF" &
CLIENT_PID=$!
sleep "$PAUSE"

failure() {  # failure DEAD SURVIVOR STEP
    local dead=$1 live=$2 step=$3
    b "$step. kill -9 $dead (the primary)"
    kill_node "$dead"
    say "$live: $(wait_log "$live" 'LIVE in epoch' 15)"
    say "$live: $(status "$live")"
    say "the pair is down to one node: one more failure now would stop the service"
    sleep "$PAUSE"

    b "$((step + 1)). Restart $dead with --role backup: it joins $live by state transfer"
    start_node "$dead" backup
    say "$dead: $(wait_log "$dead" 'joining primary at epoch' 20)"
    say "$live: $(wait_log "$live" 'snapshot pause' 20)"
    say "$dead: $(wait_log "$dead" 'restored snapshot at log index' 30)"
    say "$live: $(wait_log "$live" 'protected again' 30)"
    stamp "$dead rejoined"
    say "$live: $(status "$live")"
    say "$dead: $(status "$dead")"
    sleep "$PAUSE"
}

failure A B 2
failure B A 4

b "6. Both nodes hold the same state: digests at the same log index (client paused for a moment)"
touch "$PAUSEF"; sleep 0.2
ia=x; ib=y
for i in $(seq 1 50); do
    ja=$(status_json A); jb=$(status_json B)
    ia=$(sed -E 's/.*"applied_index": ([0-9]+).*/\1/' <<<"$ja"); ib=$(sed -E 's/.*"applied_index": ([0-9]+).*/\1/' <<<"$jb")
    if [ "$ia" = "$ib" ]; then
        da=$(sed -E 's/.*"digest": "([0-9a-f]+)".*/\1/' <<<"$ja"); db=$(sed -E 's/.*"digest": "([0-9a-f]+)".*/\1/' <<<"$jb")
        say "A: applied index $ia, state digest $da"
        say "B: applied index $ib, state digest $db  $([ "$da" = "$db" ] && echo '(equal)' || echo '(DIFFERENT!)')"
        break
    fi
    sleep 0.05
done
rm -f "$PAUSEF"
[ "$ia" = "$ib" ] || say "(applied indexes never matched at the same instant: A $ia, B $ib)"
say "arbiter claims (one file per epoch): $(ls "$ARB" | tr '\n' ' ')"

touch "$STOP"
set +e
wait "$CLIENT_PID"; crc=$?
set -e
CLIENT_PID=""
b "Summary"
say "two failures survived: A killed -> B live -> A rejoined; B killed -> A live -> B rejoined"
say "A: $(status A)"
say "B: $(status B)"
if [ "$crc" = 0 ]; then
    say "client: every INCR answered exactly once, in order, on the same connection"
else
    say "client: FAILED (see above)"
    exit 1
fi
