"""The topology model: clouds → centers → departments (quotas) → systems (requests).

Every plane reads these types. They describe what is *asked for*; what actually runs
is the runtime inventory (`inventory.runtime`). Schemas forbid unknown keys so a typo
in a reviewed request is an error, not a silently ignored field.
"""
from __future__ import annotations

import enum
from ipaddress import IPv4Network
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from inventory.names import (DnsZone, FlowSource, Hostname, Name, PgIdentifier, PgVersion,
                             RemotePath)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CenterRole(str, enum.Enum):
    main = "main"
    samecity = "samecity"
    remote = "remote"


class CloudKind(str, enum.Enum):
    provincial = "provincial"
    industry = "industry"
    city = "city"


class Resources(Strict):
    """An amount of compute: used for center capacity, department quotas and demand."""

    vcpus: int = Field(ge=0)
    ram_gib: int = Field(ge=0)
    storage_gib: int = Field(ge=0)
    instances: int = Field(ge=0)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            vcpus=self.vcpus + other.vcpus,
            ram_gib=self.ram_gib + other.ram_gib,
            storage_gib=self.storage_gib + other.storage_gib,
            instances=self.instances + other.instances,
        )

    def exceeding(self, limit: Resources) -> list[str]:
        """Names of the dimensions where this amount is larger than `limit`."""
        return [
            dim for dim in ("vcpus", "ram_gib", "storage_gib", "instances")
            if getattr(self, dim) > getattr(limit, dim)
        ]


ZERO = Resources(vcpus=0, ram_gib=0, storage_gib=0, instances=0)


class Flavor(Strict):
    vcpus: int = Field(gt=0)
    ram_gib: int = Field(gt=0)
    disk_gib: int = Field(ge=0)


class IpamSizes(Strict):
    """Prefix lengths of the blocks carved from a center's address space."""

    department_prefix: int = Field(default=18, ge=8, le=28)
    system_prefix: int = Field(default=22, ge=8, le=29)
    network_prefix: int = Field(default=24, ge=8, le=30)


class Center(Strict):
    role: CenterRole
    city: str
    region: str = Field(description="OpenStack region name")
    availability_zones: list[str] = Field(min_length=1)
    address_space: IPv4Network
    external_network: str
    capacity: Resources
    volume_availability_zones: list[str] | None = Field(
        default=None, description="Cinder zones, paired with availability_zones by position; "
        "Cinder names its zones apart from Nova's, so unset means Cinder's default zone")


class LegacySite(Strict):
    """A department's existing data center (legacy IDC) that systems migrate out of."""

    city: str
    address_space: IPv4Network


class Cloud(Strict):
    name: Name
    kind: CloudKind
    display_name: str
    dns_zone: DnsZone | None = None
    ipam: IpamSizes = IpamSizes()
    centers: dict[Name, Center] = Field(min_length=1)
    legacy_sites: dict[Name, LegacySite] = {}
    flavors: dict[str, Flavor] = Field(min_length=1)
    images: list[str] = Field(min_length=1)
    database_image: str | None = Field(
        default=None, description="Image database VMs boot (PostgreSQL and Patroni installed), "
        "unless a system's database names its own")

    def center_by_role(self, role: CenterRole) -> tuple[str, Center] | None:
        for name, center in self.centers.items():
            if center.role == role:
                return name, center
        return None


class Department(Strict):
    id: Name
    cloud: Name
    name_zh: str
    name_en: str
    quotas: dict[CenterRole, Resources] = Field(
        description="Quota per center role; a role absent here has a zero quota"
    )


class AppPlacement(str, enum.Enum):
    active = "active"  # serves traffic behind the active-active entry
    pilot = "pilot"  # pilot light: small, scaled up on regional recovery
    none = "none"


class DbReplication(str, enum.Enum):
    primary = "primary"
    sync = "sync"
    async_ = "async"
    none = "none"


class Placement(Strict):
    app: dict[CenterRole, AppPlacement]
    database: dict[CenterRole, DbReplication]
    recover_in_remote: bool = Field(
        description="Whether the tier promises to bring the system up in the remote center "
        "when the whole city is lost (the regional absorption check counts it)"
    )

    def app_role(self, role: CenterRole) -> AppPlacement:
        return self.app.get(role, AppPlacement.none)

    def db_role(self, role: CenterRole) -> DbReplication:
        return self.database.get(role, DbReplication.none)


# Editions of the GB/T 20988 level table shipped as data (inventory/standards/): 2025
# replaces 2007 (and GB/T 30285-2013) from 2026-01-01; a tier names the one it is held to.
GbtEdition = Literal["2007", "2025"]
GBT_EDITIONS: tuple[str, ...] = get_args(GbtEdition)


class Tier(Strict):
    name: Name
    description: str
    rto_seconds: int = Field(gt=0)
    rpo_seconds: int = Field(ge=0)
    gbt20988_level: int = Field(ge=1, le=6)
    gbt20988_edition: GbtEdition = Field(
        default="2007", description="Edition of the GB/T 20988 level table the level and "
        "drill verdicts refer to (inventory/standards/gbt20988-<edition>.yaml)")
    placement: Placement


class AppTier(Strict):
    flavor: str
    image: str
    volume_gib: int = Field(default=0, ge=0)
    port: int = Field(default=8080, ge=1, le=65535)
    # Bounds on the items, not a validator on the whole: an error then names the leaf
    # (app.instances.main) and its line, not the mapping.
    instances: dict[CenterRole, Annotated[int, Field(ge=0)]] = Field(
        description="App instances per center role (0 or absent: none)"
    )


class Database(Strict):
    engine: Literal["postgresql"] = "postgresql"
    version: PgVersion = "15"
    flavor: str
    size_gib: int = Field(gt=0)
    image: str | None = Field(default=None, description="default: the cloud's database_image")


class Bucket(Strict):
    size_gib: int = Field(gt=0)
    versioning: bool = True


class Flow(Strict):
    """Who may reach this system, on which ports. `from` is a system name, a
    `department:<id>` or `external` (the government external network)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    source: FlowSource = Field(alias="from")
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(min_length=1)


class LegacySource(Strict):
    """Where the system runs before migration (the legacy IDC)."""

    host: Hostname = Field(description="Becomes an SSH host and a directory name in the lab")
    database: PgIdentifier | None = Field(default=None, description="Created and replicated by name")
    paths: list[RemotePath] = []


class System(Strict):
    name: Name
    department: Name
    tier: Name
    description: str = ""
    wave: int = Field(default=1, ge=1)
    app: AppTier
    database: Database | None = None
    bucket: Bucket | None = None
    flows: list[Flow] = []
    legacy: LegacySource | None = None


class GbtLevel(Strict):
    level: int = Field(ge=1, le=6)
    name: str
    rto_max_seconds: int | None = Field(description="Upper bound of the level's RTO; null: unbounded")
    rpo_max_seconds: int | None
    reading: str | None = Field(default=None, description="How the standard's words became "
                                "the bounds, where it gives no number; quoted in reports")


class GbtStandard(Strict):
    standard: str
    edition: GbtEdition
    note: str | None = Field(default=None, description="How this table was derived; quoted in reports")
    levels: list[GbtLevel] = Field(min_length=1)
