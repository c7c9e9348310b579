"""Drills against the real lab: each reads like the promise it checks.

When <scenario> runs on the lab, no acknowledged write is lost, no two nodes accept
writes at once, and the lab ends in its original layout (leader main, sync samecity,
async remote), so the next drill can run right after. RTO is measured, not asserted here:
`benchmarks/drills.py` holds it to its target.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def run_drill(scenario: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "drill", "run", scenario, "--json"],
                          capture_output=True, text=True, timeout=900)
    assert done.stdout.strip(), f"no JSON from the drill; stderr:\n{done.stderr[-4000:]}"
    return done.returncode, json.loads(done.stdout)


def lab_layout() -> dict:
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "lab", "status", "--json"],
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)["database"]


def assert_lost_nothing_and_restored(scenario: str, code: int, result: dict) -> None:
    assert result["status"] in ("passed", "failed"), f"{scenario} did not run: {result.get('reason')}"
    assert code == (0 if result["passed"] else 1)
    assert result["acknowledged_writes"] > 0
    assert result["rpo_lost_writes"] == 0, f"lost writes {result['lost_write_ids']}"
    assert result["split_brain"] is False, result["split_brain_events"]
    assert result["duplicate_writes"] == 0
    assert result["rto_seconds"] is not None, "writes never came back"
    assert result["checks"]["restored_original_layout"], result["check_details"]
    layout = lab_layout()
    assert (layout["leader"], layout["sync_standby"]) == ("main", "samecity")
    for name in ("report.json", "report.md", "report.html", "timeline.png"):
        assert (Path(result["report_dir"]) / name).exists()
    assert_every_touched_system_measured(scenario, result)


# The lab's second system, the charity (general tier: primary in main, async copy in
# remote), sits in main too: a fault of the whole main center takes both systems at once.
CENTER_FAULTS = ("main-center-loss", "main-center-freeze", "main-center-isolation")


def assert_every_touched_system_measured(scenario: str, result: dict) -> None:
    """A center fault measures every system its center holds, each against its own tier."""
    if scenario not in CENTER_FAULTS:
        assert "touched_systems" not in result  # a component or planned fault touches one system
        return
    (charity,) = result["touched_systems"]
    assert charity["name"] == "charity" and charity["tier"] == "general", charity
    # no automatic failover: it writes again once main is back, with nothing lost
    assert charity["rto_seconds"] is not None and charity["rpo_lost_writes"] == 0, charity
    assert charity["split_brain"] is False and charity["passed"], charity
    summary = result["center_summary"]
    assert (summary["systems"], summary["passed"], summary["lost_writes"]) == (2, 2, 0), summary
    assert summary["worst_rto_seconds"] >= result["rto_seconds"]


# main-center-loss and db-primary-crash run through the SSH world (test_drills_ssh.py),
# whose hosts act on the same lab processes; the lab world's kill_center and
# kill_component are exercised by the interrupted-drill test (test_drill_recovery.py),
# and ./scripts/demo.sh runs main-center-loss through it. CI runs each scenario once
# where it can: the run stays short.
def test_switchover_loses_nothing_and_restores_the_layout(lab) -> None:
    code, result = run_drill("samecity-switchover")
    assert_lost_nothing_and_restored("samecity-switchover", code, result)


@pytest.mark.loopback_only  # in netns mode the isolation drill runs for real below
def test_isolation_is_skipped_never_passed_without_netns(lab) -> None:
    code, result = run_drill("main-center-isolation")
    assert result["status"] == "skipped"
    assert code == 2 and result["passed"] is False
    assert "lab up --netns" in result["reason"]


@pytest.mark.netns_only  # a real partition needs netns mode (TRICENTER_LAB_NETNS=1)
def test_isolated_main_loses_nothing_and_no_split_brain(lab) -> None:
    code, result = run_drill("main-center-isolation")
    assert_lost_nothing_and_restored("main-center-isolation", code, result)
