#!/usr/bin/env bash
# Network-namespace topology for ftap's integration tests and demos.
#
#   scripts/netns.sh up|down|status [PREFIX]
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
set -euo pipefail

usage() { echo "usage: $0 up|down|status [PREFIX]" >&2; exit 2; }

[ $# -ge 1 ] || usage
cmd=$1
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

case $cmd in
    up) up ;;
    down) down ;;
    status) status ;;
    *) usage ;;
esac
