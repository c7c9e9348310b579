#!/usr/bin/env bash
# Install what tricenter needs on a fresh Debian 12 machine: the lab's daemons from
# Debian (when root) and the Python packages into .venv. Idempotent and quick on re-runs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

debian_packages=(etcd-server etcd-client haproxy openssh-server prometheus pgbackrest iproute2
                 python3-venv prometheus-alertmanager prometheus-postgres-exporter)
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

# Patroni runs as the postgres user, so it lives outside the checkout (which postgres may
# not be able to reach) in a venv of its own on Debian's python (a pyenv python under
# /root is not executable by postgres). Why 3.1.2: lab/components/patroni.py.
patroni_venv=/opt/tricenter/patroni
patroni_stamp="$patroni_venv/.tricenter-installed"
patroni_want="$(sha256sum "$patroni_lock" | cut -d' ' -f1)"
if [ "$(id -u)" -eq 0 ] && [ "$(cat "$patroni_stamp" 2>/dev/null)" != "$patroni_want" ]; then
  echo "bootstrap: installing Patroni from $patroni_lock into $patroni_venv"
  rm -rf "$patroni_venv"
  /usr/bin/python3 -m venv "$patroni_venv"
  "$patroni_venv/bin/python" -m pip install -q --no-deps -r "$patroni_lock"
  "$patroni_venv/bin/python" -m pip check
  echo "$patroni_want" > "$patroni_stamp"
fi
# The lab's Python daemons (Swift, the sample app) run as the unprivileged tricenter-lab
# user, which cannot run a .venv whose interpreter lives under /root: they get a venv of
# their own on Debian's python (see lab/users.py).
services_venv=/opt/tricenter/services
services_stamp="$services_venv/.tricenter-installed"
services_want="$(sha256sum "$services_lock" | cut -d' ' -f1)"
if [ "$(id -u)" -eq 0 ] && [ "$(cat "$services_stamp" 2>/dev/null)" != "$services_want" ]; then
  echo "bootstrap: installing the lab's Python daemons from $services_lock into $services_venv"
  rm -rf "$services_venv"
  /usr/bin/python3 -m venv "$services_venv"
  "$services_venv/bin/python" -m pip install -q --no-deps -r "$services_lock"
  "$services_venv/bin/python" -m pip check
  echo "$services_want" > "$services_stamp"
fi
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
