"""The runbook actions for the lab (`dr.runbook.Runbook`), built on the lab's own parts:
its fault injector, Patroni member configs, HAProxy admin socket and pgBackRest.

Regional recovery when etcd has lost quorum, as a DR team would do it by hand:
promote: stop the remote Patroni (it would demote a primary it holds no lock for; its
  PostgreSQL keeps running), `pg_promote()`, and make HAProxy route writes to it by
  turning off its health check (the check asks Patroni, which is gone).
reprotect: `lab.rejoin.rebuild_from`, the same procedure `tricenter lab up` runs when it
  finds a primary promoted by hand: bring the city's etcd back (quorum), let the remote
  Patroni take the leader lock for the primary it finds (synchronous mode off, nofailover
  off), have the city's members rewind and follow it, switch over to main, and put every
  setting back.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import psycopg

from dr.runbook import BackupInfo, DatabaseCopy
from inventory.runtime import SystemRuntime
from lab.context import LabContext
from lab.faults import LabFaults
from support.waiting import wait_until

log = logging.getLogger(__name__)


class LabRunbookError(RuntimeError):
    pass


class LabRunbook:
    """`dr.runbook.Runbook` for the lab; `faults` is the lab's fault injector it stops
    components with."""

    def __init__(self, lab: LabContext | None = None, faults: LabFaults | None = None) -> None:
        self.lab = lab or LabContext()
        self.faults = faults or LabFaults(self.lab)
        self._copies: dict[str, object] = {}

    # --- helpers ----------------------------------------------------------------------
    def _patroni(self):
        from lab.components import patroni
        return patroni

    def _haproxy(self, command: str) -> str:
        from lab.components import haproxy
        return haproxy.admin(self.lab, command)

    def _superuser(self, center: str) -> psycopg.Connection:
        from lab import rejoin
        return rejoin.superuser(self.lab, center)

    def _leader(self) -> str | None:
        view = self._patroni().cluster_view(self.lab)
        return view.leader if view else None

    # --- Runbook ----------------------------------------------------------------------
    def recovery_command(self) -> str:
        return "tricenter lab up"

    def netns_enabled(self) -> bool:
        return bool(self.lab.settings.netns)

    def backups_available(self, system: SystemRuntime, need_backup: bool = False) -> str | None:
        from lab.components import pgbackrest
        try:
            info = pgbackrest.info(self.lab, system=system.name)
        except Exception as exc:  # noqa: BLE001 — any failure means: not available
            return f"pgbackrest info failed: {str(exc).strip()[:300]}"
        status = info.get("status", {})
        if not info or status.get("code") not in (0, 2):  # 2: stanza exists, no backup yet
            return f"stanza status: {status.get('message', 'missing')}"
        if need_backup and not info.get("backup"):
            return ("the repository holds no backup yet: run the backup-restore drill or "
                    "`pgbackrest backup` first")
        return None

    def rebalance(self) -> str:
        """Keep the etcd raft leader out of the database primary's center: losing both at
        once costs a whole extra lease (FACTS.md)."""
        from lab.components import etcd
        leader = self._leader()
        if leader is None:
            return "no database leader: nothing to rebalance"
        db_center = self._patroni().center_of(leader)
        etcd_center = etcd.leader_center(self.lab)
        if etcd_center != db_center:
            return f"etcd leader in {etcd_center}, database leader in {db_center}"
        target = self.lab.placement.etcd_leader_target(db_center)
        log.info("move the etcd leader from %s to %s", etcd_center, target)
        etcd.move_leader(self.lab, target)
        return f"etcd leader moved from {etcd_center} to {target}"

    def promote_remote(self, system: SystemRuntime) -> str:
        member = self._patroni().member_name("remote")
        log.info("promote remote: stop its Patroni, pg_promote() %s, route writes to it", member)
        try:
            self.faults.kill_component("remote", "patroni")
        except Exception as exc:  # noqa: BLE001 — already down is fine
            if "no running patroni" not in str(exc):
                raise
        with self._superuser("remote") as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            if in_recovery:
                conn.execute("SELECT pg_promote(true, 60)")
            wait_until("remote leaves recovery",
                       lambda: not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], 60, 0.1,
                       retry_on=(psycopg.Error,), error=LabRunbookError)
            sync = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
            if sync:
                # nobody is left to confirm synchronous commits: do not wait for them
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
                conn.execute("SELECT pg_reload_conf()")
        from lab.components import haproxy
        # with the check off HAProxy keeps the last verdict (DOWN): force it up as well
        self._haproxy(f"disable health {haproxy.proxy(self.lab, 'read-write')}/{member}")
        self._haproxy(f"set server {haproxy.proxy(self.lab, 'read-write')}/{member} health up")
        return (f"remote Patroni stopped, {member} promoted with pg_promote(), "
                "HAProxy read-write endpoint routes to it (health check off)")

    def reprotect_from_remote(self, system: SystemRuntime) -> str:
        from lab import rejoin
        log.info("reprotect: rebuild the city from the remote primary")
        return "; ".join(rejoin.rebuild_from(self.lab, "remote"))

    def backup(self, system: SystemRuntime) -> BackupInfo:
        from lab.components import pgbackrest
        started = time.time()
        log.info("full backup of %s", system.name)
        result = pgbackrest.backup(self.lab, "full", system=system.name)
        latest = (pgbackrest.backups(pgbackrest.info(self.lab, system=system.name)) or [{}])[-1]
        size = latest.get("info", {}).get("repository", {}).get("size")
        return BackupInfo(result.label, started, time.time(), size)

    def restore_copy(self, system: SystemRuntime, center: str) -> DatabaseCopy:
        from lab.components import pgbackrest
        began = time.monotonic()
        latest = (pgbackrest.backups(pgbackrest.info(self.lab, system=system.name)) or [{}])[-1].get("label")
        if latest is None:
            raise LabRunbookError("the repository holds no backup yet: run the backup-restore drill "
                                  "or `pgbackrest backup` first")
        target = self.lab.path("drills", f"copy-{int(time.time())}", "data")
        log.info("restore backup %s into %s (center %s)", latest, target, center)
        try:
            restored = pgbackrest.restore_to(self.lab, target, host=self.lab.address(center, "ops"),
                                             system=system.name)
            restored.start()
        except Exception:
            shutil.rmtree(target.parent, ignore_errors=True)  # a failed copy must not linger
            raise
        self._copies[str(target)] = restored
        return DatabaseCopy(center, restored.host, restored.port, str(target), latest,
                            time.monotonic() - began)

    def drop_copy(self, copy: DatabaseCopy) -> None:
        from lab.components import pgbackrest
        restored = self._copies.pop(copy.data_dir, None) or pgbackrest.RestoredCluster(
            Path(copy.data_dir), copy.host, copy.port)
        restored.remove()
        parent = Path(copy.data_dir).parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
