"""Alertmanager for the lab, and the receiver that records what it delivers.

Beside Prometheus at the global entry site, outside every center, so a drill that kills
a center still gets its alerts delivered. Not clustered yet: one instance (its gossip
port is off). Notifications go to monitoring/alert_receiver.py, which drills read back.
"""
from __future__ import annotations

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

BIN = binaries.path("alertmanager")
AMTOOL = binaries.path("amtool")
SITE = "global"
HOST = "monitoring"
PORT = 9093
RECEIVER_PORT = 9649
PROGRAM = f"{SITE}-alertmanager"
RECEIVER_PROGRAM = f"{SITE}-alert-receiver"


def home(lab: "LabContext") -> Path:
    return lab.path("alertmanager")


def config_file(lab: "LabContext") -> Path:
    return home(lab) / "alertmanager.yml"


def listen_address(lab: "LabContext") -> str:
    return f"{lab.address(SITE, HOST)}:{PORT}"


def receiver_url(lab: "LabContext") -> str:
    return f"http://{lab.address(SITE, HOST)}:{RECEIVER_PORT}"


def record_file(lab: "LabContext") -> Path:
    return home(lab) / "received.jsonl"


def render_config(receiver: str) -> dict:
    """alertmanager.yml as data. Drills time alerts in seconds, so notifications leave at
    once (group_wait 0s) and resolutions follow within a group_interval."""
    return {
        "route": {"receiver": "recorder", "group_by": ["alertname", "system", "center"],
                  "group_wait": "0s", "group_interval": "5s", "repeat_interval": "1h"},
        "receivers": [{"name": "recorder", "webhook_configs": [
            {"url": receiver + "/", "send_resolved": True}]}],
    }


def check_config(file: Path) -> subprocess.CompletedProcess:
    """`amtool check-config FILE`; returncode 0 when Alertmanager would accept it."""
    return subprocess.run([AMTOOL, "check-config", str(file)], capture_output=True, text=True,
                          timeout=60)


class Alertmanager:
    name = "alertmanager"

    def prepare(self, lab: "LabContext") -> None:
        (home(lab) / "data").mkdir(parents=True, exist_ok=True)
        config_file(lab).write_text(yaml.safe_dump(render_config(receiver_url(lab)), sort_keys=False))
        users.hand_over(home(lab), recursive=True)

    def programs(self, lab: "LabContext") -> list[Program]:
        return [
            Program(name=PROGRAM, center=SITE, component="alertmanager",
                    command=[BIN, f"--config.file={config_file(lab)}",
                             f"--storage.path={home(lab) / 'data'}",
                             f"--web.listen-address={listen_address(lab)}",
                             "--cluster.listen-address=", "--log.level=info"],
                    user=users.SERVICE_USER, directory=home(lab), priority=400),
            # Standard library only: it runs unprivileged from the lab's code copy with the
            # services' Python (lab/users.py), like the sample app.
            Program(name=RECEIVER_PROGRAM, center=SITE, component="alertmanager",
                    command=[users.python(), "-m", "monitoring.alert_receiver",
                             "--listen", f"{lab.address(SITE, HOST)}:{RECEIVER_PORT}",
                             "--record", str(record_file(lab))],
                    user=users.SERVICE_USER, directory=users.code_dir(lab),
                    environment={"PYTHONPATH": str(users.code_dir(lab))}, priority=400),
        ]

    def health(self, lab: "LabContext") -> dict[str, dict]:
        try:
            ready = requests.get(f"http://{listen_address(lab)}/-/ready", timeout=1).status_code == 200
            recorder = requests.get(f"{receiver_url(lab)}/alerts?since=0", timeout=1).status_code == 200
        except requests.RequestException as exc:
            return {SITE: {"healthy": False, "detail": f"alertmanager: {type(exc).__name__}"}}
        return {SITE: {"healthy": ready and recorder,
                       "detail": f"alertmanager ready: {ready}, receiver answers: {recorder}"}}

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        runtime.monitoring.alertmanager_url = f"http://{listen_address(lab)}"
        runtime.monitoring.alert_receiver_url = receiver_url(lab)


def component() -> Alertmanager:
    return Alertmanager()
