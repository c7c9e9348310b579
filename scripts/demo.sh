#!/usr/bin/env bash
# The main job on the embedded default (the lab), the whole story on one machine:
# set up, check the sample inventory, bring the three centers up as real processes,
# run the main-center-loss drill, print the verdict and where the HTML report is.
# The lab stays up afterwards for exploring; `.venv/bin/tricenter lab down` stops it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
tricenter=.venv/bin/tricenter

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/5 set up (Debian packages, .venv)"
bash scripts/bootstrap.sh

step "2/5 the sample inventory: Guangdong provincial cloud"
"$tricenter" validate
# exit 1: the sample's remote center is sized for platform and critical systems, so the
# `important` tier's promise to recover there after a city loss is broken — shown on purpose
"$tricenter" capacity || echo "capacity: exit $? (a recovery promise does not fit, named above)"

step "3/5 the lab: main, same-city and remote centers on this machine"
"$tricenter" lab up

step "4/5 DR drill: unplanned loss of the main center"
set +e
"$tricenter" drill run main-center-loss
verdict=$?
set -e

step "5/5 where things are"
"$tricenter" drill history || true
cat <<TXT

The lab is still running:  $tricenter lab status   (stop it: $tricenter lab down)
Other drills:              $tricenter drill list
The drill's report (HTML, Markdown, JSON, timeline plot) is in the directory printed above.
TXT
exit "$verdict"
