"""The exporter's only contact with the world: one small function per external API.

Each probe returns plain data (dataclasses, dicts) or raises `ProbeFailed`; the
exporter turns that data into metrics without any I/O (monitoring/families.py), so its
logic is tested with these probes faked at this boundary.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3

from inventory.runtime import DatabaseCluster, DbMember, ObjectStore, TlsFiles
from support.patroni import (
    ApiAccess,
    ClusterState,
    PatroniCluster,
    PatroniUnavailable,
    PrimaryAnswer,
)
from support.patroni_dcs import DcsUnavailable, PatroniDcs
from support.tls import client_context
from support.watchdog import Watchdog

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


_clusters: dict[tuple[str, float], PatroniCluster] = {}
def _client(db: DatabaseCluster, ca_file: str | None, timeout: float) -> PatroniCluster:
    """One client per cluster and timeout (the scrape's, the leader watch's: each its own
    session), kept across scrapes: it asks first the member that answered last, not a
    lost center's, over connections kept open. The exporter only reads: no REST API account."""
    key = (db.cluster, timeout)
    client = _clusters.get(key)
    access = ApiAccess(ca_file=ca_file)
    # `is` first: comparing two inventory models field by field costs more than the read.
    if client is None or (client.db is not db and client.db != db) or client.access != access:
        client = _clusters[key] = PatroniCluster(db, access, timeout=timeout)
    return client


def patroni_cluster(db: DatabaseCluster, ca_file: str | None = None, timeout: float = 1.0) -> ClusterState:
    """The cluster as any member's /cluster says."""
    try:
        return _client(db, ca_file, timeout).state()
    except PatroniUnavailable as exc:
        raise ProbeFailed(str(exc)) from None


def patroni_clusters(dcs: PatroniDcs) -> dict[str, ClusterState]:
    """Every cluster's state as etcd holds Patroni's keys (support/patroni_dcs.py)."""
    try:
        return dcs.clusters()
    except DcsUnavailable as exc:
        raise ProbeFailed(f"etcd: {exc}") from None


def patroni_leader_answers(db: DatabaseCluster, leader: DbMember, ca_file: str | None = None,
                           timeout: float = 1.0) -> bool:
    """Whether the leader's own REST API says it is the primary. Any member's /cluster
    keeps naming a vanished leader until its lease expires (ttl, 20 s and more): asking
    the leader itself sees a lost center within one scrape."""
    return _client(db, ca_file, timeout).is_primary(leader.name, timeout)


def leader_poll(db: DatabaseCluster, last_leader: str | None, timeout: float,
                ca_file: str | None = None, quick: bool = False, password: str | None = None):
    """One poll of monitoring/leader_watch.py: the last known leader's own /primary; only
    when it does not confirm, the other members' /cluster (whom do they name?) and the
    /primary of the leader they name. One request per cluster while all is well.

    Patroni answers /primary from its lock alone, so while it restarts a crashed
    PostgreSQL in place it still says 200: with the database's `password`, a leader whose
    database turns the exporter down (refused, starting up, in recovery) is not confirmed,
    since no writer gets through either. A database that is merely slow is left to Patroni.

    `quick`: first ask the leader's database over the connection the exporter keeps
    (a query, where /primary costs a TLS handshake: Patroni closes every connection).
    It can only confirm; any doubt (no kept connection, an error, in recovery) falls
    through to Patroni."""
    from monitoring.leader_watch import LeaderPoll

    def database(member: str, may_connect: bool) -> PrimaryAnswer:
        if password is None:
            return PrimaryAnswer.silent
        return _database_answer(db, db.member(member), password, ca_file, timeout / 2, may_connect)

    def primary(member: str) -> PrimaryAnswer:
        answer = client.primary_answer(member, timeout)
        if answer is PrimaryAnswer.yes:
            refusal = database(member, True)
            if refusal in (PrimaryAnswer.refused, PrimaryAnswer.no):
                return refusal
        return answer

    if quick and last_leader is not None and database(last_leader, False) is PrimaryAnswer.yes:
        return LeaderPoll(last_leader, PrimaryAnswer.yes)
    client = _client(db, ca_file, timeout)
    answer = PrimaryAnswer.silent
    if last_leader is not None:
        answer = primary(last_leader)
        if answer is PrimaryAnswer.yes:
            return LeaderPoll(last_leader, answer)
    views = tuple(view.leader for m in db.members if m.name != last_leader
                  and (view := client.member_view(m.name, timeout)) is not None)
    named = [v for v in views if v is not None]
    # Most named first, ties by name. While the members disagree (a failover under way, one
    # view not yet updated), each leader some member names is asked until one confirms:
    # asking only the most named one, a tie picked at random and could miss the new leader.
    candidates = sorted(set(named), key=lambda name: (-named.count(name), name))
    leader = candidates[0] if candidates else None
    for candidate in candidates:
        if candidate == last_leader:
            continue  # asked above
        said = primary(candidate)
        if said is PrimaryAnswer.yes:
            return LeaderPoll(candidate, said, views)
        if candidate == leader:
            answer = said
    return LeaderPoll(leader if leader is not None else last_leader, answer, views)


