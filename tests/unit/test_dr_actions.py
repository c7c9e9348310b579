"""Undoing faults on abort: newest first, cancelled faults skipped, never restart the
city's old primary after a remote promotion."""
from __future__ import annotations

import threading

from dr.actions import World, run_step, undo_all
from dr.scenario import Step
from inventory.runtime import CenterRuntime, RuntimeInventory, SystemRuntime


class RecordingInjector:
    """Records the calls the engine makes; the lab's LabFaults does them for real."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))


class RecordingRunbook(RecordingInjector):
    def reprotect_from_remote(self, system) -> str:
        self.calls.append(("reprotect_from_remote",))
        return "reprotected"

    def promote_remote(self, system) -> str:
        self.calls.append(("promote_remote",))
        return "promoted"


def world() -> World:
    runtime = RuntimeInventory(source="lab", cloud="c", centers={
        n: CenterRuntime(name=n, role=n) for n in ("main", "samecity", "remote")})
    system = SystemRuntime(name="s", department="d", tier="t")
    return World(runtime, system, RecordingInjector(), RecordingRunbook(), None, threading.Event())


def test_faults_are_undone_newest_first_and_cancelled_ones_skipped() -> None:
    w = world()
    run_step(w, Step(action="freeze_center", center="main"))
    run_step(w, Step(action="kill_component", center="samecity", component="postgres"))
    run_step(w, Step(action="thaw_center", center="main"))  # the scenario undid it itself
    undo_all(w, lambda m: None)
    assert w.injector.calls[-1:] == [("start_component", "samecity", "postgres")]
    assert ("thaw_center", "main") in w.injector.calls[:3]
    assert w.undo == []


def test_after_a_remote_promotion_abort_reprotects_instead_of_restarting_the_city() -> None:
    w = world()
    run_step(w, Step(action="kill_center", center="main"))
    run_step(w, Step(action="kill_center", center="samecity"))
    run_step(w, Step(action="promote_remote"))
    undo_all(w, lambda m: None)
    assert ("reprotect_from_remote",) in w.runbook.calls
    assert not [c for c in w.injector.calls if c[0] == "start_center"]
