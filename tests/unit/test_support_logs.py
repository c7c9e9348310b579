"""`tricenter -v` makes the planes say what they do; without it they keep quiet."""
from __future__ import annotations

import logging
import threading

import pytest
from click.testing import CliRunner

from dr.actions import StepContext, run_step
from dr.scenario import Step
from inventory.runtime import CenterRuntime, RuntimeInventory, SystemRuntime
from scripts.cli import main
from support.logs import PLANES


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {p: logging.getLogger(p).level for p in PLANES}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for plane, level in saved[2].items():
        logging.getLogger(plane).setLevel(level)


@pytest.mark.parametrize("args, level", [(["-v"], logging.INFO), (["-vv"], logging.DEBUG),
                                         (["--verbose", "--verbose"], logging.DEBUG)])
def test_each_v_shows_more_of_every_plane(args: list[str], level: int) -> None:
    assert CliRunner().invoke(main, [*args, "version"]).exit_code == 0
    assert {logging.getLogger(p).getEffectiveLevel() for p in PLANES} == {level}


class Injector:
    def __getattr__(self, name: str):
        return lambda *args: None


def test_a_fault_applied_is_logged_with_its_center(caplog: pytest.LogCaptureFixture) -> None:
    runtime = RuntimeInventory(source="lab", cloud="c", centers={
        n: CenterRuntime(name=n, role=n) for n in ("main", "samecity", "remote")})
    ctx = StepContext(runtime, SystemRuntime(name="s", department="d", tier="t"), Injector(),
                      Injector(), None, threading.Event())
    with caplog.at_level(logging.INFO, logger="dr"):
        run_step(ctx, Step.model_validate({"action": "freeze_center", "center": "main"}))
    assert ("dr.actions", logging.INFO, "fault: freeze_center main") in caplog.record_tuples
