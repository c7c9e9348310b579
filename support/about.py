"""What is running: tricenter's version and commit, and the versions of the programs the
lab drives. A drill report quotes these so an auditor can tell which build measured it."""
from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# program → (binary name in lab.binaries, arguments that print its version)
COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "postgresql": ("postgres", ("--version",)),
    "patroni": ("patroni", ("--version",)),
    "etcd": ("etcd", ("--version",)),
    "haproxy": ("haproxy", ("-v",)),
    "pgbackrest": ("pgbackrest", ("version",)),
    "prometheus": ("prometheus", ("--version",)),
}
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


def version() -> str:
    try:
        return metadata.version("tricenter")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def commit() -> str | None:
    """The checkout's commit, with '-dirty' when files differ from it; None outside git."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None
    head = git("rev-parse", "--short=12", "HEAD")
    if head is None:
        return None
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def component_version(binary: str, args: tuple[str, ...]) -> str | None:
    """The first version number the program prints; None when it is not installed."""
    from lab.binaries import BINARIES
    program = BINARIES[binary]
    if not program.installed():
        return None
    try:
        done = subprocess.run([str(program.path), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _VERSION.search(done.stdout + done.stderr)
    return found.group(0) if found else None


def component_versions() -> dict[str, str | None]:
    return {name: component_version(binary, args) for name, (binary, args) in COMPONENTS.items()}


def about() -> dict:
    return {"tricenter": version(), "commit": commit(), "components": component_versions()}
