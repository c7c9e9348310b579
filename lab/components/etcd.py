"""etcd ×3: one member per center, one quorum, so losing any one center leaves a majority
that still knows who the database primary is."""
from __future__ import annotations

import subprocess

import requests

from inventory.runtime import RuntimeInventory
from lab import binaries
from lab import users
from lab.component import Program
from lab.context import CENTERS, LabContext, Ports

CLUSTER_TOKEN = "tricenter-lab"


def member_name(center: str) -> str:
    return f"etcd-{center}"


def client_url(lab: LabContext, center: str) -> str:
    return f"http://{lab.address(center)}:{Ports.etcd_client}"


def peer_url(lab: LabContext, center: str) -> str:
    return f"http://{lab.address(center)}:{Ports.etcd_peer}"


def command(lab: LabContext, center: str) -> list[str]:
    initial_cluster = ",".join(f"{member_name(c)}={peer_url(lab, c)}" for c in CENTERS)
    return [
        binaries.path("etcd"),
        "--name", member_name(center),
        "--data-dir", str(lab.path("etcd", center, "data")),
        "--listen-client-urls", client_url(lab, center),
        "--advertise-client-urls", client_url(lab, center),
        "--listen-peer-urls", peer_url(lab, center),
        "--initial-advertise-peer-urls", peer_url(lab, center),
        "--initial-cluster", initial_cluster,
        "--initial-cluster-token", CLUSTER_TOKEN,
        "--initial-cluster-state", "new",
        # Small WAL/snapshot footprint: the lab's etcd holds a few Patroni keys.
        "--snapshot-count", "10000",
        "--quota-backend-bytes", str(256 * 1024 * 1024),
        "--logger", "zap",
    ]


def member_status(lab: LabContext, center: str, timeout: float = 1.0) -> dict | None:
    """etcd's own status through its gRPC gateway; None when the member does not answer."""
    try:
        response = requests.post(f"{client_url(lab, center)}/v3/maintenance/status",
                                 json={}, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError):
        return None


def leader_center(lab: LabContext) -> str | None:
    """The center whose etcd member is the raft leader, as the members agree."""
    ids = {}
    leader = None
    for center in CENTERS:
        status = member_status(lab, center)
        if status:
            ids[status["header"]["member_id"]] = center
            leader = leader or status.get("leader")
    return ids.get(leader) if leader else None


def move_leader(lab: LabContext, to_center: str) -> None:
    """Move the raft leader to `to_center` with `etcdctl move-leader` (sent to the leader)."""
    current = leader_center(lab)
    if current is None or current == to_center:
        return
    target = member_status(lab, to_center)
    if target is None:
        raise RuntimeError(f"etcd member of {to_center} does not answer; cannot move the leader")
    target_hex = format(int(target["header"]["member_id"]), "x")
    subprocess.run([binaries.path("etcdctl"), "--endpoints", client_url(lab, current), "move-leader", target_hex],
                   check=True, capture_output=True, text=True, timeout=15)


class Etcd:
    name = "etcd"

    def prepare(self, lab: LabContext) -> None:
        for center in CENTERS:
            directory = lab.component_dir("etcd", center)
            directory.chmod(0o700)
            users.hand_over(directory, recursive=True)  # data an older, root-run lab wrote

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name=f"{center}-etcd", center=center, component="etcd",
                        command=command(lab, center), user=users.SERVICE_USER,
                        directory=lab.path("etcd", center), priority=100)
                for center in CENTERS]

    def health(self, lab: LabContext) -> dict[str, dict]:
        ids: dict[str, str] = {}
        statuses = {}
        for center in CENTERS:
            statuses[center] = member_status(lab, center)
            if statuses[center]:
                ids[statuses[center]["header"]["member_id"]] = center
        result = {}
        for center, status in statuses.items():
            if status is None:
                result[center] = {"healthy": False, "detail": "etcd member does not answer"}
                continue
            leader = ids.get(status.get("leader", ""))
            result[center] = {"healthy": leader is not None, "leader": leader,
                              "is_leader": leader == center,
                              "detail": f"member of a quorum led by {leader}" if leader
                              else "no leader known"}
        return result

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        runtime.etcd = [client_url(lab, center) for center in CENTERS]


def component() -> Etcd:
    return Etcd()
