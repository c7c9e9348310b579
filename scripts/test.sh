#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests against the real lab
# (the lab fixture brings it up once and always tears it down). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/bootstrap.sh

# With CI set, a skipped test fails the run (tests/conftest.py): a CI that could not start
# the lab must not pass. The last lines say how many integration tests ran against the lab.
status=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?

# The partition drill (marker netns_only, deselected above) needs a lab in network-namespace
# mode: after the loopback lab is down, a second pass brings one up in its own directory
# (same slot: its addresses are 172.31.x, not loopback), runs main-center-isolation once
# and takes it down. Only when the whole suite was asked for (no test paths given).
for arg in "$@"; do
    [[ "$arg" == -* ]] || exit "$status"
done
netns_dir="$(.venv/bin/python -c 'from lab.context import lab_dir; print(lab_dir())')-netns"
TRICENTER_LAB_NETNS=1 TRICENTER_LAB_DIR="$netns_dir" .venv/bin/python -m pytest -p no:cacheprovider "$@" \
    "tests/integration/test_drills.py::test_isolated_main_loses_nothing_and_no_split_brain" || status=$?
exit "$status"
