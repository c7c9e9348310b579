"""What one system request adds per center, and how much quota its department has left.

A department asks "what does my request cost, and what is left?" before review; the
answer is the request's demand (`inventory.demand`) and its department's quota less what
all of the department's systems, the request included, use.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inventory.demand import system_demand
from inventory.errors import display_path
from inventory.loader import Topology
from inventory.model import ZERO, CenterRole, DbReplication, Resources, System
from inventory.validate import department_usage

DIMENSIONS = ("vcpus", "ram_gib", "storage_gib", "instances")


@dataclass(frozen=True)
class CenterDelta:
    center: str  # <cloud>/<center>
    role: CenterRole
    app_vms: int
    db_vms: int
    resources: Resources

    def as_dict(self) -> dict:
        return {"center": self.center, "role": self.role.value, "app_vms": self.app_vms,
                "db_vms": self.db_vms, **self.resources.model_dump()}


@dataclass(frozen=True)
class QuotaLeft:
    role: CenterRole
    quota: Resources
    used: Resources

    @property
    def left(self) -> dict[str, int]:
        return {d: getattr(self.quota, d) - getattr(self.used, d) for d in DIMENSIONS}

    def as_dict(self) -> dict:
        return {"quota": self.quota.model_dump(), "used": self.used.model_dump(),
                "left": self.left}


def find_request(topo: Topology, ref: str) -> System | None:
    """The system a `--request` names: its file (any path to it) or its name."""
    path = Path(ref).expanduser()
    if path.exists():
        wanted = path.resolve()
        return next((topo.systems[name] for (kind, name), origin in topo.origins.items()
                     if kind == "system" and origin.file.resolve() == wanted), None)
    return topo.systems.get(ref)


def request_delta(topo: Topology, system: System) -> list[CenterDelta]:
    """Per center the system uses: its app and database member VMs and their resources."""
    cloud = topo.cloud_of(system)
    deltas = []
    for role, demand in system_demand(cloud, topo.tiers[system.tier], system).items():
        found = cloud.center_by_role(role)
        if found is None or demand.resources == ZERO:
            continue
        deltas.append(CenterDelta(f"{cloud.name}/{found[0]}", role, demand.app_instances,
                                  int(demand.db_member != DbReplication.none), demand.resources))
    return deltas


def quota_left(topo: Topology) -> dict[str, list[QuotaLeft]]:
    """Per department, per center role with a quota or a use: quota, used and left."""
    usage = department_usage(topo)
    report: dict[str, list[QuotaLeft]] = {}
    for dept_id, dept in sorted(topo.departments.items()):
        lines = []
        for role in CenterRole:
            quota, used = dept.quotas.get(role, ZERO), usage.get((dept_id, role), ZERO)
            if quota != ZERO or used != ZERO:
                lines.append(QuotaLeft(role, quota, used))
        report[dept_id] = lines
    return report


def request_report(topo: Topology, system: System, left: dict[str, list[QuotaLeft]]) -> dict:
    deltas = request_delta(topo, system)
    total = sum((d.resources for d in deltas), ZERO)
    return {
        "system": system.name, "department": system.department, "tier": system.tier,
        "file": display_path(topo.origin("system", system.name).file, topo.root),
        "adds": {d.center: d.as_dict() for d in deltas},
        "adds_total": {"app_vms": sum(d.app_vms for d in deltas),
                       "db_vms": sum(d.db_vms for d in deltas), **total.model_dump()},
        "quota_left_after": {q.role.value: q.as_dict() for q in left[system.department]},
    }
