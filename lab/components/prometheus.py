"""Prometheus for the lab, configured from the runtime inventory.

It sits at the global entry site, outside every center, so a drill that kills a center
keeps its observer. What to scrape comes from files, not from this config: the targets
file the lab writes from the runtime inventory (Patroni members and declared exporters),
and a drop-in directory the monitoring plane may fill; Prometheus re-reads both live.
It re-reads its config and rules on SIGHUP (see `reload`): the HTTP lifecycle API
(`/-/reload`, `/-/quit`) stays off, since anyone who reaches the port could use it.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import requests
import yaml

from lab import binaries
from lab import users
from lab.component import Program

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

BIN = binaries.path("prometheus")
PROMTOOL = binaries.path("promtool")
SITE = "global"
HOST = "monitoring"
PORT = 9090
SCRAPE_INTERVAL = "5s"  # drills measure seconds; the default 1m would hide a failover
RETENTION = "2d"
PROGRAM = f"{SITE}-prometheus"


def home(lab: "LabContext") -> Path:
    return lab.path("prometheus")


def config_file(lab: "LabContext") -> Path:
    return home(lab) / "prometheus.yml"


def drop_in_dir(lab: "LabContext") -> Path:
    """file_sd JSON/YAML files the monitoring plane may add (e.g. exporters-*.json)."""
    return home(lab) / "targets"


def rules_dir(lab: "LabContext") -> Path:
    return home(lab) / "rules"


def listen_address(lab: "LabContext") -> str:
    return f"{lab.address(SITE, HOST)}:{PORT}"


def url(lab: "LabContext") -> str:
    return f"http://{listen_address(lab)}"


def render_config(*, cloud: str, self_target: str, inventory_targets: Path,
                  drop_in: Path, rules: Path, etcd: dict[str, str]) -> dict:
    """prometheus.yml as data: pure, so unit tests check it with promtool.
    `etcd` maps each etcd member's host:port to its center."""
    scrape_configs: list[dict] = [
        {"job_name": "prometheus",
         "static_configs": [{"targets": [self_target], "labels": {"center": SITE}}]},
        # Target groups carry their own `job` (patroni, tricenter); file_sd labels win
        # over job_name, so one scrape config serves every kind the inventory lists.
        {"job_name": "inventory",
         "file_sd_configs": [{"files": [str(inventory_targets)], "refresh_interval": "5s"}]},
        {"job_name": "drop-in",
         "file_sd_configs": [{"files": [str(drop_in / "*.json"), str(drop_in / "*.yml")],
                              "refresh_interval": "10s"}]},
    ]
    if etcd:
        scrape_configs.append({"job_name": "etcd", "static_configs": [
            {"targets": [target], "labels": {"center": center}}
            for target, center in sorted(etcd.items())]})
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "4s",
                   "evaluation_interval": SCRAPE_INTERVAL,
                   "external_labels": {"cloud": cloud, "source": "lab"}},
        "rule_files": [str(rules / "*.yml")],
        "scrape_configs": scrape_configs,
    }


# --- alerting (monitoring plane): kept apart so the config's move to role templates
# can take it whole.
def alerting_config(alertmanagers: list[str]) -> dict:
    """prometheus.yml's `alerting` section: the Alertmanagers (host:port) to notify."""
    return {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}


def lab_alertmanagers(lab: "LabContext") -> list[str]:
    from lab.components import alertmanager

    return [alertmanager.listen_address(lab)]


def check_config(file: Path) -> subprocess.CompletedProcess:
    """`promtool check config FILE`; returncode 0 when Prometheus would accept it."""
    return subprocess.run([PROMTOOL, "check", "config", str(file)], capture_output=True,
                          text=True, timeout=60)


def etcd_targets(runtime: "RuntimeInventory") -> dict[str, str]:
    """host:port of each etcd member → the center whose addresses include its host."""
    by_address = {a: c.name for c in runtime.centers.values() for a in c.addresses}
    targets = {}
    for client_url in runtime.etcd:
        target = client_url.split("://", 1)[-1].rstrip("/")
        targets[target] = by_address.get(target.rsplit(":", 1)[0], "unknown")
    return targets


def _inventory_etcd(lab: "LabContext") -> dict[str, str]:
    from inventory.runtime import RuntimeInventory

    if not lab.runtime_inventory_file.exists():
        return {}
    return etcd_targets(RuntimeInventory.load(lab.runtime_inventory_file))


def targets_health(lab: "LabContext") -> dict[str, dict[str, int]]:
    """Per job: how many active targets are up, of how many."""
    response = requests.get(f"{url(lab)}/api/v1/targets?state=active", timeout=2)
    response.raise_for_status()
    result: dict[str, dict[str, int]] = {}
    for target in response.json()["data"]["activeTargets"]:
        job = result.setdefault(target["labels"].get("job", "?"), {"up": 0, "total": 0})
        job["total"] += 1
        job["up"] += target["health"] == "up"
    return result


class Prometheus:
    name = "prometheus"

    def prepare(self, lab: "LabContext") -> None:
        for directory in (home(lab), drop_in_dir(lab), rules_dir(lab), home(lab) / "data"):
            directory.mkdir(parents=True, exist_ok=True)
        config = render_config(
            cloud=lab.cloud_name, self_target=listen_address(lab),
            inventory_targets=lab.prometheus_targets_file, drop_in=drop_in_dir(lab),
            rules=rules_dir(lab), etcd=_inventory_etcd(lab))
        config["alerting"] = alerting_config(lab_alertmanagers(lab))
        config_file(lab).write_text(yaml.safe_dump(config, sort_keys=False))
        users.hand_over(home(lab), recursive=True)  # its TSDB, possibly written by root before

    def reload(self, lab: "LabContext") -> None:
        """Make a running Prometheus re-read prometheus.yml and its rules (SIGHUP)."""
        from lab.supervisor import Supervisor

        for info in Supervisor(lab).processes():
            if info["name"] == PROGRAM and info["statename"] == "RUNNING" and info["pid"]:
                os.kill(info["pid"], signal.SIGHUP)

    def programs(self, lab: "LabContext") -> list[Program]:
        return [Program(
            name=PROGRAM, center=SITE, component="prometheus",
            command=[BIN, f"--config.file={config_file(lab)}",
                     f"--storage.tsdb.path={home(lab) / 'data'}",
                     f"--storage.tsdb.retention.time={RETENTION}",
                     f"--web.listen-address={listen_address(lab)}",
                     "--log.level=info"],
            user=users.SERVICE_USER, directory=home(lab), priority=400)]

    def health(self, lab: "LabContext") -> dict[str, dict]:
        try:
            ready = requests.get(f"{url(lab)}/-/ready", timeout=1).status_code == 200
        except requests.RequestException as exc:
            return {SITE: {"healthy": False, "detail": f"prometheus: {type(exc).__name__}"}}
        if not ready:
            return {SITE: {"healthy": False, "detail": "prometheus: not ready"}}
        try:
            jobs = targets_health(lab)
            detail = ", ".join(f"{job} {c['up']}/{c['total']} up" for job, c in sorted(jobs.items()))
        except (requests.RequestException, ValueError, KeyError):
            detail = "targets unknown"
        return {SITE: {"healthy": True, "detail": f"prometheus ready; {detail}"}}

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        runtime.monitoring.prometheus_url = url(lab)


def component() -> Prometheus:
    return Prometheus()
