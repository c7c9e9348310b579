"""A center fault measures every system its centers hold, each against its own tier (issue
12): which systems a fault touches, and the verdict from a touched system's own ledger."""
from __future__ import annotations

from pathlib import Path

import pytest

from dr import touched as touched_module
from dr.engine import DrillOutcome
from dr.ledger import Observation, Write
from dr.report import write_report
from dr.scenario import get_scenario
from dr.touched import TouchedSystem, center_summary, faulted_centers, touched_systems
from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember, HostPort,
                               RuntimeInventory, SecretRef, SystemRuntime, TierTargets)
from tests.unit.test_dr_report import outcome

ROLES = {"main": DbIntendedRole.leader, "samecity": DbIntendedRole.sync, "remote": DbIntendedRole.async_}
TIERS = {"critical": TierTargets(name="critical", rto_seconds=120, rpo_seconds=0, gbt20988_level=6),
         "general": TierTargets(name="general", rto_seconds=3600, rpo_seconds=900, gbt20988_level=4)}


def database(name: str, centers: tuple[str, ...], port: int) -> DatabaseCluster:
    return DatabaseCluster(
        cluster=name, dbname=name, user=name, password=SecretRef(env="TRICENTER_TEST_PW"),
        members=[DbMember(name=f"pg-{c}", center=c, host=f"127.0.{n}.7", api_url=f"https://127.0.{n}.7:8008",
                          intended_role=ROLES[c] if c != "remote" or len(centers) == 3 else DbIntendedRole.async_)
                 for n, c in enumerate(centers, start=1)],
        read_write=HostPort(host="127.0.10.6", port=port), read_only=HostPort(host="127.0.10.6", port=port + 1))


def world() -> RuntimeInventory:
    centers = {c: CenterRuntime(name=c, role=c, addresses=[]) for c in ("main", "samecity", "remote")}
    systems = {
        "registry": SystemRuntime(name="registry", department="d", tier="critical",
                                  database=database("registry", ("main", "samecity", "remote"), 5000)),
        "charity": SystemRuntime(name="charity", department="d", tier="general",
                                 database=database("charity", ("main", "remote"), 5002)),
        "archive": SystemRuntime(name="archive", department="d", tier="general",
                                 database=database("archive", ("samecity", "remote"), 5004)),
        "portal": SystemRuntime(name="portal", department="d", tier="general"),  # no database
    }
    return RuntimeInventory(source="lab", cloud="lab", centers=centers, systems=systems, tiers=TIERS)


def test_a_center_fault_touches_every_other_system_with_a_member_there() -> None:
    runtime = world()
    drilled = runtime.systems["registry"]
    loss = get_scenario("main-center-loss")
    assert faulted_centers(loss, runtime) == ["main"]
    assert [s.name for s in touched_systems(runtime, drilled, ["main"])] == ["charity"]
    assert [s.name for s in touched_systems(runtime, drilled, ["samecity"])] == ["archive"]
    # a component fault takes one system's database, not a center
    assert faulted_centers(get_scenario("db-primary-crash"), runtime) == []
    assert touched_systems(runtime, drilled, []) == []


@pytest.fixture
def charity(monkeypatch) -> TouchedSystem:
    monkeypatch.setenv("TRICENTER_TEST_PW", "secret")
    runtime = world()
    return TouchedSystem(runtime, runtime.systems["charity"], ["main"], rate=25, attempt_timeout=3)


def write_through(system: TouchedSystem, outage: tuple[float, float], until: float, every: float = 0.1) -> None:
    """Writes every `every` s from t=0 (at 1000 on the clock), refused during `outage`;
    pg-main acknowledges them."""
    t, i = 0.0, 0
    while t < until:
        i += 1
        ok = not (outage[0] <= t < outage[1])
        system.ledger.add_write(Write(i, "db", 0, 1000 + t, 1000 + t + 0.01, ok, node="pg-main" if ok else None,
                                      timeline=1 if ok else None, system_id="9", server_time=1000 + t if ok else None))
        system.ledger.add_observation(Observation(1000 + t, "pg-main" if ok else None, 1, {}))
        t = round(t + every, 3)


def down_until_main_is_back(charity: TouchedSystem, monkeypatch) -> None:
    """Refused for 40 s from the fault (t=10), then written again with nothing lost."""
    write_through(charity, outage=(10.0, 50.0), until=60.0)
    acked = {w.id: 1 for w in charity.ledger.writes if w.acked}
    monkeypatch.setattr(touched_module, "read_back", lambda target, run_id: acked)


