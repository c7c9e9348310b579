"""The last drill results per scenario and system, as Prometheus metrics.

Read from the drill history (`drills.jsonl` in the reports directory, see dr/paths.py) at every scrape, so a drill that
just finished shows up without restarting anything. Usable as a collector inside another
exporter (`DrillCollector`) or standalone:

    python -m monitoring.drill_exporter --listen 127.0.0.1:9640
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from dr import history
from dr.paths import history_file

LABELS = ["scenario", "system", "tier"]


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return dt.datetime.fromisoformat(iso).timestamp()


def last_per_scenario(records: list[dict]) -> dict[tuple[str, str], dict]:
    """The newest drill that actually ran (not skipped) per scenario and system."""
    last: dict[tuple[str, str], dict] = {}
    for r in records:
        if r.get("status") in ("passed", "failed", "aborted", "error"):
            last[(r["scenario"], r["system"])] = r
    return last


class DrillCollector(Collector):
    def __init__(self, file: Path | None = None):
        self.file = file or history_file()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from drill_families(history.load_unless_unchanged(self.file))


def drill_families(records: list[dict]) -> list[GaugeMetricFamily]:
    """The families of a drill history already read (the tricenter exporter reads it once
    per scrape for its own metrics too)."""
    families = {
        "rto": GaugeMetricFamily("tricenter_drill_rto_seconds",
                                 "RTO measured by the last drill: fault to stable acknowledged writes",
                                 labels=LABELS),
        "rpo": GaugeMetricFamily("tricenter_drill_rpo_seconds",
                                 "Age at the fault of the oldest acknowledged write the last drill lost",
                                 labels=LABELS),
        "lost": GaugeMetricFamily("tricenter_drill_lost_writes",
                                  "Acknowledged writes the last drill lost", labels=LABELS),
        "acked": GaugeMetricFamily("tricenter_drill_acknowledged_writes",
                                   "Writes acknowledged during the last drill", labels=LABELS),
        "split": GaugeMetricFamily("tricenter_drill_split_brain",
                                   "1 when the last drill saw two nodes accept writes", labels=LABELS),
        "passed": GaugeMetricFamily("tricenter_drill_passed",
                                    "1 when the last drill met its targets", labels=LABELS),
        "level": GaugeMetricFamily("tricenter_drill_gbt20988_level",
                                   "GB/T 20988 level the last drill's figures reach (0: none)",
                                   labels=LABELS),
        "when": GaugeMetricFamily("tricenter_drill_last_run_timestamp_seconds",
                                  "When the last drill started (Unix time)", labels=LABELS),
        "runs": GaugeMetricFamily("tricenter_drill_runs", "Drills recorded in the history",
                                  labels=LABELS),
    }
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r["scenario"], r["system"])
        counts[key] = counts.get(key, 0) + 1
    for (scenario, system), r in last_per_scenario(records).items():
        labels = [scenario, system, r.get("tier") or ""]
        if r.get("rto_seconds") is not None:
            families["rto"].add_metric(labels, r["rto_seconds"])
        if r.get("rpo_seconds") is not None:
            families["rpo"].add_metric(labels, r["rpo_seconds"])
        families["lost"].add_metric(labels, r.get("rpo_lost_writes") or 0)
        families["acked"].add_metric(labels, r.get("acknowledged_writes") or 0)
        families["split"].add_metric(labels, 1 if r.get("split_brain") else 0)
        families["passed"].add_metric(labels, 1 if r.get("passed") else 0)
        families["level"].add_metric(labels, r.get("gbt20988_level") or 0)
        started = _epoch(r.get("started_at"))
        if started is not None:
            families["when"].add_metric(labels, started)
        families["runs"].add_metric(labels, counts[(scenario, system)])
    return list(families.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9640", help="ADDRESS:PORT")
    parser.add_argument("--history", type=Path, default=None,
                        help="drills.jsonl (default: the one tricenter drill writes)")
    args = parser.parse_args()
    REGISTRY.register(DrillCollector(args.history))
    address, port = args.listen.rsplit(":", 1)
    start_http_server(int(port), addr=address)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
