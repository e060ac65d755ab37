#!/usr/bin/env bash
# Health tracking and failover that picks the healthy node (issue 11), in
# network namespaces.
#
#   scripts/health-test.sh [--only NAME[,NAME...]] [--repeat N] [--list]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set. For every test
# of tests/integration/health_tests.py, FTAP_REPEAT times (default 1), it
# builds a fresh topology (scripts/netns.sh, prefix $FTAP_NS, default
# "ftaphlt"), runs that one test from ${P}-c (the test starts its own pair
# with a fresh arbiter directory; a real TCP client doing INCR runs through
# every scenario), kills anything the test left running and removes the
# namespaces. Tests:
#   s1_uplink_down_primary        upA down, log link up: A hands over to B at once
#   s2_cable_pull_primary         upA + logA down at once: B takes over, A never wins an epoch
#   s3_uplink_down_backup         upB down: no takeover, the primary stays, switchover refused
#   s4_uplink_restored_switchover upB down then up: B healthy again, switchover to B works
#   s5_arbiter_unwritable         arbiter dir immutable, SIGKILL A: B retries, never exits, then serves
#   s5b_arbiter_unwritable_handover  the same during a health handover (upA down)
#   s5c_arbiter_unwritable_switchover  switchover during an arbiter outage: the pair survives
#   s6_unhealthy_backup_waits     upB down, SIGKILL A: B waits; upB up: B claims and serves
#   s8_alone_links_back_garp      B serving alone loses upB: stays live; upB back: GARP again
#   s9_track_interface_and_script --no-track-bridge, --track-interface, --track-script: each hands over
#   s10_both_unhealthy            both uplinks down: the primary stays; upB back: A hands over
#   s11_alternating_uplink_failures  six uplink failures in turn: six handovers, one TCP connection
#   s12_alone_superseded          B alone, an epoch-3 file appears: B exits 2 within ~T/2
#   s13_unhealthy_during_switchover  upB down racing a switchover: the healthy A serves within 1 s
#   s7_different_arbiters         different arbiter dirs refused at hello, naming both; B exits 3
#   trials_cable_pull             FTAP_HEALTH_TRIALS (default 2) pulls of each kind: B serves, per-trial stall
#   trials_stall_bound            10 pulls of each kind: every stall <= failover timeout + 100 ms
#   k1_keepalived_comparison      only with FTAP_HEALTH_KEEPALIVED=1 (needs keepalived): a VRRP pair
#                                 with the same pulls, for comparison (recorded, not checked)
#
# Environment: FTAP_BIN, FTAP_SCRATCH_PATH, FTAP_BUILD_CONFIG (see scripts/lib.sh);
# FTAP_NS; FTAP_REPEAT; FTAP_OUT (artifacts, default out/health: r<rep>/<test>/
# with A1.log, B1.log, arbiter/, measure.json, trials.json); FTAP_TEST_TIMEOUT
# (seconds per test run, default 300); FTAP_LOG_LEVEL; FTAP_KEEP=1 keeps
# captures of passing runs; FTAP_HEALTH_TRIALS, FTAP_HEALTH_FAILOVER_MS (500),
# FTAP_HEALTH_STALL_SLACK_MS (100), FTAP_HEALTH_KEEPALIVED=1 (see health_tests.py).
#
# Output: "PASS name[rN] (secs)" / "FAIL name[rN] (secs)" / "XFAIL name[rN]"
# (expected failure: a feature not built yet; counted apart, not as a pass)
# lines with notes (measurements), the daemon logs of failed runs, a per-test
# summary of the measurements, and a final line
# "N passed, M failed[, K expected failures (XFAIL)]". Exit status 0 iff nothing failed.
set -euo pipefail
case ${1:-} in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
# The same runner as the replicated-pair suite, with this suite's file and defaults.
FTAP_SUITE_PY=health_tests.py FTAP_SUITE_NS=ftaphlt FTAP_SUITE_OUT=health FTAP_SUITE_REPEAT=1 \
    exec "$(dirname "$0")/replication-test.sh" "$@"
