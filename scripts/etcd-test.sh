#!/usr/bin/env bash
# The etcd arbiter (issue 15), in network namespaces, with a real
# three-member etcd cluster (Debian etcd-server 3.4; scripts/deps.sh installs it).
#
#   scripts/etcd-test.sh [--only NAME[,NAME...]] [--repeat N] [--list]
#
# Runs tests/integration/etcd_tests.py through scripts/replication-test.sh
# (fresh topology per test, prefix $FTAP_NS, default "ftapetcd"). Each test
# also creates ${P}-e (the etcd members' namespace, linked to ${P}-a and
# ${P}-b by arbA/arbB) and deletes it; this script deletes it again at the
# end in case a test died. Tests:
#   e1_failover                       SIGKILL A: B claims epoch 2 in etcd and serves
#   e2_member_killed_during_takeover  etcd leader SIGKILLed with A: the takeover succeeds
#   e3_etcd_down_during_takeover      all members down, SIGKILL A: B retries, never exits; members back: B serves
#   e4_cable_pull                     upA + logA down: B takes over, A never wins
#   e4b_host_cut                      upA + logA + arbA down: B takes over, A never wins
#   e6_partition_log_link             logA down: both claim epoch 2, one wins, the other exits 2
#   e7_start_alone_renew_release      A alone renews its lease; gives it up once protected; B takes over at once
#   e5_alone_lease_bound              B alone loses etcd: exits 2 within its bound, before epoch 3 can be granted
# Every test checks from captures on the switch that the appliance's frames
# come from one node's port at a time.
#
# Environment: as scripts/replication-test.sh (FTAP_BIN, FTAP_NS, FTAP_OUT
# default out/etcd, FTAP_REPEAT default 1, FTAP_TEST_TIMEOUT, FTAP_LOG_LEVEL,
# FTAP_KEEP); FTAP_ETCD_TTL (lease seconds, default 2), FTAP_ETCD_FAILOVER_MS (500).
set -euo pipefail
case ${1:-} in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
command -v etcd >/dev/null && command -v etcdctl >/dev/null || {
    echo "etcd-test.sh: etcd and etcdctl are needed (scripts/deps.sh installs etcd-server and etcd-client)" >&2
    exit 2
}
P=${FTAP_NS:-ftapetcd}
cleanup_etcd_ns() {
    # Members left behind by a dead test: only etcd processes inside our own namespace.
    local pid
    if ip netns list | awk '{print $1}' | grep -qxF "${P}-e"; then
        for pid in $(ip netns pids "${P}-e" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns delete "${P}-e" 2>/dev/null || true
    fi
}
trap cleanup_etcd_ns EXIT
rc=0
FTAP_NS=$P FTAP_SUITE_PY=etcd_tests.py FTAP_SUITE_NS=ftapetcd FTAP_SUITE_OUT=etcd FTAP_SUITE_REPEAT=1 \
    "$(dirname "$0")/replication-test.sh" "$@" || rc=$?
exit $rc
