"""Drills say which alerts reached the receiver and when, and name expected alerts that
never fired; the receiver records what Alertmanager posts."""
from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import yaml

from dr import alerts
from dr.report import write_report
from dr.scenario import load_catalogue
from monitoring.alert_receiver import serve
from tests.unit.test_dr_report import outcome

ROOT = Path(__file__).resolve().parents[2]
FAULT = 1010.0


def record(name: str, status: str, at: float, system: str | None = "sample") -> dict:
    labels = {"alertname": name, **({"system": system} if system else {})}
    return {"name": name, "status": status, "received_at": at, "labels": labels}


def test_a_drill_waits_for_an_expected_alert_to_fire_then_to_resolve() -> None:
    expected, due = ["TricenterPrimaryLost"], 30.0
    fired = [record("TricenterPrimaryLost", "resolved", 1005.0),  # before the fault
             record("TricenterPrimaryLost", "firing", 1014.0),
             record("TricenterEtcdMemberDown", "firing", 1015.0, system=None)]  # not expected
    assert alerts.awaited(fired, expected, FAULT, "sample", 1100.0, due) == ["TricenterPrimaryLost"]
    done = [*fired, record("TricenterPrimaryLost", "resolved", 1050.0)]
    assert alerts.awaited(done, expected, FAULT, "sample", 1100.0, due) == []
    # not fired yet: waited for while the fault is younger than `due`, then given up
    assert alerts.awaited([], expected, FAULT, "sample", FAULT + 12, due) == ["TricenterPrimaryLost"]
    assert alerts.awaited([], expected, FAULT, "sample", FAULT + 31, due) == []


def test_fired_and_resolved_seconds_after_the_fault() -> None:
    records = [record("TricenterPrimaryLost", "firing", 1000.0),  # before the fault: not this drill
               record("TricenterPrimaryLost", "firing", 1019.5),
               record("TricenterPrimaryLost", "firing", 1024.5),  # a repeat changes nothing
               record("TricenterPrimaryLost", "resolved", 1040.25),
               record("TricenterPrimaryLost", "firing", 1012.0, system="other"),
               record("TricenterEtcdMemberDown", "firing", 1050.0, system=None)]
    found, missing = alerts.timeline(records, ["TricenterPrimaryLost"], FAULT, "sample")
    assert found == [{"name": "TricenterPrimaryLost", "fired_after_s": 9.5, "resolved_after_s": 30.25},
                     {"name": "TricenterEtcdMemberDown", "fired_after_s": 40.0, "resolved_after_s": None}]
    assert missing == []


def test_the_last_drills_resolution_delivered_late_is_not_this_drills() -> None:
    """Another Alertmanager member delivered the last episode's resolution 2 s after this
    fault's page (seen in a stock-profile main-center-loss, primary still lost)."""
    def iso(at: float) -> str:
        return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat().replace("+00:00", "Z")

    records = [{**record("TricenterPrimaryLost", "firing", 1016.0), "starts_at": iso(1015.5)},
               {**record("TricenterPrimaryLost", "resolved", 1018.0), "starts_at": iso(940.0)},
               {**record("TricenterPrimaryLost", "resolved", 1041.0), "starts_at": iso(1015.5)}]
    found, missing = alerts.timeline(records, ["TricenterPrimaryLost"], FAULT, "sample")
    assert found == [{"name": "TricenterPrimaryLost", "fired_after_s": 6.0, "resolved_after_s": 31.0}]
    assert missing == []


def test_an_expected_alert_that_never_fired_is_named() -> None:
    found, missing = alerts.timeline([record("TricenterPrimaryLost", "resolved", 1020.0)],
                                     ["TricenterPrimaryLost"], FAULT, "sample")
    assert found == [{"name": "TricenterPrimaryLost", "fired_after_s": None, "resolved_after_s": None}]
    assert missing == ["TricenterPrimaryLost"]


def test_an_alert_still_firing_from_before_the_fault_is_recognised() -> None:
    records = [record("TricenterPrimaryLost", "firing", 990.0),
               record("TricenterEtcdMemberDown", "firing", 995.0),
               record("TricenterEtcdMemberDown", "resolved", 1000.0),
               record("TricenterNoSyncStandby", "firing", 1005.0, system="other")]
    assert alerts.firing_at(records, FAULT, "sample") == ["TricenterPrimaryLost"]


