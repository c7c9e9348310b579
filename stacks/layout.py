"""What one stack (a cloud-center) holds, derived from the topology and the IPAM plan.

Pure data and arithmetic, no Pulumi: the components turn a `StackLayout` into resources,
and tests check placement, addressing and exposure here without running any program.
Addresses are derived, not allocated by the cloud, so a plan under mocks already shows
the addresses the real deployment will use, and the runtime inventory can be built
from it before anything exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from inventory.ipam import IpamPlan
from inventory.loader import Topology
from inventory.model import (AppPlacement, Center, CenterRole, Cloud, DbReplication, Department,
                             System, Tier)
from inventory.names import backup_bucket

POSTGRES_PORT = 5432
PATRONI_API_PORT = 8008
LB_VIP_OFFSET = 5  # .1 gateway, .2-.4 DHCP/metadata ports
FIRST_HOST_OFFSET = 10
DB_MEMBER_OFFSET = 10


class LayoutError(ValueError):
    """The inventory asks for something the address plan cannot hold."""


def stack_name(cloud: str, center: str) -> str:
    return f"{cloud}-{center}"


def all_stacks(topology: Topology) -> list[str]:
    return [stack_name(cloud.name, center) for cloud in sorted(topology.clouds.values(),
                                                               key=lambda c: c.name)
            for center in cloud.centers]


def split_stack(topology: Topology, stack: str) -> tuple[Cloud, str, Center]:
    """`guangdong-main` → (cloud, center name, center); names may contain '-'."""
    for cloud in topology.clouds.values():
        for center_name, center in cloud.centers.items():
            if stack_name(cloud.name, center_name) == stack:
                return cloud, center_name, center
    known = ", ".join(all_stacks(topology)) or "none"
    raise LayoutError(f"unknown stack '{stack}'; stacks of this inventory: {known}")


def host(subnet: IPv4Network, offset: int) -> IPv4Address:
    address = subnet.network_address + offset
    if address >= subnet.broadcast_address - subnet.num_addresses // 2:
        raise LayoutError(f"{subnet} has no room for host offset {offset}: fixed addresses use "
                          "the lower half (DHCP the upper); use a shorter network_prefix")
    return address


def dhcp_pool(subnet: IPv4Network) -> tuple[IPv4Address, IPv4Address]:
    """The upper half of a subnet: addresses Neutron may hand out (LB amphorae, DHCP)."""
    start = subnet.network_address + subnet.num_addresses // 2
    return start, subnet.broadcast_address - 1


METADATA_CIDR = "169.254.169.254/32"  # Nova's metadata service, which cloud-init reads
DNS_PORT = 53


@dataclass(frozen=True)
class IngressRule:
    """One allowed flow through a security group (into it, or out of it for egress
    lists); everything else is denied."""

    port: int
    cidr: str
    why: str
    protocol: str = "tcp"


EgressRule = IngressRule


@dataclass(frozen=True)
class AppInstance:
    name: str
    address: str
    availability_zone: str


@dataclass(frozen=True)
class DbMemberLayout:
    name: str  # Patroni member name, unique across centers
    address: str
    intended_role: DbReplication
    availability_zone: str  # Nova's
    image: str
    volume_zone: str | None  # Cinder's; None: Cinder's default zone


@dataclass
class SystemLayout:
    system: System
    tier: Tier
    department: str
    app_placement: AppPlacement
    app_subnet: IPv4Network | None
    db_subnet: IPv4Network | None
    app_instances: list[AppInstance] = field(default_factory=list)
    db_member: DbMemberLayout | None = None
    lb_vip: str | None = None
    app_rules: list[IngressRule] = field(default_factory=list)
    entry_ports: dict[int, list[str]] = field(default_factory=dict)  # listener port → allowed CIDRs
    db_rules: list[IngressRule] = field(default_factory=list)
    app_egress: list[EgressRule] = field(default_factory=list)
    db_egress: list[EgressRule] = field(default_factory=list)
    backup_container: str | None = None
    dns_records: dict[str, list[str]] = field(default_factory=dict)  # FQDN → addresses

    @property
    def name(self) -> str:
        return self.system.name


@dataclass
class DepartmentLayout:
    department: Department
    systems: list[SystemLayout] = field(default_factory=list)
    # What every VM of the department here may send whatever it runs (one shared group).
    baseline_egress: list[EgressRule] = field(default_factory=list)


@dataclass
class StackLayout:
    stack: str
    cloud: Cloud
    center_name: str
    center: Center
    departments: list[DepartmentLayout]

    @property
    def systems(self) -> list[SystemLayout]:
        return [s for d in self.departments for s in d.systems]

    @property
    def owns_identity(self) -> bool:
        """Keystone serves every region of a cloud: one stack per cloud (its main
        center's) creates the departments' projects; the others look them up."""
        return self.center.role == CenterRole.main


def is_placed(tier: Tier, system: System, role: CenterRole) -> bool:
    return (tier.placement.app_role(role) != AppPlacement.none
            or (system.database is not None and tier.placement.db_role(role) != DbReplication.none))


def member_name(system: str, center: str) -> str:
    return f"{system}-db-{center}"


def _center_of_role(cloud: Cloud, role: CenterRole) -> str | None:
    found = cloud.center_by_role(role)
    return found[0] if found else None


def _subnet(ipam: IpamPlan, cloud: Cloud, center: str, system: System, network: str) -> IPv4Network:
    return ipam.subnet(cloud.name, center, system.department, system.name, network)


class _Planner:
    def __init__(self, topology: Topology, ipam: IpamPlan, cloud: Cloud, center_name: str):
        self.topology = topology
        self.ipam = ipam
        self.cloud = cloud
        self.center_name = center_name
        self.center = cloud.centers[center_name]
        # Who calls whom, indexed once: a stack's layout asks it for every system.
        self.flows_from: dict[str, list] = {}
        for other in sorted(topology.systems_in_cloud(cloud.name), key=lambda s: s.name):
            for flow in other.flows:
                self.flows_from.setdefault(flow.source, []).append((other, flow))

    def placed_centers(self, system: System) -> dict[str, CenterRole]:
        tier = self.topology.tiers[system.tier]
        return {name: c.role for name, c in self.cloud.centers.items()
                if is_placed(tier, system, c.role)}

    def app_subnets(self, system: System) -> list[tuple[str, IPv4Network]]:
        tier = self.topology.tiers[system.tier]
        return [(name, _subnet(self.ipam, self.cloud, name, system, "app"))
                for name, role in sorted(self.placed_centers(system).items())
                if tier.placement.app_role(role) != AppPlacement.none]

    def db_peers(self, system: System) -> list[tuple[str, IPv4Network]]:
        tier = self.topology.tiers[system.tier]
        if system.database is None:
            return []
        return [(name, _subnet(self.ipam, self.cloud, name, system, "db"))
                for name, role in sorted(self.placed_centers(system).items())
                if name != self.center_name and tier.placement.db_role(role) != DbReplication.none]

    def source_cidrs(self, source: str) -> list[tuple[str, str]]:
        """CIDRs a declared flow source stands for, wherever in the cloud it runs."""
        if source == "external":
            return [("0.0.0.0/0", "government external network")]
        if source.startswith("department:"):
            # Every center's block: the DNS entry may send a client to either active center.
            dept = source.split(":", 1)[1]
            blocks = [(center, self.ipam.blocks.get(f"{self.cloud.name}/{center}/{dept}"))
                      for center in sorted(self.cloud.centers)]
            return [(str(b), f"department {dept} in {c}") for c, b in blocks if b is not None]
        other = self.topology.systems.get(source)
        if other is None or self.topology.departments[other.department].cloud != self.cloud.name:
            return []
        return [(str(net), f"system {source} app tier in {center}")
                for center, net in self.app_subnets(other)]

    def app_rules(self, system: System, app_subnet: IPv4Network) -> list[IngressRule]:
        """Instances take traffic only from their own subnet, where the load balancer's
        amphorae sit: declared flows are enforced at the entry (`entry_ports`)."""
        return [IngressRule(system.app.port, str(app_subnet),
                            "load balancer and health monitor (amphorae in the app subnet)")]

    def entry_ports(self, system: System, app_subnet: IPv4Network) -> dict[int, list[str]]:
        """Listener ports of the entry and who may use each: the declared flows only."""
        ports: dict[int, set[str]] = {}
        for flow in system.flows:
            for cidr, _ in self.source_cidrs(flow.source):
                for port in flow.ports:
                    ports.setdefault(port, set()).add(cidr)
        if not ports:
            # Octavia reads an empty allow-list as "everyone": close it to the own subnet.
            ports[system.app.port] = {str(app_subnet)}
        return {port: sorted(cidrs) for port, cidrs in sorted(ports.items())}

    def db_clients(self, system: System) -> list[tuple[str, IPv4Network]]:
        """App subnets that may open database sessions here: the active centers' (they
        write to the primary wherever it runs) and this center's own pilot light."""
        tier = self.topology.tiers[system.tier]
        roles = {name: c.role for name, c in self.cloud.centers.items()}
        return [(center, net) for center, net in self.app_subnets(system)
                if center == self.center_name
                or tier.placement.app_role(roles[center]) == AppPlacement.active]

    def db_rules(self, system: System) -> list[IngressRule]:
        rules = [IngressRule(POSTGRES_PORT, str(net), f"own app tier in {center}")
                 for center, net in self.db_clients(system)]
        for center, net in self.db_peers(system):
            rules.append(IngressRule(POSTGRES_PORT, str(net), f"replication peer in {center}"))
            rules.append(IngressRule(PATRONI_API_PORT, str(net), f"Patroni peer in {center}"))
        return _unique(rules)

    def db_image(self, system: System) -> str:
        assert system.database is not None
        image = system.database.image or self.cloud.database_image
        if image is None:
            raise LayoutError(f"system {system.name} has a database but no image for it: set "
                              f"database.image in its file or database_image in cloud "
                              f"{self.cloud.name} (an image with PostgreSQL and Patroni)")
        if image not in self.cloud.images:
            raise LayoutError(f"database image '{image}' of system {system.name} is not among "
                              f"the images of cloud {self.cloud.name}: add it to images")
        return image

    def volume_zone(self, index: int) -> str | None:
        zones = self.center.volume_availability_zones
        return zones[index % len(zones)] if zones else None

    def baseline_egress(self, department: str) -> list[EgressRule]:
        """What every VM needs whatever it runs: DNS from its subnet's DHCP ports (all
        inside the department's block here) and the metadata service cloud-init reads."""
        rules = [EgressRule(80, METADATA_CIDR, "metadata service (cloud-init)")]
        block = self.ipam.blocks.get(f"{self.cloud.name}/{self.center_name}/{department}")
        if block is not None:
            rules.insert(0, EgressRule(DNS_PORT, str(block), "DNS (Neutron DHCP ports)", "udp"))
        return rules

    def db_subnets(self, system: System) -> list[tuple[str, IPv4Network]]:
        tier = self.topology.tiers[system.tier]
        if system.database is None:
            return []
        return [(name, _subnet(self.ipam, self.cloud, name, system, "db"))
                for name, role in sorted(self.placed_centers(system).items())
                if tier.placement.db_role(role) != DbReplication.none]

    def app_egress(self, system: System) -> list[EgressRule]:
        """The app tier reaches its own database wherever the primary runs, and the
        entries of the systems whose flows name it as source: nothing else."""
        rules = [EgressRule(POSTGRES_PORT, str(net), f"own database in {center}")
                  for center, net in self.db_subnets(system)]
        for other, flow in self.flows_from.get(system.name, []):
            for vip in self.active_vips(other):
                rules += [EgressRule(port, f"{vip}/32", f"entry of {other.name}")
                          for port in flow.ports]
        return _unique(rules)

    def db_egress(self, system: System) -> list[EgressRule]:
        rules: list[EgressRule] = []
        for center, net in self.db_peers(system):
            rules.append(EgressRule(POSTGRES_PORT, str(net), f"replication peer in {center}"))
            rules.append(EgressRule(PATRONI_API_PORT, str(net), f"Patroni peer in {center}"))
        return _unique(rules)

    def system_layout(self, system: System) -> SystemLayout:
        tier = self.topology.tiers[system.tier]
        role = self.center.role
        app_placement = tier.placement.app_role(role)
        db_role = tier.placement.db_role(role) if system.database else DbReplication.none
        zones = self.center.availability_zones
        app_subnet = (_subnet(self.ipam, self.cloud, self.center_name, system, "app")
                      if app_placement != AppPlacement.none else None)
        db_subnet = (_subnet(self.ipam, self.cloud, self.center_name, system, "db")
                     if db_role != DbReplication.none else None)
        layout = SystemLayout(system=system, tier=tier, department=system.department,
                              app_placement=app_placement, app_subnet=app_subnet,
                              db_subnet=db_subnet)
        if app_subnet is not None:
            count = system.app.instances.get(role, 0)
            layout.app_instances = [
                AppInstance(f"{system.name}-app-{self.center_name}-{i + 1}",
                            str(host(app_subnet, FIRST_HOST_OFFSET + i)), zones[i % len(zones)])
                for i in range(count)]
            layout.app_rules = self.app_rules(system, app_subnet)
            if app_placement == AppPlacement.active:
                layout.lb_vip = str(host(app_subnet, LB_VIP_OFFSET))
                layout.entry_ports = self.entry_ports(system, app_subnet)
            layout.app_egress = self.app_egress(system)
        if db_subnet is not None:
            layout.db_member = DbMemberLayout(member_name(system.name, self.center_name),
                                              str(host(db_subnet, DB_MEMBER_OFFSET)), db_role,
                                              zones[0], self.db_image(system),
                                              self.volume_zone(0))
            layout.db_rules = self.db_rules(system)
            layout.db_egress = self.db_egress(system)
        if system.bucket is not None and role == CenterRole.remote:
            layout.backup_container = backup_bucket(self.cloud.name, system.name)
        if self.cloud.dns_zone and role == CenterRole.main and layout.lb_vip:
            layout.dns_records[f"{system.name}.{self.cloud.dns_zone}"] = self.active_vips(system)
        return layout

    def active_vips(self, system: System) -> list[str]:
        """Every active center's entry address: the record spreads clients over both."""
        tier = self.topology.tiers[system.tier]
        return [str(host(_subnet(self.ipam, self.cloud, name, system, "app"), LB_VIP_OFFSET))
                for name, c in sorted(self.cloud.centers.items())
                if tier.placement.app_role(c.role) == AppPlacement.active]


