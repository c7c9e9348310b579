"""Waves: which systems move together, in what order, and whether each is ready to start
(its target provisioned in the runtime inventory, its source reachable)."""
from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from inventory.model import System
from inventory.runtime import RuntimeInventory

Reachable = Callable[[str, int], bool]


@dataclass
class PlannedSystem:
    name: str
    wave: int
    department: str
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"name": self.name, "wave": self.wave, "department": self.department,
                "ready": not self.problems, "problems": self.problems}


def tcp_reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def waves(systems: dict[str, System], wave: int | None = None) -> dict[int, list[str]]:
    """Systems that have a legacy source, by wave, each wave sorted by department then name
    (a department's systems move side by side)."""
    grouped: dict[int, list[System]] = {}
    for system in systems.values():
        if system.legacy is None or (wave is not None and system.wave != wave):
            continue
        grouped.setdefault(system.wave, []).append(system)
    return {n: [s.name for s in sorted(members, key=lambda s: (s.department, s.name))]
            for n, members in sorted(grouped.items())}


def readiness(system: System, runtime: RuntimeInventory | None,
              reachable: Reachable = tcp_reachable) -> list[str]:
    """What stops the system from starting its migration now; empty when nothing does."""
    if runtime is None:
        return ["no runtime inventory: the target cannot be checked (`tricenter lab up` or "
                "`tricenter runtime` writes one)"]
    found = runtime.systems.get(system.name)
    if found is None or found.database is None:
        return [f"target not provisioned: the runtime inventory has no database for "
                f"{system.name} (`tricenter deploy` first)"]
    if found.legacy is None or found.legacy.database is None:
        return [f"source unknown: the runtime inventory has no legacy database for "
                f"{system.name}"]
    source = found.legacy.database
    if not reachable(source.host, source.port):
        return [f"source unreachable: {source.host}:{source.port} does not accept connections"]
    return []


def plan(systems: dict[str, System], runtime: RuntimeInventory | None, wave: int | None = None,
         reachable: Reachable = tcp_reachable) -> list[dict]:
    """`{"wave": N, "systems": [...], "details": [...]}` per wave, in order."""
    result = []
    for number, names in waves(systems, wave).items():
        details = [PlannedSystem(n, number, systems[n].department,
                                 readiness(systems[n], runtime, reachable)) for n in names]
        result.append({"wave": number, "systems": names,
                       "details": [d.as_json() for d in details]})
    return result
