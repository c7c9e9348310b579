"""The tricenter exporter's collector: at every scrape, observe (monitoring/observation.py)
and turn what was seen into metric families (monitoring/families.py).

The names other code imports from here (Sources, Targets, TricenterCollector,
exported_metric_names, ...) stay importable from this module.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from inventory.runtime import RuntimeInventory
from monitoring.drill_exporter import drill_families
from monitoring.families import Families, Targets, families
from monitoring.inventory_view import InventoryView
from monitoring.observation import (
    WORKERS,
    Observation,
    Sources,
    SystemObservation,
    observe,
)
from monitoring.rpo import CopyLag, copy_lags, rpo_estimate

__all__ = ["CopyLag", "Families", "InventoryView", "Observation", "Sources", "SystemObservation",
           "Targets", "TricenterCollector", "copy_lags", "exported_metric_names", "families",
           "observe", "rpo_estimate"]


class TricenterCollector(Collector):
    """Observes at every scrape: what Prometheus stores is what held at that moment.
    The runtime inventory is read once, when the exporter starts."""

    def __init__(self, runtime: RuntimeInventory, sources: Sources,
                 targets: dict[str, Targets] | None = None, watch=None):
        self.runtime = runtime
        self.view = InventoryView(runtime)
        self.watch = watch  # a started monitoring.leader_watch.LeaderWatch, or None
        self.sources = sources
        self.targets = targets or {}
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="probe")

    def describe(self) -> list:
        return []  # registering must not probe every endpoint once more

    def collect(self) -> Iterator:
        started = time.monotonic()
        obs = observe(self.view, self.sources, self.pool)
        episodes = None
        if self.watch is not None:
            for name, system in obs.systems.items():
                if system.cluster is not None:
                    self.watch.patroni_named(name, system.cluster.leader)
            episodes = self.watch.counts()
        yield from families(self.view, obs, self.targets, time.time(), episodes)
        if self.sources.drill_history is not None:
            yield from drill_families(obs.drills)  # the history observe read, not a second read
        duration = GaugeMetricFamily("tricenter_exporter_scrape_duration_seconds",
                                     "How long observing every endpoint took", labels=[])
        duration.add_metric([], time.monotonic() - started)
        yield duration


def exported_metric_names() -> set[str]:
    """Every sample name the tricenter exporter can expose (counters with `_total`), so
    rules and dashboards can be checked against what really exists."""
    names = {"tricenter_exporter_scrape_duration_seconds"}
    for family in [*Families().all(), *drill_families([])]:
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names
