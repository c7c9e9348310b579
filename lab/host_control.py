"""A lab host's control commands: what the lab's runtime inventory names under
`hosts[].control`, so the SSH world (dr/ssh_world.py) drives the lab as it drives real
hosts — over SSH, one host at a time, with each fault armed to undo itself.

Run on a host (`python -m lab.host_control --root R --host main-db --center main --role db
kill`), it acts on that host's programs only: the lab programs of the host's center whose
component the host's role carries (ROLE_COMPONENTS), never the host's sshd (a real host's
sshd outlives its services too), and the postmasters whose postmaster.pid files it is
given. It signals as `lab.faults.LabFaults` does (processes.fault_pids), and starts
through the lab's supervisord.

It loads no topology and no pydantic model: it runs between the drill's fault timestamp
and the fault itself, so its start-up counts in the measured RTO.

Lab hosts have no systemd timers: `arm NAME SECONDS UNDO` starts a detached process that
runs UNDO after SECONDS unless `disarm NAME` stops it first, and records it under
<root>/drill-undo/<host>/, so a killed tricenter still gets its faults undone.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab import processes
from lab.supervisor import (KILL_DEADLINE_SECONDS, START_DEADLINE_SECONDS, ProgramsNotSettled, Supervisor,
                            wait_programs_settled)
from support.waiting import wait_until

log = logging.getLogger(__name__)

# What runs on a lab host of each role (lab/components/sshd.py lists the hosts).
ROLE_COMPONENTS = {"db": ("etcd", "patroni"), "app": ("app",), "lb": ("haproxy",),
                   "monitoring": ("prometheus", "alertmanager", "exporter"), "legacy": ()}
UNDO_DIR = "drill-undo"
NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")  # host and arm names become file names


class HostControlError(RuntimeError):
    """The host cannot do what was asked; the message names the program or record."""


class _LabRoot:
    """The part of LabContext the supervisord client needs: paths in the lab directory."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


def _name(value: str) -> str:
    if not NAME.match(value):
        raise argparse.ArgumentTypeError(f"{value!r}: letters, digits and _.:- only")
    return value


