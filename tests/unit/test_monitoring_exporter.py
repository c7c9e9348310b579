"""The tricenter exporter: what each observation of the world turns into, per system and
center, with the probes faked at their boundary (monitoring/probes.py)."""
from __future__ import annotations

import datetime as dt
import math
import subprocess
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dr import history
from support.patroni import ClusterState, MemberState
from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember, HostPort,
                               ObjectStore, RuntimeInventory, SecretRef, SystemRuntime)
from monitoring import cli
from monitoring.collector import Sources, Targets, TricenterCollector
from monitoring.probes import (EtcdMemberStatus, ProbeFailed, ReplicationRow,
                               parse_haproxy_csv)

PROMTOOL = Path("/usr/bin/promtool")
CENTERS = (("main", 1), ("samecity", 2), ("remote", 3))
TARGETS = {"critical": Targets(rto_seconds=120, rpo_seconds=0)}


def runtime() -> RuntimeInventory:
    centers = {c: CenterRuntime(name=c, role=c, addresses=[f"127.0.{n}.1", f"127.0.{n}.2"])
               for c, n in CENTERS}
    roles = {"main": DbIntendedRole.leader, "samecity": DbIntendedRole.sync,
             "remote": DbIntendedRole.async_}
    members = [DbMember(name=f"pg-{c}", center=c, host=f"127.0.{n}.1", api_url=f"http://127.0.{n}.1:8008",
                        intended_role=roles[c]) for c, n in CENTERS]
    db = DatabaseCluster(cluster="registry", dbname="registry", user="registry",
                         password=SecretRef(env="TRICENTER_TEST_PW"), members=members,
                         read_write=HostPort(host="127.0.10.6", port=5000),
                         read_only=HostPort(host="127.0.10.6", port=5001))
    system = SystemRuntime(name="registry", department="d", tier="critical", database=db,
                           app_backends={"main": ["http://127.0.1.2:8080"],
                                         "samecity": ["http://127.0.2.2:8080"]})
    store = ObjectStore(endpoint="http://127.0.10.7:8081", regions={"main": "gz", "remote": "sz"},
                        access_key=SecretRef(env="TRICENTER_TEST_PW"),
                        secret_key=SecretRef(env="TRICENTER_TEST_PW"), backup_bucket="backups")
    return RuntimeInventory(source="lab", cloud="lab", centers=centers, systems={"registry": system},
                            etcd=[f"http://127.0.{n}.1:2379" for _, n in CENTERS], object_store=store)


def member(name: str, role: str, state: str = "streaming", timeline: int = 3,
           lag: int | None = 0) -> MemberState:
    return MemberState(name=name, role=role, state=state, timeline=timeline, lag=lag)


INTENDED = ClusterState({"pg-main": member("pg-main", "leader", "running", lag=None),
                         "pg-samecity": member("pg-samecity", "sync_standby", lag=0),
                         "pg-remote": member("pg-remote", "replica", lag=4096)}, "pg-main")
ROWS = [ReplicationRow("pg-samecity", "streaming", "sync", 0, 512, 1024, 0.001, 0.002),
        ReplicationRow("pg-remote", "streaming", "async", 0, 8192, 16384, 0.4, 0.6)]
HAPROXY_CSV = """# pxname,svname,qcur,stot,status,addr
registry-read-write,pg-main,0,40,UP,127.0.1.1:5432
registry-read-write,pg-samecity,0,0,DOWN,127.0.2.1:5432
app,main-app,0,300,UP,127.0.1.2:8080
app,samecity-app,0,100,UP,127.0.2.2:8080
app,BACKEND,0,400,UP,
stats,FRONTEND,0,1,OPEN,
"""
BACKUP = {"name": "registry", "status": {"code": 0, "message": "ok"}, "backup": [
    {"type": "full", "timestamp": {"start": 1000, "stop": 1100}},
    {"type": "incr", "timestamp": {"start": 1200, "stop": 1250}},
    {"type": "full", "timestamp": {"start": 2000, "stop": 2100}}]}


def etcd_all_healthy(url: str) -> EtcdMemberStatus:
    ids = {"127.0.1.1": "11", "127.0.2.1": "22", "127.0.3.1": "33"}
    host = url.split("://")[1].split(":")[0]
    return EtcdMemberStatus(url=url, healthy=True, member_id=ids[host], leader_id="22")


