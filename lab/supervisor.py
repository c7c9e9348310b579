"""supervisord for the lab: the config rendered from the components' programs, and a
small XML-RPC client.

A center is one failure unit, but not a supervisord group: `update` restarts a whole
group when one of its programs changes, and an idempotent `lab up` must not bounce a
center's database because a neighbour's config moved. Centers are kept in the lab's
program manifest instead (lab/lab.py), which faults read.

Programs never restart on their own (autorestart=false): a drill that kills a center must
find it dead until the drill starts it again.
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.xmlrpc import SupervisorTransport

from lab import processes
from lab.component import Program
from support.waiting import WaitTimeout, wait_until

if TYPE_CHECKING:  # the lab's host control drives supervisord without loading the topology
    from lab.context import LabContext

log = logging.getLogger(__name__)

# Patroni stops PostgreSQL itself on TERM; give it the time a fast shutdown needs.
STOP_WAIT_SECONDS = {"patroni": 30}


def _quote_env(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_conf(lab: LabContext, programs: list[Program]) -> str:
    """The whole supervisord.conf for these programs."""
    sock = lab.path("supervisor.sock")
    lines = [
        "[unix_http_server]", f"file={sock}", "chmod=0700", "",
        "[supervisord]",
        f"logfile={lab.log_file('supervisord')}",
        f"pidfile={lab.path('supervisord.pid')}",
        f"childlogdir={lab.logs_dir}",
        "logfile_maxbytes=10MB", "logfile_backups=1", "loglevel=info",
        f"directory={lab.root}", "nodaemon=false", "minfds=4096", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    for program in sorted(programs, key=lambda p: (p.priority, p.name)):
        lines += _program_section(lab, program) + [""]
    return "\n".join(lines)


def _program_section(lab: LabContext, program: Program) -> list[str]:
    environment = {"PYTHONUNBUFFERED": "1", **program.environment}
    if program.user:
        environment.setdefault("HOME", str(program.directory or lab.root))
        environment.setdefault("USER", program.user)
    section = [
        f"[program:{program.name}]",
        f"command={shlex.join(program.command)}",
        f"priority={program.priority}",
        "autostart=true",
        "autorestart=false",
        "startsecs=1",
        "startretries=3",
        f"stopsignal={program.stopsignal}",
        f"stopwaitsecs={STOP_WAIT_SECONDS.get(program.component, 10)}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={lab.log_file(program.name)}",
        "stdout_logfile_maxbytes=20MB",
        "stdout_logfile_backups=1",
        "environment=" + ",".join(f"{k}={_quote_env(v)}" for k, v in sorted(environment.items())),
    ]
    if program.user:
        section.append(f"user={program.user}")
    if program.directory:
        section.append(f"directory={program.directory}")
    return section


class Supervisor:
    """The lab's supervisord: start it, reconfigure it, ask it what runs."""

    def __init__(self, lab: LabContext):
        self.lab = lab
        self.conf = lab.path("supervisord.conf")
        self.sock = lab.path("supervisor.sock")
        self.pidfile = lab.path("supervisord.pid")

    def rpc(self, timeout: float = 10.0) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, f"unix://{self.sock}")
        transport.timeout = timeout
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    @property
    def pid(self) -> int | None:
        """supervisord's pid from its pidfile, if that process is this lab's supervisord: a
        pidfile left by a killed supervisord may name a pid reused by anything since."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if processes.alive(pid) and str(self.conf) in processes.argv(pid) else None

    def running(self) -> bool:
        if self.pid is None or not self.sock.exists():
            return False
        try:
            return self.rpc(timeout=3).supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def write_conf(self, programs: list[Program]) -> None:
        self.conf.write_text(render_conf(self.lab, programs))

    def start(self, deadline_seconds: float = 15) -> None:
        """Start supervisord (it daemonizes) and wait until it answers."""
        if self.running():
            return
        self.sock.unlink(missing_ok=True)
        supervisord = Path(self.lab.python).with_name("supervisord")
        subprocess.run([str(supervisord), "-c", str(self.conf)], check=True,
                       stdin=subprocess.DEVNULL, cwd=self.lab.root)
        wait_until(f"supervisord answers (see {self.lab.log_file('supervisord')})", self.running,
                   deadline_seconds, 0.1, error=RuntimeError)

    def update(self) -> None:
        """Apply a rewritten supervisord.conf like `supervisorctl update`."""
        server = self.rpc()
        added, changed, removed = server.supervisor.reloadConfig()[0]
        for group in removed + changed:
            server.supervisor.stopProcessGroup(group, True)
            server.supervisor.removeProcessGroup(group)
        for group in added + changed:
            server.supervisor.addProcessGroup(group)

    def processes(self) -> list[dict]:
        try:
            return self.rpc().supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return []

    @staticmethod
    def _stop_band(server: xmlrpc.client.ServerProxy, names: set[str], deadline: float) -> None:
        for info in server.supervisor.getAllProcessInfo():
            if info["name"] in names and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
                server.supervisor.stopProcess(f"{info['group']}:{info['name']}", False)
        def stopped() -> bool:
            return not any(info["name"] in names and info["statename"] in ("RUNNING", "STARTING", "STOPPING")
                           for info in server.supervisor.getAllProcessInfo())
        try:
            wait_until(f"programs {', '.join(sorted(names))} stopped", stopped,
                       deadline - time.monotonic(), 0.1)
        except WaitTimeout:
            pass  # supervisord's stopAllProcesses, next, stops what is left

    def start_programs(self, names: list[str]) -> None:
        server = self.rpc(timeout=60)
        states = {p["name"]: p["statename"] for p in server.supervisor.getAllProcessInfo()}
        for name in names:
            if states.get(name) not in ("RUNNING", "STARTING"):
                log.debug("start program %s", name)
                group = self.group_of(name)
                server.supervisor.startProcess(f"{group}:{name}", False)

    def stop_programs(self, names: list[str]) -> None:
        server = self.rpc(timeout=60)
        for info in server.supervisor.getAllProcessInfo():
            if info["name"] in names and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
                log.debug("stop program %s", info["name"])
                server.supervisor.stopProcess(f"{info['group']}:{info['name']}", True)

    def start_all(self) -> None:
        server = self.rpc(timeout=60)
        for info in server.supervisor.getAllProcessInfo():
            if info["statename"] not in ("RUNNING", "STARTING"):
                server.supervisor.startProcess(f"{info['group']}:{info['name']}", False)

    def group_of(self, name: str) -> str:
        for info in self.processes():
            if info["name"] == name:
                return info["group"]
        raise KeyError(f"no supervisord program named {name}")

    def shutdown(self, deadline_seconds: float = 90, bands: list[list[str]] | None = None) -> None:
        """Stop the programs band by band (each band wholly stopped before the next), then
        supervisord itself.

        supervisord's own stopAllProcesses signals everything at once: the primary's last
        WAL archiving then meets an object store already stopping and Patroni loses etcd
        mid-shutdown, which made `down` take ~40 s. Bands in reverse start order avoid that."""
        pid = self.pid
        if pid is None:
            return
        try:
            server = self.rpc(timeout=deadline_seconds)
            for band in bands or []:
                self._stop_band(server, set(band), time.monotonic() + deadline_seconds / 2)
            server.supervisor.stopAllProcesses(True)
            server.supervisor.shutdown()
        except (OSError, xmlrpc.client.Error):
            os.kill(pid, 15)
        wait_until(f"supervisord (pid {pid}) exits", lambda: not processes.alive(pid),
                   deadline_seconds, 0.1, error=RuntimeError)


# How long a fault waits for supervisord to agree its programs stopped, or started again.
KILL_DEADLINE_SECONDS = 10
START_DEADLINE_SECONDS = 30


class ProgramsNotSettled(RuntimeError):
    """supervisord did not report the programs in the wanted state in time."""


def wait_programs_settled(label: str, programs: Callable[[], list[dict]], stopped: bool) -> None:
    """Wait until supervisord agrees the programs are down (or running again); on timeout the
    error names each program's last state."""
    states: dict[str, str] = {}

    def settled() -> bool:
        states.clear()
        states.update({i["name"]: i["statename"] for i in programs()})
        if stopped:
            return all(s not in ("RUNNING", "STARTING") for s in states.values())
        return all(s == "RUNNING" for s in states.values())

    try:
        wait_until(f"{label} programs {'stopped' if stopped else 'running'}", settled,
                   KILL_DEADLINE_SECONDS if stopped else START_DEADLINE_SECONDS, 0.05)
    except WaitTimeout as exc:
        raise ProgramsNotSettled(f"{exc}; programs are {states}") from None
