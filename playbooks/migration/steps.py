"""What each step does with the record: run its role, read what the role handed back,
update the record. The CLI wraps these in begin/finish so every step is resumable."""
from __future__ import annotations

import re
from collections.abc import Callable

from inventory.runtime import RuntimeInventory
from playbooks.migration import ledger, source
from playbooks.migration.lifecycle import State, Step
from playbooks.migration.record import MigrationRecord
from playbooks.migration.runner import run_step


IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class PrecheckFailed(RuntimeError):
    """The source or target cannot be migrated as they are; the record lists why."""


def file_summary(file_sizes: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    return {path: {"files": len(sizes), "bytes": sum(int(s) for s in sizes)}
            for path, sizes in file_sizes.items()}


def target_problems(target: dict) -> list[dict[str, str]]:
    found = []
    if target.get("in_recovery"):
        found.append({"check": "target_primary", "subject": "target",
                      "problem": "the read-write entry reached a standby",
                      "fix": "check the target cluster's leader and its read-write entry"})
    if target.get("wal_level") != "logical":
        found.append({"check": "target_wal_level", "subject": "target",
                      "problem": f"wal_level is {target.get('wal_level')}: rollback cannot "
                                 "replicate back to the source",
                      "fix": "set wal_level = logical on the target cluster (Patroni "
                             "parameters), then restart it"})
    return found


def discover(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
    found = run_step(runtime, record.system, "discover", [])
    record.discovery = {"database": found["database"], "target": found["target"],
                        "files": file_summary(found["file_sizes"])}
    return source.summary(found["database"], record.discovery["files"])


def precheck(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
    summary = discover(runtime, record)
    assert record.discovery is not None
    problems = source.problems(record.discovery["database"])
    problems += target_problems(record.discovery["target"])
    record.precheck = {"ok": not problems, "problems": problems}
    if problems:
        raise PrecheckFailed("; ".join(f"{p['subject']}: {p['problem']} (fix: {p['fix']})"
                                       for p in problems))
    return {"ok": True, "problems": [], "discovery": summary}


def tables(record: MigrationRecord) -> list[str]:
    assert record.discovery is not None
    return [t["name"] for t in record.discovery["database"]["tables"]]


def _role(step: str) -> Callable[[RuntimeInventory, MigrationRecord], dict]:
    def act(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
        return run_step(runtime, record.system, step, tables(record))
    return act


def replicate(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
    # After a rollback the source is authoritative again and the target's copy is stale:
    # the role empties it before a new initial copy (else the copy collides with it).
    restart = record.running is not None and record.running.from_state == State.rolled_back
    result = run_step(runtime, record.system, "replicate", tables(record),
                      extra={"migration_restart": restart})
    record.replication = result
    return result


def test_cutover(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
    """Rehearse on a throwaway copy; every migrated table must be there and writable."""
    found = _role("test-cutover")(runtime, record)
    missing = sorted(set(tables(record)) - set(found.get("tables", {})))
    ok = bool(found.get("writable")) and not missing
    record.replication = (record.replication or {}) | {"test_cutover": found | {"ok": ok}}
    if not ok:
        raise PrecheckFailed(f"the throwaway copy lacks tables: {', '.join(missing)}")
    return found


def cutover(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
    result = _role("cutover")(runtime, record)
    record.replication = (record.replication or {}) | {"cutover": result}
    # The fence window as the host saw it (source fenced → target open and the app told
    # so); the writer-seen downtime (the ledger's, preferred by status) adds the app's
    # reconnect.
    record.cutover_downtime_seconds = round(result["repointed_at"] - result["fenced_at"], 3)
    return result


def acked_vars(record: MigrationRecord, acks: list[ledger.Ack]) -> dict:
    """The ledger's acknowledged ids for the role, refused unless every table is a migrated
    one and every key a plain column name (they end up in SQL)."""
    found = ledger.acked_ids(acks)
    for table, writes in found.items():
        if table not in tables(record) or not IDENTIFIER.fullmatch(writes["key"]):
            raise ledger.LedgerProblem(
                f"ledger of {record.system}: {table}.{writes['key']} is not a key column of a "
                f"migrated table ({', '.join(tables(record))})")
    return {"migration_acked": found}


def _lost(found: dict) -> int:
    return sum(int(n) for n in found.get("lost", {}).values())


def verify(runtime: RuntimeInventory, record: MigrationRecord,
           acks: list[ledger.Ack] | None = None) -> dict:
    found = run_step(runtime, record.system, "verify", tables(record),
                     extra=acked_vars(record, acks or []))
    record.lost_writes = _lost(found)
    comparison = compare(found["source"], found["target"],
                         unmigrated=sorted(set(found["source_tables"]) - set(tables(record))))
    files = compare_files(found.get("files", {}).get("source", []),
                          found.get("files", {}).get("target", []))
    comparison = comparison | {"ok": comparison["ok"] and files["ok"] and not record.lost_writes,
                               "files": files, "app": found.get("app"),
                               "lost_writes": record.lost_writes}
    record.verification = comparison
    record.verified = comparison["ok"]
    if not comparison["ok"]:
        differ = [r["table"] + (f" ({r['problem']})" if r.get("problem") else "")
                  for r in comparison["tables"] if not r["match"]]
        differ += [f"{t['tree']} on {t['host']} ({t['problem']})" for t in files["trees"]
                   if not t["match"]]
        if record.lost_writes:
            differ.append(f"{record.lost_writes} acknowledged writes missing on the target")
        raise PrecheckFailed(f"source and target differ: {', '.join(differ)}")
    return comparison


def _sums(listing: str) -> dict[str, str]:
    """`sha256sum` lines → {relative path: digest}."""
    found = {}
    for line in listing.splitlines():
        digest, _, path = line.partition("  ")
        if path:
            found[path.removeprefix("./")] = digest
    return found


def compare_files(source: list, target: list) -> dict:
    """Every file of every source tree, by checksum, on every target host.

    `source`: [tree, sha256sum lines]; `target`: [[tree, host], sha256sum lines]."""
    wanted = {tree: _sums(listing) for tree, listing in source}
    trees = []
    for (tree, host), listing in target:
        have, want = _sums(listing), wanted.get(tree, {})
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        differ = sorted(p for p in set(want) & set(have) if want[p] != have[p])
        problem = "; ".join(f"{label}: {', '.join(paths[:5])}" + (" …" if len(paths) > 5 else "")
                            for label, paths in (("missing", missing), ("extra", extra),
                                                 ("differ", differ)) if paths)
        trees.append({"tree": tree, "host": host, "files": len(want),
                      "match": not problem, "problem": problem})
    for tree in sorted(set(wanted) - {t["tree"] for t in trees}):
        trees.append({"tree": tree, "host": "-", "files": len(wanted[tree]), "match": False,
                      "problem": "no target host received it"})
    return {"ok": all(t["match"] for t in trees), "files": sum(len(v) for v in wanted.values()),
            "trees": trees}


def compare(source_tables: dict[str, dict], target_tables: dict[str, dict],
            unmigrated: list[str] | None = None) -> dict:
    """Per table: rows and checksum on each side, and whether they agree. `unmigrated`:
    tables the source has now that the migration does not carry (created after precheck),
    each a difference."""
    rows = []
    for name in sorted(set(source_tables) | set(target_tables)):
        src, dst = source_tables.get(name), target_tables.get(name)
        same = src is not None and dst is not None and src == dst
        rows.append({"table": name, "source_rows": src and src["rows"],
                     "target_rows": dst and dst["rows"], "match": same})
    rows += [{"table": name, "source_rows": None, "target_rows": None, "match": False,
              "problem": "on the source but not migrated (created after precheck)"}
             for name in unmigrated or []]
    return {"ok": bool(rows) and all(r["match"] for r in rows), "tables": rows}


def rollback(runtime: RuntimeInventory, record: MigrationRecord,
             acks: list[ledger.Ack] | None = None) -> dict:
    record.verified = False
    found = run_step(runtime, record.system, "rollback", tables(record),
                     extra=acked_vars(record, acks or []))
    record.lost_writes = _lost(found)
    if record.lost_writes:
        raise PrecheckFailed(f"{record.lost_writes} acknowledged writes are missing on the "
                             "source after rollback")
    return found


def finalize(runtime: RuntimeInventory, record: MigrationRecord) -> dict:
    if not record.verified:
        raise PrecheckFailed("finalize needs a passed verify (`tricenter migrate verify "
                             f"{record.system}`): after it, rollback is no longer possible")
    return _role("finalize")(runtime, record)


# Steps that look the writer's acknowledged writes up (the CLI passes them as `acks`).
USES_LEDGER = {Step.verify, Step.rollback}
ACTIONS: dict[Step, Callable[..., dict]] = {
    Step.discover: discover, Step.precheck: precheck, Step.replicate: replicate,
    Step.test_cutover: test_cutover, Step.cutover: cutover, Step.verify: verify, Step.rollback: rollback,
    Step.finalize: finalize,
}
