"""A department (tenant) in one center: its project, quotas, and a provider scoped to it."""
from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

from inventory.model import ZERO, Department, Resources
from stacks.auth import ScopedAuth

COMPONENT_TYPE = "tricenter:index:Department"
GIB_MB = 1024
PROJECT_ROLE = "member"


def network_quota(quota: Resources) -> dict[str, int]:
    """Neutron limits sized from the instance quota, not from today's systems, so adding
    or removing a system never touches the department's quota resources."""
    n = max(quota.instances, 1)
    # Every group carries ingress and egress rules since the default egress is deleted.
    return {"network": 2 * n, "subnet": 2 * n, "router": n, "port": 4 * n + 20,
            "security_group": 2 * n + 1, "security_group_rule": 48 * n + 10, "floatingip": 0}


@dataclass(frozen=True)
class Identity:
    """How this stack reaches the departments' projects.

    Only the cloud's identity stack creates projects (Keystone is one per cloud); it also
    gives the deploying user `role` in each, so the scoped providers' tokens are accepted.
    `adopt` maps department → id of a project that already exists, imported instead."""

    owner: bool
    admin: openstack.Provider
    auth: ScopedAuth
    user_id: pulumi.Input[str] | None = None
    role_id: pulumi.Input[str] | None = None
    adopt: dict[str, str] = field(default_factory=dict)


class DepartmentProject(pulumi.ComponentResource):
    """Identity project with compute, volume and network quotas for one center role.

    `provider` acts inside the project: resources of the department's systems are
    created with it, so they belong to the project and count against its quotas."""

    def __init__(self, department: Department, center_role: str, region: str,
                 identity: Identity, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, department.id, None, opts)
        quota = department.quotas.get(center_role, ZERO)
        child = pulumi.ResourceOptions(parent=self, provider=identity.admin)
        project_id, ready = self._project(department, center_role, identity, child)
        openstack.compute.QuotaSetV2(
            f"{department.id}-compute-quota", project_id=project_id,
            instances=quota.instances, cores=quota.vcpus, ram=quota.ram_gib * GIB_MB,
            server_groups=max(quota.instances, 1), server_group_members=max(quota.instances, 1),
            opts=child)
        openstack.blockstorage.QuoteSetV3(
            f"{department.id}-volume-quota", project_id=project_id,
            gigabytes=quota.storage_gib, volumes=2 * quota.instances, opts=child)
        openstack.networking.QuotaV2(f"{department.id}-network-quota", project_id=project_id,
                                     **network_quota(quota), opts=child)
        self.project_id = project_id
        self.provider = openstack.Provider(
            f"{department.id}-scoped", region=region, **identity.auth.provider_args(project_id),
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready))
        self.register_outputs({"project_id": project_id})

    def _project(self, department: Department, center_role: str, identity: Identity,
                 child: pulumi.ResourceOptions) -> tuple[pulumi.Output[str], list]:
        if not identity.owner:
            found = openstack.identity.get_project_output(
                name=department.id, opts=pulumi.InvokeOutputOptions(provider=identity.admin))
            return found.id, []
        adopted = identity.adopt.get(department.id)
        # A project holds everything of the department: never deleted by a stack change.
        options = child.merge(pulumi.ResourceOptions(protect=True, import_=adopted))
        project = openstack.identity.Project(
            f"{department.id}-project", name=department.id,
            description=f"{department.name_zh} {department.name_en}",
            tags=["tricenter"], opts=options)
        assignment = openstack.identity.RoleAssignment(
            f"{department.id}-deployer", project_id=project.id, user_id=identity.user_id,
            role_id=identity.role_id, opts=child)
        return project.id, [assignment]
