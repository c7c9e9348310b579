"""Faults for the lab: `dr.faults.FaultInjector` done with signals to the lab's processes.

A center is its programs (the lab's program manifest) plus the postmaster Patroni launched (Patroni setsid()s
it, so it sits in a session of its own and must be signalled through its process group).
Programs never auto-restart, so a killed center stays dead until `start_center`.
"""
from __future__ import annotations

import json
import logging
import signal
import time

from lab import netns, processes
from lab.components import patroni
from lab.context import LabContext
from lab.supervisor import (KILL_DEADLINE_SECONDS, START_DEADLINE_SECONDS, ProgramsNotSettled, Supervisor,
                            wait_programs_settled)
from support.waiting import wait_until

log = logging.getLogger(__name__)


class LabFaultError(RuntimeError):
    """A fault could not be injected or undone; the message says which program."""


class LabFaults:
    """Fault injection for the running lab (see `dr.faults.FaultInjector`)."""

    def __init__(self, lab: LabContext | None = None):
        self.lab = lab or LabContext()
        self.supervisor = Supervisor(self.lab)

    # --- what belongs where -----------------------------------------------------------
    def _manifest(self) -> dict[str, dict]:
        file = self.lab.path("programs.json")
        if not file.exists():
            raise LabFaultError(f"{file} is missing: the lab was never brought up here")
        return json.loads(file.read_text())

    def programs(self, center: str, component: str | None = None) -> list[dict]:
        """supervisord's view of the programs of a center (optionally of one component)."""
        manifest = self._manifest()
        chosen = [i for i in self.supervisor.processes()
                  if manifest.get(i["name"], {}).get("center") == center
                  and (component is None or manifest[i["name"]]["component"] == component)]
        if not chosen and center not in {m["center"] for m in manifest.values()}:
            raise LabFaultError(f"the lab has no center {center!r}; "
                                f"known: {sorted({m['center'] for m in manifest.values()})}")
        return chosen

    def _postmasters(self, center: str) -> list[int]:
        """Every system's postmaster in the center (each in a session of its own)."""
        pids = [patroni.postmaster_pid(self.lab, center, system) for system, at in patroni.nodes(self.lab)
                if at == center]
        return [pid for pid in pids if pid]

    def center_pids(self, center: str) -> set[int]:
        """Every live process of a center (processes.fault_pids)."""
        roots = [i["pid"] for i in self.programs(center) if i["pid"]]
        return processes.fault_pids(roots, self._postmasters(center), processes.table())

    # --- FaultInjector ----------------------------------------------------------------
    def kill_center(self, center: str) -> float:
        """SIGKILL every process of the center at once (a power loss); returns when."""
        pids = self.center_pids(center)
        log.info("kill center %s: SIGKILL to %d processes", center, len(pids))
        began = time.time()
        processes.signal_all(pids, signal.SIGKILL)
        left = processes.wait_gone(pids, KILL_DEADLINE_SECONDS)
        if left:
            raise LabFaultError(f"processes {sorted(left)} of {center} survived SIGKILL")
        self._wait_states(center, None, stopped=True)
        return began

    def start_center(self, center: str) -> None:
        """Start again every program of the center (thawing it first if it was frozen)."""
        self.thaw_center(center)
        names = [i["name"] for i in self.programs(center)]
        log.info("start center %s: programs %s", center, ", ".join(names))
        self.supervisor.start_programs(names)
        self._wait_states(center, None, stopped=False)

    def freeze_center(self, center: str) -> float:
        """SIGSTOP every process of the center (a hung site); returns when."""
        pids = self.center_pids(center)
        log.info("freeze center %s: SIGSTOP to %d processes", center, len(pids))
        began = time.time()
        processes.signal_all(pids, signal.SIGSTOP)
        return began

    def thaw_center(self, center: str) -> None:
        pids = self.center_pids(center)
        log.info("thaw center %s: SIGCONT to %d processes", center, len(pids))
        processes.signal_all(pids, signal.SIGCONT)

    def isolate_center(self, center: str) -> float:
        """Cut the center's link to the bridge: its processes run on, unreachable; returns when."""
        self._require_netns()
        log.info("isolate center %s: its link to the bridge down", center)
        began = time.time()
        netns.set_isolated(self.lab.slot, center, True)
        return began

    def heal_center(self, center: str) -> None:
        self._require_netns()
        log.info("heal center %s: its link to the bridge up", center)
        netns.set_isolated(self.lab.slot, center, False)

    def _require_netns(self) -> None:
        if not self.lab.settings.netns:
            raise NotImplementedError("isolating a center needs the lab in netns mode "
                                      "(`tricenter lab up --netns`); this lab runs on loopback")

    def kill_component(self, center: str, component: str) -> float:
        """SIGKILL one component of a center. 'postgres' kills the postmaster's process
        group and leaves Patroni running (Patroni then restarts PostgreSQL itself);
        'patroni' kills Patroni alone and leaves PostgreSQL running."""
        roots = [i["pid"] for i in self.programs(center, component) if i["pid"]] \
            if component != "postgres" else []
        postmasters = self._postmasters(center) if component == "postgres" else []
        if not roots and not postmasters:
            raise LabFaultError(f"no running {'postmaster' if component == 'postgres' else component} in {center}")
        pids = processes.fault_pids(roots, postmasters, processes.table(), component)
        log.info("kill %s in %s: SIGKILL to %d processes", component, center, len(pids))
        began = time.time()
        processes.signal_all(pids, signal.SIGKILL)
        left = processes.wait_gone(pids, KILL_DEADLINE_SECONDS)
        if left:
            raise LabFaultError(f"processes {sorted(left)} of {center}/{component} survived SIGKILL")
        if component != "postgres":
            self._wait_states(center, component, stopped=True)
        return began

    def start_component(self, center: str, component: str) -> None:
        """Start a component kill_component stopped. For 'postgres': ensure Patroni runs
        and wait until it has restarted the postmaster."""
        if component == "postgres":
            self.start_component(center, "patroni")
            wait_until(f"Patroni in {center} restarts PostgreSQL",
                       lambda: patroni.postmaster_pid(self.lab, center), START_DEADLINE_SECONDS,
                       0.1, error=LabFaultError)
            return
        names = [i["name"] for i in self.programs(center, component)]
        if not names:
            raise LabFaultError(f"the lab runs no {component} in {center}")
        log.info("start %s in %s: programs %s", component, center, ", ".join(names))
        self.supervisor.start_programs(names)
        self._wait_states(center, component, stopped=False)

    # --- helpers ----------------------------------------------------------------------
    def _wait_states(self, center: str, component: str | None, stopped: bool) -> None:
        try:
            wait_programs_settled(f"{center}/{component or '*'}", lambda: self.programs(center, component),
                                  stopped)
        except ProgramsNotSettled as exc:
            raise LabFaultError(str(exc)) from None
