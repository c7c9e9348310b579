#!/usr/bin/env bash
# Install what tricenter needs on a fresh Debian 12 machine: the lab's daemons from
# Debian (when root) and the Python packages into .venv. Idempotent and quick on re-runs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

debian_packages=(etcd-server etcd-client haproxy openssh-server prometheus pgbackrest iproute2
                 python3-venv)
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

# Patroni runs as the postgres user, so it lives outside the checkout (which postgres may
# not be able to reach) in a venv of its own on Debian's python (a pyenv python under
# /root is not executable by postgres), pinned: see lab/components/patroni.py.
patroni_venv=/opt/tricenter/patroni
patroni_pin="patroni[etcd3]==3.1.2"
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- "$patroni_venv/bin/patroni" --version 2>/dev/null | grep -q " 3.1.2$"; then
  echo "bootstrap: installing $patroni_pin into $patroni_venv"
  rm -rf "$patroni_venv"
  /usr/bin/python3 -m venv "$patroni_venv"
  "$patroni_venv/bin/python" -m pip install -q "$patroni_pin" "psycopg[binary]>=3.1,<4"
fi
# The lab's Python daemons (Swift, the sample app) run as the unprivileged tricenter-lab
# user, which cannot run a .venv whose interpreter lives under /root: they get a venv of
# their own on Debian's python, with the versions pyproject.toml allows (see lab/users.py).
services_venv=/opt/tricenter/services
services_pins=("swift>=2.38,<3" "psycopg[binary]>=3.1,<4")
if [ "$(id -u)" -eq 0 ] && ! "$services_venv/bin/python" -c "import swift, psycopg" 2>/dev/null; then
  echo "bootstrap: installing ${services_pins[*]} into $services_venv"
  rm -rf "$services_venv"
  /usr/bin/python3 -m venv "$services_venv"
  "$services_venv/bin/python" -m pip install -q "${services_pins[@]}"
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.tricenter-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