def sources(tmp_path: Path, **overrides) -> Sources:
    defaults = dict(
        haproxy_stats=["http://127.0.10.6:7000"], pgbackrest_config=tmp_path / "pgbackrest.conf",
        drill_history=tmp_path / "drills.jsonl",
        patroni=lambda db, ca: INTENDED, leader_check=lambda db, leader, ca: True,
        tls=lambda url: 1900000000.0, replication=lambda db, leader, password, ca: ROWS,
        haproxy=lambda url: parse_haproxy_csv(HAPROXY_CSV), etcd=etcd_all_healthy,
        pgbackrest=lambda config, stanza, run_as: BACKUP,
        heartbeat=lambda store, access, secret, writer: (5000.0, {"main": 5000.0, "remote": 4990.0}))
    return Sources(**{**defaults, **overrides})


def scrape(src: Sources, rt: RuntimeInventory | None = None) -> str:
    registry = CollectorRegistry()
    registry.register(TricenterCollector(rt or runtime(), src, TARGETS))
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRICENTER_TEST_PW", "secret")


def test_intended_layout_roles_timeline_and_sync(tmp_path: Path) -> None:
    text = scrape(sources(tmp_path))
    assert value(text, "tricenter_db_layout_as_intended", system="registry") == 1
    assert value(text, "tricenter_db_leader_present", system="registry") == 1
    assert value(text, "tricenter_db_leader_center", system="registry", center="main") == 1
    assert value(text, "tricenter_db_member_role", system="registry", center="samecity",
                 role="sync_standby") == 1
    assert value(text, "tricenter_db_member_timeline", system="registry", center="remote") == 3
    assert value(text, "tricenter_db_sync_standbys", system="registry") == 1
    assert value(text, "tricenter_db_sync_standby_intended", system="registry") == 1


def test_lag_and_rpo_estimate_per_loss(tmp_path: Path) -> None:
    text = scrape(sources(tmp_path))
    assert value(text, "tricenter_db_replication_lag_bytes", system="registry", center="remote") == 16384
    assert value(text, "tricenter_db_replication_lag_seconds", system="registry", center="remote") == 0.6
    # A sync standby has every acknowledged commit, whatever its flush position shows.
    assert value(text, "tricenter_db_replication_unacknowledged_bytes", system="registry",
                 center="samecity") == 0
    assert value(text, "tricenter_rpo_estimate_bytes", system="registry", loss="center") == 0
    assert value(text, "tricenter_rpo_estimate_seconds", system="registry", loss="center") == 0
    # Losing the city leaves only the async copy in the remote center.
    assert value(text, "tricenter_rpo_estimate_bytes", system="registry", loss="region") == 8192
    assert value(text, "tricenter_rpo_estimate_seconds", system="registry", loss="region") == 0.4
    assert value(text, "tricenter_system_rpo_target_seconds", system="registry", tier="critical") == 0


def test_after_main_center_loss_the_layout_and_rpo_show_it(tmp_path: Path) -> None:
    failed_over = ClusterState({"pg-main": member("pg-main", "replica", "stopped", timeline=3, lag=None),
                                "pg-samecity": member("pg-samecity", "leader", "running", 4, None),
                                "pg-remote": member("pg-remote", "replica", timeline=4, lag=100)},
                               "pg-samecity")
    rows = [ReplicationRow("pg-remote", "streaming", "async", 0, 100, 100, 0.2, 0.2)]
    text = scrape(sources(tmp_path, patroni=lambda db, ca: failed_over,
                          replication=lambda db, leader, pw, ca: rows))
    assert value(text, "tricenter_db_layout_as_intended", system="registry") == 0
    assert value(text, "tricenter_db_member_as_intended", system="registry", center="main") == 0
    assert value(text, "tricenter_db_member_up", system="registry", center="main") == 0
    assert value(text, "tricenter_db_leader_center", system="registry", center="samecity") == 1
    assert value(text, "tricenter_db_sync_standbys", system="registry") == 0
    assert value(text, "tricenter_db_replication_streaming", system="registry", center="main") == 0
    # The stopped member is no copy to count on; the remote one is 100 bytes behind.
    assert value(text, "tricenter_rpo_estimate_bytes", system="registry", loss="center") == 100
    assert value(text, "tricenter_rpo_estimate_bytes", system="registry", loss="region") == 100


