#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests against the real lab (the lab
# fixture brings it up once and always tears it down), then the partition tests against a
# second lab in network-namespace mode. Extra arguments go to pytest (every run); with a
# test named among them, only pytest on those.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/bootstrap.sh

# With CI set, a skipped test fails the run (tests/conftest.py): a CI that could not start
# the lab must not pass. The last lines of each run say how many integration tests ran
# against the lab.
status=0
named=0
for arg in "$@"; do
  case "$arg" in -*) ;; *) named=1 ;; esac
done
if [ "$named" = 1 ]; then  # the tests named on the command line, as pytest runs them
  exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
fi
# The unit tests on every core (pytest-xdist); the lab tests alone, one at a time, since
# they share one lab and time its failovers.
.venv/bin/python -m pytest -p no:cacheprovider -n auto tests/unit "$@" || status=$?
.venv/bin/python -m pytest -p no:cacheprovider tests/integration "$@" || status=$?

# The partition tests (marker netns_only: main-center-isolation) cut a center off for real,
# which needs each center in its own network namespace: root and `ip netns`. They run
# against a lab of their own, in netns mode, brought up from nothing and reset afterwards.
if [ "$(id -u)" != 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "partition tests not run: they need root and \`ip netns\` (network-namespace mode)" >&2
  [ -n "${CI:-}" ] && exit 1
  exit "$status"
fi
netns_lab="$(mktemp -d /var/tmp/tricenter-lab-netns.XXXXXX)"
partitions=0
TRICENTER_LAB_NETNS=1 TRICENTER_LAB_DIR="$netns_lab" \
  .venv/bin/python -m pytest -p no:cacheprovider -m netns_only tests/integration "$@" || partitions=$?
TRICENTER_LAB_DIR="$netns_lab" .venv/bin/tricenter lab reset --yes >/dev/null 2>&1 || rmdir "$netns_lab" 2>/dev/null || true
[ "$status" = 0 ] && status=$partitions
exit "$status"
