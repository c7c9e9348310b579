"""The drill plane stands on the runtime inventory alone: it imports no lab, finds a
system's targets in the runtime inventory, and acts through the world it is given."""
from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from dr.cli import drill
from dr.engine import Drill
from dr.scenario import get_scenario
from dr.world import WORLDS_META, UnknownWorld, make_world
from inventory.runtime import MissingTierTargets, RuntimeInventory

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "fixtures" / "runtime" / "sample.yaml"


def imported_modules(file: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("file", sorted((REPO / "dr").glob("*.py")), ids=lambda f: f.name)
def test_no_drill_module_imports_the_lab_or_the_entry_point(file: Path) -> None:
    planes = {name.split(".")[0] for name in imported_modules(file)}
    assert not planes & {"lab", "scripts"}, f"{file.name} imports {sorted(planes & {'lab', 'scripts'})}"


def test_running_the_drill_cli_loads_no_lab_module() -> None:
    code = ("import sys, dr.cli, dr.engine, dr.report, dr.world; "
            "print([m for m in sys.modules if m == 'lab' or m.startswith('lab.')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          check=True)
    assert done.stdout.strip() == "[]"


class RecordingWorld:
    """A world that records what it is asked; nothing in these tests may ask it anything."""

    name = "recording"
    calls: list[str] = []

    def __init__(self, runtime: RuntimeInventory) -> None:
        self.runtime = runtime

    def __getattr__(self, action: str):
        return lambda *args: RecordingWorld.calls.append(action)

    def report_context(self) -> dict:
        return {}


WORLDS = {"recording": f"{__name__}:RecordingWorld"}


@click.group()
@click.pass_context
def tricenter(ctx: click.Context) -> None:
    ctx.meta[WORLDS_META] = WORLDS


tricenter.add_command(drill)


def runtime_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(SAMPLE.read_text())
    data.update(changes)
    file = tmp_path / "runtime-inventory.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def test_the_tier_targets_and_their_edition_come_from_the_runtime_inventory(monkeypatch) -> None:
    monkeypatch.setenv("TRICENTER_SAMPLE_API_PASSWORD", "not-a-secret")  # the Patroni REST login
    runtime = RuntimeInventory.load(SAMPLE)
    system = runtime.systems["registry"]
    d = Drill(get_scenario("main-center-loss"), runtime, system, RecordingWorld(runtime))
    assert (d.tier.rto_seconds, d.tier.rpo_seconds, d.tier.gbt20988_level) == (300, 0, 6)
    assert d.gbt.edition == "2025" and d.outcome.gbt is d.gbt


def test_the_fault_is_timed_from_when_the_world_says_it_began_not_from_when_the_drill_asked(monkeypatch) -> None:
    monkeypatch.setenv("TRICENTER_SAMPLE_API_PASSWORD", "not-a-secret")
    runtime = RuntimeInventory.load(SAMPLE)

    class SlowToStart(RecordingWorld):
        def kill_center(self, center: str) -> float:
            time.sleep(0.2)  # arming, reaching the hosts, starting a tool
            began = time.time()
            time.sleep(0.2)  # waiting for the processes to be gone
            return began
    d = Drill(get_scenario("main-center-loss"), runtime, runtime.systems["registry"], SlowToStart(runtime))
    monkeypatch.setattr(d, "_replication_lag", lambda: None)
    d._inject()
    markers = d.world.markers
    assert markers["fault_requested"] + 0.2 <= markers["fault"] <= markers["fault_done"] - 0.2
    assert [e.action for e in d.outcome.events] == ["kill_center"]
    assert d.outcome.events[0].seconds >= 0.4  # the step keeps its own duration


def test_a_runtime_inventory_without_tier_targets_is_refused_with_the_fix(tmp_path: Path) -> None:
    RecordingWorld.calls = []
    file = runtime_file(tmp_path, tiers={})
    with pytest.raises(MissingTierTargets, match="tier 'core' has no targets"):
        RuntimeInventory.load(file).tier_of(RuntimeInventory.load(file).systems["registry"])
    result = CliRunner().invoke(tricenter, ["drill", "run", "main-center-loss", "--runtime", str(file),
                                            "--world", "recording"])
    assert result.exit_code == 2
    assert str(file) in result.output and "`tricenter lab up`" in result.output
    assert RecordingWorld.calls == []


def test_an_unknown_world_is_a_user_mistake_naming_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(tricenter, ["drill", "run", "main-center-loss", "--runtime",
                                            str(runtime_file(tmp_path)), "--world", "moon"])
    assert result.exit_code == 2 and "no drill world 'moon' — known: recording" in result.output
    with pytest.raises(UnknownWorld):
        make_world("lab", RuntimeInventory.load(SAMPLE), {})


def test_the_world_defaults_to_the_runtime_inventorys() -> None:
    assert RuntimeInventory.load(SAMPLE).world == "ssh"
    lab = yaml.safe_load(SAMPLE.read_text()) | {"source": "lab"}
    assert RuntimeInventory.model_validate(lab).world == "lab"
    world = make_world("recording", RuntimeInventory.load(SAMPLE), WORLDS)
    assert isinstance(world, RecordingWorld)
