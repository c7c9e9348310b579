"""Runbook actions a drill performs that are more than one fault: promoting the remote
center when the city is lost, rebuilding the city from it, backups and isolated copies.

Like `FaultInjector`, this is an interface: the lab implements it from the lab's own
knowledge (`lab.runbook.LabRunbook`); on real hosts `dr.ssh_world.SshWorld` does what it
can over SSH.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from inventory.runtime import SystemRuntime


@dataclass(frozen=True)
class BackupInfo:
    label: str
    started_at: float  # wall clock: every write acknowledged before this is in the backup
    finished_at: float
    size_bytes: int | None = None


@dataclass(frozen=True)
class DatabaseCopy:
    """A copy of a system's database running outside its cluster (restore/test failover)."""

    center: str
    host: str
    port: int
    data_dir: str
    backup_label: str | None
    restore_seconds: float
    pid: int | None = None


class Runbook(Protocol):
    def recovery_command(self) -> str:
        """The command that brings this environment back to its intended layout from any
        state a drill can leave (the lab: `tricenter lab up`)."""

    def netns_enabled(self) -> bool:
        """Whether isolating a center is a real network partition."""

    def backups_available(self, system: SystemRuntime, need_backup: bool = False) -> str | None:
        """None when the backup repository answers (and, with `need_backup`, holds a
        backup of the system to restore), else why not."""

    def rebalance(self) -> str:
        """Put what the layout prefers but Patroni does not enforce back in place (e.g.
        the etcd leader out of the primary's center); returns what was done."""

    def promote_remote(self, system: SystemRuntime) -> str:
        """City lost, etcd quorum lost: promote the remote member outside Patroni and point
        the read-write endpoint at it. Returns what was done."""

    def reprotect_from_remote(self, system: SystemRuntime) -> str:
        """City back: rebuild it from the remote primary and fail back to the original
        layout (leader main, sync samecity, async remote)."""

    def backup(self, system: SystemRuntime) -> BackupInfo:
        """A full backup of the running cluster to the object store."""

    def restore_copy(self, system: SystemRuntime, center: str) -> DatabaseCopy:
        """Restore the latest backup into a scratch directory of `center`, start it on a
        spare port, isolated from production; returns once it accepts connections."""

    def drop_copy(self, copy: DatabaseCopy) -> None:
        """Stop the copy and delete its directory."""
