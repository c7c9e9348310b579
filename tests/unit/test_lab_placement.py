"""The lab follows the tier placement of its inventory: where the database leads, which
member is the synchronous standby, which centers serve the app (issue 12)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from inventory.errors import InvalidInventory
from inventory.loader import LAB_INVENTORY
from inventory.runtime import DbIntendedRole
from lab.components import app, etcd, haproxy, patroni, sshd
from lab.context import LabContext
from lab.lab import Lab

CORE = [etcd.component(), patroni.component(), app.component(), haproxy.component()]


def inventory_with_placement(inventory: Path, **placement: dict) -> Path:
    """A copy of the lab inventory at `inventory` whose `critical` tier (the registry's)
    has `placement` merged into its own."""
    shutil.copytree(LAB_INVENTORY, inventory)
    tiers_file = inventory / "tiers.yaml"
    tiers = yaml.safe_load(tiers_file.read_text())
    critical = next(t for t in tiers if t["name"] == "critical")
    critical["placement"].update(placement)
    tiers_file.write_text(yaml.safe_dump(tiers, sort_keys=False))
    return inventory


def lab_with_placement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **placement: dict) -> LabContext:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    return LabContext(root=tmp_path / "lab",
                      inventory=inventory_with_placement(tmp_path / "inventory", **placement))


def intended_roles(ctx: LabContext) -> dict[str, DbIntendedRole]:
    runtime = Lab(ctx, components=CORE).runtime_inventory()
    return {m.center: m.intended_role for m in runtime.systems[ctx.system.name].database.members}


def test_the_shipped_inventory_gives_the_lab_its_usual_layout(tmp_path) -> None:
    ctx = LabContext(root=tmp_path / "lab")
    assert (ctx.placement.leader, ctx.placement.sync, ctx.placement.followers) == (
        "main", "samecity", ("remote",))
    assert ctx.placement.app_centers == ("main", "samecity")
    assert ctx.placement.etcd_leader_target("main") == "samecity"
    assert ctx.placement.etcd_leader_target("samecity") == "main"


def test_a_changed_placement_moves_the_leader_the_sync_standby_and_the_app(tmp_path, monkeypatch) -> None:
    ctx = lab_with_placement(tmp_path, monkeypatch,
                             database={"main": "sync", "samecity": "primary", "remote": "async"},
                             app={"main": "pilot", "samecity": "active", "remote": "pilot"})
    assert intended_roles(ctx) == {"main": DbIntendedRole.sync, "samecity": DbIntendedRole.leader,
                                   "remote": DbIntendedRole.async_}
    # The etcd leader is kept out of the database leader's center, whichever that is.
    assert ctx.placement.etcd_leader_target("samecity") == "main"
    assert ctx.placement.etcd_leader_target("main") == "samecity"
    # Only the active center runs an app instance, has an app host and sits behind the entry.
    assert [p.center for p in app.component().programs(ctx)] == ["samecity"]
    assert [h.name for h in sshd.hosts(ctx) if h.role == "app"] == ["samecity-app"]
    runtime = Lab(ctx, components=CORE).runtime_inventory()
    assert set(runtime.systems[ctx.system.name].app_backends) == {"samecity"}


def test_the_inventory_chosen_at_up_is_followed_until_another_is_chosen(tmp_path, monkeypatch) -> None:
    chosen = lab_with_placement(tmp_path, monkeypatch,
                                database={"main": "sync", "samecity": "primary", "remote": "async"})
    chosen.prepare_root()
    chosen.save_settings()  # as `lab up --inventory DIR` does
    later = LabContext(root=tmp_path / "lab")  # `lab status`, a fault, the runbook …
    assert later.inventory == (tmp_path / "inventory").resolve()
    assert later.placement.leader == "samecity"
    back = LabContext(root=tmp_path / "lab", inventory=LAB_INVENTORY)
    back.save_settings()
    assert back.settings.inventory is None and LabContext(root=tmp_path / "lab").placement.leader == "main"


@pytest.mark.parametrize("database, wrong", [
    ({"main": "primary", "samecity": "sync"}, "remote has none"),
    ({"main": "primary", "samecity": "primary", "remote": "async"}, "exactly one primary center, found 2"),
    ({"main": "primary", "samecity": "async", "remote": "async"}, "exactly one sync center, found 0"),
])
def test_a_placement_the_lab_cannot_run_is_refused_naming_the_field(tmp_path, monkeypatch, database,
                                                                    wrong) -> None:
    with pytest.raises(InvalidInventory) as refused:
        lab_with_placement(tmp_path, monkeypatch, database=database)
    message = str(refused.value)
    assert "tiers.yaml" in message and "tiers[critical].placement.database" in message
    assert wrong in message
    assert not (tmp_path / "lab").exists()  # refused before anything was made


def test_the_second_system_runs_only_where_its_tier_places_a_member(tmp_path) -> None:
    # The charity's general tier: a primary in main and an asynchronous copy in remote.
    ctx = LabContext(root=tmp_path / "lab")
    assert [s.name for s in ctx.systems] == ["registry", "charity"]
    charity = ctx.placements["charity"]
    assert (charity.leader, charity.sync, charity.followers) == ("main", None, ("remote",))
    runtime = Lab(ctx, components=CORE).runtime_inventory()
    members = runtime.systems["charity"].database.members
    assert {m.center: m.intended_role for m in members} == {"main": DbIntendedRole.leader,
                                                            "remote": DbIntendedRole.async_}
    # its own database hosts, and its own entry ports beside the registry's
    assert {m.host for m in members} == {ctx.address("main", "db2"), ctx.address("remote", "db2")}
    assert runtime.systems["charity"].database.read_write.port == 5002
    # no synchronous member placed: Patroni must not wait for one
    config = yaml.safe_load(patroni.render_config(runtime, "main-db2"))
    assert config["bootstrap"]["dcs"]["synchronous_mode"] is False
    assert yaml.safe_load(patroni.render_config(runtime, "main-db"))["bootstrap"]["dcs"]["synchronous_mode"] is True


def test_another_systems_placement_may_skip_a_center_but_not_have_two_primaries(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inventory)
    tiers = yaml.safe_load((inventory / "tiers.yaml").read_text())
    general = next(t for t in tiers if t["name"] == "general")
    general["placement"]["database"] = {"main": "primary", "remote": "primary"}
    (inventory / "tiers.yaml").write_text(yaml.safe_dump(tiers, sort_keys=False))
    with pytest.raises(InvalidInventory) as refused:
        LabContext(root=tmp_path / "lab", inventory=inventory)
    assert "tiers[general].placement.database" in str(refused.value)
    assert "exactly one primary center, found 2" in str(refused.value)
