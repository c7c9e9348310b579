"""The exporter's only contact with the world: one small function per external API.

Each probe returns plain data (dataclasses, dicts) or raises `ProbeFailed`; the
collector (monitoring/collector.py) turns that data into metrics without any I/O, so its
logic is tested with these probes faked at this boundary.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from inventory.runtime import DatabaseCluster, DbMember, ObjectStore, TlsFiles
from support.patroni import ApiAccess, ClusterState, PatroniCluster, PatroniUnavailable

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "tricenter/replication-heartbeat"


class ProbeFailed(Exception):
    """An endpoint did not answer or answered something unreadable."""


@dataclass(frozen=True)
class ReplicationRow:
    """One walsender on the leader, as pg_stat_replication shows it."""

    member: str  # application_name: Patroni sets it to the member name
    state: str  # streaming | catchup | ...
    sync_state: str  # sync | quorum | potential | async
    sent_lag_bytes: float | None
    flush_lag_bytes: float | None  # WAL the leader has that this standby has not flushed
    replay_lag_bytes: float | None
    flush_lag_seconds: float | None  # NULL in PostgreSQL while idle: nothing to wait for
    replay_lag_seconds: float | None


@dataclass(frozen=True)
class EtcdMemberStatus:
    url: str
    healthy: bool
    member_id: str | None
    leader_id: str | None


@dataclass(frozen=True)
class HaproxyServer:
    proxy: str
    server: str
    address: str  # host:port of the server
    status: str  # UP | DOWN | MAINT | no check ...
    sessions_total: float


_clusters: dict[str, PatroniCluster] = {}
_local = threading.local()


def _session() -> requests.Session:
    """One session per probing thread: connections to an endpoint are reused across scrapes."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _client(db: DatabaseCluster, ca_file: str | None, timeout: float) -> PatroniCluster:
    """One client per cluster, kept across scrapes: it asks first the member that answered
    last, not a lost center's. The exporter only reads: no REST API account."""
    client = _clusters.get(db.cluster)
    access = ApiAccess(ca_file=ca_file)
    if client is None or client.db != db or client.access != access:
        client = _clusters[db.cluster] = PatroniCluster(db, access, timeout=timeout)
    return client


def patroni_cluster(db: DatabaseCluster, ca_file: str | None = None, timeout: float = 0.5) -> ClusterState:
    """The cluster as any member's /cluster says."""
    try:
        return _client(db, ca_file, timeout).state()
    except PatroniUnavailable as exc:
        raise ProbeFailed(str(exc)) from None


def patroni_leader_answers(db: DatabaseCluster, leader: DbMember, ca_file: str | None = None,
                           timeout: float = 0.5) -> bool:
    """Whether the leader's own REST API says it is the primary. Any member's /cluster
    keeps naming a vanished leader until its lease expires (ttl, 20 s and more): asking
    the leader itself sees a lost center within one scrape."""
    return _client(db, ca_file, timeout).is_primary(leader.name, timeout)


def leader_confirmed(db: DatabaseCluster, ca_file: str | None = None, timeout: float = 0.5) -> bool:
    """Whether the cluster has a leader whose own REST API confirms it leads."""
    try:
        state = patroni_cluster(db, ca_file, timeout)
    except ProbeFailed:
        return False
    return state.leader is not None and patroni_leader_answers(db, db.member(state.leader), ca_file,
                                                               timeout)


def tls_not_after(url: str, timeout: float = 1) -> float:
    """When the certificate an https endpoint presents expires (Unix time). The chain is
    not verified here: an expiring certificate matters whoever signed it."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    from cryptography import x509

    parts = urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise ProbeFailed(f"{url}: {type(exc).__name__}") from None
    if der is None:
        raise ProbeFailed(f"{url}: no certificate presented")
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


REPLICATION_QUERY = """
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::float8,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8,
       extract(epoch FROM flush_lag)::float8,
       extract(epoch FROM replay_lag)::float8
FROM pg_stat_replication"""


def replication(db: DatabaseCluster, leader: DbMember, password: str, ca_file: str | None = None,
                timeout: float = 2) -> list[ReplicationRow]:
    """pg_stat_replication on the leader, over TLS verified against the inventory's CA (the
    leader's own address: its certificate names it). Without pg_monitor the LSN columns
    are NULL; the collector then falls back to Patroni's lag."""
    import psycopg

    tls = {"sslmode": "verify-full", **({"sslrootcert": ca_file} if ca_file else {})}
    try:
        with psycopg.connect(host=leader.host, port=leader.port, dbname=db.dbname, user=db.user,
                             password=password, connect_timeout=max(2, int(timeout)),
                             application_name="tricenter-exporter", **tls) as conn:
            rows = conn.execute(REPLICATION_QUERY).fetchall()
    except psycopg.Error as exc:
        raise ProbeFailed(f"{leader.name}: {type(exc).__name__}: {str(exc).strip()[:200]}") from None
    return [ReplicationRow(*row) for row in rows]


def haproxy_stats(stats_url: str, timeout: float = 1) -> list[HaproxyServer]:
    """The servers of HAProxy's stats page (CSV export: `<url>;csv`)."""
    try:
        reply = requests.get(stats_url.rstrip("/") + "/;csv", timeout=timeout)
        reply.raise_for_status()
    except requests.RequestException as exc:
        raise ProbeFailed(f"haproxy stats {stats_url}: {type(exc).__name__}") from None
    return parse_haproxy_csv(reply.text)


