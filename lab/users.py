"""The unprivileged account the lab's daemons run as, and what it may read.

Only what must be root stays root: supervisord (it switches users), sshd (it logs users
in) and `ip netns exec` (it enters a namespace, then setpriv drops to the account).
PostgreSQL and Patroni run as `postgres`; etcd, HAProxy, Prometheus, Swift and the sample
app run as SERVICE_USER. The account is a system user created on first need, so a fresh
CI machine (root, nothing set up) gets it from `lab up` itself.

The Python daemons (Swift, the sample app) cannot use the checkout's .venv: its
interpreter may live under /root (pyenv), which the account cannot enter. Bootstrap builds
a services venv (lab/binaries.py) on Debian's python for them, and the lab code they import is copied under
the lab directory, so a checkout under /root works too.
"""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab import binaries

if TYPE_CHECKING:
    from lab.context import LabContext

SERVICE_USER = "tricenter-lab"
# What the lab's Python daemons import from the checkout: the `lab` package, and the alert
# receiver (standard library only) of the monitoring plane.
CODE_PATHS = ("lab", "monitoring/__init__.py", "monitoring/alert_receiver.py")


class ServiceAccountError(RuntimeError):
    """The service account cannot be created or cannot reach what it must run."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def service_account() -> Account | None:
    """The daemons' account, created when missing; None when not root (everything then
    runs as the invoking user, which is unprivileged already)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True, text=True)
        try:  # another lab slot may have created it a moment ago: that is fine
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise ServiceAccountError(f"cannot create the system user {SERVICE_USER}: "
                                      f"{done.stderr.strip() or 'useradd failed'}") from None
    return Account(SERVICE_USER, entry.pw_uid, entry.pw_gid)


def hand_over(*paths: Path, recursive: bool = False) -> None:
    """Make paths owned by the service account (no-op when not root). Recursive for data
    directories an older lab wrote as root. A running daemon may delete a file while the
    walk passes (Swift's SQLite journals come and go): a path gone is nobody's to own."""
    account = service_account()
    if account is None:
        return
    for path in paths:
        targets = [path]
        if recursive and path.is_dir():
            targets += [Path(d) / n for d, dirs, files in os.walk(path) for n in (*dirs, *files)]
        for target in targets:
            try:
                os.chown(target, account.uid, account.gid, follow_symlinks=False)
            except FileNotFoundError:
                if target == path:
                    raise


def share_directory(directory: Path) -> None:
    """Let the service account's group enter (not list) a root-owned directory, e.g. the
    secrets directory: it reads the files handed over to it, and no other."""
    account = service_account()
    if account is None:
        return
    os.chown(directory, 0, account.gid)
    directory.chmod(0o710)


def python() -> str:
    """The interpreter for the lab's Python daemons."""
    candidate = binaries.BINARIES["services-python"].path
    return str(candidate) if candidate.exists() else sys.executable


def python_bin(name: str) -> str:
    """A console script (e.g. swift-proxy-server) next to that interpreter."""
    return str(Path(python()).parent / name)


def code_dir(lab: "LabContext") -> Path:
    """Where the daemons import the lab package from (their PYTHONPATH)."""
    return lab.path("code")


def install_code(lab: "LabContext") -> Path:
    """Copy CODE_PATHS under the lab directory, readable by the service account
    wherever the checkout is. Replaced whole on every `up`: no stale module survives."""
    target = code_dir(lab)
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    for relative in CODE_PATHS:
        source, copy = lab.repo / relative, staging / relative
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
    for directory, dirs, files in os.walk(staging):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(Path(directory) / name, 0o644)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _unreachable_part(path: Path) -> Path | None:
    """The first directory on the way to `path` that others cannot enter, if any."""
    real = Path(os.path.realpath(path))
    for part in reversed((real, *real.parents)):
        mode = part.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return part
    return None


def check_interpreter() -> None:
    """Raise when the service account could not run the daemons' interpreter."""
    if service_account() is None:
        return
    interpreter = python()
    blocked = _unreachable_part(Path(interpreter))
    if blocked is not None:
        raise ServiceAccountError(
            f"the lab's daemons run as {SERVICE_USER}, which cannot run {interpreter} "
            f"({blocked} is closed to other users): run `bash scripts/bootstrap.sh` as root "
            f"to build {binaries.SERVICES_BIN.parent}")
