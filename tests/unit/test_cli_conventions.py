"""Conventions operators know from other tools: --json keeps stdout machine-clean (errors
included), output without a terminal is not wrapped, a `version` command, environment
variables for the inventory and the reports, `lab logs -f`, drill history with run ids."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr import history
from dr.cli import _print_result, drill
from dr.paths import reports_dir
from lab import cli as lab_cli
from scripts.cli import PLANE_COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def tricenter(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """As a user runs it: stdout is a pipe, not a terminal."""
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_every_registered_command_exists() -> None:
    for name, (module, attr) in PLANE_COMMANDS.items():
        assert getattr(importlib.import_module(module), attr, None) is not None, name


def test_version_names_commit_and_components() -> None:
    run = tricenter("version", "--json")
    info = json.loads(run.stdout)
    assert run.returncode == 0 and info["tricenter"] and "commit" in info
    assert set(info["components"]) >= {"postgresql", "patroni", "etcd", "haproxy"}


@pytest.mark.parametrize("args", [["drill", "run", "no-such-drill", "--json"],
                                  ["drill", "report", "no-such-report", "--json"],
                                  ["drill", "history", "--scenario", "bogus", "--json"],
                                  ["validate", "--no-such-option", "--json"],
                                  ["plan", "--stack", "bogus", "--json"],
                                  ["runtime", "--stack", "guangdong-main", "--outputs",
                                   "/nonexistent/outputs.json", "--json"],
                                  ["plan", "--all", "--snapshot", "/nonexistent", "--json"]])
def test_errors_under_json_are_json_on_stdout_in_one_shape(args: list[str], tmp_path: Path) -> None:
    run = tricenter(*args, env={"TRICENTER_REPORTS_DIR": str(tmp_path)})
    error = json.loads(run.stdout)
    assert run.returncode == 2 and error["exit_code"] == 2 and error["error"]
    assert error["ok"] is False


def test_lab_down_has_json_and_refuses_a_stranger_directory_in_json(tmp_path: Path) -> None:
    run = tricenter("lab", "down", "--json", env={"TRICENTER_LAB_DIR": str(tmp_path)})
    assert run.returncode == 2 and "not a lab directory" in json.loads(run.stdout)["error"]


def test_output_without_a_terminal_is_not_wrapped() -> None:
    run = tricenter("capacity")
    assert run.returncode in (0, 1)
    assert "guangdong/main (main)" in run.stdout
    assert any(len(line) > 80 for line in run.stdout.splitlines())
    assert "\x1b[" not in run.stdout


def test_plan_output_without_a_terminal_is_not_wrapped_either(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run = subprocess.run([sys.executable, "-m", "scripts.cli", "plan", "--stack", "guangdong-main",
                          "--no-save"], cwd=REPO, text=True, capture_output=True, timeout=300,
                         env={**env, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    center = next(line for line in run.stdout.splitlines() if "center guangdong/main:" in line)
    assert "instances 130/400" in center and len(center) > 80
    assert "\x1b[" not in run.stdout


def test_inventory_comes_from_TRICENTER_INVENTORY(tmp_path: Path) -> None:
    run = tricenter("validate", "--json", env={"TRICENTER_INVENTORY": str(tmp_path / "none")})
    assert run.returncode == 2 and str(tmp_path / "none") in run.stdout


def test_reports_live_outside_the_package_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRICENTER_REPORTS_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert reports_dir() == tmp_path / "tricenter" / "drills"
    assert REPO not in reports_dir().parents
    monkeypatch.setenv("TRICENTER_REPORTS_DIR", str(tmp_path / "audit"))
    assert reports_dir() == tmp_path / "audit" and history.history_file().parent == tmp_path / "audit"


def test_history_shows_run_ids_and_rejects_an_unknown_scenario(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRICENTER_REPORTS_DIR", str(tmp_path))
    history.append({"scenario": "main-center-loss", "system": "sample", "run_id": "f00dfeed1234",
                    "status": "passed", "passed": True, "rto_seconds": 5.634, "acknowledged_writes": 9})
    shown = CliRunner().invoke(drill, ["history"])
    assert shown.exit_code == 0 and "f00dfeed1234" in shown.output
    bogus = CliRunner().invoke(drill, ["history", "--scenario", "bogus"])
    assert bogus.exit_code == 2 and "unknown scenario 'bogus'" in bogus.output


def test_drill_verdict_goes_to_stdout_with_units(capsys: pytest.CaptureFixture) -> None:
    data = {"status": "passed", "passed": True, "scenario": "main-center-loss", "system": "s",
            "rto_seconds": 5.633601188659668, "rto_judged_seconds": 5.634, "rto_from": "fault",
            "app_rto_seconds": None, "read_rto_seconds": 1.2, "max_write_gap_seconds": 5.6,
            "failback_max_write_gap_seconds": 2.09, "rpo_lost_writes": 0, "acknowledged_writes": 10,
            "rpo_seconds": 0.0, "split_brain": False, "gbt20988_level": 5, "criteria": [],
            "report_dir": "/r"}
    _print_result(data, as_json=False)
    printed = capsys.readouterr().out
    assert "RTO from the fault 5.634 s" in printed and "app entry not measured" in printed
    assert "failback write gap 2.090 s" in printed and "None" not in printed


def test_lab_status_shows_network_mode_and_patroni_profile() -> None:
    status = {"healthy": True, "settings": {"patroni_profile": "stock", "netns": True},
              "centers": {}, "database": {"leader": None, "sync_standby": None},
              "etcd": {"leader": None}, "app_entry": {"served_by": []}}
    title = str(lab_cli._status_table(status).title)
    assert "network netns" in title and "Patroni profile stock" in title


def test_lab_logs_follow_prints_appended_lines(tmp_path: Path, monkeypatch, capsys) -> None:
    log = tmp_path / "main-patroni.log"
    log.write_text("one\ntwo\n")
    monkeypatch.setattr(lab_cli.time, "sleep", lambda s: log.open("a").write("three\n"))
    lab_cli.follow([log], lines=1, poll_seconds=0, rounds=2)
    assert capsys.readouterr().out.splitlines() == ["two", "three"]
    assert "--follow" in CliRunner().invoke(main, ["lab", "logs", "--help"]).output


def test_shell_completion_is_available() -> None:
    run = subprocess.run([sys.executable, "-c", "from scripts.cli import main; main(prog_name='tricenter')"], cwd=REPO,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO), "_TRICENTER_COMPLETE": "bash_source"})
    assert "_tricenter_completion" in run.stdout