@dataclass
class LabHost:
    root: Path
    name: str
    center: str
    role: str
    postmaster_pid_files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(_LabRoot(self.root))

    # --- what is on this host -----------------------------------------------------------
    def components(self) -> tuple[str, ...]:
        return ROLE_COMPONENTS[self.role]

    def programs(self, component: str | None = None) -> list[dict]:
        """supervisord's view of this host's programs (optionally of one component)."""
        manifest_file = self.root / "programs.json"
        if not manifest_file.exists():
            raise HostControlError(f"{manifest_file} is missing: the lab was never brought up here")
        manifest = json.loads(manifest_file.read_text())
        wanted = (component,) if component else self.components()
        return [i for i in self.supervisor.processes()
                if manifest.get(i["name"], {}).get("center") == self.center
                and manifest[i["name"]]["component"] in wanted]

    def postmasters(self) -> list[int]:
        pids = []
        for file in self.postmaster_pid_files:
            try:
                pid = int(file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if processes.alive(pid):  # a killed postmaster may linger as a zombie
                pids.append(pid)
        return pids

    def pids(self, component: str | None = None) -> set[int]:
        roots = [] if component == "postgres" else [i["pid"] for i in self.programs(component) if i["pid"]]
        postmasters = self.postmasters() if component in (None, "postgres") else []
        return processes.fault_pids(roots, postmasters, processes.table(), component)

    def _check_component(self, component: str | None) -> None:
        if component is not None and component not in (*self.components(), "postgres") or (
                component == "postgres" and not self.postmaster_pid_files):
            raise HostControlError(f"host {self.name} ({self.role}) runs no {component}")

    # --- faults -------------------------------------------------------------------------
    def kill(self, component: str | None = None) -> str:
        self._check_component(component)
        pids = self.pids(component)
        processes.signal_all(pids, signal.SIGKILL)
        left = processes.wait_gone(pids, KILL_DEADLINE_SECONDS)
        if left:
            raise HostControlError(f"processes {sorted(left)} of {self.name} survived SIGKILL")
        if component != "postgres":
            self._wait_states(component, stopped=True)
        return f"{self.name}: SIGKILL to {len(pids)} processes"

    def start(self, component: str | None = None) -> str:
        self._check_component(component)
        if component is None:
            self.signal(signal.SIGCONT)  # a frozen host is started by thawing it first
        if component == "postgres":
            self.start("patroni")
            wait_until(f"Patroni on {self.name} restarts PostgreSQL", self.postmasters,
                       START_DEADLINE_SECONDS, 0.1, error=HostControlError)
            return f"{self.name}: PostgreSQL running"
        names = [i["name"] for i in self.programs(component)]
        self.supervisor.start_programs(names)
        self._wait_states(component, stopped=False)
        return f"{self.name}: started {', '.join(names) or 'nothing'}"

    def signal(self, sig: signal.Signals) -> str:
        pids = self.pids()
        processes.signal_all(pids, sig)
        return f"{self.name}: {sig.name} to {len(pids)} processes"

    def _wait_states(self, component: str | None, stopped: bool) -> None:
        try:
            wait_programs_settled(f"{self.name}/{component or '*'}", lambda: self.programs(component), stopped)
        except ProgramsNotSettled as exc:
            raise HostControlError(str(exc)) from None

    # --- undo deadlines -----------------------------------------------------------------
    def _record(self, name: str) -> Path:
        return self.root / UNDO_DIR / self.name / f"{name}.json"

    def arm(self, name: str, seconds: float, undo: str) -> str:
        """Start the process that runs `undo` after `seconds` unless disarmed first."""
        self.disarm(name)
        record = self._record(name)
        record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_file = self.root / "logs" / "drill-undo.log"
        with open(log_file, "ab") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "lab.host_control", "--root", str(self.root), "--host", self.name,
                 "--center", self.center, "--role", self.role, "undo-at", name, str(time.time() + seconds),
                 undo], stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        record.write_text(json.dumps({"pid": child.pid, "undo": undo, "at": time.time() + seconds}))
        # armed once the child runs as the undo process (until its exec, /proc shows this
        # one's arguments, and a disarm would not recognise it)
        wait_until(f"the undo process of {name} runs", lambda: self._armer(name), START_DEADLINE_SECONDS,
                   0.02, error=HostControlError)
        return f"{self.name}: {name} undoes itself in {seconds:.0f} s unless disarmed (pid {child.pid})"

    def _armer(self, name: str) -> int | None:
        """The pid of the live process armed as `name` here, checked by its arguments."""
        try:
            pid = json.loads(self._record(name).read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None
        args = processes.argv(pid)
        return pid if "undo-at" in args and name in args and str(self.root) in args else None

    def disarm(self, name: str) -> str:
        pid = self._armer(name)
        if pid is not None:
            processes.signal_all([pid], signal.SIGTERM)
            processes.wait_gone([pid], KILL_DEADLINE_SECONDS)
        self._record(name).unlink(missing_ok=True)
        return f"{self.name}: {name} disarmed" if pid else f"{self.name}: {name} was not armed"

    def undo_at(self, name: str, at: float) -> None:
        """The armed process: wait for the deadline, then undo (the record goes first, so
        a disarm racing the deadline never kills an undo half done)."""
        time.sleep(max(0.0, at - time.time()))
        record = self._record(name)
        try:
            armed = json.loads(record.read_text())
        except (OSError, ValueError):
            return
        if armed.get("pid") != os.getpid():  # disarmed, and armed again by another process
            return
        undo = armed["undo"]
        record.unlink(missing_ok=True)
        log.warning("%s: deadline of %s reached, undoing: %s", self.name, name, undo)
        subprocess.run(["/bin/sh", "-c", undo], check=False)


def armed(root: Path) -> list[str]:
    """`host/name` of every fault armed in this lab whose undo process still waits."""
    found = []
    for record in sorted((root / UNDO_DIR).glob("*/*.json")):
        host = LabHost(root, record.parent.name, "", "legacy")
        if host._armer(record.stem) is not None:
            found.append(f"{record.parent.name}/{record.stem}")
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.host_control", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the lab directory")
    parser.add_argument("--host", type=_name, required=True)
    parser.add_argument("--center", required=True)
    parser.add_argument("--role", choices=sorted(ROLE_COMPONENTS), required=True)
    parser.add_argument("--postmaster-pid", type=Path, action="append", default=[],
                        help="postmaster.pid of a PostgreSQL member on this host (repeatable)")
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("kill", "start"):
        sub.add_parser(action).add_argument("component", nargs="?")
    sub.add_parser("freeze")
    sub.add_parser("thaw")
    arm = sub.add_parser("arm")
    arm.add_argument("name", type=_name)
    arm.add_argument("seconds", type=float)
    arm.add_argument("undo")
    sub.add_parser("disarm").add_argument("name", type=_name)
    undo_at = sub.add_parser("undo-at")
    undo_at.add_argument("name", type=_name)
    undo_at.add_argument("at", type=float)
    undo_at.add_argument("undo")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host = LabHost(args.root, args.host, args.center, args.role, args.postmaster_pid)
    try:
        if args.action == "kill":
            print(host.kill(args.component))
        elif args.action == "start":
            print(host.start(args.component))
        elif args.action == "freeze":
            print(host.signal(signal.SIGSTOP))
        elif args.action == "thaw":
            print(host.signal(signal.SIGCONT))
        elif args.action == "arm":
            print(host.arm(args.name, args.seconds, args.undo))
        elif args.action == "disarm":
            print(host.disarm(args.name))
        else:
            host.undo_at(args.name, args.at)
    except HostControlError as exc:
        print(f"host control: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
