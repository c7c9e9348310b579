"""Properties of what a stack holds (no Pulumi): over random inventories and random
removals, addresses stay put, never overlap, and database ports stay private."""
from __future__ import annotations

import dataclasses
import tempfile
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory import ipam
from inventory.generate import generate_inventory
from inventory.model import AppPlacement, DbReplication
from inventory.validate import load_valid_topology
from stacks.layout import (PATRONI_API_PORT, POSTGRES_PORT, LayoutError, all_stacks, host,
                           split_stack, stack_layout)
from stacks_helpers import sample


def _layouts(topology):
    plan = ipam.allocate(topology)
    return {stack: stack_layout(topology, plan, stack) for stack in all_stacks(topology)}


def _unreferenced(topology) -> list[str]:
    referenced = {f.source for s in topology.systems.values() for f in s.flows}
    return sorted(set(topology.systems) - referenced)


@settings(max_examples=25, deadline=None)
@given(st.sets(st.sampled_from(_unreferenced(sample())), max_size=6))
def test_removing_systems_leaves_every_other_system_as_it_was(removed):
    topology = sample()
    smaller = dataclasses.replace(topology, systems={n: s for n, s in topology.systems.items()
                                                     if n not in removed})
    before, after = _layouts(topology), _layouts(smaller)
    for stack in before:
        kept = {s.name: s for s in after[stack].systems}
        assert not set(kept) & removed
        for system in before[stack].systems:
            if system.name in removed:
                continue
            other = kept[system.name]
            assert (system.app_subnet, system.db_subnet, system.lb_vip) == \
                (other.app_subnet, other.db_subnet, other.lb_vip)
            assert system.app_instances == other.app_instances
            assert system.db_member == other.db_member
            assert system.app_rules == other.app_rules and system.db_rules == other.db_rules


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), systems=st.integers(4, 40), clouds=st.integers(1, 3))
def test_generated_inventories_keep_networks_apart_and_databases_private(seed, systems, clouds):
    with tempfile.TemporaryDirectory() as tmp:
        generate_inventory(Path(tmp), systems=systems, vms=systems * 8, clouds=clouds, seed=seed)
        topology = load_valid_topology(tmp)
        layouts = _layouts(topology)
    per_cloud: dict[str, list[IPv4Network]] = {}
    for stack, layout in layouts.items():
        cloud, center_name, center = split_stack(topology, stack)
        for s in layout.systems:
            nets = [n for n in (s.app_subnet, s.db_subnet) if n is not None]
            per_cloud.setdefault(cloud.name, []).extend(nets)
            placement = s.tier.placement
            assert (s.app_subnet is not None) == (placement.app_role(center.role) != AppPlacement.none)
            assert (s.db_member is not None) == (placement.db_role(center.role) != DbReplication.none)
            for rule in s.db_rules:
                assert rule.port in (POSTGRES_PORT, PATRONI_API_PORT)
                assert IPv4Network(rule.cidr).prefixlen >= 16, rule
    for nets in per_cloud.values():
        nets.sort()
        assert all(not a.overlaps(b) for a, b in zip(nets, nets[1:]))


def test_fixed_addresses_stay_in_the_lower_half_of_a_subnet():
    net = IPv4Network("10.0.0.0/24")
    assert str(host(net, 10)) == "10.0.0.10"
    with pytest.raises(LayoutError):
        host(net, 130)


def test_unknown_stack_names_the_known_ones():
    with pytest.raises(LayoutError, match="guangdong-main"):
        split_stack(sample(), "guangdong-moon")
