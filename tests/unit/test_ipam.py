"""IPAM promises: no overlaps, deterministic, and stable — adding, removing or
reordering systems never renumbers a system that keeps existing."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory import ipam
from inventory.loader import load_topology
from tests.conftest import MINIMAL


def _write_systems(root: Path, names: list[str]) -> None:
    systems = root / "systems"
    shutil.rmtree(systems)
    systems.mkdir()
    for index, name in enumerate(names):
        request = {"name": name, "department": "dept-a", "tier": "bronze",
                   "app": {"flavor": "small", "image": "img", "instances": {"main": 1}},
                   "database": {"flavor": "db", "size_gib": 10}}
        # the file order is the listing order the loader sees
        (systems / f"{index:03d}-{name}.yaml").write_text(yaml.safe_dump(request))


def _all_disjoint(blocks: dict[str, object]) -> bool:
    by_parent: dict[str, list] = {}
    for key, net in blocks.items():
        by_parent.setdefault(key.rsplit("/", 1)[0], []).append(net)
    for nets in by_parent.values():
        for i, a in enumerate(nets):
            if any(a.overlaps(b) for b in nets[i + 1:]):
                return False
    return True


def test_sample_plan_is_locked_and_disjoint():
    topo = load_topology()
    plan = ipam.allocate(topo)
    assert plan.new_keys == [] and plan.released_keys == [] and plan.problems == []
    assert _all_disjoint(plan.blocks)
    for key, net in plan.blocks.items():
        if key.count("/") == 3:  # a system block sits inside its department block
            assert net.subnet_of(plan.blocks[key.rsplit("/", 1)[0]])


def test_networks_are_derived_inside_the_system_block():
    topo = load_topology()
    plan = ipam.allocate(topo)
    app = plan.subnet("guangdong", "main", "gd-zsj", "trusted-identity", "app")
    db = plan.subnet("guangdong", "main", "gd-zsj", "trusted-identity", "db")
    block = plan.system_block("guangdong", "main", "gd-zsj", "trusted-identity")
    assert app.subnet_of(block) and db.subnet_of(block) and not app.overlaps(db)
    assert app.prefixlen == db.prefixlen == 24


# at most 16 systems in all: a /20 department block holds 16 /24 system blocks
NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=8,
                 unique=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=NAMES, added=NAMES, removed_share=st.floats(0, 1), data=st.data())
def test_allocations_survive_add_remove_reorder(tmp_path_factory, first, added, removed_share, data):
    root = tmp_path_factory.mktemp("ipam") / "inv"
    shutil.copytree(MINIMAL, root)
    _write_systems(root, first)
    before = ipam.allocate(load_topology(root))
    assert not before.problems and _all_disjoint(before.blocks)
    ipam.write_lock(root / "ipam.lock.yaml", before)

    kept = [n for n in first if data.draw(st.floats(0, 1)) >= removed_share]
    later = data.draw(st.permutations(kept + [n for n in added if n not in first]))
    _write_systems(root, list(later))
    after = ipam.allocate(load_topology(root))
    assert not after.problems and _all_disjoint(after.blocks)
    for key, block in before.blocks.items():
        system = key.rsplit("/", 1)[1]
        if key.count("/") == 3 and system in kept:
            assert after.blocks[key] == block, f"{key} was renumbered"
    for key in after.released_keys:
        assert key.rsplit("/", 1)[1] not in kept


def test_same_inventory_gives_same_plan_without_a_lock(inventory_copy):
    plans = [ipam.allocate(load_topology(inventory_copy)).lock_data() for _ in range(2)]
    assert plans[0] == plans[1]


def test_corrupt_lock_entry_is_reported(inventory_copy):
    plan = ipam.allocate(load_topology(inventory_copy))
    ipam.write_lock(inventory_copy / "ipam.lock.yaml", plan)
    text = (inventory_copy / "ipam.lock.yaml").read_text()
    key = next(k for k in plan.blocks if k.endswith("/portal") and "/main/" in k)
    lines = [f"  {key}: 192.168.0.0/24" if line.strip().startswith(key + ":") else line
             for line in text.splitlines()]
    (inventory_copy / "ipam.lock.yaml").write_text("\n".join(lines) + "\n")
    problems = ipam.allocate(load_topology(inventory_copy)).problems
    assert any(p.path == f"blocks.{key}" and "outside" in p.message for p in problems)