def test_a_leader_whose_own_api_is_silent_is_lost_before_its_lease_ends(tmp_path: Path) -> None:
    asked = []
    def silent(db, leader, ca) -> bool:
        asked.append(leader.name)
        return False
    text = scrape(sources(tmp_path, leader_check=silent))
    assert asked == ["pg-main"]
    assert value(text, "tricenter_db_leader_present", system="registry") == 0


def test_certificate_expiry_of_https_endpoints_only(tmp_path: Path) -> None:
    rt = runtime()
    rt.systems["registry"].app_url = "https://app.example:8443/"
    asked = []
    def not_after(url: str) -> float:
        asked.append(url)
        return 1900000000.0
    text = scrape(sources(tmp_path, tls=not_after), rt)
    assert asked == ["https://app.example:8443/"]
    assert value(text, "tricenter_tls_certificate_expiry_timestamp_seconds",
                 endpoint="app.example:8443") == 1900000000.0


def test_no_leader_means_unbounded_rpo(tmp_path: Path) -> None:
    leaderless = ClusterState({m: member(m, "replica", "running") for m in
                               ("pg-main", "pg-samecity", "pg-remote")}, "pg-main")
    text = scrape(sources(tmp_path, patroni=lambda db, ca: leaderless))
    assert value(text, "tricenter_db_leader_present", system="registry") == 0
    assert value(text, "tricenter_rpo_estimate_bytes", system="registry", loss="center") == math.inf


def test_without_pg_monitor_lag_comes_from_patroni(tmp_path: Path) -> None:
    unreadable = [ReplicationRow(r.member, r.state, r.sync_state, None, None, None, None, None)
                  for r in ROWS]
    text = scrape(sources(tmp_path, replication=lambda db, leader, pw, ca: unreadable))
    assert value(text, "tricenter_db_replication_lag_bytes", system="registry", center="remote") == 4096
    assert value(text, "tricenter_rpo_estimate_bytes", system="registry", loss="region") == 4096
    assert value(text, "tricenter_rpo_estimate_seconds", system="registry", loss="region") is None


def test_patroni_unreachable_is_a_failed_probe_and_no_primary(tmp_path: Path) -> None:
    def down(db, ca):
        raise ProbeFailed("no Patroni REST API answered")
    text = scrape(sources(tmp_path, patroni=down))
    assert value(text, "tricenter_probe_success", probe="patroni", system="registry") == 0
    assert value(text, "tricenter_db_layout_as_intended", system="registry") is None
    assert value(text, "tricenter_db_leader_present", system="registry") == 0


def test_haproxy_servers_per_system_and_center(tmp_path: Path) -> None:
    text = scrape(sources(tmp_path))
    assert value(text, "tricenter_haproxy_server_sessions_total", proxy="app", server="main-app",
                 kind="app", system="registry", center="main") == 300
    assert value(text, "tricenter_haproxy_server_sessions_total", proxy="app",
                 server="samecity-app", kind="app", system="registry", center="samecity") == 100
    assert value(text, "tricenter_haproxy_server_up", proxy="registry-read-write",
                 server="pg-samecity", kind="db", system="registry", center="samecity") == 0
    assert value(text, "tricenter_probe_success", probe="haproxy", system="") == 1


def test_haproxy_servers_without_addresses_are_known_by_name(tmp_path: Path) -> None:
    # HAProxy's stats page leaves `addr` empty unless `stats show-legends` is on.
    csv = HAPROXY_CSV.replace("127.0.1.1:5432", "").replace("127.0.2.2:8080", "")
    text = scrape(sources(tmp_path, haproxy=lambda url: parse_haproxy_csv(csv)))
    assert value(text, "tricenter_haproxy_server_up", proxy="registry-read-write", server="pg-main",
                 kind="db", system="registry", center="main") == 1
    assert value(text, "tricenter_haproxy_server_sessions_total", proxy="app", server="samecity-app",
                 kind="app", system="registry", center="samecity") == 100


