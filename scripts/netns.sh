#!/usr/bin/env bash
# Network-namespace topology for ftap's integration tests and demos.
#
#   scripts/netns.sh up|down|status [PREFIX]
#   scripts/netns.sh mirror a|b|off|status [PREFIX]
#
# PREFIX defaults to $FTAP_NS, else "ftap". Every name below is created by
# this script and `down` deletes exactly these namespaces (missing ones are
# ignored). `up` runs `down` first, so it is idempotent.
#
#   ${P}-c   client   c0 10.0.0.1/24 ----+            (IPv6 left on: noise)
#                                        | sw-c
#   ${P}-sw  switch   bridge br0 --------+---- sw-a ---- upA  bridge brA  (${P}-a)
#                                        |                     + tapA (ftap, created by the daemon)
#                                        +---- sw-b ---- upB  bridge brB  (${P}-b)
#                                                              + tapB (later)
#   ${P}-a   logA 192.168.77.1/24 <----------------> logB 192.168.77.2/24  ${P}-b
#
# IPv6 is disabled in sw, a and b; bridge netfilter is off there, so the
# bridges forward malformed frames untouched. Nothing touches the root
# namespace: every veth is created directly inside its namespaces.
#
# `mirror a` makes the switch copy every frame it sends to node A's port
# (sw-a) to node B's port (sw-b), for frames addressed to the appliance MAC
# ($FTAP_MAC, default 02:00:00:00:00:10) only: tc clsact on the egress of
# sw-a, a u32 match on the destination MAC, action `mirred egress mirror`;
# `mirror b` the reverse (and removes the first); `off` removes both. The
# mirror must follow the primary (set it to the primary's node after every
# takeover or switchover): the standby then receives a copy of what the
# switch sends the primary and keeps it for a takeover (README: Mirroring).
# Only one direction at a time: with both, each copy egresses the other
# port and is mirrored back, until mirred's recursion limit (4) drops it,
# so the primary would receive its own traffic again. Matching the
# destination MAC matters: a whole-port mirror would also copy the
# standby's own broadcasts (its GARPs) back to it.
set -euo pipefail

usage() { echo "usage: $0 up|down|status [PREFIX] | mirror on|off|status [PREFIX]" >&2; exit 2; }

[ $# -ge 1 ] || usage
cmd=$1
sub=""
if [ "$cmd" = mirror ]; then
    [ $# -ge 2 ] || usage
    sub=$2; shift
fi
P=${2:-${FTAP_NS:-ftap}}
case $P in
    ''|*[!A-Za-z0-9_.-]*) echo "netns.sh: bad prefix '$P'" >&2; exit 2 ;;
esac

NS_C="${P}-c"; NS_SW="${P}-sw"; NS_A="${P}-a"; NS_B="${P}-b"
ALL_NS=("$NS_C" "$NS_SW" "$NS_A" "$NS_B")

ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

down() {
    local ns
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            ip netns delete "$ns" || echo "netns.sh: could not delete $ns" >&2
        fi
    done
}

no_ipv6() {  # NS
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
}

# Bridges must be plain L2 switches. With br_netfilter (built into some
# kernels, on by default per namespace) bridged IPv4 passes through
# br_validate_ipv4, which silently drops frames with bad IP checksums or
# lengths before they reach the appliance, and may defragment.
plain_bridges() {  # NS
    local k
    for k in iptables ip6tables arptables; do
        if ip netns exec "$1" test -e "/proc/sys/net/bridge/bridge-nf-call-$k"; then
            ip netns exec "$1" sysctl -qw "net.bridge.bridge-nf-call-$k=0"
        fi
    done
}

up() {
    down
    local ns
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # IPv6 off before any interface exists, so new ones inherit "default".
    no_ipv6 "$NS_SW"; no_ipv6 "$NS_A"; no_ipv6 "$NS_B"
    plain_bridges "$NS_SW"; plain_bridges "$NS_A"; plain_bridges "$NS_B"

    # Switch.
    ip -n "$NS_SW" link add br0 type bridge
    ip -n "$NS_SW" link set br0 up

    # Client <-> switch.
    ip link add c0 netns "$NS_C" type veth peer name sw-c netns "$NS_SW"
    ip -n "$NS_C" addr add 10.0.0.1/24 dev c0
    ip -n "$NS_C" link set c0 up

    # Nodes: a bridge each, with an uplink to the switch.
    local n lower
    for n in A B; do
        lower=$(printf '%s' "$n" | tr 'AB' 'ab')
        ns="${P}-${lower}"
        ip -n "$ns" link add "br$n" type bridge
        ip -n "$ns" link set "br$n" up
        ip link add "up$n" netns "$ns" type veth peer name "sw-$lower" netns "$NS_SW"
        ip -n "$ns" link set "up$n" master "br$n"
        ip -n "$ns" link set "up$n" up
    done

    for lower in c a b; do
        ip -n "$NS_SW" link set "sw-$lower" master br0
        ip -n "$NS_SW" link set "sw-$lower" up
    done

    # Log link between the nodes (replication).
    ip link add logA netns "$NS_A" type veth peer name logB netns "$NS_B"
    ip -n "$NS_A" addr add 192.168.77.1/24 dev logA
    ip -n "$NS_B" addr add 192.168.77.2/24 dev logB
    ip -n "$NS_A" link set logA up
    ip -n "$NS_B" link set logB up

    # Belt and braces: IPv6 off on every interface of sw, a and b.
    for ns in "$NS_SW" "$NS_A" "$NS_B"; do
        no_ipv6 "$ns"
    done
}

status() {
    local ns
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            echo "== $ns"
            ip -n "$ns" -br addr
        else
            echo "== $ns (absent)"
        fi
    done
}

# mirror a|b|off|status: see the header.
mirror() {
    local mac=${FTAP_MAC:-02:00:00:00:00:10} port other
    case $mac in
        [0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]) ;;
        *) echo "netns.sh: FTAP_MAC '$mac' is not a MAC address" >&2; exit 2 ;;
    esac
    local h=${mac//:/}
    case $1 in
        a|b|off)
            # The clsact qdiscs stay; only filters change (filter updates do not
            # disturb traffic; replacing a port's qdisc while it carries the new
            # primary's traffic can).
            for port in sw-a sw-b; do
                ip netns exec "$NS_SW" tc qdisc show dev "$port" | grep -q clsact \
                    || ip netns exec "$NS_SW" tc qdisc add dev "$port" clsact
            done
            if [ "$1" != off ]; then
                port=sw-$1; other=$([ "$1" = a ] && echo sw-b || echo sw-a)
                # u32 offsets count from the network header: the destination MAC is
                # the 6 bytes at -14 (u32 matches 4-byte-aligned words).
                ip netns exec "$NS_SW" tc filter replace dev "$port" egress protocol all prio 1 handle 800::800 u32 \
                    match u16 "0x${h:0:4}" 0xffff at -14 match u32 "0x${h:4:8}" 0xffffffff at -12 \
                    action mirred egress mirror dev "$other"
                ip netns exec "$NS_SW" tc filter del dev "$other" egress 2>/dev/null || true
            else
                for port in sw-a sw-b; do
                    ip netns exec "$NS_SW" tc filter del dev "$port" egress 2>/dev/null || true
                done
            fi
            ;;
        status)
            for port in sw-a sw-b; do
                echo "== $port egress"
                ip netns exec "$NS_SW" tc filter show dev "$port" egress
            done
            ;;
        *) usage ;;
    esac
}

case $cmd in
    up) up ;;
    down) down ;;
    status) status ;;
    mirror) mirror "$sub" ;;
    *) usage ;;
esac
