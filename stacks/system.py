"""One system in one center: its networks, router, security groups, VMs, entry and backups."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Network

import pulumi
import pulumi_openstack as openstack

from inventory.model import AppPlacement, Cloud, DbReplication
from stacks.layout import (PATRONI_API_PORT, POSTGRES_PORT, EgressRule, IngressRule,
                           SystemLayout, dhcp_pool)

COMPONENT_TYPE = "tricenter:index:SystemCenter"
# Octavia providers differ: OVN balances by SOURCE_IP_PORT only and has no allowed_cidrs,
# which the entries need (they are the flows' allow-list). The amphora provider has both.
LB_PROVIDER = "amphora"
LB_METHOD = {"amphora": "LEAST_CONNECTIONS"}


class UnsupportedProvider(ValueError):
    """The Octavia provider cannot enforce what the entries need."""


def check_lb_provider(provider: str) -> None:
    if provider not in LB_METHOD:
        raise UnsupportedProvider(
            f"tricenter:lbProvider '{provider}' is not supported: the entries need listener "
            "allowed_cidrs (the flows' allow-lists) and a balancing method the provider has; "
            f"supported: {', '.join(sorted(LB_METHOD))}")
# Replacing a VM whose address is fixed must free the address first (Pulumi creates
# the replacement before deleting by default, and Neutron refuses a second port on it).
# A newer image of the same name is not a reason to replace a running VM: rebuilds are
# asked for explicitly (`pulumi up --replace URN`).
FIXED_ADDRESS = pulumi.ResourceOptions(delete_before_replace=True,
                                       ignore_changes=["blockDevices[0].uuid"])


@dataclass(frozen=True)
class CenterServices:
    """What every system in a stack shares: where it is, and looked-up cloud IDs.

    Resources carry no `region` of their own: the department's provider sets it once."""

    cloud: Cloud
    center_name: str
    region: str
    external_network_id: pulumi.Input[str]
    image_ids: dict[str, pulumi.Input[str]]
    dns_zone_id: pulumi.Input[str] | None
    key_pair: str | None
    lb_provider: str = LB_PROVIDER
    backup_egress: list[EgressRule] = field(default_factory=list)  # the object store's API


def security_group(name: str, description: str, ingress: list[IngressRule],
                   egress: list[EgressRule], opts: pulumi.ResourceOptions
                   ) -> openstack.networking.SecGroup:
    """Deny by default both ways: Neutron's allow-all egress rules are deleted, so only
    `ingress` lets traffic in and only `egress` lets it out (replies pass: the group is
    stateful)."""
    group = openstack.networking.SecGroup(f"{name}-sg", name=name, description=description,
                                          delete_default_rules=True, opts=opts)
    for direction, rules in (("ingress", ingress), ("egress", egress)):
        short = "in" if direction == "ingress" else "out"
        for rule in rules:
            suffix = "" if rule.protocol == "tcp" else f"-{rule.protocol}"
            openstack.networking.SecGroupRule(
                f"{name}-{short}-{rule.port}{suffix}-{rule.cidr.replace('/', '_')}",
                security_group_id=group.id, direction=direction, ethertype="IPv4",
                protocol=rule.protocol, port_range_min=rule.port, port_range_max=rule.port,
                remote_ip_prefix=rule.cidr, description=rule.why, opts=opts)
    return group


