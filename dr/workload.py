"""The steady-state workload: writer and reader threads that fill the write ledger.

Writers go through the system's service endpoints exactly as an application would (the
read-write database endpoint, the active-active app entry). Each write is a new,
uniquely numbered row; the node that acknowledged it is read in the same transaction.
Errors are recorded and retried on a fresh connection: right after a failover a write
can reach a node that is still promoting ("read-only transaction").
"""
from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import psycopg
import requests

from dr.ledger import Read, Write, WriteLedger
from inventory.runtime import DatabaseCluster, SecretRef, SystemRuntime

LEDGER_TABLE = "tricenter_drill_ledger"

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    seq bigserial PRIMARY KEY,  -- not the ledger id: a duplicated write must stay visible
    run_id text NOT NULL,
    id bigint NOT NULL,
    channel text NOT NULL,
    writer int NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
CREATE_INDEX = f"CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_run ON {LEDGER_TABLE} (run_id, id)"

INSERT = f"""
INSERT INTO {LEDGER_TABLE} (run_id, id, channel, writer) VALUES (%s, %s, 'db', %s)
RETURNING extract(epoch FROM clock_timestamp())::float8, host(inet_server_addr()),
          inet_server_port(), (SELECT system_identifier FROM pg_control_system())::text,
          pg_walfile_name(pg_current_wal_lsn())"""


def stop_running(*parts) -> None:
    """Stop each part still running (a Workload, a ClusterObserver); None is skipped."""
    for part in parts:
        if part is not None:
            part.stop()


class SecretUnavailable(Exception):
    pass


def resolve_secret(ref: SecretRef, base: Path | None = None) -> str:
    """Read the secret a reference points at; vault/pulumi references need their tools."""
    if ref.env:
        if ref.env not in os.environ:
            raise SecretUnavailable(f"environment variable {ref.env} is not set — export it "
                                    "(the lab writes it to .lab/env)")
        return os.environ[ref.env]
    if ref.file:
        path = Path(ref.file)
        if not path.is_absolute() and base is not None:
            path = base / path
        return path.read_text().strip()
    raise SecretUnavailable("vault and pulumi secret references are read by `tricenter runtime`, "
                            "not by drills: export the secret to an environment variable")


@dataclass(frozen=True)
class DbTarget:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    ca_file: str | None = None  # the runtime inventory's tls_ca_file
    # verify-full where the address is the member's own (its certificate names it);
    # verify-ca through an entry (HAProxy) or to a restored copy on another address.
    sslmode: str = "verify-full"

    def at(self, host: str, port: int, sslmode: str) -> "DbTarget":
        """The same login and CA, to another server."""
        return replace(self, host=host, port=port, sslmode=sslmode)

    def connect(self, timeout: float = 2) -> psycopg.Connection:
        # connect_timeout below 2 s is raised to 2 s by libpq anyway
        tls = {"sslmode": self.sslmode, **({"sslrootcert": self.ca_file} if self.ca_file else {})}
        return psycopg.connect(host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                               password=self.password, connect_timeout=max(2, int(timeout)),
                               autocommit=True, application_name="tricenter-drill", **tls)


def db_target(db: DatabaseCluster, *, ca_file: str | None, read_only: bool = False,
              base: Path | None = None) -> DbTarget:
    """The read-write (or read-only) entry, verified against `ca_file` (the runtime
    inventory's tls_ca_file): required, since libpq would otherwise look for a CA in
    ~/.postgresql and refuse with a message about a file nobody named."""
    endpoint = db.read_only if read_only else db.read_write
    return DbTarget(endpoint.host, endpoint.port, db.dbname, db.user, resolve_secret(db.password, base),
                    ca_file, sslmode="verify-ca")


def prepare_ledger_table(target: DbTarget) -> None:
    with target.connect() as conn:
        conn.execute(CREATE_TABLE)
        conn.execute(CREATE_INDEX)


def read_back(target: DbTarget, run_id: str, channel: str | None = None) -> dict[int, int]:
    """id → how many rows carry it, as the current primary holds them."""
    query = f"SELECT id, count(*) FROM {LEDGER_TABLE} WHERE run_id = %s"
    params: tuple = (run_id,)
    if channel:
        query += " AND channel = %s"
        params += (channel,)
    with target.connect() as conn:
        return {int(i): int(n) for i, n in conn.execute(query + " GROUP BY id", params)}


def app_key(run_id: str, wid: int) -> str:
    return f"drill:{run_id}:{wid}"


def read_back_app(target: DbTarget, run_id: str) -> dict[int, int]:
    """Ledger ids of the app channel found in the sample app's `records` table."""
    prefix = app_key(run_id, 0)[:-1]
    with target.connect() as conn:
        rows = conn.execute("SELECT key, count(*) FROM records WHERE key LIKE %s GROUP BY key",
                            (prefix + "%",)).fetchall()
    return {int(key.rsplit(":", 1)[1]): int(n) for key, n in rows}


