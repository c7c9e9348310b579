"""The lab's storage, hosts and monitoring, against the real processes.

- Backups land in Swift through S3, and S3 keeps working with the remote region lost;
  what the city wrote meanwhile reaches the remote region once it is back.
- Ansible reaches every host of the generated inventory over SSH with pinned host keys.
- pgBackRest takes a full backup of the Patroni cluster, `info` shows it, and it restores
  into the remote center through the remote region's proxy.
- Prometheus scrapes the three Patroni members.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from inventory.runtime import RuntimeInventory
from lab.components import legacy, pgbackrest, prometheus, swift
from lab.context import CENTERS, LabContext

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ctx(lab) -> LabContext:
    """The context of the lab the session fixture brought up."""
    for candidate in (lab, getattr(lab, "ctx", None), getattr(lab, "context", None)):
        if isinstance(candidate, LabContext):
            return candidate
    return LabContext()


@pytest.fixture(scope="module")
def runtime(ctx) -> RuntimeInventory:
    return RuntimeInventory.load(ctx.runtime_inventory_file)


def _wait(predicate, timeout: float, every: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(every)


def test_the_runtime_inventory_names_the_object_store_and_its_secrets_by_reference(ctx, runtime):
    store = runtime.object_store
    assert store is not None and store.endpoint == swift.endpoint(ctx)
    assert store.backup_bucket == swift.BACKUP_BUCKET
    secret = Path(store.secret_key.file).read_text().strip()
    assert secret and secret not in ctx.runtime_inventory_file.read_text()


def test_the_backup_repository_is_encrypted_and_its_store_verified(ctx, runtime):
    import configparser

    import requests

    assert runtime.object_store.verify_tls and runtime.object_store.backup_cipher_password
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(pgbackrest.config_file(ctx).read_text())
    conf = parser["global"]
    assert conf["repo1-storage-verify-tls"] == "y" and conf["repo1-cipher-type"] == "aes-256-cbc"
    # pgbackrest info reads the repository through verified TLS and knows it is encrypted.
    assert pgbackrest.info(ctx)["cipher"] == "aes-256-cbc"
    # The proxy's certificate is the lab CA's: a client that trusts only the system's CAs
    # refuses it, one given tls_ca_file accepts it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{runtime.object_store.endpoint}/healthcheck", timeout=10)
    assert requests.get(f"{runtime.object_store.endpoint}/healthcheck", timeout=10,
                        verify=runtime.tls_ca_file).status_code == 200


def test_s3_put_and_get_through_boto3_from_either_region(ctx):
    key = f"it/{uuid.uuid4()}"
    body = os.urandom(256 * 1024)
    swift.s3_client(ctx).put_object(Bucket=swift.BACKUP_BUCKET, Key=key, Body=body)
    for center in swift.REGIONS:
        got = swift.s3_client(ctx, center).get_object(Bucket=swift.BACKUP_BUCKET, Key=key)
        assert got["Body"].read() == body, center


def _replica_in_remote_region(ctx: LabContext, key: str) -> bool:
    """HEAD the object on the remote region's object server itself, not via a proxy."""
    from swift.common import direct_client, utils
    from swift.common.exceptions import ClientException
    from swift.common.ring import Ring

    utils.set_swift_dir(str(swift.swift_dir(ctx)))
    ring = Ring(str(swift.swift_dir(ctx)), ring_name="object")
    account = f"AUTH_{swift.ACCOUNT}"
    part, nodes = ring.get_nodes(account, swift.BACKUP_BUCKET, key)
    remote = [n for n in nodes if n["region"] == swift.REGIONS["remote"]]
    try:
        direct_client.direct_head_object(remote[0], part, account, swift.BACKUP_BUCKET, key,
                                         conn_timeout=2, response_timeout=2)
        return True
    except (ClientException, OSError):
        return False


