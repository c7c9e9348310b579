"""Carrying out one scenario step against the world, and undoing faults on abort."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from dr import silences
from dr.faults import FaultInjector
from support.patroni import ClusterState, PatroniCluster
from dr.runbook import DatabaseCopy, Runbook
from dr.scenario import Action, Step
from inventory.runtime import DbIntendedRole, RuntimeInventory, SystemRuntime

log = logging.getLogger(__name__)

# What puts a fault back; applied in reverse order when a drill stops early.
UNDO = {
    Action.kill_center: "start_center",
    Action.freeze_center: "thaw_center",
    Action.isolate_center: "heal_center",
    Action.kill_component: "start_component",
}
CANCELS = {"start_center": Action.kill_center, "thaw_center": Action.freeze_center,
           "heal_center": Action.isolate_center, "start_component": Action.kill_component}

class StepFailed(Exception):
    pass


@dataclass
class StepContext:
    """Everything a step may act on, for one system."""

    runtime: RuntimeInventory
    system: SystemRuntime
    injector: FaultInjector
    runbook: Runbook
    cluster: PatroniCluster
    stop: threading.Event  # set on abort: holds end early
    undo: list[tuple[str, tuple]] = field(default_factory=list)
    markers: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    copy: DatabaseCopy | None = None
    extra: dict = field(default_factory=dict)
    # when the first fault the world could time began to act (see dr.faults)
    fault_began: float | None = None

    def center(self, role: str) -> str:
        """Center name of a role: scenarios speak in roles, inventories in names."""
        for name, center in self.runtime.centers.items():
            if center.role == role:
                return name
        raise StepFailed(f"the runtime inventory has no center with role '{role}'")

    def member_in(self, role: str) -> str:
        center = self.center(role)
        db = self.system.database
        for member in db.members:
            if member.center == center:
                return member.name
        raise StepFailed(f"system {self.system.name} has no database member in center {center}")


def _record_undo(world: StepContext, action: str, args: tuple) -> None:
    cancelled = CANCELS.get(action)
    if cancelled is None:
        return
    for i in range(len(world.undo) - 1, -1, -1):
        if world.undo[i] == (action, args):
            del world.undo[i]
            return


def _fault(world: StepContext, step: Step) -> str:
    center = world.center(step.center)
    if step.action in (Action.kill_component, Action.start_component):
        args: tuple = (center, step.component)
    else:
        args = (center,)
    log.info("fault: %s %s", step.action.value, " ".join(args))
    if step.action in UNDO:
        # recorded before acting: a fault interrupted (Ctrl-C) or failed half way, on some
        # hosts only, is undone too; every undo is harmless where nothing was done
        world.undo.append((UNDO[step.action], args))
    began = getattr(world.injector, step.action.value)(*args)
    if step.action in UNDO and world.fault_began is None:
        world.fault_began = began
    if step.action not in UNDO:
        _record_undo(world, step.action.value, args)
    return f"{step.action.value} {' '.join(args)}"


def _hold(world: StepContext, step: Step) -> str:
    seconds = step.seconds if step.seconds is not None else (
        step.lease_multiple * world.cluster.lease_seconds())
    world.stop.wait(seconds)  # a deliberate hold of the fault, interruptible on abort
    return f"held {seconds:.1f} s"


def _sync_ready(world: StepContext, candidate: str) -> Callable[[ClusterState], bool]:
    def ready(state: ClusterState) -> bool:
        # a running leader first: the sync key may still name the candidate while the old
        # leader restarts, and a switchover needs a leader to hand over from
        return state.leader is not None and candidate in (state.leader, state.sync_standby)
    return ready


def _switchover(world: StepContext, step: Step) -> str:
    candidate = world.member_in(step.to)
    # Patroni in synchronous mode only switches to the sync standby: wait until it is one
    state = world.cluster.wait_for(f"{candidate} is the synchronous standby",
                                   _sync_ready(world, candidate), step.timeout_seconds)
    if state.leader == candidate:
        return f"{candidate} already leads: nothing to switch"
    silence = _silence_handover(world, step, candidate)
    message = world.cluster.switchover(state.leader, candidate, timeout=step.timeout_seconds)
    world.cluster.wait_for(f"{candidate} leads", lambda s: s.leader == candidate, step.timeout_seconds)
    if isinstance(silence, str):
        return f"{message}; {silence}"
    member, silence_id = silence
    lifted, what = silences.lift_when_quiet(member, silence_id, world.system.name, world.stop)
    if not lifted:  # the drill lifts it at its end (dr/engine.py)
        world.extra.setdefault("silences_left", []).append(silence_id)
    return f"{message}; {', '.join(silences.PLANNED_HANDOVER_ALERTS)} silenced ({what})"


def _silence_handover(world: StepContext, step: Step, candidate: str) -> tuple[str, str] | str:
    """Planned: silence what the handover raises by design (dr/silences.py); (member, id).
    Monitoring being unreachable does not stop a planned switchover: the step says so."""
    seconds = step.timeout_seconds + silences.LOOK_BACK_SECONDS + silences.QUIET_DEADLINE_SECONDS
    try:
        member, silence_id = silences.silence_planned_handover(
            world.runtime.monitoring.alertmanagers, world.system.name, seconds,
            f"planned switchover of {world.system.name} to {candidate}")
    except silences.SilenceFailed as exc:
        return f"not silenced, it may page: {exc}"
    world.extra.setdefault("silences", []).append(silence_id)
    return member, silence_id


def _healthy(world: StepContext) -> Callable[[ClusterState], bool]:
    names = [m.name for m in world.system.database.members]
    has_sync = any(m.intended_role == DbIntendedRole.sync for m in world.system.database.members)

    def healthy(state: ClusterState) -> bool:
        if state.leader is None or (has_sync and state.sync_standby is None):
            return False
        members = [state.members.get(n) for n in names]
        return all(m is not None and m.running and m.timeline == state.timeline for m in members)
    return healthy


def run_step(world: StepContext, step: Step) -> str:
    """Do one step; returns what happened, raises StepFailed when it could not be done."""
    a = step.action
    if a.value in ("kill_center", "start_center", "freeze_center", "thaw_center", "isolate_center",
                   "heal_center", "kill_component", "start_component"):
        return _fault(world, step)
    if a == Action.hold:
        return _hold(world, step)
    if a == Action.switchover:
        return _switchover(world, step)
    if a == Action.wait_leader:
        member = world.member_in(step.center)
        world.cluster.wait_for(f"{member} leads", lambda s: s.leader == member, step.timeout_seconds)
        return f"{member} leads"
    if a == Action.wait_healthy:
        state = world.cluster.wait_for("every member running on the leader's timeline, a sync standby",
                                       _healthy(world), step.timeout_seconds)
        return f"healthy: leader {state.leader}, sync {state.sync_standby}"
    if a == Action.wait_layout:
        world.cluster.wait_for("the original layout", lambda s: not world.cluster.layout_problems(s),
                               step.timeout_seconds)
        return "original layout"
    if a == Action.declare_disaster:
        world.markers["declare"] = time.time()
        return "disaster declared"
    if a == Action.promote_remote:
        world.undo.append(("reprotect_from_remote", ()))
        return world.runbook.promote_remote(world.system)
    if a == Action.reprotect_from_remote:
        message = world.runbook.reprotect_from_remote(world.system)
        world.undo = [u for u in world.undo if u[0] != "reprotect_from_remote"]
        return message
    if a == Action.backup:
        info = world.runbook.backup(world.system)
        world.extra["backup"] = info
        return f"backup {info.label} in {info.finished_at - info.started_at:.1f} s"
    if a == Action.restore_copy:
        world.copy = world.runbook.restore_copy(world.system, world.center(step.center))
        world.undo.append(("drop_copy", ()))
        return (f"copy of backup {world.copy.backup_label} up on {world.copy.host}:{world.copy.port} "
                f"in {world.copy.restore_seconds:.1f} s")
    if a == Action.verify_copy:
        return "verified later against the ledger"  # the engine does it: it owns the ledger
    if a == Action.drop_copy:
        if world.copy is not None:
            world.runbook.drop_copy(world.copy)
            world.undo = [u for u in world.undo if u[0] != "drop_copy"]
        return "copy dropped"
    raise StepFailed(f"action {a.value} is not implemented")


@dataclass
class RestoreResult:
    """What an abort put back and what it could not (each with the reason)."""

    restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)


def _describe(action: str, args: tuple) -> str:
    return " ".join((action, *args))


def undo_self_healed(world: StepContext, log: Callable[[str], None]) -> RestoreResult:
    """After a finished restore: undo the component faults the system got over by itself.
    Patroni restarting PostgreSQL in place leaves no restore step to undo `kill_component`,
    so its undo stays recorded, and over SSH stays armed on the host. Undoing it then is
    harmless (the component runs) and disarms the host. Centers' undos are left to the
    restore steps: undoing a regional disaster early would start a second primary."""
    healed = [entry for entry in world.undo if entry[0] == "start_component"]
    pending = [entry for entry in world.undo if entry[0] != "start_component"]
    world.undo = healed
    try:
        return undo_all(world, log)
    finally:
        world.undo = pending


def undo_all(world: StepContext, log: Callable[[str], None]) -> RestoreResult:
    """Put back every fault still in place (newest first), each attempt guarded: one that
    fails does not stop the others. A second Ctrl-C stops undoing; what was not tried yet
    is reported as not restored.

    Once the remote center was promoted outside Patroni, restarting the city as it was
    would bring back its old primary beside the new one: reprotect instead, which
    starts the city as followers of the remote primary."""
    result = RestoreResult()
    promoted = any(action == "reprotect_from_remote" for action, _ in world.undo)
    city_left_down: list[str] = []
    reprotected = False
    try:
        while world.undo:
            action, args = world.undo[-1]
            try:
                if promoted and action == "start_center":
                    city_left_down.append(args[0])  # reprotect starts the city itself
                elif action == "reprotect_from_remote":
                    log(world.runbook.reprotect_from_remote(world.system))
                    reprotected = True
                elif action == "drop_copy":
                    if world.copy is not None:
                        world.runbook.drop_copy(world.copy)
                else:
                    getattr(world.injector, action)(*args)
                    log(f"undone: {_describe(action, args)}")
                if not (promoted and action == "start_center"):
                    result.restored.append(_describe(action, args))
            except Exception as exc:  # noqa: BLE001 — keep undoing the rest
                log(f"could not undo {_describe(action, args)}: {exc}")
                result.not_restored.append(f"{_describe(action, args)} failed: {exc}")
            world.undo.pop()
    except KeyboardInterrupt:
        result.not_restored += [f"{_describe(a, args)} not tried (interrupted again)"
                                for a, args in reversed(world.undo)]
        world.undo.clear()
    for center in dict.fromkeys(city_left_down):  # a fence kills the same center twice
        if reprotected:
            result.restored.append(f"start_center {center} (as a follower of the remote primary)")
        else:
            result.not_restored.append(
                f"start_center {center} not done: after the remote promotion it would come back "
                "as a second primary; it must be rebuilt from the remote primary")
    return result