def test_the_report_and_json_carry_the_alerts(tmp_path: Path) -> None:
    out = outcome()
    out.extra.update(alerts=[{"name": "TricenterPrimaryLost", "fired_after_s": None,
                              "resolved_after_s": None}], alerts_missing=["TricenterPrimaryLost"])
    directory, data = write_report(out, tmp_path)
    assert data["alerts"] == out.extra["alerts"]
    assert data["expected_alerts"] == ["TricenterPrimaryLost"]
    assert json.loads((directory / "report.json").read_text())["alerts_missing"] == ["TricenterPrimaryLost"]
    assert "Expected alert TricenterPrimaryLost never fired" in (directory / "report.md").read_text()
    assert "Expected alert TricenterPrimaryLost never fired" in (directory / "report.html").read_text()


def test_every_scenario_states_alerts_that_the_rules_define() -> None:
    defined = {rule["alert"] for file in (ROOT / "monitoring" / "rules").glob("*.yml")
               for group in yaml.safe_load(file.read_text())["groups"] for rule in group["rules"]
               if "alert" in rule}
    for file in (ROOT / "dr" / "scenarios").glob("*.yaml"):
        assert "alerts" in yaml.safe_load(file.read_text()), f"{file.name} states no expected alerts"
    for scenario in load_catalogue().values():
        assert set(scenario.alerts) <= defined, scenario.name
    assert "TricenterPrimaryLost" in load_catalogue()["main-center-loss"].alerts


@pytest.fixture
def receiver(tmp_path: Path):
    server = serve("127.0.0.1:0", tmp_path / "alerts.jsonl")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_receiver_records_what_alertmanager_posts(receiver: str) -> None:
    payload = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "TricenterPrimaryLost", "system": "sample"},
         "startsAt": "2026-12-02T04:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}
    assert requests.post(receiver, json=payload, timeout=2).status_code == 200
    assert requests.post(receiver, data=b"not json", timeout=2).status_code == 400
    got = alerts.fetch(receiver, since=0)
    assert [(r["name"], r["status"], r["labels"]["system"]) for r in got] == [
        ("TricenterPrimaryLost", "firing", "sample")]
    assert alerts.fetch(receiver, since=got[0]["received_at"] + 1) == []
    with pytest.raises(alerts.ReceiverUnavailable):
        alerts.fetch(receiver + "/nothing-here", since=0)


def _drill(fault_steps: list, markers: dict, status: str = "finished") -> SimpleNamespace:
    monitoring = SimpleNamespace(alert_receiver_url="http://receiver")
    return SimpleNamespace(runtime=SimpleNamespace(monitoring=monitoring),
                           outcome=SimpleNamespace(markers=markers, started_at=1000.0, extra={},
                                                   status=status),
                           scenario=SimpleNamespace(fault=fault_steps, alerts=[]),
                           system=SimpleNamespace(name="registry"))


def _paged(monkeypatch) -> None:
    records = [{"received_at": 1030.0, "name": "TricenterBackupTooOld", "status": "firing",
                "labels": {"system": "registry"}}]
    monkeypatch.setattr(alerts, "fetch", lambda url, since: records)


def test_a_drill_without_a_fault_still_reports_what_paged_from_its_start(monkeypatch) -> None:
    from dr.engine import Drill

    _paged(monkeypatch)
    drill = _drill([], {})
    Drill._alerts(drill)
    assert drill.outcome.extra["alerts"] == [
        {"name": "TricenterBackupTooOld", "fired_after_s": 30.0, "resolved_after_s": None}]


def test_a_drill_whose_fault_never_came_times_nothing(monkeypatch) -> None:
    from dr.engine import Drill

    _paged(monkeypatch)
    drill = _drill(["kill_center main"], {}, status="skipped")
    Drill._alerts(drill)
    assert "alerts" not in drill.outcome.extra


