"""The other systems a center fault touches, measured beside the drilled one (issue 12).

A real center loss takes every system with a database member in that center at once, not
only the one a drill names. Each such system gets writers of its own through its own
read-write entry and a Patroni observer, for the whole drill; its RTO, RPO, split brain
and GB/T 20988 level are measured from its own ledger and judged against its own tier,
which may promise far less than the drilled system's (a `general` system waits for its
center to come back: no automatic failover). The drill's recovery steps stay the drilled
system's: a touched system is observed, never acted on.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from dr import checker
from dr.ledger import WriteLedger
from dr.levels import claimed_level, combine
from dr.patroni import ClusterObserver
from dr.scenario import Action, Scenario
from dr.verdict import Criterion, evaluate, passed
from dr.workload import Workload, db_target, prepare_ledger_table, read_back, resolve_secret, stop_running
from inventory.loader import load_gbt_table
from inventory.runtime import RuntimeInventory, SystemRuntime
from support.patroni import ApiAccess, PatroniCluster
from support.waiting import WaitTimeout, wait_until

log = logging.getLogger(__name__)

CENTER_FAULTS = (Action.kill_center, Action.freeze_center, Action.isolate_center)
# After the drill's restore, how long a touched system may take to write again: a system
# without automatic failover only comes back with its center (Patroni restarts it).
RESUME_AFTER_RESTORE_SECONDS = 120
DB_WRITERS = 1


def faulted_centers(scenario: Scenario, runtime: RuntimeInventory) -> list[str]:
    """Names of the centers a scenario's fault takes as a whole (none for a component fault)."""
    roles = {s.center for s in scenario.fault if s.action in CENTER_FAULTS}
    return [name for name, center in runtime.centers.items() if center.role in roles]


def touched_systems(runtime: RuntimeInventory, drilled: SystemRuntime, centers: list[str]) -> list[SystemRuntime]:
    """Every other system with a database member in one of `centers` (faulted_centers)."""
    return [s for s in runtime.systems.values()
            if s.name != drilled.name and s.database is not None
            and any(m.center in centers for m in s.database.members)]


@dataclass
class TouchedResult:
    """One touched system's figures, as the JSON's `systems` lists them."""

    name: str
    tier: str
    centers: list[str]  # its members' centers the fault took
    rto_seconds: float | None = None
    rpo_lost_writes: int | None = None
    rpo_seconds: float | None = None
    acknowledged_writes: int = 0
    split_brain: bool = False
    gbt20988_level: int | None = None
    gbt20988_level_note: str | None = None
    recovered_in: str | None = None  # the center whose member acknowledged the first write after the fault
    criteria: list[Criterion] = field(default_factory=list)
    passed: bool = False
    note: str = ""

    def as_json(self) -> dict:
        return {"name": self.name, "tier": self.tier, "centers": self.centers,
                "rto_seconds": self.rto_seconds, "rpo_lost_writes": self.rpo_lost_writes,
                "rpo_seconds": self.rpo_seconds, "acknowledged_writes": self.acknowledged_writes,
                "split_brain": self.split_brain, "recovered_in": self.recovered_in,
                "gbt20988_level": self.gbt20988_level, "gbt20988_level_note": self.gbt20988_level_note,
                "criteria": [c.as_dict() for c in self.criteria],
                "passed": self.passed, "note": self.note}