def test_two_clusters_with_the_same_member_names_are_told_apart_by_their_proxy(tmp_path: Path) -> None:
    # Patroni names members within a cluster: the lab's registry and charity both have a
    # pg-main. Without addresses, the listen section (`<cluster>-read-write`) tells them apart.
    world = runtime()
    registry = world.systems["registry"]
    charity_db = registry.database.model_copy(update={
        "cluster": "charity", "dbname": "charity", "user": "charity",
        "members": [m.model_copy(update={"host": m.host[:-1] + "7"}) for m in registry.database.members[::2]]})
    world.systems["charity"] = SystemRuntime(name="charity", department="d", tier="critical",
                                             database=charity_db)
    csv = ("# pxname,svname,qcur,stot,status,addr\n"
           "registry-read-write,pg-main,0,40,UP,\n"
           "charity-read-write,pg-main,0,7,DOWN,\n")
    text = scrape(sources(tmp_path, haproxy=lambda url: parse_haproxy_csv(csv)), world)
    assert value(text, "tricenter_haproxy_server_up", proxy="registry-read-write", server="pg-main",
                 kind="db", system="registry", center="main") == 1
    assert value(text, "tricenter_haproxy_server_up", proxy="charity-read-write", server="pg-main",
                 kind="db", system="charity", center="main") == 0


def test_etcd_leader_center_by_the_healthy_members_and_member_health(tmp_path: Path) -> None:
    def remote_cut_off(url: str) -> EtcdMemberStatus:
        status = etcd_all_healthy(url)
        if "127.0.3." in url:  # still names a former leader, but is not healthy
            return EtcdMemberStatus(url, False, "33", "33")
        return status
    text = scrape(sources(tmp_path, etcd=remote_cut_off))
    assert value(text, "tricenter_etcd_member_is_leader", center="samecity") == 1
    assert value(text, "tricenter_etcd_member_is_leader", center="remote") == 0
    assert value(text, "tricenter_etcd_member_healthy", center="remote") == 0
    assert value(text, "tricenter_etcd_member_healthy", center="main") == 1


