"""One system in one center: its networks, router, security groups, VMs, entry and backups."""
from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Network

import pulumi

from inventory.model import AppPlacement, Cloud, DbReplication
from stacks import resources as R
from stacks.layout import (PATRONI_API_PORT, POSTGRES_PORT, IngressRule, SystemLayout,
                           dhcp_pool)
from stacks.resources import register

COMPONENT_TYPE = "tricenter:index:SystemCenter"


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


class SystemCenter(pulumi.ComponentResource):
    def __init__(self, layout: SystemLayout, services: CenterServices,
                 passwords: pulumi.Output[dict[str, str]] | None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, f"{layout.name}-{services.center_name}", None, opts)
        self.layout = layout
        self.services = services
        self.prefix = f"{layout.name}-{services.center_name}"
        self._child = pulumi.ResourceOptions(parent=self)
        router = register(R.ROUTER, f"{self.prefix}-router", name=self.prefix,
                          external_network_id=services.external_network_id, opts=self._child)
        if layout.app_subnet is not None:
            app_net, app_subnet = self._network("app", layout.app_subnet, router)
            app_sg = self._security_group("app", layout.app_rules)
            self._app_tier(app_net, app_subnet, app_sg)
        if layout.db_subnet is not None and layout.db_member is not None:
            db_net, _ = self._network("db", layout.db_subnet, router)
            db_sg = self._security_group("db", layout.db_rules)
            self._db_member(db_net, db_sg, passwords)
        if layout.backup_container:
            register(R.CONTAINER, f"{self.prefix}-backup", name=layout.backup_container,
                     versioning=layout.system.bucket.versioning if layout.system.bucket else True,
                     metadata={"tricenter-system": layout.name, "purpose": "pgbackrest"},
                     opts=self._child)
        for fqdn, addresses in layout.dns_records.items():
            register(R.RECORD_SET, f"{self.prefix}-dns", zone_id=services.dns_zone_id, name=fqdn,
                     type="A", ttl=30, records=addresses, opts=self._child)
        self.register_outputs({})

    def _network(self, tier: str, cidr: IPv4Network, router: pulumi.CustomResource
                 ) -> tuple[pulumi.CustomResource, pulumi.CustomResource]:
        name = f"{self.prefix}-{tier}"
        net = register(R.NETWORK, f"{name}-net", name=name, admin_state_up=True, opts=self._child)
        start, end = dhcp_pool(cidr)
        subnet = register(R.SUBNET, f"{name}-subnet", name=name, network_id=net.id,
                          cidr=str(cidr), ip_version=4,
                          allocation_pools=[{"start": str(start), "end": str(end)}],
                          opts=self._child)
        register(R.ROUTER_INTERFACE, f"{name}-ri", router_id=router.id, subnet_id=subnet.id,
                 opts=self._child)
        return net, subnet

    def _security_group(self, tier: str, rules: list[IngressRule]) -> pulumi.CustomResource:
        """Deny by default: a new Neutron group has no ingress rule (only the project's
        `default` group admits its own members), so only `rules` let traffic in. Its two
        default egress rules are kept: members reach the cloud's services and peers."""
        group = register(R.SEC_GROUP, f"{self.prefix}-{tier}-sg", name=f"{self.prefix}-{tier}",
                         description=f"{self.layout.name} {tier} tier: declared flows only",
                         opts=self._child)
        for rule in rules:
            register(R.SEC_GROUP_RULE,
                     f"{self.prefix}-{tier}-in-{rule.port}-{rule.cidr.replace('/', '_')}",
                     security_group_id=group.id, direction="ingress", ethertype="IPv4",
                     protocol="tcp", port_range_min=rule.port, port_range_max=rule.port,
                     remote_ip_prefix=rule.cidr, description=rule.why, opts=self._child)
        return group

    def _app_tier(self, net: pulumi.CustomResource, subnet: pulumi.CustomResource,
                  sg: pulumi.CustomResource) -> None:
        layout, s = self.layout, self.services
        app = layout.system.app
        if not layout.app_instances:
            return
        group = register(R.SERVER_GROUP, f"{self.prefix}-app-anti-affinity",
                         name=f"{self.prefix}-app", policies="anti-affinity", opts=self._child)
        flavor = s.cloud.flavors[app.flavor]
        for vm in layout.app_instances:
            devices = [{"uuid": s.image_ids[app.image], "source_type": "image",
                        "destination_type": "volume", "boot_index": 0,
                        "volume_size": flavor.disk_gib, "delete_on_termination": True}]
            if app.volume_gib:
                # The app tier is stateless: its data disk lives and dies with the VM.
                devices.append({"source_type": "blank", "destination_type": "volume",
                                "boot_index": -1, "volume_size": app.volume_gib,
                                "delete_on_termination": True})
            register(R.INSTANCE, vm.name, name=vm.name, flavor_name=app.flavor,
                     availability_zone=vm.availability_zone, block_devices=devices,
                     networks=[{"uuid": net.id, "fixed_ip_v4": vm.address}],
                     security_groups=[sg.name], scheduler_hints=[{"group": group.id}],
                     key_pair=s.key_pair,
                     metadata={"tricenter-system": layout.name, "tricenter-role": "app",
                               "tricenter-placement": layout.app_placement.value},
                     opts=self._child)
        if layout.app_placement == AppPlacement.active and layout.lb_vip:
            self._entry(subnet, [vm.address for vm in layout.app_instances])

    def _entry(self, subnet: pulumi.CustomResource, backends: list[str]) -> None:
        """The center's half of the active-active entry: Octavia in front of the app tier,
        one listener per declared service port, open only to that port's flow sources."""
        layout = self.layout
        port = layout.system.app.port
        lb = register(R.LOAD_BALANCER, f"{self.prefix}-lb", name=self.prefix,
                      vip_subnet_id=subnet.id, vip_address=layout.lb_vip, opts=self._child)
        for listen, allowed in layout.entry_ports.items():
            name = f"{self.prefix}-{listen}"
            listener = register(R.LISTENER, f"{name}-listener", loadbalancer_id=lb.id,
                                protocol="TCP", protocol_port=listen, allowed_cidrs=allowed,
                                opts=self._child)
            pool = register(R.POOL, f"{name}-pool", listener_id=listener.id, protocol="TCP",
                            lb_method="LEAST_CONNECTIONS", opts=self._child)
            register(R.MONITOR, f"{name}-monitor", pool_id=pool.id, type="TCP", delay=5,
                     timeout=3, max_retries=2, opts=self._child)
            register(R.MEMBERS, f"{name}-members", pool_id=pool.id,
                     members=[{"address": a, "protocol_port": port, "subnet_id": subnet.id}
                              for a in backends], opts=self._child)

    def _db_member(self, net: pulumi.CustomResource, sg: pulumi.CustomResource,
                   passwords: pulumi.Output[dict[str, str]] | None) -> None:
        layout, s = self.layout, self.services
        db, member = layout.system.database, layout.db_member
        # Data outlives the VM: a separate volume survives instance replacement.
        volume = register(R.VOLUME, f"{member.name}-data", name=f"{member.name}-data",
                          size=db.size_gib, availability_zone=member.availability_zone,
                          opts=self._child)
        flavor = s.cloud.flavors[db.flavor]
        boot = {"uuid": s.image_ids[layout.system.app.image], "source_type": "image",
                "destination_type": "volume", "boot_index": 0, "volume_size": flavor.disk_gib,
                "delete_on_termination": True}
        instance = register(
            R.INSTANCE, member.name, name=member.name, flavor_name=db.flavor,
            availability_zone=member.availability_zone, block_devices=[boot],
            # A database port is bound to the private db network only: no floating IP, ever.
            networks=[{"uuid": net.id, "fixed_ip_v4": member.address}],
            security_groups=[sg.name], key_pair=s.key_pair,
            user_data=self._db_user_data(passwords),
            metadata={"tricenter-system": layout.name, "tricenter-role": "db",
                      "tricenter-intended-role": member.intended_role.value},
            opts=self._child)
        register(R.VOLUME_ATTACH, f"{member.name}-data-attach", instance_id=instance.id,
                 volume_id=volume.id, opts=self._child)

    def _db_user_data(self, passwords: pulumi.Output[dict[str, str]] | None
                      ) -> pulumi.Input[str]:
        layout = self.layout
        member = layout.db_member
        # The remote member must never be promoted by Patroni itself (FACTS: etcd quorum).
        tags = ({"nofailover": True, "nosync": True}
                if member.intended_role == DbReplication.async_ else {})
        settings = {"scope": layout.name, "name": member.name, "tags": tags,
                    "postgres_port": POSTGRES_PORT, "api_port": PATRONI_API_PORT}
        if passwords is None:
            return json.dumps({"patroni": settings})
        return pulumi.Output.secret(passwords.apply(
            lambda p: "#cloud-config\n" + json.dumps(
                {"write_files": [{"path": "/etc/tricenter/patroni.json", "permissions": "0600",
                                  "content": json.dumps({**settings, "passwords": p})}]})))
