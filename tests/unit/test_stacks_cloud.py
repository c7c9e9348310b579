"""What a real OpenStack needs of the program, checked on the recorded registrations:
project scoping, identity once per cloud, boot order, safe replacement, protected state,
secrets off user_data, deny-by-default both ways, and cloud names used where they belong."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from ipaddress import IPv4Network

import pulumi
import pulumi_openstack as openstack
import pytest

from inventory.loader import DEFAULT_INVENTORY
from inventory.model import CenterRole
from inventory.validate import load_valid_topology
from stacks import secrets
from stacks.layout import METADATA_CIDR, PATRONI_API_PORT, POSTGRES_PORT, split_stack
from stacks.plan import run_program
from stacks.program import StackSettings
from stacks_helpers import INSTANCE, RULE, SEC_GROUP, by_urn, generated, runs, sample

INVENTORIES = ["sample", "generated"]
PROVIDER = "pulumi:providers:openstack"
PROJECT = "openstack:identity/project:Project"
ROLE_ASSIGNMENT = "openstack:identity/roleAssignment:RoleAssignment"
VOLUME = "openstack:blockstorage/volume:Volume"
CONTAINER = "openstack:objectstorage/container:Container"
LOAD_BALANCER = "openstack:loadbalancer/loadBalancer:LoadBalancer"
POOL = "openstack:loadbalancer/pool:Pool"
SUBNET = "openstack:networking/subnet:Subnet"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"


def topology_of(which: str):
    return sample() if which == "sample" else generated()


def registrations(which: str, type_: str | None = None):
    return [r for run in runs(which).values() for r in run.registrations
            if type_ is None or r.type == type_]


# 1. Project scoping

@pytest.mark.parametrize("which", INVENTORIES)
def test_no_provider_mixes_a_clouds_yaml_entry_with_a_tenant(which):
    for provider in registrations(which, PROVIDER):
        inputs = provider.inputs
        assert not (inputs.get("cloud") and inputs.get("tenantId")), provider.name
        if provider.name.endswith("-scoped"):
            assert inputs.get("tenantId") and inputs.get("authUrl") and inputs.get("userName")


@pytest.mark.parametrize("which", INVENTORIES)
def test_each_project_gives_the_deploying_user_a_role_before_its_provider_is_used(which):
    for run in runs(which).values():
        projects = {f"{r.name}-id": r for r in run.registrations if r.type == PROJECT}
        assigned = Counter(r.inputs["projectId"] for r in run.registrations
                           if r.type == ROLE_ASSIGNMENT)
        assert set(assigned) == set(projects) and set(assigned.values()) <= {1}
        assignments = {r.urn for r in run.registrations if r.type == ROLE_ASSIGNMENT}
        for provider in (r for r in run.registrations if r.type == PROVIDER
                         and r.name.endswith("-scoped") and run.layout.owns_identity):
            assert set(provider.dependencies) & assignments, provider.name


# 2. Identity once per cloud

@pytest.mark.parametrize("which", INVENTORIES)
def test_each_department_project_is_created_by_exactly_one_stack_of_its_cloud(which):
    topology = topology_of(which)
    created = Counter()
    for stack, run in runs(which).items():
        cloud, _, _ = split_stack(topology, stack)
        for r in run.registrations:
            if r.type == PROJECT:
                created[(cloud.name, r.inputs["name"])] += 1
    expected = {(d.cloud, d.id) for d in topology.departments.values()
                if any(s.department == d.id for s in topology.systems.values())}
    assert set(created) >= expected
    assert set(created.values()) == {1}, [k for k, v in created.items() if v > 1]


def test_an_existing_department_project_is_imported_not_created():
    run = run_program(sample(), "guangdong-main",
                      settings=StackSettings(planning=True, adopt_projects={"gd-zsj": "abc123"}))
    project = next(r for r in run.registrations if r.type == PROJECT
                   and r.inputs["name"] == "gd-zsj")
    assert project.import_id == "abc123"


# 3. Boot order

@pytest.mark.parametrize("which", INVENTORIES)
def test_every_instance_waits_for_its_subnet_and_router_interface(which):
    for run in runs(which).values():
        regs = by_urn(run)
        network_of_subnet = {}
        for r in run.registrations:
            if r.type == SUBNET:
                network_of_subnet[r.urn] = r.inputs["networkId"]
        for vm in (r for r in run.registrations if r.type == INSTANCE):
            deps = [regs[d] for d in vm.dependencies if d in regs]
            subnets = [d for d in deps if d.type == SUBNET]
            assert subnets, f"{vm.name} may boot before its subnet exists"
            assert network_of_subnet[subnets[0].urn] == vm.inputs["networks"][0]["uuid"]
            assert any(d.type == ROUTER_INTERFACE for d in deps), vm.name


# 4. Replacement and protection

@pytest.mark.parametrize("which", INVENTORIES)
def test_resources_with_fixed_addresses_are_replaced_delete_first(which):
    for r in registrations(which):
        fixed = (r.type == INSTANCE and any(n.get("fixedIpV4") for n in r.inputs["networks"])
                 or r.type == LOAD_BALANCER and r.inputs.get("vipAddress"))
        if fixed:
            assert r.delete_before_replace, r.name
        if r.type == INSTANCE:
            assert "blockDevices[0].uuid" in r.ignore_changes, f"{r.name}: a new image replaces it"


@pytest.mark.parametrize("which", INVENTORIES)
def test_projects_database_volumes_and_buckets_are_protected(which):
    stateful = [r for r in registrations(which) if r.type in (PROJECT, VOLUME, CONTAINER)]
    assert stateful and all(r.protect for r in stateful), [r.name for r in stateful
                                                           if not r.protect]


def test_image_lookups_take_the_named_image_not_the_most_recent_upload(monkeypatch):
    asked = []
    real = openstack.images.get_image_output

    def recording(**kwargs):
        asked.append(kwargs)
        return real(**kwargs)
    monkeypatch.setattr(openstack.images, "get_image_output", recording)
    run_program(sample(), "guangdong-remote")
    assert asked and not any(a.get("most_recent") for a in asked)


# 5. Secrets

def _all_passwords(which: str) -> set[str]:
    topology = topology_of(which)
    return {secrets.derive(secrets.PLAN_ONLY_SEED, 1, s.department and
                           topology.departments[s.department].cloud, s.name, role)
            for s in topology.systems.values() for role in secrets.ROLES}


@pytest.mark.parametrize("which", INVENTORIES)
def test_no_secret_travels_in_user_data_or_any_input(which):
    passwords = _all_passwords(which)
    for r in registrations(which):
        text = json.dumps(r.inputs, default=str)
        assert not any(p in text for p in passwords), r.name
        if r.type == INSTANCE and "userData" in r.inputs:
            assert isinstance(r.inputs["userData"], str), f"{r.name}: user_data is a secret"


def test_rotating_one_systems_passwords_replaces_no_vm_and_changes_only_its_output():
    base = runs("sample")["guangdong-main"]
    rotated = run_program(sample(), "guangdong-main",
                          settings=StackSettings(planning=True,
                                                 secret_generations={"e-licence": 2}))
    assert {r.urn: r.digest() for r in base.registrations} == \
        {r.urn: r.digest() for r in rotated.registrations}
    assert secrets.derive("s", 2, "guangdong", "e-licence", "app") != \
        secrets.derive("s", 1, "guangdong", "e-licence", "app")
    assert StackSettings(secret_generations={"e-licence": 2}).generation_of("e-licence") == 2
    assert StackSettings(secret_generations={"e-licence": 2}).generation_of("other") == 1


@pytest.mark.parametrize("which", INVENTORIES)
def test_only_the_identity_stack_of_a_cloud_holds_its_passwords(which):
    topology = topology_of(which)
    holders = Counter()
    for stack, run in runs(which).items():
        cloud, _, center = split_stack(topology, stack)
        if "database_passwords" in run.outputs:
            holders[cloud.name] += 1
            assert center.role == CenterRole.main
    assert set(holders.values()) == {1}


# 6. Deny by default, both ways

def _allowed_egress(run, layout) -> set[tuple[int, str]]:
    allowed = {(rule.port, rule.cidr) for d in layout.departments for rule in d.baseline_egress}
    for s in layout.systems:
        for rule in s.app_egress + s.db_egress:
            allowed.add((rule.port, rule.cidr))
    return allowed


@pytest.mark.parametrize("which", INVENTORIES)
def test_security_groups_drop_neutrons_allow_all_egress(which):
    groups = registrations(which, SEC_GROUP)
    assert groups and all(g.inputs.get("deleteDefaultRules") is True for g in groups)


@pytest.mark.parametrize("which", INVENTORIES)
def test_egress_reaches_only_what_the_flows_need(which):
    topology = topology_of(which)
    for stack, run in runs(which).items():
        cloud, _, _ = split_stack(topology, stack)
        db_groups = {f"{r.name}-id" for r in run.registrations
                     if r.type == SEC_GROUP and r.name.endswith("-db-sg")}
        for rule in (r for r in run.registrations if r.type == RULE
                     and r.inputs["direction"] == "egress"):
            port, cidr = rule.inputs["portRangeMin"], rule.inputs["remoteIpPrefix"]
            assert IPv4Network(cidr).prefixlen >= 16, f"{rule.name}: egress to {cidr}"
            if rule.inputs["securityGroupId"] in db_groups:
                assert port in (POSTGRES_PORT, PATRONI_API_PORT), rule.name
            if port == 80:
                assert cidr == METADATA_CIDR, rule.name
        egress = {(r.inputs["portRangeMin"], r.inputs["remoteIpPrefix"])
                  for r in run.registrations
                  if r.type == RULE and r.inputs["direction"] == "egress"}
        assert egress == _allowed_egress(run, run.layout)


@pytest.mark.parametrize("which", INVENTORIES)
def test_every_vm_carries_its_departments_baseline_group_and_its_tiers(which):
    for run in runs(which).values():
        for vm in (r for r in run.registrations if r.type == INSTANCE):
            groups = vm.inputs["securityGroups"]
            assert len(groups) == 2 and groups[1].endswith("-baseline"), vm.name


def test_an_app_tier_reaches_the_entries_of_systems_that_declare_it_as_a_source():
    run = runs("sample")["guangdong-main"]
    callers = {f.source for s in sample().systems.values() for f in s.flows}
    layout = next(s for s in run.layout.systems if s.name in callers and s.app_egress)
    called = [r for r in layout.app_egress if r.why.startswith("entry of ")]
    assert called and all(r.cidr.endswith("/32") for r in called)


# 7. The generated classes

def test_every_resource_is_built_by_its_generated_class(monkeypatch):
    built: list[type] = []
    real = pulumi.CustomResource.__init__

    def recording(self, *args, **kwargs):
        built.append(type(self))
        real(self, *args, **kwargs)
    monkeypatch.setattr(pulumi.CustomResource, "__init__", recording)
    run_program(sample(), "guangdong-remote", fast=False)
    assert built and all(t.__module__.startswith("pulumi_openstack.") for t in built), \
        sorted({t.__name__ for t in built if not t.__module__.startswith("pulumi_openstack.")})


def test_a_required_input_left_none_is_refused():
    with pytest.raises(TypeError, match="role_id"):
        openstack.identity.RoleAssignment("x", project_id="p", user_id="u", role_id=None)


# 8. Names that belong to the right service

@pytest.mark.parametrize("which", INVENTORIES)
def test_database_vms_boot_the_database_image_and_volumes_skip_nova_zones(which):
    topology = topology_of(which)
    for stack, run in runs(which).items():
        cloud, _, center = split_stack(topology, stack)
        for vm in (r for r in run.registrations if r.type == INSTANCE
                   and r.inputs["metadata"]["tricenter-role"] == "db"):
            system = topology.systems[vm.inputs["metadata"]["tricenter-system"]]
            image = system.database.image or cloud.database_image
            assert vm.inputs["blockDevices"][0]["uuid"] == f"{image}-id", vm.name
        for volume in (r for r in run.registrations if r.type == VOLUME):
            assert volume.inputs.get("availabilityZone") not in center.availability_zones


def test_volumes_use_the_cinder_zones_the_center_names(tmp_path):
    inventory = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, inventory)
    cloud = inventory / "clouds" / "guangdong.yaml"
    cloud.write_text(cloud.read_text().replace(
        "availability_zones: [gz1-az1, gz1-az2]",
        "availability_zones: [gz1-az1, gz1-az2]\n    volume_availability_zones: [gz1-nova-vol]"))
    run = run_program(load_valid_topology(inventory), "guangdong-main")
    zones = {r.inputs.get("availabilityZone") for r in run.registrations if r.type == VOLUME}
    assert zones == {"gz1-nova-vol"}


@pytest.mark.parametrize("which", INVENTORIES)
def test_load_balancers_name_the_octavia_provider_their_features_need(which):
    for run in runs(which).values():
        for lb in (r for r in run.registrations if r.type == LOAD_BALANCER):
            assert lb.inputs.get("loadbalancerProvider") == "amphora", lb.name


def test_an_octavia_provider_without_allow_lists_is_refused():
    from stacks.system import UnsupportedProvider

    with pytest.raises(UnsupportedProvider, match="allowed_cidrs"):
        run_program(sample(), "guangdong-remote",
                    settings=StackSettings(planning=True, lb_provider="ovn"))


def _clouds_yaml(tmp_path, monkeypatch, auth: dict, auth_type: str | None = None) -> None:
    entry = {"auth": auth, "region_name": "gd-gz-1"}
    if auth_type:
        entry["auth_type"] = auth_type
    file = tmp_path / "clouds.yaml"
    file.write_text(json.dumps({"clouds": {"gd": entry}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(file))


def test_scoped_providers_log_in_with_the_entrys_password_into_the_project(tmp_path, monkeypatch):
    from stacks.auth import scoped_auth

    _clouds_yaml(tmp_path, monkeypatch, {"auth_url": "https://k:5000/v3", "username": "ops",
                                         "password": "pw", "user_domain_name": "gov",
                                         "project_name": "ops"})
    auth = scoped_auth("gd", planning=False)
    args = auth.provider_args("project-1")
    assert (args["auth_url"], args["user_name"], args["user_domain_name"], args["tenant_id"]) \
        == ("https://k:5000/v3", "ops", "gov", "project-1")
    assert "cloud" not in args and "pw" not in repr(auth)


@pytest.mark.parametrize("auth, auth_type, cloud, message", [
    ({"auth_url": "https://k", "application_credential_id": "a",
      "application_credential_secret": "s"}, "v3applicationcredential", "gd", "password"),
    ({"auth_url": "https://k", "username": "u", "password": "p"}, None, "nope", "osCloud"),
])
def test_credentials_that_cannot_enter_other_projects_are_refused(tmp_path, monkeypatch, auth,
                                                                  auth_type, cloud, message):
    from stacks.auth import CredentialsError, scoped_auth

    _clouds_yaml(tmp_path, monkeypatch, auth, auth_type)
    with pytest.raises(CredentialsError, match=message):
        scoped_auth(cloud, planning=False)
