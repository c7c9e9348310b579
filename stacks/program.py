"""The Pulumi program of one stack (cloud-center): departments, then their systems."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_openstack as openstack

from inventory import ipam
from inventory.loader import DEFAULT_INVENTORY, Topology
from stacks import secrets
from stacks.department import DepartmentProject
from stacks.layout import StackLayout, stack_layout
from stacks.outputs import PASSWORDS_OUTPUT, RUNTIME_OUTPUT, runtime_output
from stacks.system import CenterServices, SystemCenter

PROJECT = "tricenter"
CONFIG_NAMESPACE = "tricenter"


@dataclass(frozen=True)
class StackSettings:
    """Everything besides the inventory that a stack's config decides."""

    os_cloud: str | None = None  # entry of clouds.yaml; default: the cloud's name
    key_pair: str | None = None
    ssh_user: str = "cloud-user"
    secret_generation: int = 1
    planning: bool = False  # under `tricenter plan`: mocks, no real secret seed

    @classmethod
    def from_config(cls, config: pulumi.Config) -> "StackSettings":
        return cls(os_cloud=config.get("osCloud"), key_pair=config.get("keyPair"),
                   ssh_user=config.get("sshUser") or "cloud-user",
                   secret_generation=config.get_int(secrets.GENERATION_KEY) or 1)


def inventory_dir(config: pulumi.Config) -> Path:
    configured = config.get("inventory")
    if not configured:
        return DEFAULT_INVENTORY
    path = Path(configured)
    # Relative to the project root (the folder holding Pulumi.yaml), like `pulumi` itself.
    return path if path.is_absolute() else Path(__file__).resolve().parent.parent / path


def _services(layout: StackLayout, admin: openstack.Provider, key_pair: str | None) -> CenterServices:
    invoke = pulumi.InvokeOutputOptions(provider=admin)
    region = layout.center.region
    ext = openstack.networking.get_network_output(name=layout.center.external_network,
                                                  external=True, region=region, opts=invoke)
    images = {image: openstack.images.get_image_output(name=image, most_recent=True,
                                                       region=region, opts=invoke).id
              for image in sorted({s.system.app.image for s in layout.systems})}
    zone_id = None
    if layout.cloud.dns_zone and any(s.dns_records for s in layout.systems):
        zone_id = openstack.dns.get_dns_zone_output(name=layout.cloud.dns_zone, region=region,
                                                    opts=invoke).id
    return CenterServices(cloud=layout.cloud, center_name=layout.center_name, region=region,
                          external_network_id=ext.id, image_ids=images, dns_zone_id=zone_id,
                          key_pair=key_pair)


def build_stack(topology: Topology, stack: str, settings: StackSettings) -> StackLayout:
    """Register every resource of `stack`; return the layout it was built from."""
    plan = ipam.allocate(topology)
    layout = stack_layout(topology, plan, stack)
    os_cloud = settings.os_cloud or layout.cloud.name
    region = layout.center.region
    admin = openstack.Provider("admin", cloud=os_cloud, region=region)
    services = _services(layout, admin, settings.key_pair)
    seed = secrets.seed_output(pulumi.Config(CONFIG_NAMESPACE), settings.planning)
    passwords: dict[str, pulumi.Output] = {}
    for dept in layout.departments:
        project = DepartmentProject(dept.department, layout.center.role.value, region, admin,
                                    os_cloud)
        opts = pulumi.ResourceOptions(parent=project, providers={"openstack": project.provider})
        for system in dept.systems:
            pw = None
            if system.db_member is not None:
                pw = secrets.database_passwords(seed, settings.secret_generation,
                                                layout.cloud.name, system.name)
                passwords[system.name] = pw
            SystemCenter(system, services, pw, opts=opts)
    pulumi.export(RUNTIME_OUTPUT, runtime_output(layout, settings.ssh_user))
    pulumi.export(PASSWORDS_OUTPUT, pulumi.Output.secret(passwords))
    return layout
