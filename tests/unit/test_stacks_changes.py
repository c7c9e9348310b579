"""How the plan reacts to inventory changes: a removed system takes only its own
resources with it; an invalid inventory registers nothing at all."""
from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import pulumi
import pytest

from inventory.errors import InvalidInventory
from inventory.loader import DEFAULT_INVENTORY
from inventory.validate import load_valid_topology
from stacks import secrets
from stacks.layout import all_stacks
from stacks.mocks import install_mocks
from stacks.plan import run_program
from stacks_helpers import runs, sample

MAIN = Path(__file__).resolve().parents[2] / "stacks" / "__main__.py"


def _unreferenced_systems() -> list[str]:
    topology = sample()
    referenced = {f.source for s in topology.systems.values() for f in s.flows}
    return sorted(set(topology.systems) - referenced)


def _digests(runs_by_stack) -> dict[str, str]:
    return {r.urn: r.digest() for run in runs_by_stack.values() for r in run.registrations}


def _copy_sample(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, target)
    return target


@pytest.mark.parametrize("removed", _unreferenced_systems()[::4])
def test_removing_a_system_removes_only_its_resources(tmp_path, removed):
    inventory = _copy_sample(tmp_path)
    next(inventory.glob(f"systems/*/{removed}.yaml")).unlink()
    topology = load_valid_topology(inventory)
    before = _digests(runs("sample"))
    after = _digests({s: run_program(topology, s) for s in all_stacks(topology)})
    gone = set(before) - set(after)
    assert gone, f"removing {removed} removed nothing"
    # Its callers lose the egress rules that let them reach its entry, and nothing else.
    callers_rules = {r.urn for run in runs("sample").values() for r in run.registrations
                     if r.type.endswith("SecGroupRule")
                     and r.inputs.get("description") == f"entry of {removed}"}
    others = {u for u in gone if f"::{removed}-" not in u}
    assert others <= callers_rules, sorted(others - callers_rules)[:5]
    assert not set(after) - set(before), "removing a system added resources"
    changed = [u for u in after if after[u] != before[u]]
    assert not changed, changed[:5]


def _run_main(config: dict[str, str]):
    """Execute stacks/__main__.py the way `pulumi up` would, but under mocks."""
    from pulumi.runtime.settings import set_root_resource

    set_root_resource(None)
    pulumi.runtime.set_all_config({f"tricenter:{k}": v for k, v in config.items()})
    monitor = install_mocks("guangdong-main", fast=False)
    failure: list[BaseException] = []

    def program():
        try:
            runpy.run_path(str(MAIN), run_name="__main__")
        except InvalidInventory as exc:
            failure.append(exc)

    try:
        pulumi.runtime.test(program)()
    finally:
        pulumi.runtime.set_all_config({})
    return monitor, failure


CLOUDS_YAML = """
clouds:
  guangdong-main:
    auth: {auth_url: "https://keystone.example:5000/v3", username: deployer,
           password: s3cret, user_domain_name: Default, project_name: ops,
           project_domain_name: Default}
    region_name: gd-gz-1
"""


def test_main_wires_the_stack_named_by_config(tmp_path, monkeypatch):
    (tmp_path / "clouds.yaml").write_text(CLOUDS_YAML)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    monitor, failure = _run_main({"cloud": "guangdong", "center": "main",
                                  "osCloud": "guangdong-main",
                                  "inventory": str(DEFAULT_INVENTORY),
                                  "secretSeed": secrets.PLAN_ONLY_SEED})
    assert not failure
    expected = run_program(sample(), "guangdong-main")
    # Registration order depends on how the event loop interleaves; the set must agree.
    assert sorted(r.urn for r in monitor.registrations) == \
        sorted(r.urn for r in expected.registrations)


def test_invalid_inventory_registers_no_resource(tmp_path):
    inventory = _copy_sample(tmp_path)
    system = next(inventory.glob("systems/*/e-licence.yaml"))
    system.write_text(system.read_text().replace("tier: platform", "tier: no-such-tier"))
    monitor, failure = _run_main({"cloud": "guangdong", "center": "main",
                                  "inventory": str(inventory)})
    assert failure and "no-such-tier" in str(failure[0])
    assert monitor.registrations == []


def test_removing_a_generated_system_removes_only_its_resources(tmp_path):
    from stacks_helpers import GENERATED_DIR, generated

    generated()  # writes the inventory
    inventory = tmp_path / "generated"
    shutil.copytree(GENERATED_DIR, inventory)
    victim = sorted(inventory.glob("systems/*/*.yaml"))[3]
    removed = victim.stem
    victim.unlink()
    topology = load_valid_topology(inventory)
    before = _digests(runs("generated"))
    after = _digests({s: run_program(topology, s) for s in all_stacks(topology)})
    gone = set(before) - set(after)
    assert gone and all(f"::{removed}-" in urn for urn in gone)
    assert not set(after) - set(before)
    assert not [u for u in after if after[u] != before[u]]