def test_s3_keeps_working_with_the_remote_region_down_and_catches_up_after(ctx):
    from lab.faults import LabFaults

    faults = LabFaults(ctx)
    key, body = f"it/outage-{uuid.uuid4()}", b"written while the remote region was down"
    faults.kill_component("remote", "swift")
    try:
        client = swift.s3_client(ctx)
        client.put_object(Bucket=swift.BACKUP_BUCKET, Key=key, Body=body)
        assert client.get_object(Bucket=swift.BACKUP_BUCKET, Key=key)["Body"].read() == body
        keys = [o["Key"] for o in client.list_objects_v2(
            Bucket=swift.BACKUP_BUCKET, Prefix="it/outage-")["Contents"]]
        assert key in keys
        assert not _replica_in_remote_region(ctx, key)
    finally:
        faults.start_component("remote", "swift")
    # The city's replication loop pushes the missed object over ssync.
    _wait(lambda: _replica_in_remote_region(ctx, key), timeout=120, every=3,
          what="the object replicated to the remote region")


def test_ansible_pings_every_host_over_ssh_with_verified_host_keys(ctx, runtime, tmp_path):
    ssh_hosts = [h.name for h in runtime.hosts if h.ssh is not None]
    assert {h.role.value for h in runtime.hosts if h.ssh} >= {"app", "legacy"}
    assert {h.center for h in runtime.hosts if h.ssh} >= {"main", "samecity", "legacy"}
    # No ANSIBLE_PYTHON_INTERPRETER here: the inventory itself must name the interpreter.
    env = dict({k: v for k, v in os.environ.items() if k != "ANSIBLE_PYTHON_INTERPRETER"},
               ANSIBLE_HOME=str(tmp_path / "ansible"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
               ANSIBLE_REMOTE_TEMP=f"/tmp/tricenter-ansible-{uuid.uuid4().hex[:8]}",
               ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_NOCOLOR="1")
    ansible = Path(sys.executable).with_name("ansible")
    done = subprocess.run([str(ansible), "all", "-i", str(ctx.ansible_inventory_file),
                           "-c", "ssh", "-m", "ping", "-o"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ssh_hosts:
        assert f"{name} | SUCCESS" in done.stdout, done.stdout
    # Discovery (which may pick a version manager's shim) never ran: the inventory named it.
    assert "discovered_interpreter_python" not in done.stdout, done.stdout


def test_a_host_with_an_unknown_key_is_refused(ctx, runtime, tmp_path):
    host = next(h for h in runtime.hosts if h.ssh is not None)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = subprocess.run(
        ["ssh", "-p", str(host.ssh.port), "-i", host.ssh.private_key.file,
         "-o", f"UserKnownHostsFile={empty}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", f"{host.ssh.user}@{host.ssh.host}", "true"],
        capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "Host key verification failed" in done.stderr


def test_legacy_source_serves_its_database_and_files(ctx):
    import psycopg

    source = legacy.source(ctx)
    db = source["database"]
    with psycopg.connect(host=db["host"], port=db["port"], dbname=db["dbname"],
                         user=db["user"], password=Path(db["password"]["file"]).read_text().strip(),
                         connect_timeout=5) as conn:
        people = conn.execute("SELECT count(*) FROM person").fetchone()[0]
        marriages = conn.execute("SELECT count(*) FROM marriage").fetchone()[0]
        wal_level = conn.execute("SHOW wal_level").fetchone()[0]
    assert (people, marriages, wal_level) == (legacy.SAMPLE_PEOPLE, legacy.SAMPLE_PEOPLE // 2,
                                              "logical")
    files = list(Path(source["paths"][0]).rglob("*.txt"))
    assert len(files) == legacy.SAMPLE_FILES + 1


def _superuser_sql(ctx: LabContext, sql: str) -> None:
    """Run SQL on the current primary as postgres over its local socket."""
    from lab.components import patroni

    leader = patroni.database_summary(ctx)["leader"]
    done = subprocess.run(["psql", "-h", str(patroni.socket_dir(ctx, leader)), "-p", "5432",
                           "-d", "postgres", "-AtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, user="postgres", cwd="/", timeout=30)
    assert done.returncode == 0, done.stderr


def test_pgbackrest_full_backup_shows_in_info_and_restores_in_the_remote_center(ctx):
    pgbackrest.check(ctx)  # WAL archiving to Swift works end to end
    before = {b["label"] for b in pgbackrest.backups(pgbackrest.info(ctx))}
    result = pgbackrest.backup(ctx, "full")
    info = pgbackrest.info(ctx)
    latest = pgbackrest.backups(info)[-1]
    assert info["status"]["code"] == 0, info["status"]
    assert result.label == latest["label"] and result.label not in before
    assert latest["type"] == "full"
    assert pgbackrest.latest_backup_age_seconds(info) < 120
    print(f"full backup {result.label}: {result.seconds:.1f}s, "
          f"{latest['info']['size'] / 2**20:.0f} MiB, repo {latest['info']['repository']['delta'] / 2**20:.1f} MiB")

    marker = f"after-backup-{uuid.uuid4().hex[:8]}"
    _superuser_sql(ctx, f"CREATE TABLE IF NOT EXISTS tricenter_it_restore (note text); "
                        f"INSERT INTO tricenter_it_restore VALUES ('{marker}')")
    pgbackrest.archive_current_wal(ctx)  # the write after the backup reaches the archive

    target = ctx.path("restores", f"it-{uuid.uuid4().hex[:8]}", "data")
    restored = pgbackrest.restore_to(ctx, target, backup_set=result.label)
    try:
        started = time.monotonic()
        restored.start(timeout=180)
        # The backup plus the archived WAL replayed after it: the later write is there.
        assert restored.query(f"SELECT count(*) FROM tricenter_it_restore "
                              f"WHERE note = '{marker}'") == "1"
        print(f"restored and promoted in {time.monotonic() - started:.1f}s on "
              f"{restored.host}:{restored.port}")
        databases = restored.query("SELECT string_agg(datname, ',') FROM pg_database").split(",")
        assert ctx.system.name in databases
        assert restored.query("SHOW archive_mode") == "off"  # the copy never writes to the repo
        assert restored.host == ctx.address("remote", "ops")
    finally:
        restored.remove()
        _superuser_sql(ctx, "DROP TABLE IF EXISTS tricenter_it_restore")
    assert not target.exists()


def test_backups_restore_in_the_remote_center_with_the_citys_object_store_lost(ctx):
    from lab.faults import LabFaults

    faults = LabFaults(ctx)
    target = ctx.path("restores", f"it-{uuid.uuid4().hex[:8]}", "data")
    faults.kill_component("main", "swift")
    try:
        info = pgbackrest.info(ctx, via="remote")
        assert pgbackrest.backups(info), "no backup readable through the remote region"
        restored = pgbackrest.restore_to(ctx, target, via="remote")
        try:
            started = time.monotonic()
            restored.start(timeout=120)
            # Missing WAL/history lookups must answer 404 at once, not retry for minutes.
            assert time.monotonic() - started < 30
            assert ctx.system.name in restored.query(
                "SELECT string_agg(datname, ',') FROM pg_database")
        finally:
            restored.remove()
    finally:
        faults.start_component("main", "swift")


def test_each_centers_prometheus_scrapes_its_patroni_member_and_the_global_view_all(ctx, runtime):
    assert runtime.monitoring.prometheus_url == prometheus.url(ctx)
    for center in CENTERS:
        # one target per Patroni member in the center: main holds the registry's and the charity's
        members = sum(1 for s in runtime.systems.values() if s.database
                      for m in s.database.members if m.center == center)

        def patroni_up():
            jobs = prometheus.targets_health(ctx, center)
            return jobs.get("patroni", {}).get("up") == members and jobs
        jobs = _wait(patroni_up, timeout=60, every=2, what=f"{center}'s {members} Patroni target(s) up")
        assert jobs["patroni"]["total"] == members and jobs["prometheus"]["up"] == 1

    def federation_up():
        jobs = prometheus.targets_health(ctx)
        return jobs.get("federate", {}).get("up") == len(CENTERS) and jobs
    _wait(federation_up, timeout=60, every=2, what="the global view federating every center")
