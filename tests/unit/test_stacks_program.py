"""What the Pulumi program promises, checked on every resource it registers under mocks,
over the sample inventory and a generated one."""
from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest

from inventory import ipam
from inventory.model import AppPlacement, DbReplication
from stacks import secrets
from stacks.layout import PATRONI_API_PORT, POSTGRES_PORT, split_stack
from stacks.plan import SECRET_MASK
from stacks_helpers import (FLOATING_IP_TYPES, INSTANCE, RULE, SEC_GROUP, SERVER_GROUP, by_urn,
                            generated, runs, sample)

INVENTORIES = ["sample", "generated"]


def topology_of(which: str):
    return sample() if which == "sample" else generated()


def instances(run, role: str | None = None):
    return [r for r in run.registrations if r.type == INSTANCE
            and (role is None or r.inputs["metadata"]["tricenter-role"] == role)]


def test_sample_plans_every_vm_of_the_inventory():
    total = sum(len(instances(run)) for run in runs("sample").values())
    assert total == 288


@pytest.mark.parametrize("which", INVENTORIES)
def test_every_app_instance_is_in_an_anti_affinity_group_of_its_system(which):
    for run in runs(which).values():
        groups = {f"{r.name}-id": r for r in run.registrations if r.type == SERVER_GROUP}
        for vm in instances(run, "app"):
            hints = vm.inputs["schedulerHints"]
            group = groups[hints[0]["group"]]
            assert group.inputs["policies"] == "anti-affinity"
            assert group.parent == vm.parent, f"{vm.name} grouped with another system's VMs"


@pytest.mark.parametrize("which", INVENTORIES)
def test_each_tier_placement_is_honoured_per_center(which):
    topology = topology_of(which)
    for stack, run in runs(which).items():
        cloud, center_name, center = split_stack(topology, stack)
        role = center.role
        apps: dict[str, int] = {}
        dbs: dict[str, str] = {}
        for vm in instances(run):
            meta = vm.inputs["metadata"]
            if meta["tricenter-role"] == "app":
                apps[meta["tricenter-system"]] = apps.get(meta["tricenter-system"], 0) + 1
            else:
                dbs[meta["tricenter-system"]] = meta["tricenter-intended-role"]
        lbs = {r.name.rsplit(f"-{center_name}-lb", 1)[0] for r in run.registrations
               if r.type == "openstack:loadbalancer/loadBalancer:LoadBalancer"}
        for system in topology.systems_in_cloud(cloud.name):
            placement = topology.tiers[system.tier].placement
            expected_apps = (system.app.instances.get(role, 0)
                             if placement.app_role(role) != AppPlacement.none else 0)
            assert apps.get(system.name, 0) == expected_apps, (stack, system.name)
            db_role = placement.db_role(role) if system.database else DbReplication.none
            assert dbs.get(system.name) == (None if db_role == DbReplication.none
                                            else db_role.value), (stack, system.name)
            active = placement.app_role(role) == AppPlacement.active and expected_apps > 0
            assert (system.name in lbs) == active, (stack, system.name)


def _db_groups(run) -> set[str]:
    return {f"{r.name}-id" for r in run.registrations
            if r.type == SEC_GROUP and r.name.endswith("-db-sg")}


@pytest.mark.parametrize("which", INVENTORIES)
def test_database_ports_open_only_to_own_app_tier_and_replication_peers(which):
    topology = topology_of(which)
    plan = ipam.allocate(topology)
    for stack, run in runs(which).items():
        cloud, center_name, _ = split_stack(topology, stack)
        db_groups = _db_groups(run)
        for rule in (r for r in run.registrations if r.type == RULE):
            port = rule.inputs.get("portRangeMin")
            if rule.inputs["securityGroupId"] not in db_groups or \
                    rule.inputs["direction"] != "ingress":
                continue
            assert port in (POSTGRES_PORT, PATRONI_API_PORT), rule.name
            source = IPv4Network(rule.inputs["remoteIpPrefix"])
            owner = rule.name.split(f"-{center_name}-db-in-")[0]
            sys_ = topology.systems[owner]
            allowed_app = {plan.subnet(cloud.name, c, sys_.department, sys_.name, "app")
                           for c in cloud.centers
                           if f"{cloud.name}/{c}/{sys_.department}/{sys_.name}" in plan.blocks}
            allowed_peer = {plan.subnet(cloud.name, c, sys_.department, sys_.name, "db")
                            for c in cloud.centers if c != center_name
                            and f"{cloud.name}/{c}/{sys_.department}/{sys_.name}" in plan.blocks}
            if port == PATRONI_API_PORT:
                assert source in allowed_peer, rule.name
            else:
                assert source in allowed_app | allowed_peer, rule.name
            assert source.prefixlen > 0, "a database port open to the world"


@pytest.mark.parametrize("which", INVENTORIES)
def test_no_database_has_a_public_address(which):
    for run in runs(which).values():
        assert not [r for r in run.registrations if r.type in FLOATING_IP_TYPES]
        db_networks = {f"{r.name}-id" for r in run.registrations
                       if r.type == "openstack:networking/network:Network" and r.name.endswith("-db-net")}
        for vm in instances(run, "db"):
            assert [n["uuid"] for n in vm.inputs["networks"]] and all(
                n["uuid"] in db_networks for n in vm.inputs["networks"]), vm.name


