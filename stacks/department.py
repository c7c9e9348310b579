"""A department (tenant) in one center: its project, quotas, and a provider scoped to it."""
from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from inventory.model import ZERO, Department, Resources
from stacks import resources as R
from stacks.resources import register

COMPONENT_TYPE = "tricenter:index:Department"
GIB_MB = 1024


def network_quota(quota: Resources) -> dict[str, int]:
    """Neutron limits sized from the instance quota, not from today's systems, so adding
    or removing a system never touches the department's quota resources."""
    n = max(quota.instances, 1)
    return {"network": 2 * n, "subnet": 2 * n, "router": n, "port": 4 * n + 20,
            "security_group": 2 * n + 1, "security_group_rule": 24 * n + 10, "floatingip": 0}


class DepartmentProject(pulumi.ComponentResource):
    """Identity project with compute, volume and network quotas for one center role.

    `provider` acts inside the project: resources of the department's systems are
    created with it, so they belong to the project and count against its quotas."""

    def __init__(self, department: Department, center_role: str, region: str,
                 admin: openstack.Provider, os_cloud: str,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, department.id, None, opts)
        quota = department.quotas.get(center_role, ZERO)
        child = pulumi.ResourceOptions(parent=self, provider=admin)
        self.project = register(
            R.PROJECT, f"{department.id}-project", name=department.id,
            description=f"{department.name_zh} {department.name_en}",
            tags=["tricenter", f"role:{center_role}"], opts=child)
        register(
            R.COMPUTE_QUOTA, f"{department.id}-compute-quota", project_id=self.project.id,
            instances=quota.instances, cores=quota.vcpus, ram=quota.ram_gib * GIB_MB,
            server_groups=max(quota.instances, 1), server_group_members=max(quota.instances, 1),
            opts=child)
        register(
            R.VOLUME_QUOTA, f"{department.id}-volume-quota", project_id=self.project.id,
            gigabytes=quota.storage_gib, volumes=2 * quota.instances, opts=child)
        register(
            R.NETWORK_QUOTA, f"{department.id}-network-quota", project_id=self.project.id,
            **network_quota(quota), opts=child)
        self.provider = openstack.Provider(
            f"{department.id}-scoped", cloud=os_cloud, region=region,
            tenant_id=self.project.id, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"project_id": self.project.id})