class _Watchdog(threading.Thread):
    """Breaks a write that hangs (a frozen node keeps its TCP socket open) by shutting
    its socket down, so the writer records an error and reconnects."""

    def __init__(self, limit: float):
        super().__init__(name="drill-watchdog", daemon=True)
        self.limit = limit
        self.busy: dict[int, tuple[float, int]] = {}  # writer → (started, socket fd)
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def begin(self, writer: int, fd: int) -> None:
        with self.lock:
            self.busy[writer] = (time.monotonic(), fd)

    def end(self, writer: int) -> None:
        with self.lock:
            self.busy.pop(writer, None)

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            now = time.monotonic()
            with self.lock:
                stuck = [(w, fd) for w, (t, fd) in self.busy.items() if now - t > self.limit]
                for w, _ in stuck:
                    self.busy.pop(w)
            for _, fd in stuck:
                try:
                    sock = socket.socket(fileno=os.dup(fd))
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


class Workload:
    """Starts writers and readers; `stop()` joins them. Rates are per thread."""

    def __init__(self, ledger: WriteLedger, run_id: str, system: SystemRuntime, rw: DbTarget | None,
                 ro: DbTarget | None, node_names: dict[tuple[str, int], str], db_writers: int,
                 app_writers: int, readers: int, rate: float, attempt_timeout: float):
        self.ledger, self.run_id, self.system = ledger, run_id, system
        self.rw, self.ro, self.node_names = rw, ro, node_names
        self.rate, self.attempt_timeout = rate, attempt_timeout
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog = _Watchdog(attempt_timeout)
        self.threads: list[threading.Thread] = []
        plan: list[tuple[str, Callable[[int], None]]] = []
        plan += [("db-writer", self._db_writer)] * (db_writers if rw else 0)
        plan += [("app-writer", self._app_writer)] * (app_writers if system.app_url else 0)
        plan += [("reader", self._reader)] * (readers if ro else 0)
        for n, (kind, fn) in enumerate(plan):
            self.threads.append(threading.Thread(target=fn, args=(n,), name=f"{kind}-{n}", daemon=True))

    def next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def start(self) -> None:
        self._watchdog.start()
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=self.attempt_timeout + 5)
        self._watchdog.stopped.set()

    def _pace(self, started: float) -> None:
        self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))

    def _db_writer(self, writer: int) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            began = time.monotonic()
            wid = self.next_id()
            sent = time.time()
            try:
                if conn is None or conn.closed:
                    conn = self.rw.connect(self.attempt_timeout)
                self._watchdog.begin(writer, conn.pgconn.socket)
                try:
                    row = conn.execute(INSERT, (self.run_id, wid, writer)).fetchone()
                finally:
                    self._watchdog.end(writer)
                server_time, addr, port, sysid, walfile = row
                self.ledger.add_write(Write(
                    wid, "db", writer, sent, time.time(), True,
                    node=self.node_names.get((addr, int(port)), f"{addr}:{port}"),
                    timeline=int(walfile[:8], 16), system_id=sysid, server_time=server_time))
            except (psycopg.Error, OSError) as exc:
                self.ledger.add_write(Write(wid, "db", writer, sent, time.time(), False,
                                            error=_short_error(exc)))
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 — a broken socket may fail to close
                        pass
                conn = None
                self._stop.wait(0.05)  # retry fast: recovery time is what we measure
                continue
            self._pace(began)
        if conn is not None:
            conn.close()

    def _app_writer(self, writer: int) -> None:
        session = requests.Session()
        url = self.system.app_url.rstrip("/")
        while not self._stop.is_set():
            began = time.monotonic()
            wid = self.next_id()
            sent = time.time()
            try:
                reply = session.post(f"{url}/records", json={"key": app_key(self.run_id, wid),
                                     "payload": {"drill_id": wid}}, timeout=self.attempt_timeout)
                reply.raise_for_status()
                body = reply.json()
                # the app reports the database address that stored the record
                addr = body.get("db_server")
                node = next((n for (a, _p), n in self.node_names.items() if a == addr), addr)
                self.ledger.add_write(Write(wid, "app", writer, sent, time.time(), True, node=node))
            except (requests.RequestException, ValueError) as exc:
                self.ledger.add_write(Write(wid, "app", writer, sent, time.time(), False,
                                            error=_short_error(exc)))
                session.close()
                session = requests.Session()
                self._stop.wait(0.05)
                continue
            self._pace(began)

    def _reader(self, reader: int) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            began = time.monotonic()
            sent = time.time()
            try:
                if conn is None or conn.closed:
                    conn = self.ro.connect(self.attempt_timeout)
                self._watchdog.begin(-1 - reader, conn.pgconn.socket)
                try:
                    addr, port = conn.execute(
                        f"SELECT host(inet_server_addr()), inet_server_port() "
                        f"FROM (SELECT max(id) FROM {LEDGER_TABLE} WHERE run_id = %s) m",
                        (self.run_id,)).fetchone()
                finally:
                    self._watchdog.end(-1 - reader)
                self.ledger.add_read(Read(sent, time.time(), True,
                                          node=self.node_names.get((addr, int(port)), f"{addr}:{port}")))
            except (psycopg.Error, OSError) as exc:
                self.ledger.add_read(Read(sent, time.time(), False, error=_short_error(exc)))
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                self._stop.wait(0.05)
                continue
            self._pace(began)
        if conn is not None:
            conn.close()
