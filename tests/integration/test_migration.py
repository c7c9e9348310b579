"""Migrating the lab's legacy registry onto the Patroni cluster, with a writer at work.

- Writes go on at the source through replicate and cutover; the writer, repointed when
  the source refuses writes, measures the write downtime (last acknowledged write on the
  source → first acknowledged write on the target).
- After cutover every acknowledged write is on the target and verify finds every table
  equal on both sides.
- Rollback carries every write made on the target back to the source: none is lost.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from inventory.runtime import PostgresAccess, RuntimeInventory

pytestmark = pytest.mark.lab
SYSTEM = "registry"
TABLES = "certificate_file, marriage, person"
ROOT = Path(__file__).resolve().parents[2]


def _conninfo(host: str, port: int, dbname: str, user: str, password_file: str) -> dict:
    return {"host": host, "port": port, "dbname": dbname, "user": user, "connect_timeout": 3,
            "password": Path(password_file).read_text().strip()}


@dataclass
class Sides:
    source: dict
    source_admin: dict
    target: dict
    target_admin: dict


def sides(runtime: RuntimeInventory) -> Sides:
    system = runtime.systems[SYSTEM]
    src: PostgresAccess = system.legacy.database
    dst = system.database
    rw = dst.read_write
    return Sides(
        source=_conninfo(src.host, src.port, src.dbname, src.user, src.password.file),
        source_admin=_conninfo(src.host, src.port, src.dbname, src.admin_user,
                               src.admin_password.file),
        target=_conninfo(rw.host, rw.port, dst.dbname, dst.user, dst.password.file),
        target_admin=_conninfo(rw.host, rw.port, dst.dbname, dst.admin_user,
                               dst.admin_password.file))


def _run_sql(conninfo: dict, *statements: str) -> None:
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def reset(s: Sides) -> None:
    """Undo an earlier migration of the lab's registry, so the test starts from the legacy."""
    _run_sql(s.target_admin, "DROP SUBSCRIPTION IF EXISTS tricenter_registry")
    _run_sql(s.source_admin, "DROP SUBSCRIPTION IF EXISTS tricenter_back_registry",
             "DROP PUBLICATION IF EXISTS tricenter_registry",
             f"GRANT INSERT, UPDATE, DELETE, TRUNCATE ON {TABLES} TO registry_legacy")
    _run_sql(s.target_admin, "DROP PUBLICATION IF EXISTS tricenter_back_registry",
             f"DROP TABLE IF EXISTS {TABLES} CASCADE")


@dataclass
class Ack:
    id: int
    side: str
    at: float


@dataclass
class Writer:
    """Inserts uniquely numbered people, one at a time, on the side the app points at;
    moves to the other side when its side refuses writes (the app repointed)."""

    sides: Sides
    base: int
    side: str = "source"
    acks: list[Ack] = field(default_factory=list)
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
                conn.execute("INSERT INTO person VALUES (%s, %s, %s, date '2001-01-01')",
                             (ident, f"written during migration {ident}", f"{ident:018d}"))
        except psycopg.errors.InsufficientPrivilege:
            self.side = "target" if self.side == "source" else "source"
            return
        except psycopg.Error:
            self.stop.wait(0.01)  # a table not there yet, a connection refused: retry
            return
        with self.progress:
            self.acks.append(Ack(ident, self.side, time.time()))
            self.progress.notify_all()

    def wait_for(self, side: str, count: int, timeout: float = 60) -> None:
        """Until `count` more writes are acknowledged on `side` than now."""
        with self.progress:
            start = sum(a.side == side for a in self.acks)
            assert self.progress.wait_for(
                lambda: sum(a.side == side for a in self.acks) >= start + count, timeout), \
                f"the writer got no {count} acknowledgements on {side}"


def migrate(step: str, runtime_file: Path, state_dir: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "migrate", step, SYSTEM, "--json",
         "--runtime", str(runtime_file), "--state-dir", str(state_dir)],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, f"migrate {step}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout)


def ids_on(conninfo: dict, base: int) -> list[int]:
    with psycopg.connect(**conninfo) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM person WHERE id > %s", (base,))]


def test_migrate_cut_over_and_roll_back_with_writes_losing_nothing(lab, tmp_path):
    runtime_file = lab.ctx.runtime_inventory_file
    s = sides(RuntimeInventory.load(runtime_file))
    reset(s)
    base = 10**12 + time.time_ns() // 10**6 % 10**11  # ids unique across runs
    writer = Writer(s, base)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        writer.wait_for("source", 5)
        assert migrate("precheck", runtime_file, tmp_path)["result"]["ok"]
        assert migrate("replicate", runtime_file, tmp_path)["state"] == "ready-for-testing"
        writer.wait_for("source", 5)
        assert migrate("cutover", runtime_file, tmp_path)["state"] == "cutover-complete"
        writer.wait_for("target", 5)

        writer.paused.set()  # verify compares a quiet moment
        verified = migrate("verify", runtime_file, tmp_path)
        assert verified["verified"] and all(t["match"] for t in verified["result"]["tables"])
        writer.paused.clear()
        writer.wait_for("target", 5)

        assert migrate("rollback", runtime_file, tmp_path)["state"] == "rolled-back"
        writer.wait_for("source", 5)
    finally:
        writer.stop.set()
        thread.join(timeout=10)

    on_source = ids_on(s.source, base)
    acked = [a.id for a in writer.acks]
    sides_in_order = [a.side for a in writer.acks]
    assert "target" in sides_in_order and sides_in_order[-1] == "source"
    assert sorted(set(acked) - set(on_source)) == [], "acknowledged writes lost"
    assert len(on_source) == len(set(on_source))
    last_source = max(a.at for a in writer.acks if a.side == "source" and
                      a.at < min(b.at for b in writer.acks if b.side == "target"))
    first_target = min(a.at for a in writer.acks if a.side == "target")
    downtime = first_target - last_source
    print(f"\nmigration: {len(acked)} acknowledged writes, 0 lost; cutover write downtime "
          f"{downtime:.2f} s")
    reset(s)
