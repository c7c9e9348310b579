"""A lab host's control commands: what the lab's runtime inventory names under
`hosts[].control`, so the SSH world (dr/ssh_world.py) drives the lab as it drives real
hosts — over SSH, one host at a time, with each fault armed to undo itself.

Run on a host (`python -m lab.host_control --root R --host main-db --center main --role db
kill`), it acts on that host's programs only: the lab programs of the host's center whose
component the host's role carries (ROLE_COMPONENTS), never the host's sshd (a real host's
sshd outlives its services too), and the postmasters whose postmaster.pid files it is
given. It signals as `lab.faults.LabFaults` does (processes.fault_pids), and starts
through the lab's supervisord.

It loads no topology and no pydantic model, and prints the line that times the fault
(inventory/fault_line.py) right before it signals: its start-up is not in the measured
RTO, but it is in the fault step's seconds.

Lab hosts have no systemd timers: their `control.arm` (`arm_command`) is plain shell, so
no Python starts before the fault either. It starts, in a session of its own, a shell
that runs the undo after the deadline unless `control.disarm` (`disarm_command`) kills its
process group first; its pid is recorded in <root>/drill-undo/<host>/<name>.pid, so a
killed tricenter still gets its faults undone, and `armed` finds what still waits.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab import processes
from lab.supervisor import (KILL_DEADLINE_SECONDS, START_DEADLINE_SECONDS, ProgramsNotSettled, Supervisor,
                            wait_programs_settled)
from inventory.fault_line import FAULT_BEGINS
from support.waiting import wait_until

log = logging.getLogger(__name__)

# What runs on a lab host of each role (lab/components/sshd.py lists the hosts).
ROLE_COMPONENTS = {"db": ("etcd", "patroni"), "app": ("app",), "lb": ("haproxy",),
                   "monitoring": ("prometheus", "alertmanager", "exporter"), "legacy": ()}
UNDO_DIR = "drill-undo"
NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")  # host names become file names
# $0 of an armed undo shell, followed by its record: how `armed` and a disarm know it
ARMER = "tricenter-drill-undo-at"
# the armed shell's script: $1 its record, $2 the deadline in seconds, $3 the undo; the
# record goes first, so a disarm racing the deadline never kills an undo half done
UNDO_SCRIPT = ('sleep "$2" && rm -f "$1" && echo "$(date -u +%FT%TZ) deadline of $1 reached, undoing: $3" '
               '&& exec /bin/sh -c "$3"')


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
    fault_begins: Callable[[], None] = lambda: None  # called right before a fault signals

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
                and manifest[i["name"]]["component"] in wanted
                and manifest[i["name"]].get("host") in (None, self.name)]

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
        self.fault_begins()
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

    def freeze(self) -> str:
        pids = self.pids()
        self.fault_begins()
        processes.signal_all(pids, signal.SIGSTOP)
        return f"{self.name}: SIGSTOP to {len(pids)} processes"

    def _wait_states(self, component: str | None, stopped: bool) -> None:
        try:
            wait_programs_settled(f"{self.name}/{component or '*'}", lambda: self.programs(component), stopped)
        except ProgramsNotSettled as exc:
            raise HostControlError(str(exc)) from None


def _records(root: Path, host: str) -> Path:
    return root / UNDO_DIR / host


def _disarm_body() -> str:
    """Kill the process group of the shell armed under record $r, if it is one (its $0
    and record say so: a pid may have been reused), and drop the record."""
    return ('if p=$(cat "$r" 2>/dev/null); then case "$(tr \'\\0\' \' \' <"/proc/$p/cmdline" 2>/dev/null)" in '
            f'*" {ARMER} $r "*) kill -s TERM -- "-$p";; esac; fi; rm -f "$r"')


def arm_command(root: Path, host: str) -> str:
    """A lab host's `control.arm` template ({name}, {seconds}, {undo} shell-quoted): plain
    shell that disarms {name} first, then starts the undo shell in a session of its own
    (setsid: from a shell without job control it does not fork, so $! is that shell and
    leads its process group) and records its pid. It returns once that shell runs as the
    undo shell (up to 2 s): until its exec, /proc shows the arming shell's arguments, and
    a disarm would not recognise it."""
    records, logs = shlex.quote(str(_records(root, host))), shlex.quote(str(root / "logs"))
    # both directories first: a redirection that fails would leave nothing armed, silently
    return (f"r={records}/{{name}}.pid && mkdir -p -m 700 {records} && mkdir -p {logs} && "
            f"{{ {_disarm_body()}; }} && "
            f"{{ setsid /bin/sh -c {shlex.quote(UNDO_SCRIPT)} {ARMER} \"$r\" {{seconds}} {{undo}} "
            f"</dev/null >>{logs}/drill-undo.log 2>&1 & p=$!; echo $p >\"$r\"; i=0; "
            f"until tr '\\0' ' ' <\"/proc/$p/cmdline\" 2>/dev/null | grep -qF \" {ARMER} $r \"; "
            f"do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.02; done; }}")


def disarm_command(root: Path, host: str) -> str:
    """A lab host's `control.disarm` template ({name}): kills the armed undo shell's
    process group before it runs the undo."""
    return f"r={shlex.quote(str(_records(root, host)))}/{{name}}.pid; {_disarm_body()}"


def armer(record: Path) -> int | None:
    """The pid of the undo shell armed under this record, if it still waits."""
    try:
        pid = int(record.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if processes.alive(pid) and processes.argv(pid)[3:5] == [ARMER, str(record)] else None


def armed(root: Path) -> list[str]:
    """`host/name` of every fault armed in this lab whose undo shell still waits."""
    return [f"{record.parent.name}/{record.stem}" for record in sorted((root / UNDO_DIR).glob("*/*.pid"))
            if armer(record) is not None]


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host = LabHost(args.root, args.host, args.center, args.role, args.postmaster_pid,
                   fault_begins=lambda: print(FAULT_BEGINS, flush=True))
    try:
        if args.action == "kill":
            print(host.kill(args.component))
        elif args.action == "start":
            print(host.start(args.component))
        elif args.action == "freeze":
            print(host.freeze())
        else:
            print(host.signal(signal.SIGCONT))
    except HostControlError as exc:
        print(f"host control: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
