"""Shared helpers for the stacks tests: inventories and mocked runs, built once each."""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

from inventory import ipam
from inventory.generate import generate_inventory
from inventory.loader import DEFAULT_INVENTORY, Topology
from inventory.validate import load_valid_topology
from stacks.layout import all_stacks
from stacks.plan import ProgramRun, run_program

INSTANCE = "openstack:compute/instance:Instance"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
SEC_GROUP = "openstack:networking/secGroup:SecGroup"
SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup"
FLOATING_IP_TYPES = ("openstack:networking/floatingIp:FloatingIp",
                     "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
                     "openstack:compute/floatingIpAssociate:FloatingIpAssociate")
GENERATED_DIR = Path("/tmp/tricenter-tests-generated")


@functools.cache
def sample() -> Topology:
    return load_valid_topology(DEFAULT_INVENTORY)


@functools.cache
def generated() -> Topology:
    """A small synthetic 1+N+M inventory (2 clouds, 30 systems, 300 VMs)."""
    if GENERATED_DIR.exists():
        shutil.rmtree(GENERATED_DIR)
    generate_inventory(GENERATED_DIR, systems=30, vms=300, clouds=2, seed=7)
    # As an operator would (`tricenter ipam --write`): addresses stay put from now on.
    fresh = load_valid_topology(GENERATED_DIR)
    ipam.write_lock(fresh.ipam_lock_file, ipam.allocate(fresh))
    return load_valid_topology(GENERATED_DIR)


@functools.cache
def runs(which: str) -> dict[str, ProgramRun]:
    topology = sample() if which == "sample" else generated()
    return {stack: run_program(topology, stack) for stack in all_stacks(topology)}


def by_urn(run: ProgramRun) -> dict:
    return {r.urn: r for r in run.registrations}


def children_of(run: ProgramRun, component_urn: str) -> list:
    return [r for r in run.registrations if r.parent == component_urn]
