"""The drill engine: one scenario, one system, step by step with timestamps.

precheck → steady-state workload → inject fault → observe → recover → verify →
restore → report. A failed precheck stops before any fault; an abort (Ctrl-C) or an
error undoes the faults still in place and says what is left to do by hand.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import psycopg

from dr import checker
from dr.actions import RestoreResult, StepContext, StepFailed, run_step, undo_all, undo_self_healed
from dr.ledger import WriteLedger
from dr.levels import Targets, combine, level_reached
from dr.patroni import ClusterObserver
from dr.scenario import Check, Scenario, Step
from dr.touched import TouchedResult, TouchedSystem, faulted_centers, touched_systems
from dr.verdict import Criterion, evaluate, passed
from dr.workload import (DbTarget, Workload, db_target, prepare_ledger_table, read_back,
                         read_back_app, resolve_secret, stop_running)
from dr.world import World
from inventory.loader import load_gbt_table
from inventory.model import GbtStandard
from inventory.runtime import RuntimeInventory, SystemRuntime
from support.patroni import ApiAccess, DeadlineExceeded, PatroniCluster, PatroniUnavailable
from support.waiting import WaitTimeout, wait_until

log = logging.getLogger(__name__)
# Alertmanager tells a resolution a rule window (30 s for TricenterPrimaryLost) plus an
# evaluation and a group interval after recovery: a finished drill waits this long for it.
ALERTS_RESOLVE_SECONDS = 90
# An expected alert is due within 15 s of the fault; a drill that recovered sooner waits
# for it until twice that after the fault, so a late page is timed, not missed.
ALERTS_FIRE_SECONDS = 30
# Before the fault, the alerts a drill expects must be quiet for its system (a drill run
# right after another finds the last one's page or handover silence still there): this
# covers a resolution (ALERTS_RESOLVE_SECONDS) and a switchover's silence being lifted.
ALERTS_QUIET_SECONDS = 150


class DrillSkipped(Exception):
    """The drill cannot run here (e.g. needs netns mode); never reported as a pass."""


class PrecheckFailed(Exception):
    pass


@dataclass
class Event:
    at: float
    phase: str
    action: str
    detail: str
    ok: bool = True
    seconds: float = 0.0


@dataclass
class DrillOutcome:
    scenario: Scenario
    system: SystemRuntime
    run_id: str
    started_at: float
    status: str = "running"  # passed | failed | aborted | skipped | error
    reason: str = ""
    events: list[Event] = field(default_factory=list)
    markers: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_details: dict[str, str] = field(default_factory=dict)
    findings: checker.Findings | None = None
    rpo_verified: bool = False  # the ledger was read back after restore, so the RPO is measured
    app_rto_seconds: float | None = None
    rto_from_declaration_seconds: float | None = None
    failback_max_write_gap_seconds: float | None = None
    replication_lag_seconds: float | None = None
    targets: Targets | None = None
    criteria: list[Criterion] = field(default_factory=list)
    gbt_level: int | None = None
    gbt_level_name: str | None = None
    gbt: GbtStandard | None = None  # the GB/T 20988 level table (edition) the verdict used
    ledger: WriteLedger = field(default_factory=WriteLedger)
    left_to_do: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # what an abort put back
    finished_at: float | None = None
    extra: dict = field(default_factory=dict)
    # the other systems the fault's centers held, each judged against its own tier
    touched: list[TouchedResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


Progress = Callable[[str, str], None]
# Called "before" and "after" every step with the phase and the step: the seam through
# which tests abort a drill at a chosen moment (raise KeyboardInterrupt) or fail a step.
Checkpoint = Callable[[str, str, Step], None]


class Drill:
    def __init__(self, scenario: Scenario, runtime: RuntimeInventory, system: SystemRuntime,
                 world: World, progress: Progress = lambda phase, msg: None, secret_base=None,
                 checkpoint: Checkpoint = lambda moment, phase, step: None):
        """`world` acts on the environment (faults, runbook actions); the system's tier
        targets and the GB/T 20988 edition they refer to come from the runtime inventory
        (MissingTierTargets when they are absent)."""
        if system.database is None:
            raise ValueError(f"system {system.name} has no database: drills measure database writes")
        self.scenario, self.runtime, self.system = scenario, runtime, system
        self.progress, self.checkpoint = progress, checkpoint
        self.secret_base = secret_base
        self.tier = runtime.tier_of(system)
        self.gbt = load_gbt_table(self.tier.gbt20988_edition)
        self.cluster = PatroniCluster(system.database, ApiAccess.of(
            runtime, system.database, lambda ref: resolve_secret(ref, secret_base)))
        self.stop = threading.Event()
        self.world = StepContext(runtime, system, world, world, self.cluster, self.stop)
        self.outcome = DrillOutcome(scenario, system, uuid.uuid4().hex[:12], time.time(), gbt=self.gbt)
        self.outcome.ledger = WriteLedger()
        self.workload: Workload | None = None
        self.observer: ClusterObserver | None = None
        self.rw: DbTarget | None = None
        self.touched: list[TouchedSystem] = []

    # --- bookkeeping ------------------------------------------------------------------
    def _event(self, phase: str, action: str, detail: str, ok: bool = True, began: float | None = None) -> None:
        now = time.time()
        log.log(logging.INFO if ok else logging.WARNING, "%s %s: %s", phase, action, detail)
        self.outcome.events.append(Event(began or now, phase, action, detail, ok,
                                         round(now - began, 3) if began else 0.0))
        self.progress(phase, f"{action}: {detail}" if detail else action)

    def _step(self, phase: str, step: Step) -> None:
        began = time.time()
        self.progress(phase, f"{step.action.value} {step.center or step.to or ''} {step.note}".strip())
        try:
            self.checkpoint("before", phase, step)
            detail = run_step(self.world, step)
        except (StepFailed, DeadlineExceeded, PatroniUnavailable, RuntimeError, OSError) as exc:
            self._event(phase, step.action.value, str(exc), ok=False, began=began)
            raise StepFailed(f"{phase}: {step.action.value} failed: {exc}") from exc
        self._event(phase, step.action.value, detail, began=began)
        self.checkpoint("after", phase, step)

    # --- phases -----------------------------------------------------------------------
    def _requirements(self) -> None:
        if "netns" in self.scenario.requires and not self.world.runbook.netns_enabled():
            raise DrillSkipped("skipped: needs `tricenter lab up --netns` (network-namespace mode), "
                               "so that isolating a center is a real partition")
        if "pgbackrest" in self.scenario.requires:
            why = self.world.runbook.backups_available(self.system)
            if why:
                raise DrillSkipped(f"skipped: the backup repository is not available: {why}")

    def _check(self, name: Check) -> tuple[bool, str]:
        try:
            if name == Check.cluster_healthy:
                state = self.cluster.state()
                down = [m.name for m in state.members.values() if not m.running]
                missing = [m.name for m in self.system.database.members if m.name not in state.members]
                ok = state.leader is not None and not down and not missing
                return ok, f"leader {state.leader}; not running: {', '.join(down + missing) or 'none'}"
            if name == Check.original_layout:
                problems = self.cluster.layout_problems()
                return not problems, "; ".join(problems) or "leader, sync and async where intended"
            if name == Check.sync_standby:
                sync = self.cluster.state().sync_standby
                return sync is not None, f"sync standby {sync}"
            if name == Check.remote_streaming:
                state = self.cluster.state()
                remote = self.world.member_in("remote")
                m = state.members.get(remote)
                ok = m is not None and m.running and m.timeline == state.timeline
                return ok, f"{remote}: {m.state if m else 'absent'}, lag {m.lag if m else '?'} bytes"
            if name == Check.netns:
                ok = self.world.runbook.netns_enabled()
                return ok, "network-namespace mode" if ok else "not in netns mode"
            if name in (Check.backup_repository, Check.backup_present):
                why = self.world.runbook.backups_available(self.system,
                                                           need_backup=name == Check.backup_present)
                return why is None, why or ("repository answers" if name == Check.backup_repository
                                            else "repository holds a backup to restore")
            if name == Check.app_reachable:
                import requests
                r = requests.get(self.system.app_url.rstrip("/") + "/health", timeout=2)
                return r.status_code == 200, f"HTTP {r.status_code}"
            if name == Check.writes_resumed:
                f = self.outcome.findings
                return bool(f and f.rto_seconds is not None), "writes acknowledged after the fault"
            if name == Check.no_split_brain:
                f = self.outcome.findings
                return bool(f and not f.split_brain), f"{len(f.split_brain) if f else '?'} event(s)"
            if name == Check.no_lost_writes:
                f = self.outcome.findings
                return bool(f and f.rpo_lost_writes == 0), f"{f.rpo_lost_writes if f else '?'} lost"
        except (PatroniUnavailable, StepFailed, OSError) as exc:
            return False, str(exc)
        return False, f"check {name.value} not implemented"

    def _rebalance(self, phase: str) -> None:
        began = time.time()
        try:
            self._event(phase, "rebalance", self.world.runbook.rebalance(), began=began)
        except Exception as exc:  # noqa: BLE001 — a preference, not a precondition
            self._event(phase, "rebalance", f"could not rebalance: {exc}", ok=False, began=began)

    def _precheck(self) -> None:
        self._rebalance("precheck")
        failed = []
        if self.scenario.alerts:
            # Not a reason to refuse the drill: its RTO and RPO stand without the page. The
            # report says why the alerts could not be timed.
            began = time.time()
            ok, detail = self._alerts_quiet()
            self.outcome.checks["precheck:alerts_quiet"] = ok
            self.outcome.check_details["precheck:alerts_quiet"] = detail
            self._event("precheck", "alerts_quiet", detail, ok, began=began)
            if not ok:
                self.outcome.extra["alerts_note"] = f"not quiet before the fault: {detail}"
        for name in self.scenario.precheck:
            ok, detail = self._check(name)
            self.outcome.checks[f"precheck:{name.value}"] = ok
            self.outcome.check_details[f"precheck:{name.value}"] = detail
            self._event("precheck", name.value, detail, ok)
            if not ok:
                failed.append(f"{name.value} ({detail})")
        if failed:
            raise PrecheckFailed("precheck failed, no fault injected: " + "; ".join(failed))

    def _alerts_quiet(self) -> tuple[bool, str]:
        """Wait until none of the expected alerts is firing for the system (as the receiver
        was last told, or as Alertmanager holds it) and no silence mutes one: otherwise
        this drill's page would be the last one's, or never be sent (Alertmanager does not
        notify again an alert it holds firing). Monitoring that does not answer cannot
        hold a page back: the drill goes on and its report says the alerts went untimed."""
        from dr import alerts, silences

        receiver, expected = self.runtime.monitoring.alert_receiver_url, self.scenario.alerts
        if receiver is None:
            return True, "no alert receiver in the runtime inventory: alerts will not be timed"
        system, noisy = self.system.name, []

        def quiet() -> bool:
            now = time.time()
            found = [f"{name} last notified firing" for name in
                     alerts.firing_at(alerts.fetch(receiver, now - 3600), now, system)
                     if name in expected]
            found += silences.holding_a_page_back(self.runtime.monitoring.alertmanagers, system, expected)
            if found and found != noisy:
                self.progress("precheck", f"waiting for {system}'s alerts to be quiet: {'; '.join(found)}")
            noisy[:] = found
            return not found

        try:
            wait_until(f"{', '.join(expected)} quiet for {system}", quiet, ALERTS_QUIET_SECONDS, 1.0,
                       stop=self.stop)
        except alerts.ReceiverUnavailable as exc:
            return True, f"{exc}: alerts will not be timed"
        except WaitTimeout:
            return False, (f"still not quiet after {ALERTS_QUIET_SECONDS} s: {'; '.join(noisy)} "
                           "(this drill's page may not be told apart or not be sent; expire a "
                           "silence with `amtool silence expire ID`, or wait for the alert to "
                           "resolve)")
        return True, f"none of {', '.join(expected)} firing or silenced for {system}"

    def _start_workload(self) -> None:
        w = self.scenario.workload
        db = self.system.database
        ca = self.runtime.tls_ca_file
        self.rw = db_target(db, base=self.secret_base, ca_file=ca)
        ro = db_target(db, read_only=True, base=self.secret_base, ca_file=ca)
        prepare_ledger_table(self.rw)
        names = {(m.host, m.port): m.name for m in db.members}
        self.observer = ClusterObserver(self.cluster, self.outcome.ledger)
        self.observer.start()
        self.workload = Workload(self.outcome.ledger, self.outcome.run_id, self.system, self.rw, ro,
                                 names, w.db_writers, w.app_writers, w.readers, w.rate_per_writer,
                                 w.attempt_timeout_seconds)
        self.workload.start()
        self._event("workload", "start", f"{w.db_writers} db writer(s), {w.app_writers} app writer(s), "
                    f"{w.readers} reader(s) at {w.rate_per_writer:g} writes/s each")
        self._wait_acks(after=time.time(), count=1, timeout=15, why="the workload's first write")
        self.stop.wait(w.warmup_seconds)

    def _start_touched(self) -> None:
        """Writers and an observer on every other system the fault's centers hold."""
        centers = faulted_centers(self.scenario, self.runtime)
        systems = touched_systems(self.runtime, self.system, centers)
        if not systems:
            return
        w = self.scenario.workload
        for system in systems:
            touched = TouchedSystem(self.runtime, system, centers, w.rate_per_writer,
                                    w.attempt_timeout_seconds, self.secret_base)
            touched.start()
            self.touched.append(touched)
        began = time.time()
        for touched in self.touched:
            wait_until(f"{touched.system.name}'s first acknowledged write",
                       lambda: touched.acked_since(began) >= 1, 15, 0.05, error=StepFailed, stop=self.stop)
        self._event("workload", "touched", f"{len(systems)} other system(s) in {', '.join(centers)} "
                    f"measured as well: {', '.join(s.name for s in systems)}")

    def _finish_touched(self) -> None:
        fault = self.world.markers.get("fault")
        restored = self.world.markers.get("restore_end", time.time())
        for touched in self.touched:
            began = time.time()
            result = touched.finish(fault, restored, stop=self.stop)
            self.outcome.touched.append(result)
            self._event("verify", f"touched:{result.name}",
                        f"RTO {'never' if result.rto_seconds is None else f'{result.rto_seconds:.3f} s'}, "
                        f"{result.rpo_lost_writes} of "
                        f"{result.acknowledged_writes} acknowledged writes lost, tier {result.tier}: "
                        f"{'passed' if result.passed else 'failed'}"
                        + (f" ({result.note})" if result.note else ""), result.passed, began)
        self.touched = []

    def _wait_acks(self, after: float, count: int, timeout: float, why: str) -> float:
        """Poll the ledger until `count` writes sent after `after` are acknowledged; returns
        when the `count`th was."""
        def acknowledged() -> float | None:
            acks = sorted(x.done_at for x in self.outcome.ledger.acked() if x.sent_at >= after)
            return acks[count - 1] if len(acks) >= count else None

        return wait_until(f"{why}: an acknowledged write", acknowledged, timeout, 0.05,
                          error=StepFailed, stop=self.stop)

    def _replication_lag(self) -> float | None:
        """Seconds the remote async member is behind, sampled right before the fault."""
        try:
            remote = self.system.database.member(self.world.member_in("remote"))
        except (StepFailed, KeyError):
            return None
        target = self.rw.at(remote.host, remote.port, "verify-full")
        try:
            with target.connect() as conn:
                row = conn.execute("SELECT extract(epoch FROM clock_timestamp() - "
                                   "pg_last_xact_replay_timestamp())::float8").fetchone()
            return row[0]
        except psycopg.Error:
            return None

    def _inject(self) -> None:
        if not self.scenario.fault:
            return
        self.outcome.replication_lag_seconds = self._replication_lag()
        # until the world says when the fault began to act (an abort may come first)
        self.world.markers["fault"] = self.world.markers["fault_requested"] = time.time()
        for step in self.scenario.fault:
            self._step("fault", step)
        if self.world.fault_began is not None:
            self.world.markers["fault"] = self.world.fault_began
        self.world.markers["fault_done"] = time.time()

    def _recover(self) -> None:
        rec = self.scenario.recovery
        for step in rec.steps:
            self._step("recover", step)
        fault_at = self.world.markers.get("fault")
        if rec.mode == "none" or fault_at is None:
            return
        began = time.time()
        remaining = max(1.0, rec.timeout_seconds - (began - fault_at))
        if rec.mode == "runbook":
            # the runbook promoted outside Patroni: the writes themselves say who leads
            after = self.world.markers["fault_done"]
            self._wait_acks(after=after, count=1, timeout=remaining, why="writes after the runbook")
            nodes = {w.node for w in self.outcome.ledger.acked() if w.channel == "db" and w.sent_at >= after}
            if rec.expect_primary and self.world.member_in(rec.expect_primary) not in nodes:
                raise StepFailed(f"writes after the runbook were acknowledged by {nodes}, "
                                 f"not by {self.world.member_in(rec.expect_primary)}")
            self._event("recover", "recovered", f"writes acknowledged by {', '.join(sorted(map(str, nodes)))}",
                        began=began)
            return
        if rec.expect_primary:
            member = self.world.member_in(rec.expect_primary)
            self.cluster.wait_for(f"{member} leads", lambda s: s.leader == member, remaining)
        else:
            self.cluster.wait_for("a leader", lambda s: s.leader is not None, remaining)
        # a write sent while the fault was still being injected may have slipped through:
        # only writes sent after it took effect show that service is back
        self._wait_acks(after=self.world.markers["fault_done"], count=1, timeout=remaining,
                        why="writes after the fault")
        self._event("recover", "recovered", "a leader and acknowledged writes after the fault", began=began)

    def _verify(self) -> tuple[float, Counter]:
        return self._read_back()

    def _read_back(self) -> tuple[float, Counter]:
        """(when the read began, id → rows) from the current primary."""
        def read() -> tuple[float, Counter]:
            began = time.time()
            present = Counter(read_back(self.rw, self.outcome.run_id, channel="db"))
            if self.system.app_url and self.scenario.workload.app_writers:
                present.update(read_back_app(self.rw, self.outcome.run_id))
            return began, present

        return wait_until("the ledger read back from the primary", read, 30, 0.5,
                          retry_on=(psycopg.Error,), error=StepFailed)

    def _verify_copy(self) -> None:
        """The copy answers and takes a write; when this drill took the backup, every write
        acknowledged before the backup began must be in it (later ones may be too: the
        copy replays the archived WAL)."""
        copy = self.world.copy
        if copy is None:
            return
        target = self.rw.at(copy.host, copy.port, "verify-ca")  # not the address its certificate names
        ids = Counter(read_back(target, self.outcome.run_id, channel="db"))
        with target.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS tricenter_test_failover (note text)")
            conn.execute("INSERT INTO tricenter_test_failover VALUES ('written to the isolated copy')")
            wrote = conn.execute("SELECT count(*) FROM tricenter_test_failover").fetchone()[0] > 0
        info = {"host": copy.host, "port": copy.port, "center": copy.center, "backup": copy.backup_label,
                "restore_seconds": round(copy.restore_seconds, 3), "accepts_writes": wrote,
                "ledger_rows_in_copy": sum(ids.values())}
        self.outcome.checks["copy_accepts_writes"] = wrote
        backup = self.world.extra.get("backup")
        detail = f"copy of backup {copy.backup_label} accepts writes: {wrote}"
        ok = wrote
        if backup is not None:
            expected = [x for x in self.outcome.ledger.acked() if x.channel == "db" and x.done_at < backup.started_at]
            missing = [x.id for x in expected if ids.get(x.id, 0) == 0]
            info.update(verified_rows=len(expected) - len(missing), expected_rows=len(expected),
                        missing_rows=len(missing))
            self.outcome.extra["backup"] = {"label": backup.label, "size_bytes": backup.size_bytes,
                                            "seconds": round(backup.finished_at - backup.started_at, 3)}
            self.outcome.checks["copy_complete"] = not missing
            detail = (f"{len(expected) - len(missing)}/{len(expected)} writes acknowledged before the "
                      f"backup are in the copy; " + detail)
            ok = ok and not missing
        self.outcome.extra["copy"] = info
        self._event("verify", "verify_copy", detail, ok=ok)

    def _restore(self) -> None:
        for step in self.scenario.restore:
            self._step("restore", step)
        self._rebalance("restore")
        healed = undo_self_healed(self.world, lambda m: self._event("restore", "undo", m))
        if healed.not_restored:
            raise StepFailed("could not undo: " + "; ".join(healed.not_restored))

    # --- the whole drill --------------------------------------------------------------
    def run(self) -> DrillOutcome:
        out = self.outcome
        self._event("drill", "start", f"{self.scenario.name} on {self.system.name} (run {out.run_id})")
        verify_present: tuple[float, Counter] | None = None
        final_present: tuple[float, Counter] | None = None
        window_end: float | None = None
        try:
            self._requirements()
            self._precheck()
            self._start_workload()
            self._start_touched()
            self._inject()
            self._recover()
            self.stop.wait(self.scenario.workload.settle_seconds)
            window_end = time.time()
            self.world.markers["window_end"] = window_end
            verify_present = self._verify()
            if any(s.action.value == "verify_copy" for s in self.scenario.recovery.steps):
                self._verify_copy()
            self.world.markers["restore_start"] = time.time()
            self._restore()
            self.world.markers["restore_end"] = time.time()
            self._finish_touched()
            self._stop_workload()
            final_present = self._read_back()
            self._final_checks()
            out.status = "finished"
        except DrillSkipped as exc:
            out.status, out.reason = "skipped", str(exc)
        except PrecheckFailed as exc:
            out.status, out.reason = "aborted", str(exc)
        except KeyboardInterrupt:
            out.status, out.reason = "aborted", "interrupted (Ctrl-C)"
            self._abort()
        except (StepFailed, DeadlineExceeded, PatroniUnavailable, psycopg.Error, OSError) as exc:
            out.status, out.reason = "error", str(exc)
            self._abort()
        except Exception as exc:  # noqa: BLE001 — a bug must not leave the faults in place
            out.status, out.reason = "error", f"unexpected {type(exc).__name__}: {exc}"
            self._abort()
        finally:
            self._stop_workload()
            for system in self.touched:
                system.stop()
        out.markers = dict(self.world.markers)
        late = self._await_alerts_resolved() if out.status == "finished" else None
        self._lift_own_silences()
        out.finished_at = time.time()
        self._alerts(late)
        if out.status not in ("skipped",) and out.ledger.writes:
            if final_present is None and self.rw is not None:
                try:
                    final_present = self._read_back()
                except StepFailed as exc:
                    out.left_to_do.append(str(exc))
            self._measure(verify_present, final_present, window_end or out.finished_at)
        return out

    def _await_alerts_resolved(self) -> str | None:
        """After the restore: wait, up to ALERTS_RESOLVE_SECONDS, until each expected alert
        has fired and been resolved (one that has not fired ALERTS_FIRE_SECONDS after the
        fault is reported missing), so the report times both. A receiver that does not
        answer is the report's business (`_alerts`), not a reason to wait. Returns what
        the report should note when the wait ended before that."""
        from dr import alerts

        receiver, fault = self.runtime.monitoring.alert_receiver_url, self.world.markers.get("fault")
        if receiver is None or fault is None or not self.scenario.alerts:
            return None

        told: set[str] = set()

        def resolved() -> bool:
            records = alerts.fetch(receiver, self.outcome.started_at - 3600)
            pending = alerts.awaited(records, self.scenario.alerts, fault, self.system.name,
                                     time.time(), ALERTS_FIRE_SECONDS)
            if set(pending) - told:
                told.update(pending)
                self.progress("alerts", f"waiting for {', '.join(pending)} to fire and resolve")
            return not pending

        began = time.time()
        try:
            wait_until("the expected alerts resolve", resolved, ALERTS_RESOLVE_SECONDS, 1.0,
                       retry_on=(alerts.ReceiverUnavailable,), stop=self.stop)
        except WaitTimeout:
            return f"still firing {ALERTS_RESOLVE_SECONDS:g} s after the restore ended"
        except KeyboardInterrupt:  # the faults are undone already: keep the report
            return "interrupted while waiting for the alerts to resolve"
        self._event("restore", "alerts_resolved", "every expected alert that fired has resolved",
                    began=began)  # one that never fired: `alerts_missing` in the report
        return None

    def _lift_own_silences(self) -> None:
        """Expire the silences this drill's switchovers left to run out (their alerts were
        still active when the switchover step gave up waiting): the handover is over, and
        a silence outliving the drill would mute the next drill's page."""
        from dr import silences

        silences.expire_each(self.runtime.monitoring.alertmanagers,
                             self.world.extra.get("silences_left", []))

    def _alerts(self, late: str | None = None) -> None:
        """What the alert receiver got since the fault: `alerts` and `alerts_missing`;
        `late`: why the wait for them ended early, for `alerts_note`."""
        from dr import alerts

        receiver, fault = self.runtime.monitoring.alert_receiver_url, self.outcome.markers.get("fault")
        if fault is None and (self.scenario.fault or self.outcome.status == "skipped"):
            return  # the fault never came (skipped, precheck failed): nothing to time
        if fault is None:
            # A drill without a fault (backup-restore, test-failover): whatever pages during
            # it is news for the team all the same, timed from the drill's start.
            fault = self.outcome.started_at
        if receiver is None:
            self.outcome.extra["alerts_missing"] = list(self.scenario.alerts)
            self.outcome.extra["alerts_note"] = "no alert receiver in the runtime inventory"
            return
        try:
            records = alerts.fetch(receiver, self.outcome.started_at - 3600)
        except alerts.ReceiverUnavailable as exc:
            self.outcome.extra["alerts_note"] = str(exc)
            records = []
        found, missing = alerts.timeline(records, self.scenario.alerts, fault, self.system.name)
        self.outcome.extra.update(alerts=found, alerts_missing=missing)
        stale = [name for name in alerts.firing_at(records, fault, self.system.name)
                 if name in self.scenario.alerts]
        notes = [self.outcome.extra.get("alerts_note"), late]
        if stale:
            notes.insert(1, f"already firing when the fault was injected, so not timed: {', '.join(stale)}")
        self.outcome.extra["alerts_note"] = "; ".join(filter(None, notes)) or None

    def _stop_workload(self) -> None:
        stop_running(self.workload, self.observer)
        self.workload = self.observer = None

    def _abort(self) -> None:
        """Put back what the drill changed, each action guarded, then say exactly what is
        restored, what is not, and the command that converges the rest."""
        self.stop.set()
        self._stop_workload()
        self.progress("abort", "stopping safely: undoing the faults still in place")
        result = undo_all(self.world, lambda m: self._event("abort", "undo", m))
        self.outcome.restored = result.restored
        self.outcome.left_to_do += left_to_do(result, self._layout_problems(),
                                              self.world.runbook.recovery_command())

    def _layout_problems(self) -> list[str]:
        try:
            return self.cluster.layout_problems()
        except (PatroniUnavailable, OSError) as exc:
            return [f"the cluster state is unknown ({exc})"]

    def _final_checks(self) -> None:
        for name in self.scenario.verify:
            ok, detail = self._check(name) if name not in (
                Check.writes_resumed, Check.no_split_brain, Check.no_lost_writes) else (True, "")
            if detail:
                self.outcome.checks[name.value] = ok
                self.outcome.check_details[name.value] = detail
        ok, detail = self._check(Check.original_layout)
        self.outcome.checks["restored_original_layout"] = ok
        self.outcome.check_details["restored_original_layout"] = detail
        self._event("restore", "original_layout", detail, ok)

    def _measure(self, verify_present: tuple[float, Counter] | None,
                 final_present: tuple[float, Counter] | None, window_end: float) -> None:
        out = self.outcome
        writes, reads, observations = out.ledger.snapshot()
        readbacks = [p for p in (verify_present, final_present) if p is not None]
        present = readbacks[-1][1] if readbacks else Counter()
        fault_at = out.markers.get("fault")
        db_writes = [w for w in writes if w.channel == "db"]
        app_writes = [w for w in writes if w.channel == "app"]
        f = checker.check(writes, reads, observations, present, fault_at, window_end, time.time(),
                          readbacks=readbacks)
        out.findings = f
        if fault_at is not None:
            f.rto_seconds = checker.recovery_time(db_writes, fault_at, window_end)
            f.max_write_gap_seconds = checker.max_ack_gap(db_writes, fault_at, window_end)
            out.app_rto_seconds = (checker.recovery_time(app_writes, fault_at, window_end)
                                   if app_writes else None)
        else:
            start = min((w.sent_at for w in db_writes), default=window_end)
            f.max_write_gap_seconds = checker.max_ack_gap(db_writes, start + 1.0, window_end)
        if fault_at is not None and f.rto_seconds is not None:
            out.markers["recovered"] = fault_at + f.rto_seconds
        out.rpo_verified = readbacks != [] and final_present is not None
        if not out.rpo_verified:
            out.left_to_do.append("the ledger could not be read back after restore: RPO unverified")
        out.findings = f
        declare = out.markers.get("declare")
        if declare is not None:
            ack_after = [w.done_at for w in db_writes if w.acked and w.sent_at >= declare]
            out.rto_from_declaration_seconds = min(ack_after) - declare if ack_after else None
        rs, re_ = out.markers.get("restore_start"), out.markers.get("restore_end")
        if rs and re_:
            out.failback_max_write_gap_seconds = checker.max_ack_gap(db_writes, rs, re_)
        for name in (Check.writes_resumed, Check.no_split_brain, Check.no_lost_writes):
            if name in self.scenario.verify and out.status == "finished":
                ok, detail = self._check(name)
                if name == Check.writes_resumed and fault_at is None:
                    continue
                out.checks[name.value] = ok
                out.check_details[name.value] = detail
        self._verdict()

    def _verdict(self) -> None:
        out, sc = self.outcome, self.scenario
        tier = self.tier
        out.targets = combine(tier.rto_seconds if sc.fault else None, tier.rpo_seconds,
                              sc.targets.rto_seconds, sc.targets.rpo_seconds,
                              sc.targets.max_write_gap_seconds, tier.name, tier.gbt20988_level)
        f = out.findings
        rto = out.rto_from_declaration_seconds if sc.targets.rto_from == "declaration" else f.rto_seconds
        rpo_bound = None
        if sc.targets.rpo_against == "replication_lag":
            # half a second of slack: the lag is sampled a moment before the fault
            rpo_bound = (out.replication_lag_seconds or 0.0) + 0.5
        checks = {k: v for k, v in out.checks.items() if not k.startswith("precheck:")}
        out.criteria = evaluate(f, out.targets, checks, rto, rpo_bound)
        if out.touched:
            ok = [t.name for t in out.touched if t.passed]
            out.criteria.append(Criterion("touched_systems_passed", len(ok), len(out.touched),
                                          len(ok) == len(out.touched)))
        if out.app_rto_seconds is not None or (sc.fault and sc.workload.app_writers and self.system.app_url):
            target = out.targets.rto_seconds
            if target is not None:
                out.criteria.append(Criterion("app_rto_seconds", out.app_rto_seconds, target,
                                              out.app_rto_seconds is not None and out.app_rto_seconds <= target))
        level = level_reached(self.gbt, f.rto_seconds if sc.fault else 0.0, f.rpo_seconds, f.rpo_lost_writes)
        out.gbt_level = level.level if level else None
        out.gbt_level_name = level.name if level else None
        if out.status == "finished":
            out.status = "passed" if passed(out.criteria) else "failed"


def left_to_do(result: RestoreResult, layout_problems: list[str], command: str) -> list[str]:
    """What an abort leaves to the operator: each fault it could not undo, and the one
    command that converges the rest (it is safe to run in every state a drill leaves)."""
    items = list(result.not_restored)
    why = items + layout_problems
    if why:
        items.append(f"run `{command}`: it restarts what is stopped, rewinds or re-clones a member "
                     f"that diverged (keeping its WAL aside) and puts the primary back in main "
                     f"(now: {'; '.join(layout_problems) or 'faults not undone'})")
    return items
