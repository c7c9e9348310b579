"""Drill history: one JSON line per drill in `drills.jsonl` beside the reports (see
`dr.paths`), and its trend."""
from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

from dr.paths import history_file

KEPT = ("scenario", "system", "run_id", "status", "passed", "rto_seconds", "app_rto_seconds",
        "read_rto_seconds", "rto_from_declaration_seconds", "max_write_gap_seconds",
        "rpo_lost_writes", "rpo_seconds", "acknowledged_writes", "split_brain",
        "duplicate_writes", "gbt20988_level", "tier", "started_at", "finished_at", "report_dir",
        "rto_from", "touched_by")
# What a touched system's row takes from its own measurement; the rest (scenario, run,
# times, report) is the drill's.
TOUCHED_KEPT = ("tier", "rto_seconds", "rpo_lost_writes", "rpo_seconds", "acknowledged_writes",
                "split_brain", "gbt20988_level", "passed")


def rows(record: dict) -> list[dict]:
    """The drill's row, and one per other system its center fault touched (`touched_by`
    names the drilled system), so each system's trend and exporter metrics include them."""
    own = {k: record.get(k) for k in KEPT}
    measured_elsewhere = {k: None for k in KEPT if k not in TOUCHED_KEPT}
    touched = [{**own, **measured_elsewhere, **{k: t.get(k) for k in TOUCHED_KEPT},
                "scenario": own["scenario"], "run_id": own["run_id"], "started_at": own["started_at"],
                "finished_at": own["finished_at"], "report_dir": own["report_dir"], "rto_from": "fault",
                "system": t["name"], "status": "passed" if t.get("passed") else "failed",
                "touched_by": own["system"]}
               for t in record.get("touched_systems") or []]
    return [own, *touched]


def append(record: dict, file: Path | None = None) -> None:
    file = file or history_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows(record))


def load(file: Path | None = None) -> list[dict]:
    file = file or history_file()
    if not file.exists():
        return []
    out = []
    for line in file.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a drill killed mid-write leaves half a line; the rest is good
    return out


def load_unless_unchanged(file: Path) -> list[dict]:
    """load(file), read again only when its size or modification time changed: the exporter
    asks at every scrape, and parsing a long history each time made its cost grow with
    every drill. The list is shared between callers: read it, do not change it."""
    try:
        stat = file.stat()
    except FileNotFoundError:
        return []
    return _load_as_of(file, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_as_of(file: Path, mtime_ns: int, size: int) -> list[dict]:
    return load(file)


def spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def trend(records: list[dict]) -> list[dict]:
    """Per scenario and system: runs, passes, RTO spread, lost writes, the last results."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["scenario"], r["system"]), []).append(r)
    rows = []
    for (scenario, system), runs in sorted(groups.items()):
        # an aborted or failed-midway drill still measured what it saw (e.g. split brain)
        ran = [r for r in runs if r.get("status") != "skipped" and r.get("acknowledged_writes")]
        rtos = [r["rto_seconds"] for r in ran if r.get("rto_seconds") is not None]
        rows.append({
            "scenario": scenario, "system": system, "runs": len(runs), "passed": sum(bool(r.get("passed")) for r in runs),
            "rto_seconds": spread(rtos),
            "lost_writes_total": sum(r.get("rpo_lost_writes") or 0 for r in ran),
            "split_brain_runs": sum(bool(r.get("split_brain")) for r in ran),
            "last_rtos": [r.get("rto_seconds") for r in ran[-5:]],
            "last_status": runs[-1].get("status"), "last_at": runs[-1].get("started_at"),
            "last_run_id": runs[-1].get("run_id"), "run_ids": [r.get("run_id") for r in runs[-5:]],
            "last_level": runs[-1].get("gbt20988_level"),
        })
    return rows
