"""A planned switchover silences its own system's handover alerts, through whichever
Alertmanager member answers, before Patroni is asked to switch; monitoring being down
does not stop the switchover."""
from __future__ import annotations

import datetime
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dr import silences
from dr.actions import StepContext, run_step
from support.patroni import ClusterState, MemberState
from dr.scenario import Step
from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember, HostPort,
                               RuntimeInventory, SecretRef, SystemRuntime)


class FakeAlertmanager:
    """Answers the silence and alert calls as Alertmanager's API v2 does; records them.
    `active` is what GET /api/v2/alerts returns (the alerts it still holds)."""

    def __init__(self, calls: list, active: list[dict] | None = None) -> None:
        recorded, held = calls, active or []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                recorded.append(("silence", self.path, body))
                self._reply({"silenceID": "sil-1"})

            def do_GET(self) -> None:  # noqa: N802
                recorded.append(("alerts", self.path, None))
                self._reply(held)

            def do_DELETE(self) -> None:  # noqa: N802
                recorded.append(("lift", self.path, None))
                self._reply({})

            def _reply(self, data) -> None:
                reply = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_look_back(monkeypatch):
    """The rules' look-back is a wait on the real lab; here only the order matters."""
    monkeypatch.setattr(silences, "LOOK_BACK_SECONDS", 0)
    monkeypatch.setattr(silences, "QUIET_DEADLINE_SECONDS", 0.5)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens once closed


class FakeCluster:
    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.leader = "pg-main"

    def wait_for(self, what, predicate, timeout) -> ClusterState:
        roles = {"pg-main": "replica", "pg-samecity": "sync_standby", self.leader: "leader"}
        state = ClusterState(members={n: MemberState(n, r, "running", 1, 0) for n, r in roles.items()},
                             seen_by="pg-main")
        assert predicate(state), what
        return state

    def switchover(self, leader: str, candidate: str, timeout: float) -> str:
        self.calls.append(("switchover", leader, candidate))
        self.leader = candidate
        return f"switched over from {leader} to {candidate}"


def world(alertmanagers: dict[str, str], calls: list) -> StepContext:
    centers = {n: CenterRuntime(name=n, role=n) for n in ("main", "samecity", "remote")}
    members = [DbMember(name=f"pg-{c}", center=c, host="127.0.0.1", api_url="http://x",
                        intended_role=r)
               for c, r in (("main", DbIntendedRole.leader), ("samecity", DbIntendedRole.sync),
                            ("remote", DbIntendedRole.async_))]
    db = DatabaseCluster(cluster="reg", dbname="reg", user="reg", password=SecretRef(env="PW"),
                         members=members, read_write=HostPort(host="h", port=1),
                         read_only=HostPort(host="h", port=2))
    runtime = RuntimeInventory(source="lab", cloud="c", centers=centers)
    runtime.monitoring.alertmanagers = alertmanagers
    system = SystemRuntime(name="registry", department="d", tier="critical", database=db)
    return StepContext(runtime, system, None, None, FakeCluster(calls), threading.Event())


@pytest.fixture
def calls() -> list:
    return []


@pytest.fixture
def member(calls):
    fake = FakeAlertmanager(calls)
    yield fake
    fake.close()


