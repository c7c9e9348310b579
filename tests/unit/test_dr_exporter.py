"""The drill exporter shows the last drill per scenario and system."""
from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from dr import history
from monitoring.drill_exporter import DrillCollector


def test_last_drill_results_are_exported(tmp_path: Path) -> None:
    file = tmp_path / "h.jsonl"
    base = {"scenario": "main-center-loss", "system": "registry", "tier": "critical", "status": "passed",
            "passed": True, "rpo_lost_writes": 0, "rpo_seconds": 0.0, "acknowledged_writes": 900,
            "split_brain": False, "gbt20988_level": 6, "started_at": "2026-11-27T12:00:00.000+00:00"}
    history.append({**base, "rto_seconds": 7.5}, file)
    history.append({**base, "rto_seconds": 4.25}, file)
    history.append({**base, "status": "skipped", "rto_seconds": None}, file)
    registry = CollectorRegistry()
    registry.register(DrillCollector(file))
    text = generate_latest(registry).decode()
    labels = 'scenario="main-center-loss",system="registry",tier="critical"'
    assert f"tricenter_drill_rto_seconds{{{labels}}} 4.25" in text
    assert f"tricenter_drill_lost_writes{{{labels}}} 0.0" in text
    assert f"tricenter_drill_gbt20988_level{{{labels}}} 6.0" in text
    assert f"tricenter_drill_runs{{{labels}}} 3.0" in text


def test_the_history_is_read_again_only_once_it_changed(tmp_path) -> None:
    from dr import history

    file = tmp_path / "drills.jsonl"
    assert history.load_unless_unchanged(file) == []
    history.append({"scenario": "main-center-loss", "system": "registry", "passed": True}, file)
    first = history.load_unless_unchanged(file)
    assert history.load_unless_unchanged(file) is first  # unchanged: not parsed again
    history.append({"scenario": "db-primary-crash", "system": "registry", "passed": False}, file)
    assert [r["scenario"] for r in history.load_unless_unchanged(file)] == [
        "main-center-loss", "db-primary-crash"]