def test_backup_per_type_restore_and_object_store_lag(tmp_path: Path) -> None:
    src = sources(tmp_path)
    text = scrape(src)
    assert value(text, "tricenter_backup_last_completion_timestamp_seconds", system="registry",
                 type="full") == 2100
    assert value(text, "tricenter_backup_last_completion_timestamp_seconds", system="registry",
                 type="incr") == 1250
    assert value(text, "tricenter_backup_repository_ok", system="registry") == 1
    assert value(text, "tricenter_restore_verified", system="registry") == 0
    assert value(text, "tricenter_object_store_replication_lag_seconds", center="remote") == 10
    history.append({"scenario": "backup-restore", "system": "registry", "status": "passed",
                    "passed": True, "started_at": "2026-11-27T12:00:00+00:00",
                    "finished_at": "2026-11-27T12:05:00+00:00"}, src.drill_history)
    text = scrape(src)
    assert value(text, "tricenter_restore_verified", system="registry") == 1
    assert value(text, "tricenter_restore_last_verified_timestamp_seconds",
                 system="registry") == dt.datetime(2026, 11, 27, 12, 5, tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool not installed (scripts/bootstrap.sh)")
def test_exposition_passes_promtool_check_metrics(tmp_path: Path) -> None:
    src = sources(tmp_path)
    history.append({"scenario": "main-center-loss", "system": "registry", "tier": "critical",
                    "status": "passed", "passed": True, "rto_seconds": 5.0, "rpo_seconds": 0.0,
                    "started_at": "2026-11-27T12:00:00+00:00"}, src.drill_history)
    text = scrape(src)
    done = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_refuses_a_tier_the_runtime_inventory_lacks(tmp_path: Path) -> None:
    rt = runtime()
    rt.systems["registry"].tier = "platinum"
    file = tmp_path / "runtime.yaml"
    rt.save(file)
    done = CliRunner().invoke(cli.exporter, ["show", "--runtime", str(file)])
    assert done.exit_code == 2
    assert "platinum" in done.output and "`tiers:`" in done.output and str(file) in done.output


def test_cli_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    file = tmp_path / "runtime.yaml"
    runtime().save(file)
    done = CliRunner().invoke(cli.exporter, ["serve", "--runtime", str(file), "--listen", "9641"])
    assert done.exit_code == 2
    assert "ADDRESS:PORT" in done.output


def test_a_slow_probe_never_holds_up_a_scrape() -> None:
    from monitoring.probes import Background

    started, release, calls = threading.Event(), threading.Event(), []
    def hanging_pgbackrest(config, stanza, run_as):
        calls.append(stanza)
        started.set()
        release.wait(timeout=60)  # like pgbackrest info while an object-store proxy is down
        return BACKUP
    probe = Background(hanging_pgbackrest, max_age=60)
    with pytest.raises(ProbeFailed, match="not in yet"):
        probe("conf", "registry", "postgres")  # returns at once, the refresh runs aside
    with pytest.raises(ProbeFailed):
        probe("conf", "registry", "postgres")
    assert started.wait(timeout=60)
    assert calls == ["registry"]  # one refresh at a time
    release.set()
    probe.wait()
    assert probe("conf", "registry", "postgres") == BACKUP


def test_a_failed_background_probe_reports_its_reason() -> None:
    from monitoring.probes import Background

    def broken(*args):
        raise ProbeFailed("pgbackrest info exited 82")
    probe = Background(broken, max_age=60)
    with pytest.raises(ProbeFailed):
        probe("x")
    probe.wait()
    with pytest.raises(ProbeFailed, match="exited 82"):
        probe("x")


def test_a_cached_answer_says_how_old_it_is(tmp_path) -> None:
    from monitoring.probes import Background

    now = [100.0]
    probe = Background(lambda config, stanza, run_as: BACKUP, max_age=60, clock=lambda: now[0])
    assert probe.age(tmp_path / "pgbackrest.conf", "registry", None) is None
    with pytest.raises(ProbeFailed):
        probe(tmp_path / "pgbackrest.conf", "registry", None)
    probe.wait()
    now[0] = 142.0
    text = scrape(sources(tmp_path, pgbackrest=probe, pgbackrest_user=None))
    assert value(text, "tricenter_probe_answer_age_seconds", probe="pgbackrest", system="registry") == 42
    assert value(text, "tricenter_backup_repository_ok", system="registry") == 1


def test_kept_connections_to_an_old_leader_close_when_the_new_one_is_kept() -> None:
    from monitoring.probes import LeaderConnections

    class Conn:
        closed = False

        def close(self) -> None:
            self.closed = True
    kept = LeaderConnections()
    old, new = Conn(), Conn()
    kept.checkin(("127.0.1.1", 5432, "registry", "registry", "pw", None), old)
    assert kept.checkout(("127.0.2.1", 5432, "registry", "registry", "pw", None)) is None
    kept.checkin(("127.0.2.1", 5432, "registry", "registry", "pw", None), new)
    assert old.closed and not new.closed
    assert kept.checkout(("127.0.2.1", 5432, "registry", "registry", "pw", None)) is new
    assert kept.checkout(("127.0.2.1", 5432, "registry", "registry", "pw", None)) is None  # in use


@pytest.mark.parametrize(("status", "healthy", "leader"), [
    ({"header": {"member_id": "11"}, "leader": "22"}, True, "22"),
    ({"header": {"member_id": "11"}, "leader": "0"}, False, None),  # cut off from the quorum
    ({"header": {"member_id": "11"}, "leader": "22", "errors": ["NOSPACE"]}, False, "22"),
])
def test_an_etcd_member_is_healthy_when_it_follows_a_leader_without_alarms(
        status: dict, healthy: bool, leader: str | None) -> None:
    import json
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from monitoring.probes import etcd_member

    class Status(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(status).encode()
            self.send_response(200 if self.path == "/v3/maintenance/status" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass
    server = HTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        member = etcd_member(f"http://127.0.0.1:{server.server_address[1]}", timeout=10)
    finally:
        server.server_close()
    assert (member.healthy, member.member_id, member.leader_id) == (healthy, "11", leader)


def test_an_etcd_member_that_does_not_answer_is_unhealthy() -> None:
    import socket

    from monitoring.probes import etcd_member

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert etcd_member(f"http://127.0.0.1:{port}").healthy is False


def test_the_clusters_etcd_holds_spare_each_clusters_rest_api(tmp_path: Path) -> None:
    asked = []
    text = scrape(sources(tmp_path, patroni_dcs=lambda: {"registry": INTENDED},
                          patroni=lambda db, ca: asked.append(db.cluster)))
    assert asked == []
    assert value(text, "tricenter_db_member_role", system="registry", center="samecity",
                 role="sync_standby") == 1
    assert value(text, "tricenter_probe_success", probe="patroni_dcs", system="") == 1


def test_without_etcd_each_cluster_is_asked_over_its_rest_api(tmp_path: Path) -> None:
    def cut_off():
        raise ProbeFailed("etcd: no member answered")
    text = scrape(sources(tmp_path, patroni_dcs=cut_off))
    assert value(text, "tricenter_probe_success", probe="patroni_dcs", system="") == 0
    assert value(text, "tricenter_probe_success", probe="patroni", system="registry") == 1
    assert value(text, "tricenter_db_layout_as_intended", system="registry") == 1
    # A cluster etcd does not hold (not bootstrapped, another namespace) is asked too.
    text = scrape(sources(tmp_path, patroni_dcs=lambda: {}))
    assert value(text, "tricenter_db_leader_present", system="registry") == 1


def test_a_secret_is_read_once_a_minute_and_a_rotated_one_after(tmp_path: Path) -> None:
    from monitoring.secrets import Secrets

    secret = tmp_path / "registry-db-password"
    secret.write_text("first")
    ref = SecretRef(file=secret.name)  # relative: read from the runtime inventory's folder
    now = [0.0]
    secrets = Secrets(tmp_path, clock=lambda: now[0])
    assert secrets(ref) == "first"
    secret.write_text("rotated")
    now[0] += 30
    assert secrets(ref) == "first"
    now[0] += 31
    assert secrets(ref) == "rotated"
    secret.unlink()
    now[0] += 61
    assert secrets.or_none(ref) is None  # the watch's poll then says why
    with pytest.raises(OSError):
        secrets(ref)  # a scrape reports the probe failed
    secret.write_text("restored")
    assert secrets(ref) == "restored"  # a failure is not remembered


def test_scrapes_read_each_secret_once_a_minute(tmp_path: Path, monkeypatch) -> None:
    import dr.workload

    reads: list[SecretRef] = []
    resolve = dr.workload.resolve_secret

    def counted(ref: SecretRef, base: Path | None = None) -> str:
        reads.append(ref)
        return resolve(ref, base)

    monkeypatch.setattr(dr.workload, "resolve_secret", counted)
    src = sources(tmp_path)
    scrape(src)
    # The sample's database password and object-store keys are one variable: used three
    # times, read once.
    assert reads == [SecretRef(env="TRICENTER_TEST_PW")]
    scrape(src)
    assert len(reads) == 1


def test_one_pgbackrest_run_answers_for_every_stanza(tmp_path: Path) -> None:
    from monitoring.probes import Background, PerStanza

    runs = []

    def stanzas(config, run_as):
        runs.append((config, run_as))
        return {"registry": BACKUP, "charity": {**BACKUP, "name": "charity"}}

    now = [100.0]
    every = Background(stanzas, max_age=60, clock=lambda: now[0])
    probe = PerStanza(every)
    with pytest.raises(ProbeFailed):
        probe(tmp_path / "pgbackrest.conf", "registry", "postgres")
    every.wait()
    now[0] = 130.0
    assert probe(tmp_path / "pgbackrest.conf", "registry", "postgres") == BACKUP
    assert probe(tmp_path / "pgbackrest.conf", "charity", "postgres")["name"] == "charity"
    assert probe(tmp_path / "pgbackrest.conf", "absent", "postgres") == {}
    assert probe.age(tmp_path / "pgbackrest.conf", "charity", "postgres") == 30
    assert runs == [(tmp_path / "pgbackrest.conf", "postgres")]


def test_haproxy_csv_as_haproxy_writes_it() -> None:
    """All ~100 columns of a real stats page (the lab's HAProxy 2.x), read by name."""
    import csv
    import io

    text = (Path(__file__).parents[1] / "fixtures/monitoring/haproxy-stats.csv").read_text()
    servers = parse_haproxy_csv(text)
    by_dict = [r for r in csv.DictReader(io.StringIO(text.lstrip("# ")))
               if r["svname"] not in ("FRONTEND", "BACKEND")]
    assert [(s.proxy, s.server, s.status, s.sessions_total) for s in servers] == [
        (r["pxname"], r["svname"], r["status"].split(" ")[0], float(r["stot"] or 0)) for r in by_dict]
    assert {s.server for s in servers} == {"pg-main", "pg-samecity", "pg-remote", "main-app",
                                           "samecity-app"}


def test_haproxy_csv_with_a_short_row_or_no_header() -> None:
    assert parse_haproxy_csv("") == []
    assert parse_haproxy_csv("nothing,like,haproxy\n1,2,3\n") == []
    servers = parse_haproxy_csv("# pxname,svname,status,stot,addr\napp,main-app,UP 1/3\napp\n")
    assert [(s.server, s.status, s.sessions_total, s.address) for s in servers] == [
        ("main-app", "UP", 0.0, "")]