def tls_not_after(url: str, timeout: float = 1) -> float:
    """When the certificate an https endpoint presents expires (Unix time). The chain is
    not verified here: an expiring certificate matters whoever signed it."""
    from urllib.parse import urlsplit

    from cryptography import x509

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout) as raw:
            with _unverified_context().wrap_socket(raw, server_hostname=parts.hostname) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise ProbeFailed(f"{url}: {type(exc).__name__}") from None
    if der is None:
        raise ProbeFailed(f"{url}: no certificate presented")
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """Built once: a context loads the system's trust store (about 60 ms of CPU)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


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
    are NULL; the collector then falls back to Patroni's lag. The connection is kept for
    the next scrape (see LeaderConnections); a kept one that fails is replaced once."""
    import psycopg

    key = _connection_key(db, leader, password, ca_file)
    for attempt in (1, 2):
        conn = _connections.checkout(key)
        kept = conn is not None
        try:
            conn = conn or _connect(leader, db, password, ca_file, timeout)
            with _cut_after(conn, timeout):
                rows = conn.execute(REPLICATION_QUERY).fetchall()
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            if kept and attempt == 1:
                continue  # the server restarted or failed over since the last scrape
            raise ProbeFailed(f"{leader.name}: {type(exc).__name__}: {str(exc).strip()[:200]}") from None
        _connections.checkin(key, conn)
        return [ReplicationRow(*row) for row in rows]
    raise AssertionError("unreachable")


def _connection_key(db: DatabaseCluster, leader: DbMember, password: str,
                    ca_file: str | None) -> tuple:
    return (leader.host, leader.port, db.dbname, db.user, password, ca_file)


def _database_answer(db: DatabaseCluster, leader: DbMember, password: str, ca_file: str | None,
                     timeout: float, may_connect: bool = False) -> PrimaryAnswer:
    """The leader's PostgreSQL's own answer: yes (out of recovery), no (in recovery),
    refused (it turned the connection down, or is starting or shutting down) or silent.
    A kept connection is asked first; a new one is opened only if `may_connect`: against
    a lost leader it would wait for the connect timeout, so the caller allows it only once
    the leader's Patroni has answered (its host is there)."""
    import psycopg

    key = _connection_key(db, leader, password, ca_file)
    conn = _connections.checkout(key)
    if conn is not None:
        try:
            with _cut_after(conn, timeout):
                row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
            _connections.checkin(key, conn)
            return PrimaryAnswer.yes if row and row[0] else PrimaryAnswer.no
        except psycopg.Error:
            conn.close()  # the server restarted, failed over, or was cut off since
    if not may_connect:
        return PrimaryAnswer.silent
    try:
        conn = _connect(leader, db, password, ca_file, timeout)
        with _cut_after(conn, timeout):
            row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
    except psycopg.OperationalError as exc:
        return PrimaryAnswer.refused if _turned_down(str(exc)) else PrimaryAnswer.silent
    except psycopg.Error:
        return PrimaryAnswer.silent
    _connections.checkin(key, conn)
    return PrimaryAnswer.yes if row and row[0] else PrimaryAnswer.no


