"""Alertmanager for the lab, clustered across the three centers, and the receiver that
records what it delivers.

One member per center on that center's monitoring host, gossiping with the others
(--cluster.listen-address / --cluster.peer), so losing any one center leaves two members
that still deliver. Every center's Prometheus notifies every member; the members share
their notification log, so an alert goes out once. Notifications go to
monitoring/alert_receiver.py at the global site (the pager's stand-in, outside every
center), which drills read back.
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
from lab.components import monitoring_host
from lab.context import CENTERS, GLOBAL

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

BIN = binaries.path("alertmanager")
AMTOOL = binaries.path("amtool")
PORT = 9093
CLUSTER_PORT = 9094
RECEIVER_PORT = 9649
RECEIVER_PROGRAM = f"{GLOBAL}-alert-receiver"
# A member waits position × this before notifying, to let an earlier one's notice reach
# it by gossip. The default 15 s would, while a lost member is not yet declared dead,
# hold back the alert about that very loss; gossip on one machine takes milliseconds.
PEER_TIMEOUT = "2s"


def program(center: str) -> str:
    return f"{center}-alertmanager"


def config_file(lab: "LabContext", center: str) -> Path:
    return monitoring_host.home(lab, center) / "etc/alertmanager/alertmanager.yml"


def data_dir(lab: "LabContext", center: str) -> Path:
    return monitoring_host.home(lab, center) / "var/lib/alertmanager"


def listen_address(lab: "LabContext", center: str) -> str:
    return monitoring_host.endpoint(lab, center, PORT)


def url(lab: "LabContext", center: str) -> str:
    return f"http://{listen_address(lab, center)}"


def cluster_address(lab: "LabContext", center: str) -> str:
    return monitoring_host.endpoint(lab, center, CLUSTER_PORT)


def receiver_url(lab: "LabContext") -> str:
    return f"http://{monitoring_host.endpoint(lab, GLOBAL, RECEIVER_PORT)}"


def record_file(lab: "LabContext") -> Path:
    return monitoring_host.home(lab, GLOBAL) / "var/lib/alert-receiver/received.jsonl"


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


def member_command(lab: "LabContext", center: str) -> list[str]:
    peers = [f"--cluster.peer={cluster_address(lab, other)}" for other in CENTERS if other != center]
    return [BIN, f"--config.file={config_file(lab, center)}",
            f"--storage.path={data_dir(lab, center)}",
            f"--web.listen-address={listen_address(lab, center)}",
            f"--cluster.listen-address={cluster_address(lab, center)}",
            f"--cluster.advertise-address={cluster_address(lab, center)}",
            *peers, f"--cluster.peer-timeout={PEER_TIMEOUT}", "--log.level=info"]


def cluster_peers(lab: "LabContext", center: str) -> int | None:
    """How many members this member sees (itself included); None if it does not answer."""
    try:
        reply = requests.get(f"{url(lab, center)}/api/v2/status", timeout=1)
        reply.raise_for_status()
        return len(reply.json()["cluster"].get("peers") or [])
    except (requests.RequestException, ValueError, KeyError):
        return None


class Alertmanager:
    name = "alertmanager"

    def prepare(self, lab: "LabContext") -> None:
        config = yaml.safe_dump(render_config(receiver_url(lab)), sort_keys=False)
        for center in CENTERS:
            config_file(lab, center).parent.mkdir(parents=True, exist_ok=True)
            config_file(lab, center).write_text(config)
            data_dir(lab, center).mkdir(parents=True, exist_ok=True)
            users.hand_over(data_dir(lab, center), recursive=True)
        record_file(lab).parent.mkdir(parents=True, exist_ok=True)
        users.hand_over(record_file(lab).parent, recursive=True)

    def programs(self, lab: "LabContext") -> list[Program]:
        members = [Program(name=program(center), center=center, component="alertmanager",
                           command=member_command(lab, center), user=users.SERVICE_USER,
                           directory=data_dir(lab, center), priority=400)
                   for center in CENTERS]
        # Standard library only: it runs unprivileged from the lab's code copy with the
        # services' Python (lab/users.py), like the sample app.
        receiver = Program(
            name=RECEIVER_PROGRAM, center=GLOBAL, component="alertmanager",
            command=[users.python(), "-m", "monitoring.alert_receiver",
                     "--listen", monitoring_host.endpoint(lab, GLOBAL, RECEIVER_PORT),
                     "--record", str(record_file(lab))],
            user=users.SERVICE_USER, directory=users.code_dir(lab),
            environment={"PYTHONPATH": str(users.code_dir(lab))}, priority=400)
        return [*members, receiver]

    def health(self, lab: "LabContext") -> dict[str, dict]:
        result = {center: self._member_health(lab, center) for center in CENTERS}
        try:
            answers = requests.get(f"{receiver_url(lab)}/alerts?since=0", timeout=1).status_code == 200
        except requests.RequestException as exc:
            answers, reason = False, type(exc).__name__
        else:
            reason = "answers" if answers else "refuses"
        result[GLOBAL] = {"healthy": answers, "detail": f"alert receiver {reason}"}
        return result

    @staticmethod
    def _member_health(lab: "LabContext", center: str) -> dict:
        try:
            ready = requests.get(f"{url(lab, center)}/-/ready", timeout=1).status_code == 200
        except requests.RequestException as exc:
            return {"healthy": False, "detail": f"alertmanager: {type(exc).__name__}"}
        peers = cluster_peers(lab, center)
        return {"healthy": ready, "detail": f"alertmanager ready: {ready}, "
                                            f"cluster members seen: {peers}"}

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        runtime.monitoring.alertmanagers = {center: url(lab, center) for center in CENTERS}
        runtime.monitoring.alert_receiver_url = receiver_url(lab)
        for center in CENTERS:
            monitoring_host.add_host(lab, runtime, center)


def component() -> Alertmanager:
    return Alertmanager()
