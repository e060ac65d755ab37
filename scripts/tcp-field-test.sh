#!/usr/bin/env bash
# TCP on real networks (issue 13), in network namespaces.
#
#   scripts/tcp-field-test.sh [--only NAME[,NAME...]] [--repeat N] [--list]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set. For every test
# of tests/integration/tcp_field_tests.py, FTAP_REPEAT times (default 1), it
# builds a fresh topology (scripts/netns.sh, prefix $FTAP_NS, default
# "ftaptcp"), runs that one test from ${P}-c, kills anything the test left
# running and removes the namespaces (also ${P}-r and ${P}-m, the MTU test's
# router and client). Tests:
#   loss_solo       echo at 1/3/8 % loss both ways, then 3 % one way each, solo; SHA-256 verified;
#                   a kernel echo server on the same switch for reference (printed only)
#   loss_pair       the same against the replicated pair
#   syn_flood_pair  hping3 --rand-source -S for 5 s paced (-i u40), then --flood (~200k SYN/s), while a
#                   client runs INCR from its address and from fresh ones: served during both floods,
#                   the pair stays protected (SYN admission sheds SYNs before logging)
#   mtu_hop_pair    bulk echo to a client behind a 1,400-byte-MTU router hop (ICMP fragmentation needed)
#
# Environment: as scripts/replication-test.sh (FTAP_BIN, FTAP_NS, FTAP_OUT,
# FTAP_REPEAT, FTAP_TEST_TIMEOUT, FTAP_LOG_LEVEL, FTAP_KEEP), plus
# FTAP_FIELD_LOSS_MB, FTAP_FIELD_BULK_MB, FTAP_FIELD_FLOOD_S (see tcp_field_tests.py).
# Needs hping3 and nft (scripts/deps.sh installs them).
#
# Output: "PASS name[rN] (secs)" / "FAIL name[rN] (secs)" lines with notes
# (throughput, recovery counters, flood cost), a per-test summary of the
# measurements, and a final line "N passed, M failed".
set -euo pipefail
case ${1:-} in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
P=${FTAP_NS:-ftaptcp}
rc=0
FTAP_NS=$P FTAP_SUITE_PY=tcp_field_tests.py FTAP_SUITE_NS=ftaptcp FTAP_SUITE_OUT=tcp-field FTAP_SUITE_REPEAT=1 \
    "$(dirname "$0")/replication-test.sh" "$@" || rc=$?
for ns in "$P-r" "$P-m"; do
    ip netns list | awk '{print $1}' | grep -qxF "$ns" && ip netns delete "$ns"
done
exit "$rc"
