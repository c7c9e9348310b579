"""The scenario catalogue loads, and a broken scenario says file, line, field and fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from dr.scenario import (SCENARIO_DIR, Action, ScenarioProblem, UnknownScenario, get_scenario,
                         load_catalogue, load_scenario_file)

REQUIRED = {"samecity-switchover", "main-center-loss", "db-primary-crash", "main-center-freeze",
            "main-center-isolation", "regional-disaster", "backup-restore", "test-failover"}


def test_catalogue_has_every_required_scenario() -> None:
    assert REQUIRED <= set(load_catalogue())


def test_isolation_needs_netns_and_regional_is_a_runbook() -> None:
    cat = load_catalogue()
    assert "netns" in cat["main-center-isolation"].requires
    regional = cat["regional-disaster"]
    assert regional.recovery.mode == "runbook"
    assert Action.promote_remote in [s.action for s in regional.recovery.steps]
    assert regional.targets.rpo_against == "replication_lag"


def test_a_frozen_center_is_thawed_only_once_the_standby_leads() -> None:
    # thawed earlier, the old primary renews a lease that a new etcd leader had extended,
    # keeps the key, and the drill tests nothing (one of five back-to-back runs errored so)
    steps = [(s.action, s.center) for s in load_catalogue()["main-center-freeze"].recovery.steps]
    thaw = steps.index((Action.thaw_center, "main"))
    assert (Action.wait_leader, "samecity") in steps[:thaw]
    assert steps[0][0] == Action.hold  # and never shorter than the lease


def test_every_unplanned_scenario_restores_the_original_layout() -> None:
    for s in load_catalogue().values():
        if s.kind in ("unplanned", "planned"):
            assert s.restore, s.name
            assert s.restore[-1].action in (Action.wait_layout, Action.reprotect_from_remote) or \
                Action.wait_layout in [x.action for x in s.restore], s.name


def write(tmp_path: Path, name: str, text: str) -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(text)
    return file


BASE = """name: demo
title: t
kind: unplanned
description: d
recovery: {mode: automatic}
"""


def test_minimal_scenario_loads(tmp_path: Path) -> None:
    assert load_scenario_file(write(tmp_path, "demo", BASE)).name == "demo"


def test_unknown_key_names_file_line_and_fix(tmp_path: Path) -> None:
    file = write(tmp_path, "demo", BASE + "faults: []\n")
    with pytest.raises(ScenarioProblem) as exc:
        load_scenario_file(file)
    msg = str(exc.value)
    assert f"{file}:6: faults: unknown key" in msg and "spelling" in msg


def test_step_missing_its_center_is_rejected(tmp_path: Path) -> None:
    file = write(tmp_path, "demo", BASE + "fault:\n  - {action: kill_center}\n")
    with pytest.raises(ScenarioProblem, match=r"demo.yaml:7: fault.0: action 'kill_center' needs center"):
        load_scenario_file(file)


def test_unknown_action_lists_the_known_ones(tmp_path: Path) -> None:
    file = write(tmp_path, "demo", BASE + "fault:\n  - {action: nuke_center, center: main}\n")
    with pytest.raises(ScenarioProblem, match="kill_center"):
        load_scenario_file(file)


def test_unknown_center_role(tmp_path: Path) -> None:
    file = write(tmp_path, "demo", BASE + "fault:\n  - {action: kill_center, center: mars}\n")
    with pytest.raises(ScenarioProblem, match="fault.0.center"):
        load_scenario_file(file)


def test_hold_needs_exactly_one_duration(tmp_path: Path) -> None:
    file = write(tmp_path, "demo", BASE.replace("{mode: automatic}",
                 "{mode: automatic, steps: [{action: hold, seconds: 1, lease_multiple: 2}]}"))
    with pytest.raises(ScenarioProblem, match="exactly one of seconds, lease_multiple"):
        load_scenario_file(file)


def test_runbook_recovery_needs_steps(tmp_path: Path) -> None:
    file = write(tmp_path, "demo", BASE.replace("automatic", "runbook"))
    with pytest.raises(ScenarioProblem, match="needs steps"):
        load_scenario_file(file)


def test_name_must_match_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioProblem, match="must match the file name"):
        load_scenario_file(write(tmp_path, "other", BASE))


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioProblem, match=r"demo.yaml:\d+: .*YAML syntax"):
        load_scenario_file(write(tmp_path, "demo", BASE + "fault: [\n"))


def test_unknown_scenario_lists_the_catalogue() -> None:
    with pytest.raises(UnknownScenario, match="main-center-loss"):
        get_scenario("no-such-drill")


def test_catalogue_reports_every_broken_file(tmp_path: Path) -> None:
    write(tmp_path, "a", BASE.replace("demo", "a") + "x: 1\n")
    write(tmp_path, "b", BASE.replace("demo", "b") + "y: 1\n")
    with pytest.raises(ScenarioProblem) as exc:
        load_catalogue(tmp_path)
    assert "a.yaml" in str(exc.value) and "b.yaml" in str(exc.value)


def test_scenario_dir_is_the_packaged_one() -> None:
    assert (SCENARIO_DIR / "main-center-loss.yaml").exists()