def _unique(rules: list[IngressRule]) -> list[IngressRule]:
    seen: dict[tuple[int, str, str], IngressRule] = {}
    for rule in rules:
        seen.setdefault((rule.port, rule.cidr, rule.protocol), rule)
    return list(seen.values())


def stack_layout(topology: Topology, ipam: IpamPlan, stack: str) -> StackLayout:
    """Departments and systems this stack creates, in a stable order."""
    cloud, center_name, center = split_stack(topology, stack)
    planner = _Planner(topology, ipam, cloud, center_name)
    by_department: dict[str, DepartmentLayout] = {}
    for dept in sorted(topology.departments.values(), key=lambda d: d.id):
        if dept.cloud == cloud.name and center.role in dept.quotas:
            by_department[dept.id] = DepartmentLayout(dept)
    for system in sorted(topology.systems_in_cloud(cloud.name), key=lambda s: s.name):
        if not is_placed(topology.tiers[system.tier], system, center.role):
            continue
        dept = topology.departments[system.department]
        entry = by_department.setdefault(dept.id, DepartmentLayout(dept))
        entry.systems.append(planner.system_layout(system))
    departments = [by_department[k] for k in sorted(by_department)]
    for entry in departments:
        entry.baseline_egress = planner.baseline_egress(entry.department.id)
    return StackLayout(stack, cloud, center_name, center, departments)
