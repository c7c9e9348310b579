"""Where `scripts/bootstrap.sh` installs each program the lab runs.

One lookup for the lab's components and for the tests that decide whether a lab can run,
so a program installed outside PATH (Patroni lives in a virtualenv of its own) is found by
both or by neither.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Patroni pinned from PyPI into a virtualenv the postgres user can read (bootstrap.sh;
# why 3.1.2: lab/components/patroni.py).
PATRONI_BIN = Path("/opt/tricenter/patroni/bin")
# tricenter's own environment (supervisord), and the one its Python daemons (Swift, the
# sample app) run from as an unprivileged user, who cannot enter a .venv under /root.
VENV_BIN = Path(sys.executable).parent
SERVICES_BIN = Path("/opt/tricenter/services/bin")


@dataclass(frozen=True)
class Binary:
    """A program the lab runs, where bootstrap puts it, and what provides it."""

    name: str
    path: Path
    provided_by: str

    def installed(self) -> bool:
        return self.path.is_file() and shutil.which(str(self.path)) is not None


BINARIES: dict[str, Binary] = {b.name: b for b in (
    Binary("etcd", Path("/usr/bin/etcd"), "Debian package etcd-server"),
    Binary("etcdctl", Path("/usr/bin/etcdctl"), "Debian package etcd-client"),
    Binary("postgres", PG_BIN / "postgres", "Debian package postgresql-15"),
    Binary("pg_ctl", PG_BIN / "pg_ctl", "Debian package postgresql-15"),
    Binary("psql", PG_BIN / "psql", "Debian package postgresql-15"),
    Binary("initdb", PG_BIN / "initdb", "Debian package postgresql-15"),
    Binary("pg_rewind", PG_BIN / "pg_rewind", "Debian package postgresql-15"),
    Binary("patroni", PATRONI_BIN / "patroni", "scripts/bootstrap.sh (Patroni virtualenv)"),
    # runs the postgresql_patroni role's launcher (templates/patroni_launcher.py.j2)
    Binary("patroni-python", PATRONI_BIN / "python", "scripts/bootstrap.sh (Patroni virtualenv)"),
    Binary("patronictl", PATRONI_BIN / "patronictl", "scripts/bootstrap.sh (Patroni virtualenv)"),
    Binary("haproxy", Path("/usr/sbin/haproxy"), "Debian package haproxy"),
    Binary("sshd", Path("/usr/sbin/sshd"), "Debian package openssh-server"),
    Binary("rsync", Path("/usr/bin/rsync"), "Debian package rsync"),  # migration: file trees
    Binary("pgbackrest", Path("/usr/bin/pgbackrest"), "Debian package pgbackrest"),
    Binary("prometheus", Path("/usr/bin/prometheus"), "Debian package prometheus"),
    Binary("promtool", Path("/usr/bin/promtool"), "Debian package prometheus"),
    Binary("alertmanager", Path("/usr/bin/prometheus-alertmanager"),
           "Debian package prometheus-alertmanager"),
    Binary("amtool", Path("/usr/bin/amtool"), "Debian package prometheus-alertmanager"),
    Binary("services-python", SERVICES_BIN / "python", "scripts/bootstrap.sh (services virtualenv)"),
    Binary("swift-proxy-server", SERVICES_BIN / "swift-proxy-server",
           "scripts/bootstrap.sh (services virtualenv)"),
    Binary("supervisord", VENV_BIN / "supervisord", "pip package supervisor (.venv)"),
)}


def path(name: str) -> str:
    """The absolute path of a lab program, as a string for a command line."""
    return str(BINARIES[name].path)


def missing() -> list[Binary]:
    """The lab's programs that are not installed where bootstrap puts them."""
    return [b for b in BINARIES.values() if not b.installed()]