@pytest.mark.parametrize("which", INVENTORIES)
def test_no_cidr_overlaps_anywhere_in_a_cloud(which):
    topology = topology_of(which)
    per_cloud: dict[str, list[tuple[IPv4Network, str]]] = {}
    for stack, run in runs(which).items():
        cloud, _, _ = split_stack(topology, stack)
        for r in run.registrations:
            if r.type == "openstack:networking/subnet:Subnet":
                per_cloud.setdefault(cloud.name, []).append((IPv4Network(r.inputs["cidr"]), r.name))
    for subnets in per_cloud.values():
        subnets.sort(key=lambda s: s[0])
        for (a, name_a), (b, name_b) in zip(subnets, subnets[1:]):
            assert not a.overlaps(b), f"{name_a} {a} overlaps {name_b} {b}"


@pytest.mark.parametrize("which", INVENTORIES)
def test_no_secret_appears_in_plain_outputs(which):
    topology = topology_of(which)
    for stack, run in runs(which).items():
        cloud, _, _ = split_stack(topology, stack)
        # Only the cloud's identity stack holds the passwords, as a secret.
        assert run.outputs.get("database_passwords") == (
            SECRET_MASK if run.layout.owns_identity else None)
        plain = json.dumps(run.outputs)
        for system in topology.systems_in_cloud(cloud.name):
            for role in secrets.ROLES:
                password = secrets.derive(secrets.PLAN_ONLY_SEED, 1, cloud.name, system.name, role)
                assert password not in plain


def test_database_passwords_agree_across_the_centers_of_a_cloud():
    """One Patroni cluster spans three stacks: they derive the same passwords."""
    a = secrets.derive("seed", 1, "guangdong", "e-licence", "replication")
    assert a == secrets.derive("seed", 1, "guangdong", "e-licence", "replication")
    assert a != secrets.derive("seed", 2, "guangdong", "e-licence", "replication")
    assert a != secrets.derive("seed", 1, "guangdong", "data-sharing", "replication")


def test_fast_mock_runtime_registers_exactly_what_the_stock_runtime_does():
    from stacks.plan import run_program

    topology = sample()
    fast = run_program(topology, "guangdong-main", fast=True)
    stock = run_program(topology, "guangdong-main", fast=False)
    key = lambda r: r.urn  # noqa: E731 - order depends on the event loop's interleaving
    assert [(r.urn, r.inputs) for r in sorted(fast.registrations, key=key)] == \
        [(r.urn, r.inputs) for r in sorted(stock.registrations, key=key)]
    assert fast.outputs == stock.outputs
    assert by_urn(fast).keys() == by_urn(stock).keys()


@pytest.mark.parametrize("which", INVENTORIES)
def test_entries_admit_only_declared_flows_and_never_everyone_by_omission(which):
    topology = topology_of(which)
    for stack, run in runs(which).items():
        cloud, center_name, _ = split_stack(topology, stack)
        for listener in (r for r in run.registrations
                         if r.type == "openstack:loadbalancer/listener:Listener"):
            allowed = listener.inputs["allowedCidrs"]
            assert allowed, f"{listener.name}: an empty allow-list admits everyone"
            owner = next(s for s in run.layout.systems
                         if listener.name.startswith(f"{s.name}-{center_name}-"))
            port = listener.inputs["protocolPort"]
            declared = [f for f in owner.system.flows if port in f.ports]
            if declared:
                assert "0.0.0.0/0" not in allowed or any(f.source == "external" for f in declared)
            else:
                assert allowed == [str(owner.app_subnet)]


@pytest.mark.parametrize("which", INVENTORIES)
def test_app_instances_take_traffic_only_from_their_own_subnet(which):
    for run in runs(which).values():
        app_groups = {f"{r.name}-id": r.name for r in run.registrations
                      if r.type == SEC_GROUP and r.name.endswith("-app-sg")}
        subnets = {s.name: s.app_subnet for s in run.layout.systems}
        for rule in (r for r in run.registrations if r.type == RULE):
            if rule.inputs["securityGroupId"] in app_groups and \
                    rule.inputs["direction"] == "ingress":
                owner = rule.name.split("-app-in-")[0]
                system = next(s for s in run.layout.systems if owner.startswith(f"{s.name}-"))
                assert rule.inputs["remoteIpPrefix"] == str(subnets[system.name])


def test_every_provider_names_its_center_region():
    topology = sample()
    for stack, run in runs("sample").items():
        _, _, center = split_stack(topology, stack)
        providers = [r for r in run.registrations if r.type == "pulumi:providers:openstack"]
        assert providers and all(p.inputs.get("region") == center.region for p in providers)


# Identity and quotas: what only an administrator may create, for the department.
ADMIN_ONLY = ("openstack:identity/project:Project",
              "openstack:identity/roleAssignment:RoleAssignment",
              "openstack:compute/quotaSetV2:QuotaSetV2",
              "openstack:blockstorage/quoteSetV3:QuoteSetV3",
              "openstack:networking/quotaV2:QuotaV2")


@pytest.mark.parametrize("which", INVENTORIES)
def test_system_resources_are_created_inside_their_department_project(which):
    for run in runs(which).values():
        department_of = {r.urn: r.name for r in run.registrations
                         if r.type == "tricenter:index:Department"}
        system_parent = {r.urn: r.parent for r in run.registrations
                         if r.type == "tricenter:index:SystemCenter"}
        for r in run.registrations:
            if not r.custom or r.type.startswith("pulumi:providers:"):
                continue
            if r.parent in system_parent:
                dept = department_of[system_parent[r.parent]]
                assert f"::{dept}-scoped::" in r.provider, (r.name, r.provider)
            elif r.type in ADMIN_ONLY:
                assert "::admin::" in r.provider, (r.name, r.provider)
            else:  # the department's shared security group
                dept = department_of[r.parent]
                assert f"::{dept}-scoped::" in r.provider, (r.name, r.provider)
