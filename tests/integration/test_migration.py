"""Migrating the lab's legacy registry onto the Patroni cluster, with a writer at work.

- Writes go on at the source through replicate and cutover; the writer, repointed when
  the source refuses writes, measures the write downtime (last acknowledged write on the
  source → first acknowledged write on the target).
- After cutover every acknowledged write is on the target and verify finds every table
  equal on both sides.
- Rollback carries every write made on the target back to the source: none is lost.
- A table without a primary key stops precheck (exit 1, the table and the fix named)
  until it has REPLICA IDENTITY FULL; sequences follow the data both ways (the writer's
  serial ids would collide otherwise).
- No password appears in anything tricenter printed or recorded.
- After a rollback, replicate starts the migration over on a fresh copy.
- tricenter killed (SIGKILL, with its Ansible run) in the middle of replicate and of
  cutover: rerunning the same command finishes the step, nothing lost or duplicated.
"""
from __future__ import annotations

import json
import os
import signal
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
TABLES = "certificate_file, certificate_request, marriage, person, visit_log"
# What a department's database also has: a serial key, and a log table with no key.
SOURCE_EXTRAS = """
CREATE TABLE IF NOT EXISTS certificate_request (
    id bigserial PRIMARY KEY, person_id bigint NOT NULL, requested_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS visit_log (at timestamptz NOT NULL DEFAULT now(), note text);
ALTER TABLE visit_log REPLICA IDENTITY DEFAULT;
"""
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
    _run_sql(s.source, SOURCE_EXTRAS)
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
                conn.execute("WITH p AS (INSERT INTO person VALUES (%s, %s, %s, date '2001-01-01') "
                             "RETURNING id) INSERT INTO certificate_request (person_id) "
                             "SELECT id FROM p",
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


def _argv(step: str, runtime_file: Path, state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "scripts.cli", "migrate", step, SYSTEM, "--json",
            "--runtime", str(runtime_file), "--state-dir", str(state_dir)]


ENV = dict(os.environ, PYTHONPATH=str(ROOT))


OUTPUTS: list[str] = []  # everything tricenter printed, searched for secrets at the end


def migrate(step: str, runtime_file: Path, state_dir: Path, exit_code: int = 0) -> dict:
    done = subprocess.run(_argv(step, runtime_file, state_dir), capture_output=True, text=True,
                          cwd=ROOT, env=ENV)
    OUTPUTS.append(done.stdout + done.stderr)
    assert done.returncode == exit_code, f"migrate {step}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout)


def killed_when(step: str, runtime_file: Path, state_dir: Path, reached) -> None:
    """Start `migrate STEP`, SIGKILL it and its Ansible run once `reached()` is true."""
    proc = subprocess.Popen(_argv(step, runtime_file, state_dir), cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while not reached():
            assert proc.poll() is None, f"migrate {step} ended before the kill point"
            time.sleep(0.05)  # polling the databases for the kill point, not a timed wait
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            # The step (its critical section takes ~1 s) ended as the kill point was seen:
            # nothing left to kill; the rerun that follows must still find it done.
            pass
        proc.wait()


def _scalar(conninfo: dict, query: str):
    with psycopg.connect(**conninfo) as conn:
        return conn.execute(query).fetchone()[0]


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
        refused = migrate("precheck", runtime_file, tmp_path, exit_code=1)
        assert "public.visit_log: no primary key" in refused["error"]
        assert "REPLICA IDENTITY FULL" in refused["error"]
        _run_sql(s.source, "ALTER TABLE visit_log REPLICA IDENTITY FULL")
        assert migrate("precheck", runtime_file, tmp_path)["result"]["ok"]

        killed_when("replicate", runtime_file, tmp_path, lambda: _scalar(
            s.target_admin, "SELECT count(*) FROM pg_subscription") > 0)
        assert migrate("status", runtime_file, tmp_path)["state"] == "not-ready"
        assert migrate("replicate", runtime_file, tmp_path)["state"] == "ready-for-testing"
        writer.wait_for("source", 5)

        killed_when("cutover", runtime_file, tmp_path, lambda: not _scalar(
            s.source_admin, "SELECT has_table_privilege('registry_legacy', 'person', 'INSERT')"))
        assert migrate("status", runtime_file, tmp_path)["state"] == "cutting-over"
        cut = migrate("cutover", runtime_file, tmp_path)
        assert cut["state"] == "cutover-complete" and cut["cutover_downtime_seconds"] > 0
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
    requests = _scalar(s.source, f"SELECT count(*) FROM certificate_request WHERE person_id > {base}")
    assert requests == len(on_source), "a write's serial-keyed row is missing or doubled"
    last_source = max(a.at for a in writer.acks if a.side == "source" and
                      a.at < min(b.at for b in writer.acks if b.side == "target"))
    first_target = min(a.at for a in writer.acks if a.side == "target")
    downtime = first_target - last_source
    printed = "".join(OUTPUTS) + (tmp_path / f"{SYSTEM}.yaml").read_text()
    for conninfo in (s.source, s.source_admin, s.target_admin):
        assert conninfo["password"] not in printed, "a password reached the output or record"

    # Starting over after the rollback: the target's stale copy does not collide.
    assert migrate("replicate", runtime_file, tmp_path)["state"] == "ready-for-testing"
    count = "SELECT count(*) FROM person"
    assert _scalar(s.target_admin, count) == _scalar(s.source, count)
    print(f"\nmigration: {len(acked)} acknowledged writes, 0 lost; cutover write downtime "
          f"{downtime:.2f} s")
    reset(s)