IS_PRIMARY_QUERY = b"SELECT NOT pg_is_in_recovery()"


def confirm_primaries(asks: dict[str, tuple[DatabaseCluster, DbMember, str]], ca_file: str | None,
                      timeout: float) -> set[str]:
    """Which of `asks` (name → cluster, its leader, the account's password) have the
    leader's database say it is out of recovery, asked at once over the connections the
    exporter keeps: every query is sent, then one wait with one deadline takes the answers.
    Only a confirmation counts; a leader without a kept connection, or one that errs or
    does not answer by the deadline, is left to the caller (its connection closed).

    The leader watch asks this every second. Through psycopg's cursor, each query on its
    own pool thread, bounded by the watchdog, a confirmation cost about 0.5 ms of CPU plus
    the hand-offs; here libpq's asynchronous calls do it without a thread or a timer."""
    import select

    import psycopg
    from psycopg import pq

    pending: dict[int, tuple[str, tuple, object]] = {}  # socket → (name, key, connection)
    for name, (db, leader, password) in asks.items():
        key = _connection_key(db, leader, password, ca_file)
        conn = _connections.checkout(key)
        if conn is None:
            continue
        try:
            conn.pgconn.send_query(IS_PRIMARY_QUERY)
            if conn.pgconn.flush() == 0:
                pending[conn.pgconn.socket] = (name, key, conn)
                continue
        except psycopg.Error:
            pass
        conn.close()
    confirmed: set[str] = set()
    deadline = time.monotonic() + timeout
    waiting = select.poll()  # made per call without a system call, unlike an epoll selector
    for fd in pending:
        waiting.register(fd, select.POLLIN)
    # Not a polling wait: poll blocks until an answer arrives, and each round settles a
    # connection or reads part of an answer (a few packets at most).
    for _ in range(8 * len(pending)):
        events = waiting.poll(max(0, int((deadline - time.monotonic()) * 1000))) if pending else []
        if not events:
            break  # all answered, or the deadline passed
        for fd, _ in events:
            name, key, conn = pending[fd]
            try:
                conn.pgconn.consume_input()
                if conn.pgconn.is_busy():
                    continue  # a partial answer: wait for the rest
                results = list(iter(conn.pgconn.get_result, None))
            except psycopg.Error:
                results = []
            waiting.unregister(fd)
            del pending[fd]
            answered = (len(results) == 1 and results[0].status == pq.ExecStatus.TUPLES_OK
                        and conn.pgconn.status == pq.ConnStatus.OK)
            if answered and results[0].get_value(0, 0) == b"t":
                confirmed.add(name)
            if answered:
                _connections.checkin(key, conn)  # in recovery, maybe: still a good connection
            else:
                conn.close()
    for _, _, conn in pending.values():
        conn.close()  # no answer by the deadline: frozen, cut off, or slow
    return confirmed


# What libpq says when the server is not there to take writes, as against a timeout or a
# password problem (which prove nothing about the primary).
_TURNED_DOWN = ("connection refused", "starting up", "shutting down", "in recovery mode",
                "not yet accepting connections", "server closed the connection")


def _turned_down(message: str) -> bool:
    message = message.lower()
    return any(sign in message for sign in _TURNED_DOWN)


def _connect(leader: DbMember, db: DatabaseCluster, password: str, ca_file: str | None,
             timeout: float):
    import psycopg

    tls = {"sslmode": "verify-full", **({"sslrootcert": ca_file} if ca_file else {})}
    # autocommit: each query its own transaction, so pg_stat_replication is read afresh
    # (a transaction keeps the statistics snapshot it first read).
    return psycopg.connect(host=leader.host, port=leader.port, dbname=db.dbname, user=db.user,
                           password=password, connect_timeout=max(2, int(timeout)),
                           application_name="tricenter-exporter", autocommit=True,
                           keepalives=1, keepalives_idle=30, tcp_user_timeout=int(timeout * 1000),
                           **tls)


