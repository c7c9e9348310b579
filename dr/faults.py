"""The fault and runbook interface the drill engine acts through.

The engine never signals a process or runs a command itself: it asks a `FaultInjector`.
The lab implements it with signals to the lab's processes and netns links
(`lab.faults.LabFaults`); real hosts `dr.ssh_world.SshWorld`, over SSH with verified host keys.
Every method is idempotent and returns once the action has taken effect. A fault (kill,
freeze, isolate) returns when it began to act, on this machine's clock (`time.time()`), or
None when the world cannot tell: the drill times the outage from that moment, not from
when it asked (arming an undo, reaching a host or starting a tool is not the outage).
"""
from __future__ import annotations

from typing import Protocol

# Components a center can hold; not every center holds every one.
COMPONENTS = ("etcd", "patroni", "postgres", "haproxy", "app", "sshd", "swift", "prometheus")


class FaultInjector(Protocol):
    def kill_center(self, center: str) -> float | None:
        """SIGKILL every process of the center at once (a power loss)."""

    def start_center(self, center: str) -> None:
        """Start again everything kill_center stopped."""

    def freeze_center(self, center: str) -> float | None:
        """SIGSTOP every process of the center (a hung site)."""

    def thaw_center(self, center: str) -> None:
        """SIGCONT what freeze_center stopped."""

    def isolate_center(self, center: str) -> float | None:
        """Cut the center's links to the others while its processes keep running.

        Raises NotImplementedError where the lab does not run in network-namespace mode."""

    def heal_center(self, center: str) -> None:
        """Restore what isolate_center cut."""

    def kill_component(self, center: str, component: str) -> float | None:
        """SIGKILL one component of a center (e.g. 'postgres' alone, leaving Patroni)."""

    def start_component(self, center: str, component: str) -> None:
        """Start a component that kill_component stopped."""
