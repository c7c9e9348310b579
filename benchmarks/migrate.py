"""Benchmark: cutover write downtime against `pg_dump | pg_restore` of the same database.

    .venv/bin/python benchmarks/migrate.py [--sizes 100MB,1GB] [--json] [--runtime FILE]

Needs a running lab (`tricenter lab up`). For each size, in the same run: grows the lab's
legacy registry to that size (`lab.datagen`, the `tricenter lab legacy-data` generator),
times `pg_dump -Fc | pg_restore` of it into a scratch database on the target cluster,
then migrates it with a writer at work through the registry's application on the legacy
host (precheck, replicate, cutover through the CLI; cutover repoints the application) and
reads the write downtime from the writer's ledger (`migrate status`: last acknowledged
write on the source → first on the target, as the application acknowledged them). Undoes the migration and drops the generated
table afterwards, so the lab is left as found.
Targets (issue 10): downtime ≤ 5 s at each size; ≥ 20× shorter than dump/restore at 1 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab import datagen  # noqa: E402
from lab.context import LabContext  # noqa: E402
from lab.migration_writer import Writer, reset, sides  # noqa: E402
from inventory.runtime import RuntimeInventory  # noqa: E402
from playbooks.migration import ledger  # noqa: E402

SYSTEM = "registry"
CLI = [sys.executable, "-m", "scripts.cli"]
SCRATCH = "registry_dump_bench"
GROW_STEP = 100 * 10**6  # bytes grown between two progress lines
HEARTBEAT_SECONDS = 30


def progress(message: str) -> None:
    """One line on stderr, with the time and the machine's load: the 1 GB run takes minutes
    per phase, and its figures mean little without the load they were taken at."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {message}", file=sys.stderr, flush=True)


class Heartbeat:
    """A progress line every HEARTBEAT_SECONDS while a long phase runs silently."""

    def __init__(self, phase: str, detail=lambda: "") -> None:
        self.phase, self.detail = phase, detail
        self.done = threading.Event()
        self.began = time.monotonic()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            progress(f"  {self.phase}: {time.monotonic() - self.began:.0f} s so far{self.detail()}")

    def __enter__(self) -> "Heartbeat":
        progress(f"{self.phase} …")
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        verdict = "failed" if exc[0] else "done"
        progress(f"{self.phase} {verdict} in {time.monotonic() - self.began:.1f} s")


def migrate(step: str, runtime_file: Path, state: Path, reruns: int = 0) -> dict:
    """One `tricenter migrate` step; `reruns` times again when it fails (replicate is made
    to be rerun: its wait for the initial copy gives up after a fixed time, which a
    gigabyte copied on a loaded machine may outlast, and a rerun picks up the copy)."""
    for attempt in range(reruns + 1):
        done = subprocess.run(CLI + ["migrate", step, SYSTEM, "--json", "--runtime",
                                     str(runtime_file), "--state-dir", str(state)],
                              capture_output=True, text=True, cwd=REPO, timeout=3600)
        if done.returncode == 0:
            return json.loads(done.stdout)
        failure = (f"migrate {step} failed (exit {done.returncode}):\n{done.stdout[-2000:]}"
                   f"{done.stderr[-2000:]}")
        if attempt < reruns:
            progress(f"migrate {step} failed; rerunning it ({attempt + 1} of {reruns}): "
                     f"{failure.splitlines()[-1][-300:]}")
    sys.exit(failure)


def _libpq_env(conninfo: dict) -> dict[str, str]:
    return dict(os.environ, PGHOST=conninfo["host"], PGPORT=str(conninfo["port"]),
                PGUSER=conninfo["user"], PGPASSWORD=conninfo["password"],
                PGDATABASE=conninfo["dbname"])


def dump_restore_seconds(source: dict, target_admin: dict) -> float:
    """`pg_dump -Fc | pg_restore` of the whole source database into a fresh scratch
    database on the target's read-write entry."""
    admin = _libpq_env(target_admin)
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
    subprocess.run(psql + [f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)"], env=admin,
                   check=True)
    subprocess.run(psql + [f"CREATE DATABASE {SCRATCH}"], env=admin, check=True)
    try:
        began = time.monotonic()
        dump = subprocess.Popen(["pg_dump", "-Fc", "--no-owner"], env=_libpq_env(source),
                                stdout=subprocess.PIPE)
        restored = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "-d", SCRATCH],
                                  env=admin, stdin=dump.stdout, capture_output=True, text=True)
        assert dump.stdout is not None
        dump.stdout.close()
        if dump.wait() != 0 or restored.returncode != 0:
            sys.exit(f"pg_dump | pg_restore failed: {restored.stderr[-2000:]}\n"
                     "(an SSL EOF here is the lab's read-write entry cutting the session: "
                     "under heavy load its 200 ms health check marks the primary down; "
                     "--runtime with a copy whose read-write entry names the primary)")
        return time.monotonic() - began
    finally:
        subprocess.run(psql + [f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)"], env=admin,
                       check=False)


def grow(source: dict, size_bytes: int) -> datagen.Grown:
    """datagen.grow in GROW_STEP steps, a progress line after each."""
    rows = 0
    goal = min(size_bytes, GROW_STEP)
    began = time.monotonic()
    while True:
        grown = datagen.grow(source, goal)
        rows += grown.rows_added
        progress(f"grown to {grown.size_bytes / 1e6:.0f} MB of {size_bytes / 1e6:.0f} MB "
                 f"({time.monotonic() - began:.0f} s)")
        if grown.size_bytes >= size_bytes:
            return datagen.Grown(grown.table, rows, grown.size_bytes)
        goal = min(size_bytes, goal + GROW_STEP)


