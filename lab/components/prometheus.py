"""Prometheus for the lab, configured from the runtime inventory.

It sits at the global entry site, outside every center, so a drill that kills a center
keeps its observer. What to scrape comes from files, not from this config: the targets
file the lab writes from the runtime inventory (Patroni members and declared exporters),
and a drop-in directory the monitoring plane may fill; Prometheus re-reads both live.
It re-reads its config and rules on SIGHUP (see `reload`): the HTTP lifecycle API
(`/-/reload`, `/-/quit`) stays off, since anyone who reaches the port could use it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import requests

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


HOST_NAME = f"{SITE}-{HOST}"  # the lab host (lab/components/sshd.py) it runs on


def home(lab: "LabContext") -> Path:
    """The monitoring host's root: the prometheus role writes under it as under /."""
    return lab.path("hosts", HOST_NAME)


def config_file(lab: "LabContext") -> Path:
    return home(lab) / "etc/prometheus/prometheus.yml"


def targets_file(lab: "LabContext") -> Path:
    """file_sd targets from the runtime inventory, as the role writes them."""
    return home(lab) / "etc/prometheus/inventory-targets.json"


def drop_in_dir(lab: "LabContext") -> Path:
    """file_sd JSON/YAML files the monitoring plane may add (e.g. exporters-*.json)."""
    return home(lab) / "etc/prometheus/targets"


def rules_dir(lab: "LabContext") -> Path:
    return home(lab) / "etc/prometheus/rules"


def data_dir(lab: "LabContext") -> Path:
    return home(lab) / "var/lib/prometheus"


def listen_address(lab: "LabContext") -> str:
    return f"{lab.address(SITE, HOST)}:{PORT}"


def url(lab: "LabContext") -> str:
    return f"http://{listen_address(lab)}"


def render_config(lab: "LabContext", runtime: "RuntimeInventory") -> tuple[str, str]:
    """(prometheus.yml, the targets file) as the prometheus role writes them."""
    from inventory.runtime import prometheus_targets
    from playbooks.render import renderer

    role = renderer(runtime, HOST_NAME, "prometheus")
    # The role's copy task writes `tricenter_prometheus_targets | to_nice_json` plus a newline.
    targets = json.dumps(prometheus_targets(runtime), indent=4, sort_keys=True) + "\n"
    return role.template("prometheus.yml.j2"), targets


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
        from inventory.runtime import RuntimeInventory

        for directory in (drop_in_dir(lab), rules_dir(lab), data_dir(lab)):
            directory.mkdir(parents=True, exist_ok=True)
        config, targets = render_config(lab, RuntimeInventory.load(lab.runtime_inventory_file))
        config_file(lab).write_text(config)
        targets_file(lab).write_text(targets)
        # Its TSDB and the drop-in directory the monitoring plane fills.
        users.hand_over(drop_in_dir(lab), data_dir(lab), recursive=True)

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
                     f"--storage.tsdb.path={data_dir(lab)}",
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
        from inventory.runtime import Host, HostRole

        runtime.monitoring.prometheus_url = url(lab)
        # Listed so the prometheus role has a host to render for.
        if not any(h.name == HOST_NAME for h in runtime.hosts):
            runtime.hosts.append(Host(name=HOST_NAME, center=SITE, role=HostRole.monitoring,
                                      address=lab.address(SITE, HOST), root=str(home(lab)),
                                      service_manager="supervisor",
                                      service_user=users.SERVICE_USER))
        from lab.components.sshd import give_tls

        give_tls(lab, runtime, HOST_NAME, lab.address(SITE, HOST))


def component() -> Prometheus:
    return Prometheus()
