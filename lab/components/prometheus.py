"""Prometheus for the lab, one per center plus a global view, configured from the runtime
inventory by the prometheus role's templates.

Monitoring must survive what it watches: each center's Prometheus scrapes that center's
Patroni and etcd and the tricenter exporter (at the global site, it sees every center),
evaluates the rules and notifies every Alertmanager member, and dies with its center. The
global view, at the entry site outside every center, federates the centers' ones and
scrapes the exporter itself, for dashboards and people; it sends no alerts. What to scrape
comes from files Prometheus re-reads live (the targets file the role writes from the
runtime inventory, and a drop-in directory the monitoring plane may fill). Each re-reads
its config and rules on SIGHUP (see `reload`): the HTTP lifecycle API (`/-/reload`,
`/-/quit`) stays off, since anyone who reaches the port could use it.
"""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from lab import binaries
from lab import users
from lab.component import Program
from lab.components import monitoring_host
from lab.context import CENTERS, GLOBAL

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

BIN = binaries.path("prometheus")
PROMTOOL = binaries.path("promtool")
SITES = monitoring_host.SITES
PORT = 9090
SCRAPE_INTERVAL = "5s"  # drills measure seconds; the default 1m would hide a failover
RETENTION = "2d"


def program(site: str) -> str:
    return f"{site}-prometheus"


def home(lab: "LabContext", site: str = GLOBAL) -> Path:
    return monitoring_host.home(lab, site)


def config_file(lab: "LabContext", site: str = GLOBAL) -> Path:
    return home(lab, site) / "etc/prometheus/prometheus.yml"


def targets_file(lab: "LabContext", site: str = GLOBAL) -> Path:
    """file_sd targets from the runtime inventory, as the role writes them."""
    return home(lab, site) / "etc/prometheus/inventory-targets.json"


def drop_in_dir(lab: "LabContext", site: str = GLOBAL) -> Path:
    """file_sd JSON/YAML files the monitoring plane may add (e.g. exporters-*.json)."""
    return home(lab, site) / "etc/prometheus/targets"


def rules_dir(lab: "LabContext", site: str = GLOBAL) -> Path:
    return home(lab, site) / "etc/prometheus/rules"


def data_dir(lab: "LabContext", site: str = GLOBAL) -> Path:
    return home(lab, site) / "var/lib/prometheus"


def listen_address(lab: "LabContext", site: str = GLOBAL) -> str:
    return monitoring_host.endpoint(lab, site, PORT)


def url(lab: "LabContext", site: str = GLOBAL) -> str:
    """The global view by default; a center's Prometheus with `site`."""
    return f"http://{listen_address(lab, site)}"


def render_config(lab: "LabContext", runtime: "RuntimeInventory",
                  site: str = GLOBAL) -> tuple[str, str]:
    """(prometheus.yml, the targets file) as the prometheus role writes them on `site`."""
    from inventory.runtime import prometheus_targets
    from playbooks.render import renderer

    role = renderer(runtime, monitoring_host.host_name(site), "prometheus")
    # The role's copy task writes `tricenter_prometheus_targets | to_nice_json` plus a newline.
    targets = json.dumps(prometheus_targets(runtime), indent=4, sort_keys=True) + "\n"
    return role.template("prometheus.yml.j2"), targets


def install_etcd_client_tls(runtime: "RuntimeInventory", site: str) -> None:
    """The site's monitoring host certificate where the role copies it for Prometheus,
    which presents it when it scrapes etcd."""
    from lab.components import sshd
    from playbooks.render import renderer

    name = monitoring_host.host_name(site)
    role = renderer(runtime, name, "prometheus")
    sshd.install_host_tls(runtime, name, role, ("prometheus_etcd_ca_file", "prometheus_etcd_cert_file",
                                                "prometheus_etcd_key_file"),
                          str(role.var("prometheus_user")))


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


def targets_health(lab: "LabContext", site: str = GLOBAL) -> dict[str, dict[str, int]]:
    """Per job: how many active targets are up, of how many."""
    response = requests.get(f"{url(lab, site)}/api/v1/targets?state=active", timeout=2)
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

        runtime = RuntimeInventory.load(lab.runtime_inventory_file)
        for site in SITES:
            for directory in (drop_in_dir(lab, site), rules_dir(lab, site), data_dir(lab, site)):
                directory.mkdir(parents=True, exist_ok=True)
            config, targets = render_config(lab, runtime, site)
            config_file(lab, site).write_text(config)
            targets_file(lab, site).write_text(targets)
            install_etcd_client_tls(runtime, site)
            # Its TSDB and the drop-in directory the monitoring plane fills.
            users.hand_over(drop_in_dir(lab, site), data_dir(lab, site), recursive=True)

    def reload(self, lab: "LabContext") -> None:
        """Make running Prometheus servers re-read prometheus.yml and their rules (SIGHUP)."""
        monitoring_host.signal_running(lab, {program(site) for site in SITES}, signal.SIGHUP)

    def programs(self, lab: "LabContext") -> list[Program]:
        return [Program(
            name=program(site), center=site, component="prometheus",
            command=[BIN, f"--config.file={config_file(lab, site)}",
                     f"--storage.tsdb.path={data_dir(lab, site)}",
                     f"--storage.tsdb.retention.time={RETENTION}",
                     f"--web.listen-address={listen_address(lab, site)}",
                     "--log.level=info"],
            user=users.SERVICE_USER, directory=home(lab, site), priority=400)
            for site in SITES]

    def health(self, lab: "LabContext") -> dict[str, dict]:
        return {site: self._health(lab, site) for site in SITES}

    @staticmethod
    def _health(lab: "LabContext", site: str) -> dict:
        try:
            ready = requests.get(f"{url(lab, site)}/-/ready", timeout=1).status_code == 200
        except requests.RequestException as exc:
            return {"healthy": False, "detail": f"prometheus: {type(exc).__name__}"}
        if not ready:
            return {"healthy": False, "detail": "prometheus: not ready"}
        try:
            jobs = targets_health(lab, site)
            detail = ", ".join(f"{job} {c['up']}/{c['total']} up" for job, c in sorted(jobs.items()))
        except (requests.RequestException, ValueError, KeyError):
            detail = "targets unknown"
        return {"healthy": True, "detail": f"prometheus ready; {detail}"}

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        runtime.monitoring.prometheus_url = url(lab, GLOBAL)
        runtime.monitoring.prometheus = {center: url(lab, center) for center in CENTERS}
        for site in SITES:
            monitoring_host.add_host(lab, runtime, site)


def component() -> Prometheus:
    return Prometheus()