class LeaderConnections:
    """PostgreSQL connections kept between scrapes, one per leader and account: a new one
    costs a TLS handshake, a SCRAM exchange and a backend fork, most of a scrape's CPU.
    A connection is checked out while in use, so concurrent scrapes never share one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, object] = {}

    def checkout(self, key: tuple):
        with self._lock:
            return self._idle.pop(key, None)

    def checkin(self, key: tuple, conn) -> None:
        """Keep `conn`; connections to any other member of its cluster (an old leader) close."""
        with self._lock:
            stale = [k for k in self._idle if k[2:] == key[2:] and k != key]
            previous = [self._idle.pop(k) for k in stale] + (
                [self._idle.pop(key)] if key in self._idle else [])
            self._idle[key] = conn
        for old in previous:
            old.close()

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for conn in idle:
            conn.close()


_connections = LeaderConnections()


@contextlib.contextmanager
def _cut_after(conn, seconds: float):
    """Bound a query on a kept connection: a frozen server (SIGSTOP, or a host whose kernel
    still acknowledges) would block it for ever. After `seconds` the socket is shut
    down, and the query fails with an OperationalError."""
    fd = conn.pgconn.socket

    def cut() -> None:
        try:
            socket.socket(fileno=os.dup(fd)).shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    token = _watchdog.arm(seconds, cut)
    try:
        yield
    finally:
        _watchdog.disarm(token)


_watchdog = Watchdog()  # one thread for every bounded query, not one per query


def haproxy_stats(stats_url: str, timeout: float = 1) -> list[HaproxyServer]:
    """The servers of HAProxy's stats page (CSV export: `<url>;csv`)."""
    try:
        reply = pool(None).request("GET", stats_url.rstrip("/") + "/;csv", timeout=timeout)
    except urllib3.exceptions.HTTPError as exc:
        raise ProbeFailed(f"haproxy stats {stats_url}: {type(exc).__name__}") from None
    if reply.status != 200:
        raise ProbeFailed(f"haproxy stats {stats_url}: HTTP {reply.status}")
    return parse_haproxy_csv(reply.data.decode("utf-8", "replace"))


def parse_haproxy_csv(text: str) -> list[HaproxyServer]:
    # Five of HAProxy's ~100 columns, picked by the header's names: a dict per row
    # (csv.DictReader) cost 0.3 ms a scrape for a dozen servers.
    rows = csv.reader(io.StringIO(text.lstrip("# ")))
    header = next(rows, [])
    at = {name: i for i, name in enumerate(header)}
    if "pxname" not in at or "svname" not in at:
        return []

    def column(row: list[str], name: str) -> str:
        i = at.get(name)
        return row[i] if i is not None and i < len(row) else ""

    return [HaproxyServer(proxy=column(r, "pxname"), server=server, address=column(r, "addr"),
                          status=column(r, "status").split(" ")[0],
                          sessions_total=float(column(r, "stot") or 0))
            for r in rows if len(r) > at["svname"]
            and (server := r[at["svname"]]) not in ("FRONTEND", "BACKEND")]


def pool(tls: TlsFiles | None) -> urllib3.PoolManager:
    """One connection pool per client identity, shared by every probing thread and by the
    exporter's etcd reads (urllib3's pools are thread-safe): each endpoint's keep-alive
    connection, and its TLS handshake, serves scrape after scrape."""
    return _pool_for(None if tls is None else (tls.ca, tls.cert, tls.key))


@functools.lru_cache(maxsize=8)
def _pool_for(files: tuple[str, str, str] | None) -> urllib3.PoolManager:
    return urllib3.PoolManager(maxsize=4, retries=False,
                               ssl_context=client_context(*(files or ())))


