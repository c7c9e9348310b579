"""What the real cloud has, recorded once, so a plan can be checked against it offline.

`tricenter cloud snapshot` reads (never writes) through openstacksdk everything the
program looks up or names: images, flavors, external networks, compute and volume
zones, DNS zones, Octavia providers, the deploying project's quotas per region and the
existing projects. `tricenter plan --snapshot FILE` answers the program's lookups from
the file and lists every name the cloud lacks and every quota the plan would exceed.
Items may carry a `region`; an item without one is taken to exist in every region.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from inventory.model import Resources
from stacks.layout import StackLayout


class SnapshotError(ValueError):
    """The snapshot file cannot be read as one."""


class Item(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    id: str | None = None
    region: str | None = None

    def serves(self, region: str) -> bool:
        return self.region is None or self.region == region


class FlavorItem(Item):
    vcpus: int | None = None
    ram_mib: int | None = None
    disk_gib: int | None = None


class ZoneItem(Item):
    service: Literal["compute", "volume"] = "compute"


class QuotaItem(BaseModel):
    """What the deploying credentials may still create in one region (-1: unlimited)."""

    model_config = ConfigDict(extra="allow")

    region: str
    vcpus: int = -1
    ram_gib: int = -1
    storage_gib: int = -1
    instances: int = -1


class CloudSnapshot(BaseModel):
    model_config = ConfigDict(extra="allow")

    cloud: str | None = None
    taken_at: str | None = None
    images: list[Item]
    flavors: list[FlavorItem]
    external_networks: list[Item]
    availability_zones: list[ZoneItem]
    dns_zones: list[Item]
    octavia_providers: list[Item] = []
    quotas: list[QuotaItem] = []
    projects: list[Item] = []

    def find(self, kind: str, name: str, region: str | None = None,
             service: str | None = None) -> Item | None:
        for item in getattr(self, kind):
            if item.name == name and (region is None or item.serves(region)) and (
                    service is None or getattr(item, "service", None) == service):
                return item
        return None


def load_snapshot(file: Path) -> CloudSnapshot:
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise SnapshotError(f"{file}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SnapshotError(f"{file}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SnapshotError(f"{file}: a snapshot is a mapping with images, flavors, "
                            "external_networks, availability_zones, dns_zones")
    try:
        return CloudSnapshot.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SnapshotError(f"{file}: {where}: {first['msg']} (take a fresh one with "
                            "`tricenter cloud snapshot`)") from None


@dataclass(frozen=True)
class Shortfall:
    """One thing the plan needs that the cloud does not have."""

    stack: str
    kind: str  # image, flavor, network, zone, dns_zone, octavia_provider, quota, project
    name: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"stack": self.stack, "kind": self.kind, "name": self.name, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.stack}: {self.kind} {self.name}: {self.detail}"


def shortfalls(layout: StackLayout, snapshot: CloudSnapshot, planned: Resources,
               lb_provider: str, adopted: dict[str, str]) -> list[Shortfall]:
    """Every name `layout` uses that the snapshot's cloud lacks, every quota exceeded."""
    region = layout.center.region
    found: list[Shortfall] = []

    def need(kind: str, field: str, name: str, why: str, service: str | None = None) -> None:
        if snapshot.find(field, name, region, service) is None:
            found.append(Shortfall(layout.stack, kind, name, f"not in region {region} ({why})"))

    from stacks.program import images_of  # the program's own list of lookups

    for image in images_of(layout):
        need("image", "images", image, "booted by VMs")
    for flavor in _flavors_of(layout):
        need("flavor", "flavors", flavor, "VM size")
        _flavor_matches(layout, snapshot, flavor, found)
    need("network", "external_networks", layout.center.external_network, "routers' gateway")
    used_zones = {vm.availability_zone for s in layout.systems for vm in s.app_instances}
    used_zones |= {s.db_member.availability_zone for s in layout.systems if s.db_member}
    for zone in sorted(used_zones):
        need("zone", "availability_zones", zone, "Nova zone", "compute")
    volume_zones = {s.db_member.volume_zone for s in layout.systems
                    if s.db_member and s.db_member.volume_zone}
    for zone in sorted(volume_zones):
        need("zone", "availability_zones", zone, "Cinder zone", "volume")
    if layout.cloud.dns_zone and any(s.dns_records for s in layout.systems):
        need("dns_zone", "dns_zones", layout.cloud.dns_zone, "entry records")
    if any(s.lb_vip for s in layout.systems):
        need("octavia_provider", "octavia_providers", lb_provider, "entries' load balancers")
    found += _quota_shortfalls(layout, snapshot, planned)
    if layout.owns_identity:
        for dept in layout.departments:
            existing = snapshot.find("projects", dept.department.id)
            if existing is not None and dept.department.id not in adopted:
                found.append(Shortfall(
                    layout.stack, "project", dept.department.id,
                    f"already exists (id {existing.id}): adopt it with `pulumi config set "
                    f"--path 'tricenter:adoptProjects.{dept.department.id}' {existing.id} "
                    f"-s {layout.stack}` (see docs/operator.md)"))
    return found