class SystemCenter(pulumi.ComponentResource):
    def __init__(self, layout: SystemLayout, services: CenterServices,
                 baseline: openstack.networking.SecGroup,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, f"{layout.name}-{services.center_name}", None, opts)
        self.layout = layout
        self.services = services
        self.prefix = f"{layout.name}-{services.center_name}"
        self.baseline = baseline
        self._child = pulumi.ResourceOptions(parent=self)
        router = openstack.networking.Router(
            f"{self.prefix}-router", name=self.prefix,
            external_network_id=services.external_network_id, opts=self._child)
        if layout.app_subnet is not None:
            app_net = self._network("app", layout.app_subnet, router)
            app_sg = self._security_group("app", layout.app_rules, layout.app_egress)
            self._app_tier(app_net, app_sg)
        if layout.db_subnet is not None and layout.db_member is not None:
            db_net = self._network("db", layout.db_subnet, router)
            db_sg = self._security_group("db", layout.db_rules,
                                         layout.db_egress + services.backup_egress)
            self._db_member(db_net, db_sg)
        if layout.backup_container:
            openstack.objectstorage.Container(
                f"{self.prefix}-backup", name=layout.backup_container,
                versioning=layout.system.bucket.versioning if layout.system.bucket else True,
                metadata={"tricenter-system": layout.name, "purpose": "pgbackrest"},
                opts=self._child.merge(pulumi.ResourceOptions(protect=True)))
        for fqdn, addresses in layout.dns_records.items():
            openstack.dns.RecordSet(f"{self.prefix}-dns", zone_id=services.dns_zone_id,
                                    name=fqdn, type="A", ttl=30, records=addresses,
                                    opts=self._child)
        self.register_outputs({})

    def _network(self, tier: str, cidr: IPv4Network, router: openstack.networking.Router
                 ) -> "Network":
        name = f"{self.prefix}-{tier}"
        net = openstack.networking.Network(f"{name}-net", name=name, admin_state_up=True,
                                           opts=self._child)
        start, end = dhcp_pool(cidr)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet", name=name, network_id=net.id, cidr=str(cidr), ip_version=4,
            allocation_pools=[{"start": str(start), "end": str(end)}], opts=self._child)
        interface = openstack.networking.RouterInterface(
            f"{name}-ri", router_id=router.id, subnet_id=subnet.id, opts=self._child)
        return Network(net, subnet, interface)

    def _security_group(self, tier: str, ingress: list[IngressRule],
                        egress: list[EgressRule]) -> openstack.networking.SecGroup:
        return security_group(f"{self.prefix}-{tier}",
                              f"{self.layout.name} {tier} tier: declared flows only",
                              ingress, egress, self._child)

    def _boot_options(self, network: "Network") -> pulumi.ResourceOptions:
        """A VM boots once its subnet is routed: cloud-init reaches the metadata service
        and the other centers from the first boot."""
        return pulumi.ResourceOptions.merge(self._child, FIXED_ADDRESS).merge(
            pulumi.ResourceOptions(depends_on=[network.subnet, network.router_interface]))

    def _app_tier(self, net: "Network", sg: openstack.networking.SecGroup) -> None:
        layout, s = self.layout, self.services
        app = layout.system.app
        if not layout.app_instances:
            return
        group = openstack.compute.ServerGroup(f"{self.prefix}-app-anti-affinity",
                                              name=f"{self.prefix}-app",
                                              policies="anti-affinity", opts=self._child)
        flavor = s.cloud.flavors[app.flavor]
        boot = self._boot_options(net)
        for vm in layout.app_instances:
            devices = [{"uuid": s.image_ids[app.image], "source_type": "image",
                        "destination_type": "volume", "boot_index": 0,
                        "volume_size": flavor.disk_gib, "delete_on_termination": True}]
            if app.volume_gib:
                # The app tier is stateless: its data disk lives and dies with the VM.
                devices.append({"source_type": "blank", "destination_type": "volume",
                                "boot_index": -1, "volume_size": app.volume_gib,
                                "delete_on_termination": True})
            openstack.compute.Instance(
                vm.name, name=vm.name, flavor_name=app.flavor,
                availability_zone=vm.availability_zone, block_devices=devices,
                networks=[{"uuid": net.network.id, "fixed_ip_v4": vm.address}],
                security_groups=[sg.name, self.baseline.name],
                scheduler_hints=[{"group": group.id}],
                key_pair=s.key_pair,
                metadata={"tricenter-system": layout.name, "tricenter-role": "app",
                          "tricenter-placement": layout.app_placement.value},
                opts=boot)
        if layout.app_placement == AppPlacement.active and layout.lb_vip:
            self._entry(net.subnet, [vm.address for vm in layout.app_instances])

    def _entry(self, subnet: openstack.networking.Subnet, backends: list[str]) -> None:
        """The center's half of the active-active entry: Octavia in front of the app tier,
        one listener per declared service port, open only to that port's flow sources."""
        layout, s = self.layout, self.services
        port = layout.system.app.port
        lb = openstack.loadbalancer.LoadBalancer(
            f"{self.prefix}-lb", name=self.prefix, vip_subnet_id=subnet.id,
            vip_address=layout.lb_vip, loadbalancer_provider=s.lb_provider,
            opts=self._child.merge(pulumi.ResourceOptions(delete_before_replace=True)))
        for listen, allowed in layout.entry_ports.items():
            name = f"{self.prefix}-{listen}"
            listener = openstack.loadbalancer.Listener(
                f"{name}-listener", loadbalancer_id=lb.id, protocol="TCP", protocol_port=listen,
                allowed_cidrs=allowed, opts=self._child)
            pool = openstack.loadbalancer.Pool(
                f"{name}-pool", listener_id=listener.id, protocol="TCP",
                lb_method=LB_METHOD[s.lb_provider], opts=self._child)
            openstack.loadbalancer.Monitor(f"{name}-monitor", pool_id=pool.id, type="TCP",
                                           delay=5, timeout=3, max_retries=2, opts=self._child)
            openstack.loadbalancer.Members(
                f"{name}-members", pool_id=pool.id,
                members=[{"address": a, "protocol_port": port, "subnet_id": subnet.id}
                         for a in backends], opts=self._child)

    def _db_member(self, net: "Network", sg: openstack.networking.SecGroup) -> None:
        layout, s = self.layout, self.services
        db, member = layout.system.database, layout.db_member
        # Data outlives the VM: a separate, protected volume survives instance replacement.
        volume = openstack.blockstorage.Volume(
            f"{member.name}-data", name=f"{member.name}-data", size=db.size_gib,
            availability_zone=member.volume_zone,
            opts=self._child.merge(pulumi.ResourceOptions(protect=True)))
        flavor = s.cloud.flavors[db.flavor]
        boot = {"uuid": s.image_ids[member.image], "source_type": "image",
                "destination_type": "volume", "boot_index": 0, "volume_size": flavor.disk_gib,
                "delete_on_termination": True}
        # user_data is read once, at first boot, and only says who this member is: its
        # passwords reach it over SSH from the configuration plane, so rotating them
        # replaces nothing (see docs/operator.md).
        instance = openstack.compute.Instance(
            member.name, name=member.name, flavor_name=db.flavor,
            availability_zone=member.availability_zone, block_devices=[boot],
            # A database port is bound to the private db network only: no floating IP, ever.
            networks=[{"uuid": net.network.id, "fixed_ip_v4": member.address}],
            security_groups=[sg.name, self.baseline.name], key_pair=s.key_pair,
            user_data=self._db_user_data(),
            metadata={"tricenter-system": layout.name, "tricenter-role": "db",
                      "tricenter-intended-role": member.intended_role.value},
            opts=self._boot_options(net))
        openstack.compute.VolumeAttach(f"{member.name}-data-attach", instance_id=instance.id,
                                       volume_id=volume.id, opts=self._child)

    def _db_user_data(self) -> str:
        layout = self.layout
        member = layout.db_member
        # The remote member must never be promoted by Patroni itself (FACTS: etcd quorum).
        tags = ({"nofailover": True, "nosync": True}
                if member.intended_role == DbReplication.async_ else {})
        settings = {"scope": layout.name, "name": member.name, "tags": tags,
                    "postgres_port": POSTGRES_PORT, "api_port": PATRONI_API_PORT}
        return "#cloud-config\n" + json.dumps({"write_files": [{
            "path": "/etc/tricenter/member.json", "permissions": "0644",
            "content": json.dumps(settings, sort_keys=True)}]}, sort_keys=True)


@dataclass(frozen=True)
class Network:
    """One tier's network as the VMs on it need it: attached, addressed and routed."""

    network: openstack.networking.Network
    subnet: openstack.networking.Subnet
    router_interface: openstack.networking.RouterInterface
