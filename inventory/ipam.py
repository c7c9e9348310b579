"""Deterministic, stable address allocation: center → department → system → network.

Stability comes from the lock file (`ipam.lock.yaml` next to the inventory): a block,
once handed out, is kept for as long as its owner exists, whatever else is added,
removed or reordered. New owners take the lowest free aligned block, in sorted order,
so the same inventory and lock always give the same plan. Networks inside a system
block are derived (app = first sub-block, db = second), so they are stable too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

import yaml

from inventory.errors import InventoryProblem, display_path
from inventory.model import AppPlacement, DbReplication
from inventory.loader import Topology
from inventory.yamlsource import YamlFileError, load_yaml

NETWORKS = ("app", "db")
LOCK_HEADER = (
    "# IPAM lock: address blocks already handed out. Written by `tricenter ipam --write`;\n"
    "# commit it. Blocks are never renumbered while their owner exists.\n"
)


@dataclass
class IpamPlan:
    blocks: dict[str, IPv4Network] = field(default_factory=dict)
    new_keys: list[str] = field(default_factory=list)  # handed out now, not yet in the lock
    released_keys: list[str] = field(default_factory=list)  # in the lock, owner gone
    problems: list[InventoryProblem] = field(default_factory=list)
    network_prefix: dict[str, int] = field(default_factory=dict)  # cloud → prefix

    def system_block(self, cloud: str, center: str, department: str, system: str) -> IPv4Network:
        return self.blocks[f"{cloud}/{center}/{department}/{system}"]

    def subnet(self, cloud: str, center: str, department: str, system: str,
               network: str) -> IPv4Network:
        block = self.system_block(cloud, center, department, system)
        prefix = self.network_prefix[cloud]
        index = NETWORKS.index(network)
        return next(sub for i, sub in enumerate(block.subnets(new_prefix=prefix)) if i == index)

    def lock_data(self) -> dict[str, str]:
        return {key: str(net) for key, net in sorted(self.blocks.items())}


def read_lock(file: Path) -> tuple[dict[str, IPv4Network], list[InventoryProblem]]:
    if not file.exists():
        return {}, []
    shown = display_path(file, file.parent)
    try:
        doc = load_yaml(file)
    except YamlFileError as exc:
        return {}, [InventoryProblem(shown, "", f"{exc}, or restore the lock from git", exc.line)]
    data = doc.data or {}
    raw = (data.get("blocks") if isinstance(data, dict) else data) or {}
    if not isinstance(raw, dict):
        return {}, [InventoryProblem(shown, "blocks", "unreadable IPAM lock ('blocks' must be a "
                                     "mapping of owner → CIDR); restore it from git",
                                     doc.line_of(("blocks",)))]
    blocks, problems = {}, []
    for key, cidr in raw.items():
        try:
            blocks[str(key)] = IPv4Network(str(cidr))
        except ValueError as exc:
            problems.append(InventoryProblem(shown, f"blocks.{key}",
                                             f"not a network CIDR: {exc}; restore it from git",
                                             doc.line_of(("blocks", str(key)))))
    return blocks, problems


def write_lock(file: Path, plan: IpamPlan) -> None:
    file.write_text(LOCK_HEADER + yaml.safe_dump({"blocks": plan.lock_data()}, sort_keys=False))


def _first_free(parent: IPv4Network, prefix: int, taken: list[IPv4Network]) -> IPv4Network | None:
    if prefix < parent.prefixlen:
        return None
    taken_ranges = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    size = 1 << (32 - prefix)
    candidate = int(parent.network_address)
    end = int(parent.broadcast_address)
    for low, high in taken_ranges:
        if candidate + size - 1 < low:
            break
        if high >= candidate:
            candidate = ((high + 1 + size - 1) // size) * size  # next aligned start
    if candidate + size - 1 > end:
        return None
    return IPv4Network((candidate, prefix))


def needed_owners(topology: Topology) -> dict[str, tuple[str, str, str | None]]:
    """Owner keys → (cloud, center, system or None for a department block)."""
    owners: dict[str, tuple[str, str, str | None]] = {}
    for system in sorted(topology.systems.values(), key=lambda s: (s.department, s.name)):
        department = topology.departments.get(system.department)
        tier = topology.tiers.get(system.tier)
        if department is None or tier is None or department.cloud not in topology.clouds:
            continue  # reported by validation; nothing to allocate
        cloud = topology.clouds[department.cloud]
        for center_name, center in sorted(cloud.centers.items()):
            placed = (tier.placement.app_role(center.role) != AppPlacement.none
                      or (system.database is not None
                          and tier.placement.db_role(center.role) != DbReplication.none))
            if not placed:
                continue
            dept_key = f"{cloud.name}/{center_name}/{department.id}"
            owners.setdefault(dept_key, (cloud.name, center_name, None))
            owners[f"{dept_key}/{system.name}"] = (cloud.name, center_name, system.name)
    return owners


def allocate(topology: Topology, lock: dict[str, IPv4Network] | None = None) -> IpamPlan:
    """Plan every block the inventory needs, keeping every still-owned block of `lock`."""
    lock_file = topology.ipam_lock_file
    shown = display_path(lock_file, topology.root)
    if lock is None:
        lock, lock_problems = read_lock(lock_file)
    else:
        lock_problems = []
    owners = needed_owners(topology)
    plan = IpamPlan(problems=list(lock_problems),
                    network_prefix={c.name: c.ipam.network_prefix for c in topology.clouds.values()})
    plan.released_keys = sorted(set(lock) - set(owners))

    def parent_of(key: str) -> tuple[IPv4Network | None, int]:
        cloud_name, center_name, system = owners[key]
        cloud = topology.clouds[cloud_name]
        if system is None:
            return cloud.centers[center_name].address_space, cloud.ipam.department_prefix
        return plan.blocks.get(key.rsplit("/", 1)[0]), cloud.ipam.system_prefix

    # Locked blocks are reserved before anything new is handed out, so a newcomer that
    # sorts first can never take a block an existing owner holds. Within each pass,
    # department blocks come before system blocks so parents exist.
    ordered = sorted(owners, key=lambda k: (owners[k][2] is not None, k))
    # Siblings are keyed by the parent's owner, not its network: clouds may reuse ranges.
    children: dict[str, list[IPv4Network]] = {}
    pending: list[str] = []
    for key in ordered:
        parent, _ = parent_of(key)
        kept = lock.get(key)
        if kept is None or parent is None:
            pending.append(key)
            continue
        siblings = children.setdefault(key.rsplit("/", 1)[0], [])
        if not kept.subnet_of(parent) or any(kept.overlaps(s) for s in siblings):
            plan.problems.append(InventoryProblem(
                shown, f"blocks.{key}",
                f"locked block {kept} is outside {parent} or overlaps another block; "
                "restore the lock from git or remove this line to re-allocate"))
            continue
        plan.blocks[key] = kept
        siblings.append(kept)
    for key in pending:
        parent, prefix = parent_of(key)
        if parent is None:
            continue  # parent failed to allocate; already reported
        siblings = children.setdefault(key.rsplit("/", 1)[0], [])
        block = _first_free(parent, prefix, siblings)
        if block is None:
            cloud_name, center_name, system = owners[key]
            what = f"system {system}" if system else f"department {key.rsplit('/', 1)[1]}"
            plan.problems.append(InventoryProblem(
                shown, f"blocks.{key}",
                f"address space exhausted: no free /{prefix} left in {parent} for {what} in "
                f"{cloud_name}/{center_name}; enlarge the address_space (center) or shrink "
                f"the ipam prefixes of cloud {cloud_name}"))
            continue
        plan.blocks[key] = block
        plan.new_keys.append(key)
        siblings.append(block)
    return plan
