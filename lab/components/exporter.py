"""tricenter's own exporter in the lab, and the alert rules Prometheus evaluates.

The global view, beside Prometheus outside every center: it asks every center's Patroni,
PostgreSQL, etcd, the HAProxy stats page, pgBackRest and the object store at each scrape.
It runs from tricenter's own environment (the services virtualenv lacks its libraries),
so as the supervisor's user; pgbackrest info runs as the repository's owner.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from lab.component import Program
from lab.context import Ports

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

SITE = "global"
HOST = "monitoring"
PORT = 9641
PROGRAM = f"{SITE}-tricenter-exporter"
NAME = "tricenter-global"


def listen_address(lab: "LabContext") -> str:
    return f"{lab.address(SITE, HOST)}:{PORT}"


def rules_source(lab: "LabContext") -> Path:
    return lab.repo / "monitoring" / "rules"


def install_rules(lab: "LabContext") -> list[Path]:
    """Copy monitoring/rules/*.yml where every Prometheus reads its rules (each re-reads
    them on reload): each center's evaluates them alone, so losing one loses no alert."""
    from lab.components import prometheus

    copied = []
    for site in prometheus.SITES:
        target = prometheus.rules_dir(lab, site)
        target.mkdir(parents=True, exist_ok=True)
        for rules in sorted(rules_source(lab).glob("*.yml")):
            copied.append(Path(shutil.copyfile(rules, target / rules.name)))
            copied[-1].chmod(0o644)
    return copied


def command(lab: "LabContext") -> list[str]:
    from lab.components import pgbackrest

    return [sys.executable, "-m", "scripts.cli", "exporter", "serve",
            "--runtime", str(lab.runtime_inventory_file), "--listen", listen_address(lab),
            "--haproxy-stats", f"http://{lab.entry_address}:{Ports.haproxy_stats}",
            "--pgbackrest-config", str(pgbackrest.config_file(lab)),
            "--pgbackrest-user", pgbackrest.OS_USER]


class TricenterExporter:
    name = "exporter"

    def prepare(self, lab: "LabContext") -> None:
        install_rules(lab)

    def programs(self, lab: "LabContext") -> list[Program]:
        return [Program(name=PROGRAM, center=SITE, component="exporter", command=command(lab),
                        directory=lab.repo, environment={"PYTHONPATH": str(lab.repo)},
                        priority=450)]

    def health(self, lab: "LabContext") -> dict[str, dict]:
        try:
            reply = requests.get(f"http://{listen_address(lab)}/metrics", timeout=5)
            healthy = reply.status_code == 200 and "tricenter_db_leader_present" in reply.text
        except requests.RequestException as exc:
            return {SITE: {"healthy": False, "detail": f"exporter: {type(exc).__name__}"}}
        return {SITE: {"healthy": healthy, "detail": "exporter serves tricenter metrics"
                       if healthy else "exporter answers without database metrics"}}

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        runtime.monitoring.exporters[NAME] = f"http://{listen_address(lab)}/metrics"


def component() -> TricenterExporter:
    return TricenterExporter()
