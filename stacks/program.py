"""The Pulumi program of one stack (cloud-center): departments, then their systems."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_openstack as openstack

from inventory import ipam
from inventory.loader import DEFAULT_INVENTORY, Topology
from stacks import secrets
from stacks.auth import scoped_auth
from stacks.department import PROJECT_ROLE, DepartmentProject, Identity
from stacks.layout import EgressRule, StackLayout, stack_layout
from stacks.outputs import PASSWORDS_OUTPUT, RUNTIME_OUTPUT, runtime_output
from stacks.system import (LB_PROVIDER, CenterServices, SystemCenter, check_lb_provider,
                           security_group)

PROJECT = "tricenter"
CONFIG_NAMESPACE = "tricenter"


@dataclass(frozen=True)
class StackSettings:
    """Everything besides the inventory that a stack's config decides."""

    os_cloud: str | None = None  # entry of clouds.yaml; default: the cloud's name
    key_pair: str | None = None
    ssh_user: str = "cloud-user"
    secret_generation: int = 1
    secret_generations: dict[str, int] = field(default_factory=dict)  # per system
    project_role: str = PROJECT_ROLE
    adopt_projects: dict[str, str] = field(default_factory=dict)  # department → project id
    lb_provider: str = LB_PROVIDER
    backup_endpoints: tuple[str, ...] = ()  # "CIDR:PORT" of the object store's API
    planning: bool = False  # under `tricenter plan`: mocks, no real secret seed

    @classmethod
    def from_config(cls, config: pulumi.Config) -> "StackSettings":
        default, per_system = secrets.generations(config)
        return cls(os_cloud=config.get("osCloud"), key_pair=config.get("keyPair"),
                   ssh_user=config.get("sshUser") or "cloud-user",
                   secret_generation=default, secret_generations=per_system,
                   project_role=config.get("projectRole") or PROJECT_ROLE,
                   adopt_projects={str(k): str(v) for k, v in
                                   (config.get_object("adoptProjects") or {}).items()},
                   lb_provider=config.get("lbProvider") or LB_PROVIDER,
                   backup_endpoints=tuple(config.get_object("backupEndpoints") or ()))

    def generation_of(self, system: str) -> int:
        return self.secret_generations.get(system, self.secret_generation)


def inventory_dir(config: pulumi.Config) -> Path:
    configured = config.get("inventory")
    if not configured:
        return DEFAULT_INVENTORY
    path = Path(configured)
    # Relative to the project root (the folder holding Pulumi.yaml), like `pulumi` itself.
    return path if path.is_absolute() else Path(__file__).resolve().parent.parent / path


def backup_egress(endpoints: tuple[str, ...]) -> list[EgressRule]:
    rules = []
    for endpoint in endpoints:
        cidr, _, port = endpoint.rpartition(":")
        rules.append(EgressRule(int(port), cidr, "object store (pgBackRest backups)"))
    return rules


def images_of(layout: StackLayout) -> list[str]:
    app = {s.system.app.image for s in layout.systems if s.app_instances}
    db = {s.db_member.image for s in layout.systems if s.db_member is not None}
    return sorted(app | db)


def _services(layout: StackLayout, admin: openstack.Provider,
              settings: StackSettings) -> CenterServices:
    check_lb_provider(settings.lb_provider)
    invoke = pulumi.InvokeOutputOptions(provider=admin)
    region = layout.center.region
    ext = openstack.networking.get_network_output(name=layout.center.external_network,
                                                  external=True, region=region, opts=invoke)
    # By exact name, not the most recent upload: a new image must not replace running VMs.
    images = {image: openstack.images.get_image_output(name=image, region=region,
                                                       opts=invoke).id
              for image in images_of(layout)}
    zone_id = None
    if layout.cloud.dns_zone and any(s.dns_records for s in layout.systems):
        zone_id = openstack.dns.get_dns_zone_output(name=layout.cloud.dns_zone, region=region,
                                                    opts=invoke).id
    return CenterServices(cloud=layout.cloud, center_name=layout.center_name, region=region,
                          external_network_id=ext.id, image_ids=images, dns_zone_id=zone_id,
                          key_pair=settings.key_pair, lb_provider=settings.lb_provider,
                          backup_egress=backup_egress(settings.backup_endpoints))


def _identity(layout: StackLayout, admin: openstack.Provider, os_cloud: str,
              settings: StackSettings) -> Identity:
    auth = scoped_auth(os_cloud, settings.planning)
    if not layout.owns_identity:
        return Identity(owner=False, admin=admin, auth=auth)
    invoke = pulumi.InvokeOutputOptions(provider=admin)
    user_id = openstack.identity.get_auth_scope_output(name="deployer", opts=invoke).user_id
    role_id = openstack.identity.get_role_output(name=settings.project_role, opts=invoke).id
    return Identity(owner=True, admin=admin, auth=auth, user_id=user_id, role_id=role_id,
                    adopt=settings.adopt_projects)


def build_stack(topology: Topology, stack: str, settings: StackSettings) -> StackLayout:
    """Register every resource of `stack`; return the layout it was built from."""
    plan = ipam.allocate(topology)
    layout = stack_layout(topology, plan, stack)
    os_cloud = settings.os_cloud or layout.cloud.name
    region = layout.center.region
    admin = openstack.Provider("admin", cloud=os_cloud, region=region)
    services = _services(layout, admin, settings)
    identity = _identity(layout, admin, os_cloud, settings)
    for dept in layout.departments:
        project = DepartmentProject(dept.department, layout.center.role.value, region, identity)
        opts = pulumi.ResourceOptions(parent=project, providers={"openstack": project.provider})
        baseline = security_group(
            f"{dept.department.id}-{layout.center_name}-baseline",
            "every VM of the department: DNS and metadata only", [], dept.baseline_egress,
            opts) if dept.systems else None
        for system in dept.systems:
            SystemCenter(system, services, baseline, opts=opts)
    pulumi.export(RUNTIME_OUTPUT, runtime_output(layout, settings.ssh_user))
    if layout.owns_identity:
        pulumi.export(PASSWORDS_OUTPUT, pulumi.Output.secret(_passwords(topology, layout,
                                                                        settings)))
    return layout


def _passwords(topology: Topology, layout: StackLayout,
               settings: StackSettings) -> dict[str, pulumi.Output]:
    """Every database system of the cloud, wherever its members run."""
    seed = secrets.seed_output(pulumi.Config(CONFIG_NAMESPACE), settings.planning)
    cloud = layout.cloud.name
    return {s.name: secrets.database_passwords(seed, settings.generation_of(s.name), cloud,
                                               s.name)
            for s in sorted(topology.systems_in_cloud(cloud), key=lambda s: s.name)
            if s.database is not None}