def _next_drill(alertmanagers: dict[str, str]) -> SimpleNamespace:
    """A drill about to inject TricenterPrimaryLost's fault, right after another drill."""
    monitoring = SimpleNamespace(alert_receiver_url="http://receiver", alertmanagers=alertmanagers)
    told: list[str] = []
    return SimpleNamespace(runtime=SimpleNamespace(monitoring=monitoring),
                           scenario=SimpleNamespace(alerts=["TricenterPrimaryLost"]),
                           system=SimpleNamespace(name="registry"), stop=threading.Event(),
                           progress=lambda phase, message: told.append(message), told=told)


def test_a_drill_waits_until_the_last_drills_page_has_resolved(monkeypatch) -> None:
    from dr import silences
    from dr.engine import Drill

    polls = []

    def fetch(url: str, since: float) -> list[dict]:
        polls.append(since)
        records = [record("TricenterPrimaryLost", "firing", 1.0, system="registry")]
        if len(polls) >= 2:  # the last drill's resolution arrives
            records.append(record("TricenterPrimaryLost", "resolved", 2.0, system="registry"))
        return records

    monkeypatch.setattr(alerts, "fetch", fetch)
    monkeypatch.setattr(silences, "handover_alerts_active", lambda url, system, names: [])
    monkeypatch.setattr(silences, "silences_covering", lambda url, system, names: [])
    drill = _next_drill({"main": "http://am"})
    ok, detail = Drill._alerts_quiet(drill)
    assert ok and len(polls) == 2 and "none of TricenterPrimaryLost" in detail
    assert drill.told == ["waiting for registry's alerts to be quiet: TricenterPrimaryLost last notified firing"]


def test_a_silence_of_its_page_outlasting_the_wait_is_named(monkeypatch) -> None:
    from dr import engine, silences
    from dr.engine import Drill

    monkeypatch.setattr(engine, "ALERTS_QUIET_SECONDS", 0.2)
    monkeypatch.setattr(alerts, "fetch", lambda url, since: [])
    monkeypatch.setattr(silences, "handover_alerts_active", lambda url, system, names: [])
    monkeypatch.setattr(silences, "silences_covering",
                        lambda url, system, names: ["sil-9 (tricenter runbook, until later)"])
    ok, detail = Drill._alerts_quiet(_next_drill({"main": "http://am"}))
    assert not ok
    assert "silence sil-9 (tricenter runbook, until later)" in detail and "amtool silence expire" in detail


def test_unreachable_monitoring_does_not_hold_a_drill_back(monkeypatch) -> None:
    from dr.engine import Drill

    def fetch(url: str, since: float) -> list[dict]:
        raise alerts.ReceiverUnavailable("alert receiver http://receiver: ConnectionError")

    monkeypatch.setattr(alerts, "fetch", fetch)
    ok, detail = Drill._alerts_quiet(_next_drill({}))
    assert ok and "will not be timed" in detail


def test_a_handover_silence_mutes_its_own_systems_page_only() -> None:
    from dr import silences

    matchers = silences.silence_body("registry", 90, "planned")["matchers"]
    assert silences.mutes(matchers, "registry", "TricenterPrimaryLost")
    assert not silences.mutes(matchers, "civil-affairs", "TricenterPrimaryLost")
    assert not silences.mutes(matchers, "registry", "TricenterEtcdNoQuorum")
    negative = [{"name": "system", "value": "registry", "isRegex": False, "isEqual": False}]
    assert silences.mutes(negative, "civil-affairs", "TricenterPrimaryLost")
    assert not silences.mutes(negative, "registry", "TricenterPrimaryLost")


def test_a_note_from_the_precheck_stays_in_the_report(monkeypatch) -> None:
    from dr.engine import Drill

    monkeypatch.setattr(alerts, "fetch", lambda url, since: [])
    drill = _drill(["kill_center main"], {"fault": 1010.0})
    drill.scenario.alerts = ["TricenterPrimaryLost"]
    drill.outcome.extra["alerts_note"] = "not quiet before the fault: silence sil-9"
    Drill._alerts(drill, late="still firing 90 s after the restore ended")
    assert drill.outcome.extra["alerts_missing"] == ["TricenterPrimaryLost"]
    assert drill.outcome.extra["alerts_note"] == (
        "not quiet before the fault: silence sil-9; still firing 90 s after the restore ended")
