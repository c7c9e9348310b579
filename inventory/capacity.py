"""Capacity per center and the failover absorption check.

Absorption: when `main` is lost, `samecity` must also run main's app instances of every
active-active system (its database member is already there and becomes primary). When
the whole city is lost, `remote` must run every system whose tier promises recovery
there at full size (main + same-city app instances, less the pilot light already
running, plus a database member if it has none there). Systems are admitted strictest
tier first; those left over are the ones that don't fit.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from inventory.demand import app_resources, center_demand, flavor_resources, is_active_active
from inventory.loader import Topology
from inventory.model import ZERO, CenterRole, DbReplication, Resources, System

DIMENSIONS = ("vcpus", "ram_gib", "storage_gib", "instances")


@dataclass
class CenterUsage:
    cloud: str
    center: str
    role: CenterRole
    capacity: Resources
    demand: Resources

    @property
    def over(self) -> list[str]:
        return self.demand.exceeding(self.capacity)

    def utilization(self) -> dict[str, float]:
        return {d: (getattr(self.demand, d) / getattr(self.capacity, d)) if getattr(self.capacity, d)
                else (0.0 if getattr(self.demand, d) == 0 else float("inf")) for d in DIMENSIONS}


@dataclass
class FailoverCheck:
    cloud: str
    scenario: str  # main-lost | city-lost
    lost_centers: list[str]
    survivor: str
    capacity: Resources
    baseline: Resources  # what the survivor already runs
    extra: dict[str, Resources] = field(default_factory=dict)  # system → what it moves in
    not_fitting: list[str] = field(default_factory=list)
    refused: dict[str, Resources] = field(default_factory=dict)  # what the misfits would need

    @property
    def required(self) -> Resources:
        total = self.baseline
        for amount in self.extra.values():
            total = total + amount
        return total

    @property
    def promised(self) -> Resources:
        """What the survivor must run to keep every tier's recovery promise."""
        total = self.required
        for amount in self.refused.values():
            total = total + amount
        return total

    @property
    def shortfall(self) -> dict[str, int]:
        """Per dimension, how much capacity is missing to keep every promise."""
        need, have = self.promised, self.capacity
        return {d: getattr(need, d) - getattr(have, d) for d in DIMENSIONS
                if getattr(need, d) > getattr(have, d)}

    @property
    def fits(self) -> bool:
        return not self.not_fitting and not self.baseline.exceeding(self.capacity)


@dataclass
class CapacityReport:
    centers: list[CenterUsage]
    failover: list[FailoverCheck]
    tiers: dict[str, str] = field(default_factory=dict)  # system → tier

    @property
    def promises_kept(self) -> bool:
        """Every center holds its demand, and every survivor absorbs what tiers promise."""
        return not any(u.over for u in self.centers) and all(f.fits for f in self.failover)

    def as_dict(self) -> dict:
        return {
            "centers": {
                f"{u.cloud}/{u.center}": {
                    "cloud": u.cloud, "center": u.center, "role": u.role.value,
                    "capacity": u.capacity.model_dump(), "demand": u.demand.model_dump(),
                    "utilization": {d: round(v, 4) for d, v in u.utilization().items()},
                    "fits": not u.over, "over": u.over,
                } for u in self.centers
            },
            "promises_kept": self.promises_kept,
            "failover": {
                f"{f.cloud}/{f.scenario}": {
                    "cloud": f.cloud, "scenario": f.scenario, "lost_centers": f.lost_centers,
                    "survivor": f.survivor, "fits": f.fits, "capacity": f.capacity.model_dump(),
                    "required": f.required.model_dump(), "systems_moved": len(f.extra),
                    "not_fitting": f.not_fitting, "promised": f.promised.model_dump(),
                    "shortfall": f.shortfall,
                } for f in self.failover
            },
        }


def _strictest_first(topo: Topology, systems: list[System]) -> list[System]:
    return sorted(systems, key=lambda s: (topo.tiers[s.tier].rto_seconds,
                                          topo.tiers[s.tier].rpo_seconds, s.name))


def _admit(check: FailoverCheck, candidates: list[tuple[System, Resources]]) -> FailoverCheck:
    used = check.baseline
    for system, extra in candidates:
        if (used + extra).exceeding(check.capacity):
            check.not_fitting.append(system.name)
            check.refused[system.name] = extra
            continue
        used = used + extra
        check.extra[system.name] = extra
    return check


def capacity_report(topo: Topology) -> CapacityReport:
    """Assumes a validated topology."""
    demand: dict[tuple[str, CenterRole], Resources] = defaultdict(lambda: ZERO)
    for system in topo.systems.values():
        cloud = topo.cloud_of(system)
        tier = topo.tiers[system.tier]
        for role in CenterRole:
            demand[(cloud.name, role)] += center_demand(cloud, tier, system, role).resources
    centers = [CenterUsage(cloud.name, name, center.role, center.capacity,
                           demand[(cloud.name, center.role)])
               for cloud in sorted(topo.clouds.values(), key=lambda c: c.name)
               for name, center in cloud.centers.items()]
    failover: list[FailoverCheck] = []
    for cloud in sorted(topo.clouds.values(), key=lambda c: c.name):
        systems = _strictest_first(topo, topo.systems_in_cloud(cloud.name))
        main = cloud.center_by_role(CenterRole.main)
        samecity = cloud.center_by_role(CenterRole.samecity)
        remote = cloud.center_by_role(CenterRole.remote)
        if main and samecity:
            check = FailoverCheck(cloud.name, "main-lost", [main[0]], samecity[0],
                                  samecity[1].capacity, demand[(cloud.name, CenterRole.samecity)])
            moved = [(s, app_resources(cloud, s, s.app.instances.get(CenterRole.main, 0)))
                     for s in systems if is_active_active(topo.tiers[s.tier])]
            failover.append(_admit(check, moved))
        if remote and (main or samecity):
            lost = [c[0] for c in (main, samecity) if c]
            check = FailoverCheck(cloud.name, "city-lost", lost, remote[0], remote[1].capacity,
                                  demand[(cloud.name, CenterRole.remote)])
            failover.append(_admit(check, [(s, _regional_extra(topo, s)) for s in systems
                                           if topo.tiers[s.tier].placement.recover_in_remote]))
    return CapacityReport(centers, failover, {s.name: s.tier for s in topo.systems.values()})


def _regional_extra(topo: Topology, system: System) -> Resources:
    cloud = topo.cloud_of(system)
    tier = topo.tiers[system.tier]
    counts = system.app.instances
    full = counts.get(CenterRole.main, 0) + counts.get(CenterRole.samecity, 0)
    extra = app_resources(cloud, system, max(0, full - counts.get(CenterRole.remote, 0)))
    if system.database and tier.placement.db_role(CenterRole.remote) == DbReplication.none:
        extra = extra + flavor_resources(cloud, system.database.flavor, 1, system.database.size_gib)
    return extra
