"""A writer at work on a migrating lab system, and the undoing of a lab migration: what
the migration integration test and `benchmarks/migrate.py` share.

The writer inserts uniquely numbered rows, one at a time, on the side the application
points at, and moves to the other side when its side refuses writes (the app repointed at
cutover or rollback). Every acknowledged write goes to the migration's ledger, from which
`tricenter migrate status` reads the write downtime and verify / rollback the lost writes."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from inventory.runtime import PostgresAccess, RuntimeInventory
from playbooks.migration import ledger

# A person, as the registry's clerks would register one.
PERSON = ("INSERT INTO person VALUES (%(id)s, 'written during migration ' || %(id)s, "
          "lpad(%(id)s::text, 18, '0'), date '2001-01-01')")


def _conninfo(host: str, port: int, dbname: str, user: str, password_file: str) -> dict:
    return {"host": host, "port": port, "dbname": dbname, "user": user, "connect_timeout": 3,
            "password": Path(password_file).read_text().strip()}


@dataclass
class Sides:
    source: dict
    source_admin: dict
    target: dict
    target_admin: dict


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
                               dst.admin_password.file))


def run_sql(conninfo: dict, *statements: str) -> None:
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def reset(s: Sides, system: str) -> None:
    """Undo a lab migration of `system`: replication objects gone on both sides, the
    source open for writes again, the target without the migrated tables."""
    ident = "".join(c if c.isalnum() else "_" for c in system)
    with psycopg.connect(**s.source_admin) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname = 'public'")]
    run_sql(s.target_admin, f"DROP SUBSCRIPTION IF EXISTS tricenter_{ident}")
    run_sql(s.source_admin, f"DROP SUBSCRIPTION IF EXISTS tricenter_back_{ident}",
            f"DROP PUBLICATION IF EXISTS tricenter_{ident}",
            "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "
            f"{s.source['user']}")
    run_sql(s.target_admin, f"DROP PUBLICATION IF EXISTS tricenter_back_{ident}",
            *(f"DROP TABLE IF EXISTS {t} CASCADE" for t in tables))


@dataclass
class Writer:
    sides: Sides
    base: int  # ids above it, unique across runs
    book: ledger.Ledger
    statement: str = PERSON  # takes %(id)s
    table: str = "public.person"
    key: str = "id"
    side: str = "source"
    acks: list[ledger.Ack] = field(default_factory=list)
    attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)
    progress: threading.Condition = field(default_factory=threading.Condition)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            if self.paused.is_set():
                self.stop.wait(0.02)
                continue
            n += 1
            self.attempts += 1
            self._write(self.base + n)

    def _write(self, ident: int) -> None:
        conninfo = self.sides.source if self.side == "source" else self.sides.target
        try:
            with psycopg.connect(**conninfo, autocommit=True) as conn:
                conn.execute(self.statement, {"id": ident})
        except psycopg.errors.InsufficientPrivilege:
            self.side = "target" if self.side == "source" else "source"
            return
        except psycopg.Error:
            self.stop.wait(0.01)  # a table not there yet, a connection refused: retry
            return
        ack = ledger.Ack(table=self.table, key=self.key, id=ident, side=self.side,
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