def test_the_switchover_silences_its_systems_handover_alerts_first(calls, member):
    # main's member is gone (as after a center loss): the next one takes the silence.
    w = world({"main": closed_port_url(), "samecity": member.url}, calls)
    detail = run_step(w, Step(action="switchover", to="samecity", timeout_seconds=30))
    # Silenced before Patroni is asked; lifted once Alertmanager holds none of its alerts,
    # so the next fault pages.
    assert [c[0] for c in calls] == ["silence", "switchover", "alerts", "lift"]
    assert calls[3][1] == "/api/v2/silence/sil-1"
    assert "system%3D%22registry%22" in calls[2][1]
    _, path, body = calls[0]
    assert path == "/api/v2/silences"
    assert {"name": "system", "value": "registry", "isRegex": False, "isEqual": True} in body["matchers"]
    names = next(m for m in body["matchers"] if m["name"] == "alertname")
    assert names["isRegex"] and set(names["value"].split("|")) == {
        "TricenterPrimaryLost", "TricenterLayoutNotAsIntended", "TricenterNoSyncStandby"}
    starts, ends = (datetime.datetime.fromisoformat(body[k].replace("Z", "+00:00"))
                    for k in ("startsAt", "endsAt"))
    assert (ends - starts).total_seconds() == 30 + silences.LOOK_BACK_SECONDS + silences.QUIET_DEADLINE_SECONDS
    assert "sil-1 lifted" in detail and w.extra["silences"] == ["sil-1"]
    assert "silences_left" not in w.extra


def test_a_silence_whose_alert_is_still_active_is_left_to_expire_by_itself(calls):
    held = [{"labels": {"alertname": "TricenterPrimaryLost", "system": "registry"}}]
    member = FakeAlertmanager(calls, active=held)
    try:
        w = world({"samecity": member.url}, calls)
        detail = run_step(w, Step(action="switchover", to="samecity", timeout_seconds=30))
    finally:
        member.close()
    assert "lift" not in [c[0] for c in calls]
    assert "left to expire: still active TricenterPrimaryLost" in detail
    assert w.extra["silences_left"] == ["sil-1"]  # for the drill to lift at its end


def test_unreachable_monitoring_does_not_stop_a_planned_switchover(calls):
    w = world({"main": closed_port_url()}, calls)
    detail = run_step(w, Step(action="switchover", to="samecity", timeout_seconds=30))
    assert calls == [("switchover", "pg-main", "pg-samecity")]
    assert "not silenced" in detail and "main" in detail


def test_the_silence_body_is_what_amtool_would_accept():
    body = silences.silence_body("registry", 90, "planned",
                                 now=datetime.datetime(2026, 12, 2, 8, 0, tzinfo=datetime.timezone.utc))
    assert body["startsAt"] == "2026-12-02T08:00:00Z" and body["endsAt"] == "2026-12-02T08:01:30Z"
    assert body["createdBy"] and body["comment"] == "planned"


def test_the_silences_a_drill_would_run_under_are_found(calls):
    now = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=datetime.timezone.utc)
    ours = {"id": "sil-1", **silences.silence_body("registry", 90, "planned", now=now),
            "status": {"state": "active"}}
    expired = {**ours, "id": "sil-2", "status": {"state": "expired"}}
    other = {"id": "sil-3", **silences.silence_body("civil-affairs", 90, "planned", now=now),
             "status": {"state": "active"}}
    member = FakeAlertmanager(calls, active=[ours, expired, other])
    try:
        found = silences.silences_covering(member.url, "registry", ["TricenterPrimaryLost"])
        unrelated = silences.silences_covering(member.url, "registry", ["TricenterBackupTooOld"])
    finally:
        member.close()
    assert found == ["sil-1 (tricenter runbook, until 2026-12-03T09:01:30Z)"]
    assert unrelated == []
    assert calls[0] == ("alerts", "/api/v2/silences", None)


def test_a_drill_lifts_the_silences_its_switchovers_left_at_its_end(calls):
    from types import SimpleNamespace

    from dr.engine import Drill

    member = FakeAlertmanager(calls)
    monitoring = SimpleNamespace(alertmanagers={"main": closed_port_url(), "samecity": member.url})
    drill = SimpleNamespace(world=SimpleNamespace(extra={"silences": ["sil-1", "sil-2"],
                                                         "silences_left": ["sil-2"]}),
                            runtime=SimpleNamespace(monitoring=monitoring))
    try:
        Drill._lift_own_silences(drill)
    finally:
        member.close()
    # main's member is gone: samecity's takes the expiry; the one already lifted is left alone
    assert calls == [("lift", "/api/v2/silence/sil-2", None)]