def parse_haproxy_csv(text: str) -> list[HaproxyServer]:
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [HaproxyServer(proxy=r["pxname"], server=r["svname"], address=r.get("addr") or "",
                          status=(r.get("status") or "").split(" ")[0],
                          sessions_total=float(r.get("stot") or 0))
            for r in rows if r.get("svname") not in (None, "FRONTEND", "BACKEND")]


def etcd_member(url: str, tls: TlsFiles | None = None, timeout: float = 0.5) -> EtcdMemberStatus:
    """A member's own view: /health, and the leader id from the v3 JSON gateway. `tls`:
    the client certificate etcd demands and the CA its certificate is checked against."""
    base = url.rstrip("/")
    client = {"verify": tls.ca, "cert": (tls.cert, tls.key)} if tls is not None else {}
    try:
        health = _session().get(base + "/health", timeout=timeout, **client).json()
        status = _session().post(base + "/v3/maintenance/status", json={}, timeout=timeout,
                                 **client).json()
    except (requests.RequestException, ValueError):
        return EtcdMemberStatus(url=url, healthy=False, member_id=None, leader_id=None)
    return EtcdMemberStatus(url=url, healthy=str(health.get("health")) == "true",
                            member_id=str(status.get("header", {}).get("member_id") or "") or None,
                            leader_id=str(status.get("leader") or "") or None)


def pgbackrest_info(config: Path, stanza: str, run_as: str | None = None,
                    timeout: float = 30) -> dict:
    """The stanza's entry of `pgbackrest info --output=json`. `run_as`: the repository's
    owner (postgres), so no file pgBackRest touches ends up owned by the exporter's user."""
    command = ["pgbackrest", f"--config={config}", f"--stanza={stanza}", "--log-level-file=off",
               "--output=json", "info"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              user=run_as, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeFailed(f"pgbackrest info: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise ProbeFailed(f"pgbackrest info exited {done.returncode}: {done.stderr.strip()[:200]}")
    try:
        entries = json.loads(done.stdout)
    except ValueError:
        raise ProbeFailed("pgbackrest info printed no JSON") from None
    return next((e for e in entries if e.get("name") == stanza), {})


def object_store_heartbeat(store: ObjectStore, access_key: str, secret_key: str,
                           write_center: str, timeout: float = 2,
                           ca_file: str | None = None
                           ) -> tuple[float, dict[str, float | None]]:
    """Write a timestamp through the writing center's region, read it back through every
    region: (written, center → the timestamp that region serves; None: absent or unreachable).
    The difference to what was written is the replication lag between regions. `ca_file`:
    the CA the store's certificate is checked against (the runtime inventory's)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    def client(region: str):
        return boto3.client("s3", endpoint_url=store.endpoint, region_name=region,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                            verify=(ca_file or True) if store.verify_tls else False,
                            config=Config(connect_timeout=timeout, read_timeout=timeout,
                                          retries={"max_attempts": 1}))

    if not store.verify_tls:  # the inventory chose it (a self-signed lab proxy): no warning per scrape
        import urllib3
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    bucket = store.backup_bucket or "tricenter"
    written = time.time()
    try:
        client(store.regions[write_center]).put_object(
            Bucket=bucket, Key=HEARTBEAT_KEY, Body=f"{written:.3f}".encode())
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise ProbeFailed(f"object store heartbeat write: {type(exc).__name__}") from None
    seen: dict[str, float | None] = {}
    for center, region in sorted(store.regions.items()):
        try:
            body = client(region).get_object(Bucket=bucket, Key=HEARTBEAT_KEY)["Body"].read()
            seen[center] = float(body)
        except (BotoCoreError, ClientError, ValueError):
            seen[center] = None
    return written, seen


class Background:
    """A slow probe kept off the scrape path: a call returns the last result at once and,
    when that is older than `max_age` seconds, starts one refresh in a thread.

    pgbackrest info takes about 8 x io_timeout when an object-store proxy is down, longer
    than Prometheus's scrape timeout: asked inline, it would blank every metric exactly
    when a center is lost."""

    def __init__(self, probe, max_age: float, clock=time.monotonic):
        self.probe, self.max_age, self.clock = probe, max_age, clock
        self._lock = threading.Lock()
        self._results: dict[str, tuple[float, object, str | None]] = {}  # key → (at, value, error)
        self._running: dict[str, threading.Thread] = {}

    def __call__(self, *args):
        key = repr(args)
        with self._lock:
            entry = self._results.get(key)
            stale = entry is None or self.clock() - entry[0] > self.max_age
            if stale and key not in self._running:
                thread = threading.Thread(target=self._refresh, args=(key, args), daemon=True)
                self._running[key] = thread
                thread.start()
        if entry is None:
            raise ProbeFailed("first result not in yet")
        _, value, error = entry
        if error is not None:
            raise ProbeFailed(error)
        return value

    def _refresh(self, key: str, args: tuple) -> None:
        try:
            result: tuple[float, object, str | None] = (self.clock(), self.probe(*args), None)
        except ProbeFailed as exc:
            result = (self.clock(), None, str(exc))
        except Exception as exc:  # noqa: BLE001 — a thread must record, not die silently
            result = (self.clock(), None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._results[key] = result
            self._running.pop(key, None)

    def wait(self) -> None:
        """Until every refresh under way is done (tests, and a clean shutdown)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join()