class TouchedSystem:
    """Writers, an observer and the verdict for one touched system."""

    def __init__(self, runtime: RuntimeInventory, system: SystemRuntime, centers: list[str],
                 rate: float, attempt_timeout: float, secret_base=None) -> None:
        self.runtime, self.system = runtime, system
        self.tier = runtime.tier_of(system)
        self.run_id = uuid.uuid4().hex[:12]
        self.ledger = WriteLedger()
        self.rw = db_target(system.database, base=secret_base, ca_file=runtime.tls_ca_file)
        self.cluster = PatroniCluster(system.database, ApiAccess.of(
            runtime, system.database, lambda ref: resolve_secret(ref, secret_base)))
        self.result = TouchedResult(system.name, self.tier.name,
                                    sorted({m.center for m in system.database.members} & set(centers)))
        self.rate, self.attempt_timeout = rate, attempt_timeout
        self.workload: Workload | None = None
        self.observer: ClusterObserver | None = None

    def start(self) -> None:
        prepare_ledger_table(self.rw)
        names = {(m.host, m.port): m.name for m in self.system.database.members}
        self.observer = ClusterObserver(self.cluster, self.ledger)
        self.observer.start()
        self.workload = Workload(self.ledger, self.run_id, self.system, self.rw, None, names,
                                 DB_WRITERS, 0, 0, self.rate, self.attempt_timeout)
        self.workload.start()

    def acked_since(self, after: float) -> int:
        return sum(1 for w in self.ledger.acked() if w.sent_at >= after)

    def stop(self) -> None:
        stop_running(self.workload, self.observer)
        self.workload = self.observer = None

    def finish(self, fault_at: float | None, restored_at: float, stop=None) -> TouchedResult:
        """Wait until it writes again (bounded), stop, read its ledger back and judge it."""
        out = self.result
        if fault_at is not None:
            try:
                wait_until(f"{self.system.name} writes again", lambda: self.acked_since(restored_at) >= 3,
                           RESUME_AFTER_RESTORE_SECONDS, 0.1, stop=stop)
            except WaitTimeout:
                out.note = (f"no write acknowledged within {RESUME_AFTER_RESTORE_SECONDS} s "
                            "after the drill's restore")
        window_end = time.time()
        self.stop()
        writes, reads, observations = self.ledger.snapshot()
        try:
            present = Counter(read_back(self.rw, self.run_id))
            readbacks = [(window_end, present)]
        except Exception as exc:  # noqa: BLE001 — unreadable: RPO unverified, said so
            out.note = "; ".join(filter(None, [out.note, f"read-back failed: {exc}"]))
            present, readbacks = Counter(), []
        findings = checker.check(writes, reads, observations, present, fault_at, window_end,
                                 time.time(), readbacks=readbacks or None)
        out.rto_seconds = round(findings.rto_seconds, 3) if findings.rto_seconds is not None else None
        out.rpo_lost_writes = findings.rpo_lost_writes if readbacks else None
        out.rpo_seconds = round(findings.rpo_seconds, 3) if readbacks else None
        out.acknowledged_writes = findings.acknowledged_writes
        out.split_brain = bool(findings.split_brain)
        targets = combine(self.tier.rto_seconds, self.tier.rpo_seconds, None, None, None,
                          self.tier.name, self.tier.gbt20988_level)
        out.criteria = evaluate(findings, targets, {"read_back": bool(readbacks)}, findings.rto_seconds)
        out.passed = passed(out.criteria)
        members = {m.name: m.center for m in self.system.database.members}
        out.recovered_in = members.get(checker.recovered_on(writes, fault_at))
        role = self.runtime.centers[out.recovered_in].role if out.recovered_in in self.runtime.centers else None
        claim = claimed_level(load_gbt_table(self.tier.gbt20988_edition),
                              status="passed" if out.passed else "failed", rto_seconds=findings.rto_seconds,
                              rpo_measured=bool(readbacks), rpo_seconds=findings.rpo_seconds,
                              lost_writes=findings.rpo_lost_writes, recovered_role=role)
        out.gbt20988_level = claim.level.level if claim.level else None
        out.gbt20988_level_note = claim.note
        log.info("%s: RTO %s s, %s of %d acknowledged writes lost, %s", self.system.name,
                 out.rto_seconds, out.rpo_lost_writes, out.acknowledged_writes,
                 "passed" if out.passed else "failed")
        return out


def drilled_row(result: dict) -> dict:
    """The drilled system's row of the center-wide table, from the drill's JSON result: the
    keys the center-wide table and its summary read of a touched system (TouchedResult.as_json)."""
    return {"name": result["system"], "tier": result.get("tier"),
            "rto_seconds": result.get("rto_seconds"), "rpo_lost_writes": result.get("rpo_lost_writes"),
            "gbt20988_level": result.get("gbt20988_level"), "passed": result.get("passed"),
            "note": ""}


def center_summary(drilled: dict, touched: list[TouchedResult]) -> dict:
    """What a DR team reports for the center: every system, the worst RTO, the writes lost."""
    rows = [drilled] + [t.as_json() for t in touched]
    rtos = [r["rto_seconds"] for r in rows if r.get("rto_seconds") is not None]
    return {"systems": len(rows), "passed": sum(1 for r in rows if r["passed"]),
            "failed": [r["name"] for r in rows if not r["passed"]],
            "worst_rto_seconds": max(rtos) if rtos else None,
            "lost_writes": sum(r.get("rpo_lost_writes") or 0 for r in rows),
            "not_recovered": [r["name"] for r in rows if r.get("rto_seconds") is None]}