def etcd_member(url: str, tls: TlsFiles | None = None, timeout: float = 1.0) -> EtcdMemberStatus:
    """A member's own view, from the v3 JSON gateway's status: its id, the leader it
    follows, its alarms. Healthy: it answers, follows a leader (a member cut off from the
    quorum has none within an election timeout) and raises no alarm — what /health says,
    in one request instead of two. `tls`: the client certificate etcd demands and the CA
    its certificate is checked against."""
    try:
        reply = pool(tls).request("POST", url.rstrip("/") + "/v3/maintenance/status", body=b"{}",
                                   headers={"Content-Type": "application/json"}, timeout=timeout)
        status = json.loads(reply.data) if reply.status == 200 else None
    except (urllib3.exceptions.HTTPError, ValueError):
        status = None
    if not isinstance(status, dict):
        return EtcdMemberStatus(url=url, healthy=False, member_id=None, leader_id=None)
    leader = str(status.get("leader") or "")
    return EtcdMemberStatus(url=url, healthy=leader not in ("", "0") and not status.get("errors"),
                            member_id=str(status.get("header", {}).get("member_id") or "") or None,
                            leader_id=leader if leader not in ("", "0") else None)


def pgbackrest_stanzas(config: Path, run_as: str | None = None, timeout: float = 30) -> dict[str, dict]:
    """Every stanza's entry of one `pgbackrest info --output=json`, by stanza name: one run
    answers for every system (a run per stanza cost ~10 ms of pgBackRest's CPU each, 100 of
    them a minute at 100 systems). `run_as`: the repository's owner (postgres), so no file
    pgBackRest touches ends up owned by the exporter's user."""
    command = ["pgbackrest", f"--config={config}", "--log-level-file=off", "--output=json", "info"]
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
    return {e["name"]: e for e in entries if isinstance(e, dict) and "name" in e}


def pgbackrest_info(config: Path, stanza: str, run_as: str | None = None,
                    timeout: float = 30) -> dict:
    """The stanza's entry of `pgbackrest info` ({} when the repository has no such stanza)."""
    return pgbackrest_stanzas(config, run_as, timeout).get(stanza, {})


class PerStanza:
    """pgbackrest_info's interface (and `age`, as Background's) answered from one cached run
    for every stanza: `every` is a Background over pgbackrest_stanzas."""

    def __init__(self, every: "Background") -> None:
        self.every = every

    def __call__(self, config: Path, stanza: str, run_as: str | None = None) -> dict:
        return self.every(config, run_as).get(stanza, {})

    def age(self, config: Path, stanza: str, run_as: str | None = None) -> float | None:
        return self.every.age(config, run_as)


def object_store_heartbeat(store: ObjectStore, access_key: str, secret_key: str,
                           write_center: str, timeout: float = 2,
                           ca_file: str | None = None
                           ) -> tuple[float, dict[str, float | None]]:
    """Write a timestamp through the writing center's region, read it back through every
    region: (written, center → the timestamp that region serves; None: absent or unreachable).
    The difference to what was written is the replication lag between regions. `ca_file`:
    the CA the store's certificate is checked against (the runtime inventory's)."""
    from botocore.exceptions import BotoCoreError, ClientError

    def client(region: str):
        return _s3_client(store.endpoint, region, access_key, secret_key,
                          (ca_file or True) if store.verify_tls else False, timeout)

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


@functools.lru_cache(maxsize=16)
def _s3_client(endpoint: str, region: str, access_key: str, secret_key: str,
               verify: str | bool, timeout: float):
    """One S3 client per region, kept: building one loads botocore's service model (tens
    of ms of CPU) and a kept client reuses its connections. botocore clients are
    thread-safe."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, verify=verify,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}))


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

    def age(self, *args) -> float | None:
        """Seconds since the answer a call with these arguments returns was obtained (None:
        none yet): the exporter says how old a cached answer is."""
        with self._lock:
            entry = self._results.get(repr(args))
        return None if entry is None else max(self.clock() - entry[0], 0.0)

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
