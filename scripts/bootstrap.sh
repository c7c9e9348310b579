#!/usr/bin/env bash
# Install what tricenter needs on a fresh Debian 12 machine: the lab's daemons from
# Debian (when root) and the Python packages into .venv. Idempotent and quick on re-runs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

debian_packages=(etcd-server etcd-client haproxy openssh-server prometheus pgbackrest iproute2
                 python3-venv prometheus-alertmanager prometheus-postgres-exporter
                 rsync)
[ -x /usr/lib/postgresql/15/bin/postgres ] || debian_packages+=(postgresql-15)

missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    # policy-rc.d on these machines keeps packages from starting their own services;
    # the lab starts every daemon itself.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: not root; the lab needs these Debian packages: ${missing[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}

# Every Python package comes from a committed lock, so a fresh machine gets what was tested
# (an unpinned ydiff 1.5 once broke patronictl at import). After changing pyproject.toml:
#   .venv/bin/pip freeze --exclude-editable > scripts/constraints/venv.txt
# and likewise from /opt/tricenter/{patroni,services}/bin/pip freeze for the other two.
venv_lock=scripts/constraints/venv.txt
patroni_lock=scripts/constraints/patroni.txt
services_lock=scripts/constraints/services.txt

# A venv of Debian's python at DIR holding exactly LOCK, rebuilt when LOCK changes
# (root only: it lives under /opt for accounts that cannot reach the checkout).
locked_venv() {
  local dir="$1" lock="$2" what="$3"
  local stamp="$dir/.tricenter-installed" want
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [ "$(id -u)" -ne 0 ] || [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "bootstrap: installing $what from $lock into $dir"
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/python" -m pip install -q --no-deps -r "$lock"
  "$dir/bin/python" -m pip check
  echo "$want" > "$stamp"
}
# Patroni runs as the postgres user, so it lives outside the checkout (which postgres may
# not be able to reach) on Debian's python (a pyenv python under /root is not executable
# by postgres). Why 3.1.2: lab/components/patroni.py.
locked_venv /opt/tricenter/patroni "$patroni_lock" "Patroni"
# The lab's Python daemons (Swift, the sample app) run as the unprivileged tricenter-lab
# user, which cannot run a .venv whose interpreter lives under /root (see lab/users.py).
locked_venv /opt/tricenter/services "$services_lock" "the lab's Python daemons"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.tricenter-installed
want="$(cat pyproject.toml "$venv_lock" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages into .venv from $venv_lock"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c "$venv_lock" -e ".[test]"
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
