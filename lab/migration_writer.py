"""A writer at work on a migrating lab system, and the undoing of a lab migration: what
the migration integration test and `benchmarks/migrate.py` share.

The writer posts uniquely keyed records, one at a time, to the system's application on the
legacy host (lab/components/legacy_app.py), as the department's clerks would; it never
picks a database itself. Each acknowledgement names the database server that took the
write, so the ledger records on which side the application wrote: cutover's repointing is
seen, not assumed. From the ledger `tricenter migrate status` reads the write downtime and
verify / rollback the lost writes."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import requests

from inventory.runtime import PostgresAccess, RuntimeInventory
from playbooks.migration import ledger

if TYPE_CHECKING:
    from lab.context import LabContext


def _conninfo(host: str, port: int, dbname: str, user: str, password_file: str) -> dict:
    return {"host": host, "port": port, "dbname": dbname, "user": user, "connect_timeout": 3,
            "password": Path(password_file).read_text().strip()}


@dataclass
class Sides:
    source: dict
    source_admin: dict
    target: dict
    target_admin: dict
    app_url: str  # the application the migration repoints


def sides(runtime: RuntimeInventory, system: str) -> Sides:
    """psycopg keywords for both sides, as the application and as the administrator."""
    found = runtime.systems[system]
    src: PostgresAccess = found.legacy.database
    dst = found.database
    rw = dst.read_write
    return Sides(
        source=_conninfo(src.host, src.port, src.dbname, src.user, src.password.file),
        source_admin=_conninfo(src.host, src.port, src.dbname, src.admin_user,
                               src.admin_password.file),
        target=_conninfo(rw.host, rw.port, dst.dbname, dst.user, dst.password.file),
        target_admin=_conninfo(rw.host, rw.port, dst.dbname, dst.admin_user,
                               dst.admin_password.file),
        app_url=found.legacy.app.url.rstrip("/"))


def run_sql(conninfo: dict, *statements: str) -> None:
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def reset(s: Sides, system: str, lab: "LabContext") -> None:
    """Undo a lab migration of `system`: the application on the source again, replication
    objects gone on both sides, the source open for writes again, the target without the
    migrated tables."""
    from lab.components import legacy_app

    legacy_app.point_at_source(lab)
    ident = "".join(c if c.isalnum() else "_" for c in system)
    with psycopg.connect(**s.source_admin) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname = 'public'")]
    run_sql(s.target_admin, f"DROP SUBSCRIPTION IF EXISTS tricenter_{ident}")
    with psycopg.connect(**s.source_admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s",
                        (f"tricenter_back_{ident}",)).fetchone():
            # Detached from its slot first: a failover of the target loses the slot (Patroni
            # keeps no logical slot it was not told of), and DROP would then refuse.
            for statement in (f"ALTER SUBSCRIPTION tricenter_back_{ident} DISABLE",
                              f"ALTER SUBSCRIPTION tricenter_back_{ident} SET (slot_name = NONE)",
                              f"DROP SUBSCRIPTION tricenter_back_{ident}"):
                conn.execute(statement)
    run_sql(s.target_admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = 'tricenter_back_{ident}' AND NOT active")
    run_sql(s.source_admin, f"DROP PUBLICATION IF EXISTS tricenter_{ident}",
            "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "
            f"{s.source['user']}")
    run_sql(s.target_admin, f"DROP PUBLICATION IF EXISTS tricenter_back_{ident}",
            *(f"DROP TABLE IF EXISTS {t} CASCADE" for t in tables))


@dataclass
class Writer:
    sides: Sides
    base: int  # keys above it, unique across runs
    book: ledger.Ledger
    table: str = "public.office_record"  # the application's (lab/components/legacy_app.py)
    key: str = "id"
    acks: list[ledger.Ack] = field(default_factory=list)
    attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)
    progress: threading.Condition = field(default_factory=threading.Condition)

    def run(self) -> None:
        n = 0
        # One kept-alive connection: the app serves it from one thread and one database
        # session, which it replaces when it is repointed.
        with requests.Session() as http:
            while not self.stop.is_set():
                if self.paused.is_set():
                    self.stop.wait(0.02)
                    continue
                n += 1
                self.attempts += 1
                self._write(http, self.base + n)

    def _write(self, http: requests.Session, ident: int) -> None:
        try:
            reply = http.post(f"{self.sides.app_url}/records", timeout=5,
                              json={"key": f"migration-writer-{ident}", "payload": {"n": ident}})
            body = reply.json() if reply.status_code in (200, 201) else None
        except (requests.RequestException, ValueError):
            body = None
        if body is None:
            self.stop.wait(0.01)  # the source fenced, the app not yet repointed: retry
            return
        side = "source" if body["db_server"] == self.sides.source["host"] else "target"
        ack = ledger.Ack(table=self.table, key=self.key, id=int(body["id"]), side=side,
                         at=time.time())
        self.book.add(ack)
        with self.progress:
            self.acks.append(ack)
            self.progress.notify_all()

    def wait_for(self, side: str, count: int, timeout: float = 120) -> None:
        """Until `count` more writes are acknowledged on `side` than now."""
        with self.progress:
            start = sum(a.side == side for a in self.acks)
            if not self.progress.wait_for(
                    lambda: sum(a.side == side for a in self.acks) >= start + count, timeout):
                raise TimeoutError(f"the writer got no {count} acknowledgements on {side}")
