"""What a system asks of each center: app instances, a database member, resources.

How VMs are counted (the README repeats this): a system's VMs in a center are its app
instances there plus one database member VM where its tier places a database member.
"""
from __future__ import annotations

from dataclasses import dataclass

from inventory.model import (ZERO, AppPlacement, Cloud, CenterRole, DbReplication, Resources,
                             System, Tier)


@dataclass(frozen=True)
class CenterDemand:
    role: CenterRole
    app_instances: int
    db_member: DbReplication  # none when no member in this center
    resources: Resources

    @property
    def vms(self) -> int:
        return self.app_instances + (self.db_member != DbReplication.none)


def flavor_resources(cloud: Cloud, flavor: str, count: int, extra_storage_gib: int) -> Resources:
    spec = cloud.flavors[flavor]
    return Resources(vcpus=spec.vcpus * count, ram_gib=spec.ram_gib * count,
                     storage_gib=(spec.disk_gib + extra_storage_gib) * count, instances=count)


def app_resources(cloud: Cloud, system: System, count: int) -> Resources:
    if count == 0:
        return ZERO
    return flavor_resources(cloud, system.app.flavor, count, system.app.volume_gib)


def center_demand(cloud: Cloud, tier: Tier, system: System, role: CenterRole) -> CenterDemand:
    """Demand of one system in one center; assumes the system passed validation."""
    app_count = system.app.instances.get(role, 0)
    resources = app_resources(cloud, system, app_count)
    member = tier.placement.db_role(role) if system.database else DbReplication.none
    if member != DbReplication.none:
        db = system.database
        resources = resources + flavor_resources(cloud, db.flavor, 1, db.size_gib)
    if system.bucket and role == CenterRole.remote:
        # The backup bucket lives in the remote center's object store.
        resources = resources + Resources(vcpus=0, ram_gib=0, storage_gib=system.bucket.size_gib,
                                          instances=0)
    return CenterDemand(role, app_count, member, resources)


def system_demand(cloud: Cloud, tier: Tier, system: System) -> dict[CenterRole, CenterDemand]:
    return {role: center_demand(cloud, tier, system, role) for role in CenterRole}


def is_active_active(tier: Tier) -> bool:
    placement = tier.placement
    return (placement.app_role(CenterRole.main) == AppPlacement.active
            and placement.app_role(CenterRole.samecity) == AppPlacement.active)