def _flavors_of(layout: StackLayout) -> list[str]:
    names = {s.system.app.flavor for s in layout.systems if s.app_instances}
    names |= {s.system.database.flavor for s in layout.systems if s.db_member}
    return sorted(names)


def _flavor_matches(layout: StackLayout, snapshot: CloudSnapshot, name: str,
                    found: list[Shortfall]) -> None:
    item = snapshot.find("flavors", name, layout.center.region)
    want = layout.cloud.flavors[name]
    if item is None or item.vcpus is None:
        return
    have = (item.vcpus, (item.ram_mib or 0) // 1024)
    if have != (want.vcpus, want.ram_gib):
        found.append(Shortfall(layout.stack, "flavor", name,
                               f"is {have[0]} vCPU/{have[1]} GiB in the cloud, "
                               f"{want.vcpus} vCPU/{want.ram_gib} GiB in the inventory"))


def _quota_shortfalls(layout: StackLayout, snapshot: CloudSnapshot,
                      planned: Resources) -> list[Shortfall]:
    quota = next((q for q in snapshot.quotas if q.region == layout.center.region), None)
    if quota is None:
        return []
    found = []
    for dimension in ("vcpus", "ram_gib", "storage_gib", "instances"):
        limit, need = getattr(quota, dimension), getattr(planned, dimension)
        if 0 <= limit < need:
            found.append(Shortfall(layout.stack, "quota", dimension,
                                   f"plan needs {need}, region {layout.center.region} "
                                   f"allows {limit}"))
    return found


def lookup_answer(snapshot: CloudSnapshot | None, token: str, args: dict[str, Any]
                  ) -> dict[str, Any] | None:
    """What a lookup of the program returns when answered from the snapshot; None: the
    snapshot does not say (the mock then makes an ID up)."""
    if snapshot is None:
        return None
    kind = {"openstack:images/getImage:getImage": "images",
            "openstack:networking/getNetwork:getNetwork": "external_networks",
            "openstack:dns/getDnsZone:getDnsZone": "dns_zones"}.get(token)
    if kind is None:
        return None
    item = snapshot.find(kind, args.get("name", ""), args.get("region"))
    if item is None:
        return None
    return {"id": item.id or f"{item.name}-id", "name": item.name}


def take_snapshot(cloud: str, regions: list[tuple[str, str]], connect: Any = None
                  ) -> dict[str, Any]:
    """Read what the program needs from each (clouds.yaml entry, region) of `cloud`.

    Read-only: only list and show calls."""
    import datetime

    if connect is None:
        import openstack

        connect = openstack.connect
    data: dict[str, Any] = {"cloud": cloud, "taken_at": datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds"), "images": [], "flavors": [],
        "external_networks": [], "availability_zones": [], "dns_zones": [],
        "octavia_providers": [], "quotas": [], "projects": []}
    for os_cloud, region in regions:
        _read_region(connect(cloud=os_cloud, region_name=region), region, data)
    # Keystone and Designate serve the whole cloud: read once.
    conn = connect(cloud=regions[0][0], region_name=regions[0][1])
    data["dns_zones"] = [{"name": z.name, "id": z.id} for z in conn.dns.zones()]
    data["projects"] = [{"name": p.name, "id": p.id} for p in conn.identity.projects()]
    return data


def _read_region(conn: Any, region: str, data: dict[str, Any]) -> None:
    data["images"] += [{"name": i.name, "id": i.id, "region": region,
                        "status": i.status} for i in conn.image.images()]
    data["flavors"] += [{"name": f.name, "id": f.id, "region": region, "vcpus": f.vcpus,
                         "ram_mib": f.ram, "disk_gib": f.disk} for f in conn.compute.flavors()]
    data["external_networks"] += [{"name": n.name, "id": n.id, "region": region}
                                  for n in conn.network.networks(is_router_external=True)]
    data["availability_zones"] += [
        {"name": z.name, "region": region, "service": "compute"}
        for z in conn.compute.availability_zones() if _available(z)]
    data["availability_zones"] += [
        {"name": z.name, "region": region, "service": "volume"}
        for z in conn.block_storage.availability_zones() if _available(z)]
    data["octavia_providers"] += [{"name": p.name, "region": region}
                                  for p in conn.load_balancer.providers()]
    data["quotas"].append(_quota(conn, region))


def _available(zone: Any) -> bool:
    return bool((zone.state or {}).get("available", True))


def _quota(conn: Any, region: str) -> dict[str, Any]:
    """Limits of the deploying project less what it uses: room left for the plan."""
    limits = conn.compute.get_limits().absolute
    volume = conn.block_storage.get_limits().absolute

    def left(total: int, used: int) -> int:
        return -1 if total is None or total < 0 else max(total - (used or 0), 0)
    return {"region": region,
            "vcpus": left(limits.total_cores, limits.total_cores_used),
            "ram_gib": left(limits.total_ram // 1024 if limits.total_ram and
                            limits.total_ram > 0 else limits.total_ram,
                            (limits.total_ram_used or 0) // 1024),
            "instances": left(limits.instances, limits.instances_used),
            "storage_gib": left(volume.max_total_volume_gigabytes, volume.total_gigabytes_used)}
