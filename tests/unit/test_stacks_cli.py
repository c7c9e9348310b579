"""The provisioning commands as operators and scripts see them: output contract, exit
codes, and messages that name what is missing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from inventory.loader import DEFAULT_INVENTORY, load_topology
from inventory.runtime import (DbIntendedRole, RuntimeInventory, ansible_inventory,
                               prometheus_targets)
from stacks.cli import deploy, plan, runtime
from stacks.deploy import preflight
from stacks.outputs import runtime_inventory
from stacks_helpers import runs


@pytest.fixture()
def plans(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "plans"
    monkeypatch.setenv("TRICENTER_PLANS_DIR", str(directory))
    return directory


def test_plan_all_json_contract_counts_every_vm_of_the_sample(plans):
    result = CliRunner().invoke(plan, ["--all", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["stacks"]) == {"guangdong-main", "guangdong-samecity", "guangdong-remote"}
    vms = sum(s["resources"]["openstack:compute/instance:Instance"]
              for s in report["stacks"].values())
    assert vms == 288
    assert report["total_resources"] == sum(sum(s["resources"].values())
                                            for s in report["stacks"].values())
    assert report["checks_ok"]


def test_second_plan_shows_no_difference_and_a_removed_system_shows_as_removed(plans, tmp_path):
    runner = CliRunner()
    assert runner.invoke(plan, ["--stack", "guangdong-remote", "--json"]).exit_code == 0
    again = json.loads(runner.invoke(plan, ["--stack", "guangdong-remote", "--json"]).output)
    diff = again["stacks"]["guangdong-remote"]["diff"]
    assert diff["previous_plan"] and (diff["added"], diff["removed"], diff["changed"]) == (0, 0, 0)
    inventory = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, inventory)
    next(inventory.glob("systems/*/site-inspection.yaml")).unlink()
    after = json.loads(runner.invoke(plan, ["--stack", "guangdong-remote", "--json",
                                            "--inventory", str(inventory)]).output)
    diff = after["stacks"]["guangdong-remote"]["diff"]
    assert diff["removed"] > 0 and diff["added"] == 0 and diff["changed"] == 0
    # Besides its own resources, only its callers' egress rules to its entry go.
    assert all("site-inspection" in urn or "-app-out-" in urn for urn in diff["removed_urns"])


def test_plan_of_an_invalid_inventory_exits_2_and_saves_nothing(plans, tmp_path):
    inventory = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, inventory)
    system = next(inventory.glob("systems/*/e-licence.yaml"))
    system.write_text(system.read_text().replace("flavor: app.medium", "flavor: app.huge"))
    result = CliRunner().invoke(plan, ["--all", "--inventory", str(inventory)])
    assert result.exit_code == 2
    assert "app.huge" in result.output and "e-licence.yaml" in result.output
    assert not plans.exists()


def test_plan_of_an_unknown_stack_names_the_known_ones(plans):
    result = CliRunner().invoke(plan, ["--stack", "guangdong-moon"])
    assert result.exit_code == 2
    assert "guangdong-main" in result.output


def test_deploy_without_cli_or_credentials_says_what_is_missing_and_changes_nothing(plans):
    result = CliRunner().invoke(deploy, ["--stack", "guangdong-main", "--preview"],
                                env={"PATH": "/nonexistent", "HOME": "/nonexistent",
                                     "OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml"})
    assert result.exit_code == 1
    assert "pulumi` CLI is not installed" in result.output
    assert "clouds.yaml" in result.output
    assert "nothing was changed" in result.output
    assert not plans.exists()


def test_preflight_passes_when_everything_is_there(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"guangdong-main": {"auth": {}}}}))
    root = tmp_path / "project"
    root.mkdir()
    (root / "Pulumi.guangdong-main.yaml").write_text(yaml.safe_dump({"config": {
        "tricenter:cloud": "guangdong", "tricenter:center": "main",
        "tricenter:osCloud": "guangdong-main", "tricenter:secretSeed": {"secure": "v1:abc"}}}))
    plugin = tmp_path / "pulumi-resource-openstack.tar.gz"
    plugin.write_bytes(b"plugin")
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "TRICENTER_PULUMI_BACKEND": "file:///tmp/state",
           "PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secret", "TRICENTER_OPENSTACK_PLUGIN": str(plugin)}
    assert preflight("guangdong-main", env, root, which=lambda _: "/usr/bin/pulumi") == []
    clouds.write_text(yaml.safe_dump({"clouds": {"other": {}}}))
    missing = preflight("guangdong-main", env, root, which=lambda _: "/usr/bin/pulumi")
    assert len(missing) == 1 and "no cloud named 'guangdong-main'" in missing[0].what


def test_runtime_inventory_from_the_outputs_of_the_three_centers():
    outputs = {stack: run.outputs for stack, run in runs("sample").items()}
    inventory = runtime_inventory(outputs, "plan:guangdong")
    assert set(inventory.centers) == {"main", "samecity", "remote"}
    assert len(inventory.hosts) == 288
    licence = inventory.systems["e-licence"]
    roles = sorted(m.intended_role for m in licence.database.members)
    assert roles == sorted([DbIntendedRole.leader, DbIntendedRole.sync, DbIntendedRole.async_])
    assert set(licence.app_backends) == {"main", "samecity"}  # remote is a pilot light
    assert any(h.center == "remote" and h.name.startswith("e-licence-app") for h in inventory.hosts)
    assert licence.database.password.pulumi == "guangdong-main:database_passwords.e-licence.app"
    # The postgresql_patroni role serves the REST API over TLS only.
    assert all(m.api_url.startswith("https://") for m in licence.database.members)
    # drills judge a system by its tier's targets, carried along: no topology needed later
    targets = inventory.tier_of(licence)
    tier = load_topology(DEFAULT_INVENTORY).tiers[licence.tier]
    assert (targets.rto_seconds, targets.rpo_seconds, targets.gbt20988_level) == (
        tier.rto_seconds, tier.rpo_seconds, tier.gbt20988_level)
    assert {s.tier for s in inventory.systems.values()} <= set(inventory.tiers)
    assert licence.bucket and licence.app_url
    groups = ansible_inventory(inventory)["all"]["children"]
    assert {"app", "db", "center_main", "center_samecity", "center_remote"} <= set(groups)
    # file_sd lists exporters only (none declared here); each center's Prometheus scrapes
    # its Patroni members in a job of its own in the prometheus role's template.
    assert prometheus_targets(inventory) == []
    assert sum(len(d["members"]) for d in ansible_inventory(inventory)["all"]["vars"]["tricenter_databases"]) == sum(
        len(s.database.members) for s in inventory.systems.values() if s.database)


def test_runtime_command_writes_the_three_views(plans, tmp_path):
    runner = CliRunner()
    assert runner.invoke(plan, ["--all", "--json"]).exit_code == 0
    out = tmp_path / "runtime"
    args = [a for s in ("guangdong-main", "guangdong-samecity", "guangdong-remote")
            for a in ("--stack", s)]
    result = runner.invoke(runtime, [*args, "--from-plan", "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = RuntimeInventory.load(out / "runtime.yaml")  # the format the other planes read
    assert len(loaded.hosts) == 288 and loaded.source.startswith("plan:")
    assert yaml.safe_load((out / "ansible-inventory.yml").read_text())["all"]["children"]["db"]
    assert json.loads((out / "prometheus-targets.json").read_text()) == prometheus_targets(loaded)


def test_runtime_without_saved_outputs_says_how_to_get_them(plans):
    result = CliRunner().invoke(runtime, ["--stack", "guangdong-main"])
    assert result.exit_code == 2
    assert "tricenter deploy --stack guangdong-main" in result.output


def test_runtime_refuses_a_stack_name_that_would_read_outside_the_plans(plans, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"outputs": {}}')
    for options in (["--from-plan"], []):
        result = CliRunner().invoke(runtime, ["--stack", "../secret", *options])
        assert result.exit_code == 2 and "not a stack name" in result.output, result.output


def test_plan_over_a_centers_capacity_exits_1_and_says_where(plans, tmp_path):
    inventory = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, inventory)
    cloud = inventory / "clouds" / "guangdong.yaml"
    data = yaml.safe_load(cloud.read_text())
    data["centers"]["remote"]["capacity"]["instances"] = 10
    cloud.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = CliRunner().invoke(plan, ["--stack", "guangdong-remote", "--json",
                                       "--inventory", str(inventory)])
    assert result.exit_code == 1
    checks = json.loads(result.output)["stacks"]["guangdong-remote"]["checks"]
    over = [c for c in checks if not c["ok"]]
    assert [c["scope"] for c in over] == ["center guangdong/remote"]
    assert over[0]["over"] == ["instances"] and over[0]["planned"]["instances"] == 41


def test_project_and_stack_files_name_the_inventorys_stacks():
    root = Path(__file__).resolve().parents[2]
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    assert project["name"] == "tricenter" and project["main"] == "stacks/"
    assert project["runtime"]["name"] == "python"
    from stacks.layout import all_stacks
    from stacks_helpers import sample

    for stack in all_stacks(sample()):
        config = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert f"{config['tricenter:cloud']}-{config['tricenter:center']}" == stack
        assert (root / config["tricenter:inventory"]).is_dir()