def run_size(size: str, runtime_file: Path, lab: LabContext) -> dict:
    runtime = RuntimeInventory.load(runtime_file)
    s = sides(runtime, SYSTEM)
    reset(s, SYSTEM, lab)
    grown = grow(s.source, datagen.parse_size(size))
    with Heartbeat(f"{size}: pg_dump | pg_restore"):
        dump_seconds = dump_restore_seconds(s.source, s.target_admin)
    with tempfile.TemporaryDirectory(prefix="tricenter-migrate-bench-") as folder:
        state = Path(folder)
        writer = Writer(s, base=10**12 + time.time_ns() // 10**6 % 10**11,
                        book=ledger.Ledger(ledger.ledger_file(state, SYSTEM)))
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        acked = lambda: f", {len(writer.acks)} writes acknowledged"  # noqa: E731
        try:
            began = time.monotonic()
            with Heartbeat(f"{size}: migrate precheck", acked):
                migrate("precheck", runtime_file, state)
            with Heartbeat(f"{size}: migrate replicate (initial copy)", acked):
                migrate("replicate", runtime_file, state, reruns=5)
            replicate_seconds = time.monotonic() - began
            writer.wait_for("source", 5)
            load_at_cutover = os.getloadavg()
            with Heartbeat(f"{size}: migrate cutover", acked):
                cut = migrate("cutover", runtime_file, state)
            writer.wait_for("target", 5)
        finally:
            writer.stop.set()
            thread.join(timeout=30)
        status = migrate("status", runtime_file, state)
        moved_rows = _check_moved(s)
    progress(f"{size}: downtime {status['cutover_downtime_seconds']} s; undoing the migration")
    reset(s, SYSTEM, lab)
    _drop_generated(s)
    downtime = status["cutover_downtime_seconds"]
    return {"size": size, "database_bytes": grown.size_bytes,
            "cutover_downtime_seconds": downtime,
            "fence_window_seconds": round(cut["result"]["repointed_at"] - cut["result"]["fenced_at"], 2),
            # where the window goes: fence + drain, then sequences + the way back + open,
            # then the app repointed (its settings swapped in and reloaded)
            "drain_seconds": round(cut["result"]["drained_at"] - cut["result"]["fenced_at"], 2),
            "open_seconds": round(cut["result"]["opened_at"] - cut["result"]["drained_at"], 2),
            "repoint_seconds": round(cut["result"]["repointed_at"] - cut["result"]["opened_at"], 2),
            "dump_restore_seconds": round(dump_seconds, 2),
            "replicate_seconds": round(replicate_seconds, 1),
            "ratio": round(dump_seconds / downtime, 1) if downtime else None,
            "acknowledged_writes": status["acknowledged_writes"], "moved_rows": moved_rows,
            "load": load_at_cutover}


def _check_moved(s) -> int:
    """The generated table's rows on the target, which must be all of the (fenced) source's:
    a downtime is only worth quoting for a migration that moved the data."""
    import psycopg
    count = f"SELECT count(*) FROM {datagen.TABLE}"
    with psycopg.connect(**s.source_admin) as source, psycopg.connect(**s.target_admin) as target:
        on_source = source.execute(count).fetchone()[0]
        on_target = target.execute(count).fetchone()[0]
    if on_target != on_source:
        sys.exit(f"{datagen.TABLE}: {on_target} rows on the target, {on_source} on the source")
    return on_target


def _drop_generated(s) -> None:
    import psycopg
    for conninfo in (s.source, s.target_admin):
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {datagen.TABLE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100MB,1GB")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runtime", type=Path,
                        help="runtime inventory (default: the lab's); e.g. a copy whose "
                             "read-write entry names the primary, when the lab's entry flaps")
    args = parser.parse_args()
    lab = LabContext()
    runtime_file = args.runtime or lab.runtime_inventory_file
    if not runtime_file.exists():
        sys.exit(f"no lab runtime inventory at {runtime_file}: `tricenter lab up` first")
    results = []
    for size in args.sizes.split(","):
        results.append(run_size(size, runtime_file, lab))
        if not args.json:  # each size's line as soon as it is known: 1 GB takes long
            print(result_line(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


def result_line(r: dict) -> str:
    load = " ".join(f"{x:.2f}" for x in r["load"])
    return (f"{r['size']:>6} ({r['database_bytes'] / 1e6:.0f} MB): cutover write downtime "
            f"{r['cutover_downtime_seconds']:.2f} s (fence window {r['fence_window_seconds']:.2f} s: drain "
            f"{r['drain_seconds']:.2f} s, open {r['open_seconds']:.2f} s, repoint "
            f"{r['repoint_seconds']:.2f} s); "
            f"pg_dump | pg_restore {r['dump_restore_seconds']:.1f} s; ratio {r['ratio']}x; "
            f"replicate {r['replicate_seconds']:.0f} s ({r['moved_rows']} {datagen.TABLE} rows on the target); "
            f"{r['acknowledged_writes']} writes acknowledged; "
            f"load at cutover {load}")

if __name__ == "__main__":
    main()
