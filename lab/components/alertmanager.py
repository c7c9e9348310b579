"""Alertmanager for the lab, clustered across the three centers, and the receiver that
records what it delivers.

One member per center on that center's monitoring host, gossiping with the others
(--cluster.listen-address / --cluster.peer), so losing any one center leaves two members
that still deliver. Every center's Prometheus notifies every member; the members share
their notification log, so an alert goes out once. Notifications go to
monitoring/alert_receiver.py at the global site (the pager's stand-in, outside every
center), which drills read back.

The configuration and the members' command lines are the alertmanager role's
(playbooks/roles/alertmanager), rendered through Ansible's templating; this module only
supervises.
"""
from __future__ import annotations

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

BIN = binaries.path("alertmanager")
AMTOOL = binaries.path("amtool")
PORT = 9093
RECEIVER_PORT = 9649
RECEIVER_PROGRAM = f"{GLOBAL}-alert-receiver"


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


def receiver_url(lab: "LabContext") -> str:
    return f"http://{monitoring_host.endpoint(lab, GLOBAL, RECEIVER_PORT)}"


def record_file(lab: "LabContext") -> Path:
    return monitoring_host.home(lab, GLOBAL) / "var/lib/alert-receiver/received.jsonl"


def role(runtime: "RuntimeInventory", center: str):
    """The alertmanager role for the center's monitoring host."""
    from playbooks.render import renderer

    return renderer(runtime, monitoring_host.host_name(center), "alertmanager")


def render_config(runtime: "RuntimeInventory", center: str) -> str:
    """alertmanager.yml as the alertmanager role writes it on the center's monitoring host."""
    return role(runtime, center).template("alertmanager.yml.j2")


def check_config(file: Path) -> subprocess.CompletedProcess:
    """`amtool check-config FILE`; returncode 0 when Alertmanager would accept it."""
    return subprocess.run([AMTOOL, "check-config", str(file)], capture_output=True, text=True,
                          timeout=60)


def member_command(runtime: "RuntimeInventory", center: str) -> list[str]:
    """The member's command line: the flags the role's systemd unit runs it with."""
    return [BIN, *role(runtime, center).var("alertmanager_flags")]


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
        from inventory.runtime import RuntimeInventory

        runtime = RuntimeInventory.load(lab.runtime_inventory_file)
        for center in CENTERS:
            config_file(lab, center).parent.mkdir(parents=True, exist_ok=True)
            config_file(lab, center).write_text(render_config(runtime, center))
            config_file(lab, center).chmod(0o644)
            data_dir(lab, center).mkdir(parents=True, exist_ok=True)
            users.hand_over(data_dir(lab, center), recursive=True)
        record_file(lab).parent.mkdir(parents=True, exist_ok=True)
        users.hand_over(record_file(lab).parent, recursive=True)

    def reload(self, lab: "LabContext") -> None:
        """Make running members re-read alertmanager.yml. Over HTTP (Alertmanager always
        serves /-/reload), not SIGHUP: a member supervisord has just restarted dies of a
        SIGHUP that comes before it installs its handler, while one that does not answer
        yet reads the new file as it starts."""
        for center in CENTERS:
            try:
                reply = requests.post(f"{url(lab, center)}/-/reload", timeout=30)
            except requests.ConnectionError:
                continue  # not serving yet: it reads the file when it starts
            if not reply.ok:
                raise RuntimeError(f"{program(center)} refused {config_file(lab, center)}: "
                                   f"{reply.status_code} {reply.text.strip()}")

    def programs(self, lab: "LabContext") -> list[Program]:
        from inventory.runtime import RuntimeInventory

        runtime = RuntimeInventory.load(lab.runtime_inventory_file)
        members = [Program(name=program(center), center=center, component="alertmanager",
                           command=member_command(runtime, center), user=users.SERVICE_USER,
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
