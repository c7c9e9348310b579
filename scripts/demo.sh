#!/usr/bin/env bash
# The main job on the embedded default: check the sample inventory and show capacity.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/bootstrap.sh
.venv/bin/tricenter validate
.venv/bin/tricenter capacity
