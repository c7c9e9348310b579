"""Undoing faults on abort: newest first, cancelled faults skipped, never restart the
city's old primary after a remote promotion."""
from __future__ import annotations

import threading
from types import SimpleNamespace

from dr.actions import StepContext, run_step, undo_all, undo_self_healed
from dr.engine import left_to_do
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


def world() -> StepContext:
    runtime = RuntimeInventory(source="lab", cloud="c", centers={
        n: CenterRuntime(name=n, role=n) for n in ("main", "samecity", "remote")})
    system = SystemRuntime(name="s", department="d", tier="t")
    return StepContext(runtime, system, RecordingInjector(), RecordingRunbook(), None, threading.Event())


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


class FailingRunbook(RecordingRunbook):
    def reprotect_from_remote(self, system) -> str:
        raise RuntimeError("patronictl edit-config failed")


class FailingInjector(RecordingInjector):
    def __init__(self, fails: str, error: type[BaseException] = RuntimeError) -> None:
        super().__init__()
        self.fails, self.error = fails, error

    def __getattr__(self, name: str):
        if name == self.fails:
            def fail(*args):
                raise self.error(f"{name} failed")
            return fail
        return super().__getattr__(name)


def test_a_failed_reprotect_names_the_city_left_down_and_the_command_that_converges() -> None:
    w = world()
    w.runbook = FailingRunbook()
    for center in ("main", "samecity", "main", "samecity"):  # the fault, then the fence
        run_step(w, Step(action="kill_center", center=center))
    run_step(w, Step(action="promote_remote"))
    result = undo_all(w, lambda m: None)
    assert result.restored == []
    assert result.not_restored[0] == "reprotect_from_remote failed: patronictl edit-config failed"
    assert [x.split()[1] for x in result.not_restored[1:]] == ["samecity", "main"]
    assert not [c for c in w.injector.calls if c[0] == "start_center"]
    todo = left_to_do(result, [], "tricenter lab up")
    assert todo[:3] == result.not_restored
    assert todo[-1].startswith("run `tricenter lab up`")


def test_one_undo_that_fails_does_not_stop_the_others() -> None:
    w = world()
    w.injector = FailingInjector("thaw_center")
    run_step(w, Step(action="freeze_center", center="main"))
    run_step(w, Step(action="kill_component", center="samecity", component="postgres"))
    result = undo_all(w, lambda m: None)
    assert result.restored == ["start_component samecity postgres"]
    assert result.not_restored == ["thaw_center main failed: thaw_center failed"]


def test_a_second_ctrl_c_stops_undoing_and_lists_what_was_not_tried() -> None:
    w = world()
    w.injector = FailingInjector("start_component", KeyboardInterrupt)
    run_step(w, Step(action="freeze_center", center="main"))
    run_step(w, Step(action="kill_component", center="samecity", component="postgres"))
    result = undo_all(w, lambda m: None)
    assert result.restored == []
    assert result.not_restored == ["start_component samecity postgres not tried (interrupted again)",
                                   "thaw_center main not tried (interrupted again)"]
    assert w.undo == []


def test_nothing_is_left_to_do_when_every_fault_was_undone_and_the_layout_is_intact() -> None:
    w = world()
    run_step(w, Step(action="kill_center", center="main"))
    result = undo_all(w, lambda m: None)
    assert result.restored == ["start_center main"]
    assert left_to_do(result, [], "tricenter lab up") == []
    todo = left_to_do(result, ["leader is pg-samecity, intended pg-main"], "tricenter lab up")
    assert len(todo) == 1 and "leader is pg-samecity" in todo[0] and "`tricenter lab up`" in todo[0]


def test_a_fault_interrupted_half_way_is_undone_too() -> None:
    """Ctrl-C while the SSH world is still killing the center's hosts: some are down, the
    call never returned, and the abort must still start the center again."""
    class InterruptedInjector(RecordingInjector):
        def kill_center(self, center: str) -> None:
            self.calls.append(("kill_center", center))
            raise KeyboardInterrupt
    w = world()
    w.injector = InterruptedInjector()
    try:
        run_step(w, Step(action="kill_center", center="main"))
    except KeyboardInterrupt:
        pass
    result = undo_all(w, lambda m: None)
    assert result.restored == ["start_center main"]
    assert w.injector.calls == [("kill_center", "main"), ("start_center", "main")]


def test_a_finished_drill_undoes_only_the_component_faults_the_system_got_over_by_itself() -> None:
    w = world()
    run_step(w, Step(action="kill_component", center="main", component="postgres"))
    run_step(w, Step(action="kill_center", center="samecity"))  # left to the restore steps
    result = undo_self_healed(w, lambda m: None)
    assert w.injector.calls[-1:] == [("start_component", "main", "postgres")]
    assert not [c for c in w.injector.calls if c[0] == "start_center"]
    assert w.undo == [("start_center", ("samecity",))]
    assert result.restored == ["start_component main postgres"]


def test_the_first_fault_the_world_times_is_when_the_fault_began() -> None:
    class TimingInjector(RecordingInjector):
        def kill_center(self, center: str) -> float:
            return 100.0 if center == "main" else 200.0

        def start_center(self, center: str) -> float:
            return 300.0  # an undo is not a fault: never its time
    w = world()
    w.injector = TimingInjector()
    run_step(w, Step(action="start_center", center="samecity"))
    assert w.fault_began is None
    run_step(w, Step(action="kill_center", center="main"))
    run_step(w, Step(action="kill_center", center="samecity"))
    assert w.fault_began == 100.0


def test_a_switchover_waits_for_a_running_leader_to_hand_over_from() -> None:
    """Under load the sync key still named the candidate while no member led; the
    switchover then asked Patroni to hand over from nobody (an unexpected StopIteration)."""
    from dr.actions import _sync_ready

    ready = _sync_ready(world(), "pg-main")
    assert not ready(SimpleNamespace(leader=None, sync_standby="pg-main"))
    assert ready(SimpleNamespace(leader="pg-samecity", sync_standby="pg-main"))
    assert ready(SimpleNamespace(leader="pg-main", sync_standby=None))
