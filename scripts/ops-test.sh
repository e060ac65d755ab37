#!/usr/bin/env bash
# Operating ftap as a production daemon (issue 16), in network namespaces.
#
#   scripts/ops-test.sh [--only NAME[,NAME...]] [--repeat N] [--list]
#
# Builds ftap (swift build -c release) unless FTAP_BIN is set. For every test
# of tests/integration/ops_tests.py, FTAP_REPEAT times (default 1), it builds a
# fresh topology (scripts/netns.sh, prefix $FTAP_NS, default "ftapops"), runs
# that one test from ${P}-c, kills anything the test left running and removes
# the namespaces. Tests:
#   config_and_check       TOML keys = every run option, check-config (all problems, FILE:LINE,
#                          exit 64), all missing flags at once, --config=FILE, --version commit,
#                          systemd-analyze verify contrib/ftap@.service
#   config_runs_a_pair     a pair from TOML files; booleans, arrays; the command line wins
#   readiness_and_journal  READY=1, WATCHDOG=1 (half of WATCHDOG_USEC), STOPPING=1 on a test
#                          datagram socket (path and abstract); journald <N> prefixes
#   hooks_and_metrics      --notify-script events across join, switchover, failover, rejoin,
#                          stop; # HELP on every metric, build info, claim histogram
#   restart_same_flags     5 x kill -9 the primary and restart it with identical flags: it
#                          rejoins, protected again, a TCP counter continuous
#   cold_restart           both restarted: neither serves; --new-pair starts a new pair
#
# Environment: FTAP_BIN, FTAP_NS, FTAP_REPEAT, FTAP_OUT (default out/ops),
# FTAP_TEST_TIMEOUT, FTAP_LOG_LEVEL, FTAP_CYCLES (restart cycles, default 5).
# Output: "PASS/FAIL name[rN] (secs)" lines and a final "N passed, M failed".
set -euo pipefail
case ${1:-} in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
# The same runner as the replicated-pair suite, with this suite's file and defaults.
FTAP_SUITE_PY=ops_tests.py FTAP_SUITE_NS=ftapops FTAP_SUITE_OUT=ops FTAP_SUITE_REPEAT=1 \
    exec "$(dirname "$0")/replication-test.sh" "$@"
