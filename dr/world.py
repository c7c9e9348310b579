"""The world a drill acts on: faults and runbook actions behind one interface.

The drill engine never reaches a process, a host or a network itself; it asks a `World`.
The lab's (`lab.world.LabWorld`) signals the lab's processes; on real hosts
`dr.ssh_world.SshWorld` runs each host's control commands over SSH. Which one runs is chosen by name (`drill run --world`, default the runtime
inventory's `world`); the names map to implementations in the entry point
(`scripts/cli.py`), so this plane imports none of them.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Protocol

from dr.faults import FaultInjector
from dr.runbook import Runbook
from dr.scenario import Scenario
from inventory.runtime import RuntimeInventory, SystemRuntime

# Key of click's context meta under which the entry point hands over the known worlds
# (name → "module:attribute" of a factory taking the runtime inventory).
WORLDS_META = "tricenter.worlds"


class World(FaultInjector, Runbook, Protocol):
    name: str
    # A world that acts on real hosts lists what it will do and runs only when the
    # operator confirms the cloud by name (`drill run --confirm CLOUD`).
    confirmation_needed: bool

    def plan(self, scenario: Scenario, system: SystemRuntime) -> list[str]:
        """Every action the scenario takes on every host, before any is taken; raises
        when the world cannot carry the scenario out."""

    def preflight(self, scenario: Scenario, system: SystemRuntime) -> None:
        """Once confirmed, before anything changes: check that what answers is what the
        runtime inventory names (hosts by their keys, the Patroni cluster and members);
        raises RuntimeError naming each mismatch."""

    def report_context(self) -> dict:
        """What a report states about where the drill ran (network mode, Patroni profile…)."""


class UnknownWorld(LookupError):
    pass


def make_world(name: str, runtime: RuntimeInventory, worlds: Mapping[str, str]) -> World:
    """The world `name` for this runtime inventory; UnknownWorld names the known ones."""
    spec = worlds.get(name)
    if spec is None:
        raise UnknownWorld(f"no drill world '{name}' — known: {', '.join(sorted(worlds)) or 'none'}")
    module, _, attribute = spec.partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    return factory(runtime)
