#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests against the real lab
# (the lab fixture brings it up once and always tears it down). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/bootstrap.sh

# A network partition is real only with a namespace per center (root and `ip netns`):
# the isolation tests get a lab of their own in that mode first.
if [ "$(id -u)" -eq 0 ] && ip netns list >/dev/null 2>&1 && [ -z "${TRICENTER_SKIP_NETNS:-}" ]; then
  netns_lab=/var/tmp/tricenter-netns-lab-$$
  echo "test: partition tests on a netns-mode lab in $netns_lab"
  TRICENTER_LAB_NETNS=1 TRICENTER_LAB_DIR="$netns_lab" \
    .venv/bin/python -m pytest -p no:cacheprovider -q -m lab -k isolat tests/integration
  rm -rf "$netns_lab"
fi

exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
