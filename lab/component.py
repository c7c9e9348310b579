"""What every lab component provides. The lab core (lab/lab.py) asks each component to
prepare its files, lists the supervisord programs it needs, waits for its health, and
lets it add what it runs to the runtime inventory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext


@dataclass(frozen=True)
class Program:
    """One supervisord program. `center` makes it part of that center's failure unit."""

    name: str  # unique, e.g. "main-etcd"
    center: str  # main | samecity | remote | legacy | global
    component: str  # one of dr.faults.COMPONENTS or another component name
    command: list[str]
    user: str | None = None  # run as this user (PostgreSQL and Patroni: postgres)
    directory: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)
    priority: int = 500  # lower starts first
    stopsignal: str = "TERM"
    # the lab host it runs on, where a center has several of one component (each system's
    # Patroni on its own database host); None: the only one of its component in its center
    host: str | None = None


class Component(Protocol):
    name: str

    def prepare(self, lab: "LabContext") -> None:
        """Write configs and create data directories; idempotent."""

    def programs(self, lab: "LabContext") -> list[Program]:
        ...

    def health(self, lab: "LabContext") -> dict[str, dict]:
        """Per center: {"healthy": bool, "detail": str, ...}; never raises on a down service."""

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        ...

    # Optional, looked up with getattr by the lab core:
    #   reload(lab) -> None                re-read configs rewritten by an idempotent `up`
