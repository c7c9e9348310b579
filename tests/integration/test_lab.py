"""The lab's promises, checked against its real processes.

- Every component is healthy: a database leader in main, its synchronous standby in
  samecity, the remote member streaming, the app answering through HAProxy.
- The runtime inventory describes exactly what runs.
- The active-active entry serves from both main and samecity.
- A write acknowledged through the app is readable on the same-city replica.
- When main's database node dies, samecity becomes primary and the app writes again;
  afterwards the original layout is restored for the tests that follow.
- `down` leaves no lab process and no listening port; `up` brings the lab back.
- Daemons run unprivileged (only sshd as root); Prometheus' lifecycle API is off.
"""
from __future__ import annotations

import json
import pwd
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
import requests

from inventory.loader import LAB_INVENTORY
from inventory.runtime import DbIntendedRole, RuntimeInventory
from lab import binaries, processes, users
from lab.components import patroni, prometheus
from lab.faults import LabFaults
from lab.lab import Lab
from tests.unit.test_lab_placement import inventory_with_placement

pytestmark = pytest.mark.lab
T = TypeVar("T")


def eventually(probe: Callable[[], T], within: float, what: str, every: float = 0.2) -> T:
    """Poll until `probe` returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (requests.RequestException, psycopg.Error) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[return-value]
        time.sleep(every)
    raise AssertionError(f"{what} not reached within {within:.0f}s (last: {last!r})")


@pytest.fixture(scope="module")
def runtime(lab: Lab) -> RuntimeInventory:
    return RuntimeInventory.load(lab.ctx.runtime_inventory_file)


def _connect(runtime: RuntimeInventory, host: str, port: int) -> psycopg.Connection:
    db = runtime.systems[lab_system(runtime)].database
    password = open(db.password.file).read().strip()
    return psycopg.connect(host=host, port=port, dbname=db.dbname, user=db.user,
                           password=password, connect_timeout=3, autocommit=True)


def lab_system(runtime: RuntimeInventory) -> str:
    return next(name for name, s in runtime.systems.items() if s.database is not None)


def test_every_component_is_healthy(lab: Lab) -> None:
    status = lab.status()
    assert status["healthy"], status["problems"]
    assert set(status["centers"]) == {"main", "samecity", "remote"}
    assert status["database"]["leader"] == "main"
    assert status["database"]["sync_standby"] == "samecity"
    assert status["database"]["replicas"]["remote"]["streaming"]
    assert status["etcd"]["leader"] in ("samecity", "remote")  # never the primary's center
    for center in ("main", "samecity", "remote"):
        programs = status["centers"][center]["programs"]
        assert programs and all(p["state"] == "RUNNING" for p in programs.values())


def test_patronictl_lists_the_cluster_as_the_lab_sees_it(lab: Lab) -> None:
    """The operator's own tool works with what bootstrap installed (it once died at import)."""
    done = subprocess.run([binaries.path("patronictl"), "-c",
                           str(patroni.config_file(lab.ctx, "samecity")),
                           "list", "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    roles = {member["Member"]: member["Role"] for member in json.loads(done.stdout)}
    assert roles == {"pg-main": "Leader", "pg-samecity": "Sync Standby", "pg-remote": "Replica"}
# Which account each kind of program must run as; anything else is a finding.
EXPECTED_ACCOUNT = {"etcd": users.SERVICE_USER, "haproxy": users.SERVICE_USER,
                    "prometheus": users.SERVICE_USER, "swift": users.SERVICE_USER,
                    "app": users.SERVICE_USER, "patroni": "postgres", "postgres": "postgres",
                    "alertmanager": users.SERVICE_USER,  # Alertmanager and its alert receiver
                    "sshd": "root",  # sshd logs users in: it must stay root
                    # the exporter runs `pgbackrest info` as the repository's owner (postgres)
                    # and needs tricenter's own environment, which may sit under /root
                    "exporter": "root"}


def _uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of a live process."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("Uid:"))
    return [int(field) for field in line.split()[1:]]


def test_daemons_run_unprivileged_and_only_sshd_as_root(lab: Lab) -> None:
    manifest = json.loads(lab.manifest_file.read_text())
    running = {i["name"]: i["pid"] for i in lab.supervisor.processes() if i["statename"] == "RUNNING"}
    seen = {}
    for name, pid in running.items():
        component = manifest[name]["component"]
        assert component in EXPECTED_ACCOUNT, f"{name}: no expected account for {component}"
        seen[name] = (component, pwd.getpwuid(_uids(pid)[0]).pw_name, _uids(pid))
    wrong = {name: (account, uids) for name, (component, account, uids) in seen.items()
             if account != EXPECTED_ACCOUNT[component] or len(set(uids)) != 1}
    assert not wrong, f"programs running as the wrong account: {wrong}"
    assert {c for c, *_ in seen.values()} >= {"etcd", "haproxy", "prometheus", "swift", "app"}


def test_prometheus_refuses_its_lifecycle_api(lab: Lab) -> None:
    response = requests.post(f"{prometheus.url(lab.ctx)}/-/quit", timeout=5)
    assert response.status_code == 403, response.text
    assert requests.get(f"{prometheus.url(lab.ctx)}/-/ready", timeout=5).ok


def test_runtime_inventory_matches_what_runs(lab: Lab, runtime: RuntimeInventory) -> None:
    assert runtime.source == "lab"
    assert set(runtime.centers) >= {"main", "samecity", "remote", "legacy"}
    system = runtime.systems[lab_system(runtime)]
    db = system.database
    intended = {m.center: m.intended_role for m in db.members}
    assert intended == {"main": DbIntendedRole.leader, "samecity": DbIntendedRole.sync,
                        "remote": DbIntendedRole.async_}
    ca = runtime.tls_ca_file  # every service answers over TLS from the lab's CA
    running = {m["name"]: m for m in requests.get(f"{db.members[0].api_url}/cluster", timeout=2,
                                                  verify=ca).json()["members"]}
    assert set(running) == {m.name for m in db.members}
    for member in db.members:
        assert member.host in runtime.centers[member.center].addresses
        assert running[member.name]["api_url"].startswith(member.api_url)
        assert running[member.name]["host"] == member.host
        state = requests.get(f"{member.api_url}/patroni", timeout=2, verify=ca).json()
        assert state["patroni"]["scope"] == db.cluster and state["state"] == "running"
    for url in runtime.etcd:
        health = requests.get(f"{url}/health", timeout=2, verify=ca,
                              cert=(runtime.client_tls.cert, runtime.client_tls.key))
        assert health.json()["health"] == "true"
    for center, urls in system.app_backends.items():
        for url in urls:
            assert requests.get(f"{url}/health", timeout=2).headers["X-Served-By"] == center
    with _connect(runtime, db.read_write.host, db.read_write.port) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
    with _connect(runtime, db.read_only.host, db.read_only.port) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    password = open(db.password.file).read().strip()
    assert password not in lab.ctx.runtime_inventory_file.read_text()


def test_the_app_entry_serves_from_both_active_centers(runtime: RuntimeInventory) -> None:
    system = runtime.systems[lab_system(runtime)]
    served_by = {requests.get(f"{system.app_url}/health", timeout=2).headers["X-Served-By"]
                 for _ in range(10)}
    assert served_by == {"main", "samecity"}


def test_a_write_through_the_app_is_readable_on_the_samecity_replica(
        runtime: RuntimeInventory) -> None:
    system = runtime.systems[lab_system(runtime)]
    key = f"test-{uuid.uuid4()}"
    response = requests.post(f"{system.app_url}/records", json={"key": key, "payload": {"n": 1}},
                             timeout=5)
    assert response.status_code == 201, response.text
    record_id = response.json()["id"]
    samecity = next(m for m in system.database.members if m.center == "samecity")
    with _connect(runtime, samecity.host, samecity.port) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        row = eventually(lambda: conn.execute("SELECT key FROM records WHERE id = %s",
                                              (record_id,)).fetchone(),
                         within=10, what="the record on the same-city replica")
    assert row[0] == key
    again = requests.get(f"{system.app_url}/records/{record_id}", timeout=5)
    assert again.status_code == 200 and again.json()["key"] == key


def test_losing_mains_database_makes_samecity_primary(lab: Lab, runtime: RuntimeInventory) -> None:
    faults = LabFaults(lab.ctx)
    system = runtime.systems[lab_system(runtime)]
    faults.kill_component("main", "patroni")
    faults.kill_component("main", "postgres")
    killed = time.monotonic()
    try:
        eventually(lambda: patroni.database_summary(lab.ctx)["leader"] == "samecity",
                   within=60, what="a new primary in samecity")

        def write() -> dict | None:
            response = requests.post(f"{system.app_url}/records",
                                     json={"key": f"after-{uuid.uuid4()}"}, timeout=3)
            return response.json() if response.status_code == 201 else None

        written = eventually(write, within=30, what="a write through the app")
        recovery = time.monotonic() - killed
        assert written["db_server"] == lab.ctx.address("samecity")
        print(f"first acknowledged write {recovery:.1f}s after main's database died")
    finally:
        _restore_layout(lab, faults)


def _restore_layout(lab: Lab, faults: LabFaults) -> None:
    """main back as a replica, then a planned switchover back to it (Patroni only hands
    over to the synchronous standby, so wait for main to become it)."""
    faults.start_component("main", "patroni")
    eventually(lambda: patroni.database_summary(lab.ctx)["sync_standby"] == "main",
               within=90, what="main rejoined as synchronous standby")
    patroni.switchover(lab.ctx, "main")
    status = lab.wait_healthy(progress=None, deadline_seconds=90)
    assert status["layout"]["intended"], status["layout"]


def _lab_up(*args: str) -> dict:
    """`tricenter lab up --json` as an operator runs it."""
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "lab", "up", "--json", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_lab_follows_the_placement_of_its_inventory(lab: Lab, tmp_path: Path) -> None:
    """The tier placement, not the lab's code, decides where the database leads (issue 12).
    Moved to lead from samecity with main its synchronous standby, `lab up` on that inventory
    switches over and keeps etcd's leader out of samecity; the shipped inventory brings the
    usual layout back for the tests that follow. `lab status` follows the chosen one too."""
    swapped = inventory_with_placement(
        tmp_path / "inventory", database={"main": "sync", "samecity": "primary", "remote": "async"})
    try:
        status = _lab_up("--inventory", str(swapped))
        layout = status.get("layout", status)
        assert layout.get("intended") and (layout["database_leader"], layout["sync_standby"]) == (
            "samecity", "main"), status
        assert layout["etcd_leader"] != "samecity"
        assert Lab().status()["layout"]["intended"]
        runtime = RuntimeInventory.load(lab.ctx.runtime_inventory_file)
        members = runtime.systems[lab_system(runtime)].database.members
        assert {m.center: m.intended_role for m in members} == {
            "main": DbIntendedRole.sync, "samecity": DbIntendedRole.leader,
            "remote": DbIntendedRole.async_}
    finally:
        status = _lab_up("--inventory", str(LAB_INVENTORY))
    layout = status.get("layout", status)
    assert layout.get("intended") and layout["database_leader"] == "main", status


def test_a_frozen_center_drops_out_of_the_entry_and_thaws_back(lab: Lab,
                                                              runtime: RuntimeInventory) -> None:
    faults = LabFaults(lab.ctx)
    system = runtime.systems[lab_system(runtime)]
    faults.freeze_center("samecity")
    try:
        def only_main_serves() -> bool:
            return {requests.get(f"{system.app_url}/health", timeout=3).headers.get("X-Served-By")
                    for _ in range(4)} == {"main"}

        eventually(only_main_serves, within=15, what="the entry serving from main alone")

        def write() -> bool:
            return requests.post(f"{system.app_url}/records", json={"key": f"frozen-{uuid.uuid4()}"},
                                 timeout=3).status_code == 201

        # The frozen synchronous standby holds commits until Patroni drops it (one ttl).
        eventually(write, within=45, what="a write with the synchronous standby frozen")
    finally:
        faults.thaw_center("samecity")
    status = lab.wait_healthy(progress=None, deadline_seconds=90)
    assert status["layout"]["intended"]


def test_a_killed_remote_center_stays_down_until_started(lab: Lab) -> None:
    faults = LabFaults(lab.ctx)
    faults.kill_center("remote")
    try:
        assert all(p["state"] != "RUNNING" for p in faults.programs("remote"))
        assert not faults.center_pids("remote")
        assert patroni.database_summary(lab.ctx)["leader"] == "main"
    finally:
        faults.start_center("remote")
    eventually(lambda: patroni.database_summary(lab.ctx)["replicas"]["remote"]["streaming"],
               within=60, what="remote streaming again")
    assert lab.wait_healthy(progress=None, deadline_seconds=90)["healthy"]


@pytest.mark.netns_only  # isolation is a real partition only in netns mode
def test_an_isolated_main_loses_its_primary_to_samecity(lab: Lab,
                                                        runtime: RuntimeInventory) -> None:
    faults = LabFaults(lab.ctx)
    system = runtime.systems[lab_system(runtime)]
    faults.isolate_center("main")
    try:
        def write() -> dict | None:
            response = requests.post(f"{system.app_url}/records",
                                     json={"key": f"isolated-{uuid.uuid4()}"}, timeout=5)
            return response.json() if response.status_code == 201 else None

        written = eventually(write, within=60, what="a write with main isolated")
        assert written["db_server"] == lab.ctx.address("samecity")
        assert written["served_by"] == "samecity"  # the entry cannot reach main's app
    finally:
        faults.heal_center("main")
    status = lab.wait_healthy(progress=None, deadline_seconds=120)
    assert status["layout"]["intended"], status["layout"]


def test_down_leaves_no_process_or_port_and_up_brings_it_back(lab: Lab) -> None:
    pids_before = lab.lab_pids()
    assert pids_before
    lab.down()
    assert not [p for p in pids_before if processes.alive(p)]
    assert not lab.leftovers()
    assert processes.listening_sockets(lab.all_addresses()) == []
    assert not lab.supervisor.running()
    started = time.monotonic()
    status = lab.up(deadline_seconds=120)
    assert status["healthy"] and status["layout"]["intended"]
    print(f"lab up from stopped: {time.monotonic() - started:.1f}s")