def test_a_touched_system_is_judged_against_its_own_tier(charity, monkeypatch) -> None:
    # Without automatic failover the charity waits for main to come back: 40 s, judged
    # against its general tier's 3600 s (not the drilled system's critical 120 s).
    down_until_main_is_back(charity, monkeypatch)
    result = charity.finish(fault_at=1010.0, restored_at=1000.0)
    assert result.passed and result.tier == "general" and result.centers == ["main"]
    assert result.rto_seconds == pytest.approx(40.0, abs=0.2) and result.rpo_lost_writes == 0
    assert {c.name: c.target for c in result.criteria}["rto_seconds"] == 3600
    # recovered in main, not in a remote cluster: no level 6 claimed
    assert result.recovered_in == "main" and result.gbt20988_level == 5


def test_a_touched_system_that_lost_acknowledged_writes_beyond_its_tier_fails(charity, monkeypatch) -> None:
    write_through(charity, outage=(1000.0, 1002.0), until=1100.0, every=1.0)
    # every write of the 1000 s before the fault is gone: beyond the general tier's 900 s RPO
    kept = {w.id: 1 for w in charity.ledger.writes if w.acked and w.sent_at >= 2000}
    monkeypatch.setattr(touched_module, "read_back", lambda target, run_id: kept)
    result = charity.finish(fault_at=2000.0, restored_at=2000.0)
    assert not result.passed and result.rpo_lost_writes > 0
    assert {c.name: c.ok for c in result.criteria}["rpo_seconds"] is False


def test_a_touched_system_that_never_wrote_again_says_so(charity, monkeypatch) -> None:
    write_through(charity, outage=(10.0, 10**6), until=20.0)
    monkeypatch.setattr(touched_module, "RESUME_AFTER_RESTORE_SECONDS", 0.2)
    monkeypatch.setattr(touched_module, "read_back", lambda target, run_id: {})
    result = charity.finish(fault_at=1010.0, restored_at=1015.0)
    assert not result.passed and result.rto_seconds is None
    assert "no write acknowledged within 0.2 s" in result.note


def test_the_report_lists_every_touched_system_and_the_center_summary(charity, monkeypatch, tmp_path: Path) -> None:
    down_until_main_is_back(charity, monkeypatch)
    drilled: DrillOutcome = outcome()
    drilled.touched = [charity.finish(fault_at=1010.0, restored_at=1000.0)]
    directory, data = write_report(drilled, tmp_path)
    assert [t["name"] for t in data["touched_systems"]] == ["charity"]
    assert data["center_summary"] == {"systems": 2, "passed": 2, "failed": [], "not_recovered": [],
                                      "worst_rto_seconds": data["touched_systems"][0]["rto_seconds"],
                                      "lost_writes": 0}
    for page in ("report.html", "report.zh.html"):
        text = (directory / page).read_text()
        assert "charity" in text and ("Every system the fault touched" in text or "本次故障波及的全部系统" in text)


def test_the_center_summary_names_the_systems_that_failed_or_never_came_back() -> None:
    drilled = {"name": "registry", "rto_seconds": 5.2, "rpo_lost_writes": 0, "passed": True}
    from dr.touched import TouchedResult
    slow = TouchedResult("charity", "general", ["main"], rto_seconds=None, rpo_lost_writes=0, passed=False)
    summary = center_summary(drilled, [slow])
    assert summary["failed"] == ["charity"] and summary["not_recovered"] == ["charity"]
    assert summary["worst_rto_seconds"] == 5.2 and summary["passed"] == 1


def test_each_touched_system_gets_a_history_row_of_its_own(charity, monkeypatch, tmp_path: Path) -> None:
    from dr import history

    down_until_main_is_back(charity, monkeypatch)
    drilled: DrillOutcome = outcome()
    drilled.touched = [charity.finish(fault_at=1010.0, restored_at=1000.0)]
    _, data = write_report(drilled, tmp_path)
    file = tmp_path / "drills.jsonl"
    history.append(data, file)
    own, touched = history.load(file)
    assert (own["system"], own["touched_by"]) == ("sample", None)
    assert (touched["system"], touched["touched_by"], touched["tier"]) == ("charity", "sample", "general")
    assert touched["run_id"] == own["run_id"] and touched["passed"] is True
    assert touched["rto_seconds"] == data["touched_systems"][0]["rto_seconds"]
    assert touched["app_rto_seconds"] is None  # the drilled system's figure, not the charity's
    assert {row["system"] for row in history.trend([own, touched])} == {"sample", "charity"}
