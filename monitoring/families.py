"""tricenter's own metrics: active-active health, replication and RPO per system and center.

`families` turns one observation (monitoring/observation.py) into metric families without
any I/O, so unit tests feed it observations directly.

Labels are bounded by the inventory: system, center, tier, proxy and the fixed
vocabularies below (role, loss, probe, type). A member is named by its center, never by
an address or an id.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from inventory.runtime import DatabaseCluster, DbIntendedRole, SystemRuntime
from monitoring.inventory_view import InventoryView, hostport
from monitoring.observation import Observation, SystemObservation
from monitoring.rpo import (
    INF,
    LOSSES,
    SYNC_ROLES,
    as_intended,
    copy_lags,
    role_name,
    rpo_estimate,
)

RESTORE_SCENARIO = "backup-restore"


@dataclass(frozen=True)
class Targets:
    rto_seconds: float
    rpo_seconds: float



def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _backup_timestamps(info: dict) -> dict[str, float]:
    """backup type (full | diff | incr) → when its newest backup finished."""
    newest: dict[str, float] = {}
    for backup in info.get("backup", []):
        kind, stop = backup.get("type"), backup.get("timestamp", {}).get("stop")
        if kind and stop is not None:
            newest[kind] = max(newest.get(kind, 0.0), float(stop))
    return newest


def _epoch(iso: str | None) -> float | None:
    return dt.datetime.fromisoformat(iso).timestamp() if iso else None


def verified_restores(drills: list[dict]) -> dict[str, float]:
    """system → when its newest passed backup-restore drill finished (or started); one
    pass over the history for all systems."""
    newest: dict[str, float] = {}
    for r in drills:
        if r.get("scenario") == RESTORE_SCENARIO and r.get("passed"):
            when = _epoch(r.get("finished_at") or r.get("started_at"))
            system = r.get("system")
            if when is not None and system is not None:
                newest[system] = max(newest.get(system, when), when)
    return newest


class Families:
    """The metric families of one scrape, filled system by system."""

    def __init__(self) -> None:
        s, sc = ["system"], ["system", "center"]
        self.center_info = _gauge("tricenter_center_info", "A center and its role (1)", ["center", "role"])
        self.member_up = _gauge("tricenter_db_member_up",
                                "1 when Patroni reports the member running or streaming", sc)
        self.member_role = _gauge("tricenter_db_member_role",
                                  "1 for the member's current role", sc + ["role"])
        self.member_timeline = _gauge("tricenter_db_member_timeline", "The member's timeline", sc)
        self.member_as_intended = _gauge("tricenter_db_member_as_intended",
                                         "1 when the member holds the role the inventory intends", sc)
        self.layout = _gauge("tricenter_db_layout_as_intended",
                             "1 when every member holds its intended role", s)
        self.leader = _gauge("tricenter_db_leader_present",
                             "1 when the cluster has a running leader that confirms it leads", s)
        self.leaderless = CounterMetricFamily(
            "tricenter_db_leaderless_episodes", "Runs of polls (every second, between scrapes) "
            "without a leader that confirms it leads (monitoring/leader_watch.py)", labels=s)
        self.leader_center = _gauge("tricenter_db_leader_center", "1 for the center holding the leader",
                                    sc)
        self.sync_required = _gauge("tricenter_db_sync_standby_intended",
                                    "1 when the inventory intends a synchronous standby", s)
        self.sync_count = _gauge("tricenter_db_sync_standbys", "Running synchronous standbys", s)
        self.streaming = _gauge("tricenter_db_replication_streaming",
                                "1 when the standby streams WAL from the leader", sc)
        self.lag_bytes = _gauge("tricenter_db_replication_lag_bytes",
                                "WAL the leader has that the standby has not replayed", sc)
        self.lag_seconds = _gauge("tricenter_db_replication_lag_seconds",
                                  "Replay lag of the standby (pg_stat_replication.replay_lag)", sc)
        self.unflushed = _gauge("tricenter_db_replication_unacknowledged_bytes",
                                "Acknowledged WAL the standby has not flushed (0 for a sync standby)",
                                sc)
        self.rpo_bytes = _gauge("tricenter_rpo_estimate_bytes",
                                "Acknowledged WAL no surviving copy has if the leader's center or "
                                "city were lost now", s + ["loss"])
        self.rpo_seconds = _gauge("tricenter_rpo_estimate_seconds",
                                  "The RPO estimate as time (flush lag of the best surviving copy)",
                                  s + ["loss"])
        self.rpo_target = _gauge("tricenter_system_rpo_target_seconds", "The tier's RPO target",
                                 s + ["tier"])
        self.rto_target = _gauge("tricenter_system_rto_target_seconds", "The tier's RTO target",
                                 s + ["tier"])
        self.backup_time = _gauge("tricenter_backup_last_completion_timestamp_seconds",
                                  "When the newest pgBackRest backup of each type finished",
                                  s + ["type"])
        self.backup_ok = _gauge("tricenter_backup_repository_ok",
                                "1 when pgbackrest info reports the stanza ok", s)
        self.restore_verified = _gauge("tricenter_restore_verified",
                                       "1 when a backup-restore drill has passed for the system", s)
        self.restore_time = _gauge("tricenter_restore_last_verified_timestamp_seconds",
                                   "When the newest passed backup-restore drill finished", s)
        servers = ["proxy", "server", "kind", "system", "center"]
        self.server_up = _gauge("tricenter_haproxy_server_up", "1 when HAProxy sees the server UP",
                                servers)
        self.sessions = CounterMetricFamily("tricenter_haproxy_server_sessions",
                                            "Sessions HAProxy sent to the server (kind: app | db)",
                                            labels=servers)
        self.etcd_healthy = _gauge("tricenter_etcd_member_healthy", "1 when the member answers healthy",
                                   ["center"])
        self.etcd_leader = _gauge("tricenter_etcd_member_is_leader",
                                  "1 for the center whose member leads, as the members agree",
                                  ["center"])
        self.store_lag = _gauge("tricenter_object_store_replication_lag_seconds",
                                "Age of the heartbeat object a region serves (+Inf: none)",
                                ["center"])
        self.cert_expiry = _gauge("tricenter_tls_certificate_expiry_timestamp_seconds",
                                  "When the certificate an https endpoint of the inventory expires",
                                  ["endpoint"])
        self.probe_ok = _gauge("tricenter_probe_success", "1 when the probe answered this scrape",
                               ["probe", "system"])
        self.probe_age = _gauge("tricenter_probe_answer_age_seconds",
                                "Age of the answer a slow probe (pgbackrest, object_store) "
                                "gave this scrape: refreshed in the background, not per scrape",
                                ["probe", "system"])

    def all(self) -> list:
        return list(vars(self).values())


def families(view: InventoryView, obs: Observation, targets: dict[str, Targets],
             now: float, leaderless_episodes: dict[str, int] | None = None) -> list:
    runtime = view.runtime
    f = Families()
    for system, episodes in sorted((leaderless_episodes or {}).items()):
        f.leaderless.add_metric([system], episodes)
    for center in runtime.centers.values():
        f.center_info.add_metric([center.name, center.role], 1)
    restores = verified_restores(obs.drills)
    for system in runtime.systems.values():
        _system(f, view, system, obs.systems.get(system.name, SystemObservation()), targets,
                restores.get(system.name))
    _haproxy(f, view, obs)
    _etcd(f, view, obs)
    _object_store(f, obs, now)
    for url, not_after in sorted(obs.certificates.items()):
        f.cert_expiry.add_metric([hostport(url)], not_after)
    for probe, _ in obs.failures.items():
        f.probe_ok.add_metric([probe, ""], 0)
    if obs.heartbeat_age is not None:
        f.probe_age.add_metric(["object_store", ""], obs.heartbeat_age)
    for probe in ("haproxy", "etcd", "object_store", "patroni_dcs"):
        if probe not in obs.failures and _global_probe_ran(obs, probe):
            f.probe_ok.add_metric([probe, ""], 1)
    return f.all()


def _global_probe_ran(obs: Observation, probe: str) -> bool:
    return {"haproxy": obs.haproxy is not None, "etcd": bool(obs.etcd),
            "object_store": obs.heartbeat is not None, "patroni_dcs": obs.patroni_dcs}[probe]


def _system(f: Families, view: InventoryView, system: SystemRuntime, obs: SystemObservation,
            targets: dict[str, Targets], verified: float | None) -> None:
    name = system.name
    target = targets.get(system.tier)
    if target is not None:
        f.rpo_target.add_metric([name, system.tier], target.rpo_seconds)
        f.rto_target.add_metric([name, system.tier], target.rto_seconds)
    f.restore_verified.add_metric([name], 0 if verified is None else 1)
    if verified is not None:
        f.restore_time.add_metric([name], verified)
    for probe, _ in obs.failures.items():
        f.probe_ok.add_metric([probe, name], 0)
    if obs.backup_age is not None:
        f.probe_age.add_metric(["pgbackrest", name], obs.backup_age)
    if obs.backup is not None:
        f.probe_ok.add_metric(["pgbackrest", name], 1)
        f.backup_ok.add_metric([name], 1 if obs.backup.get("status", {}).get("code") == 0 else 0)
        for kind, stop in sorted(_backup_timestamps(obs.backup).items()):
            f.backup_time.add_metric([name, kind], stop)
    if system.database is not None and "patroni" in obs.failures:
        # No member answers this scrape: no primary anyone can reach — unless the leader
        # watch, which tells slowness from loss, has a confirmed leader.
        f.leader.add_metric([name], 1 if obs.watched and obs.leader_answers else 0)
    elif system.database is not None:
        _database(f, view, system.database, name, obs)


def _database(f: Families, view: InventoryView, db: DatabaseCluster, name: str,
              obs: SystemObservation) -> None:
    cluster = obs.cluster
    if cluster is None:
        return
    f.probe_ok.add_metric(["patroni", name], 1)
    if obs.replication is not None:
        f.probe_ok.add_metric(["postgres", name], 1)
    layout_holds = True
    for member in db.members:
        seen = cluster.members.get(member.name)
        running = seen is not None and seen.running
        role = role_name(seen.role) if seen else "other"
        holds = as_intended(member.intended_role, seen.role if seen else "", running)
        layout_holds &= holds
        labels = [name, member.center]
        f.member_up.add_metric(labels, 1 if running else 0)
        f.member_role.add_metric(labels + [role], 1)
        f.member_as_intended.add_metric(labels, 1 if holds else 0)
        f.leader_center.add_metric(labels, 1 if cluster.leader == member.name else 0)
        if seen is not None and seen.timeline is not None:
            f.member_timeline.add_metric(labels, seen.timeline)
    f.layout.add_metric([name], 1 if layout_holds else 0)
    present = obs.leader_answers if obs.watched else cluster.leader and obs.leader_answers is not False
    f.leader.add_metric([name], 1 if present else 0)
    f.sync_required.add_metric([name], 1 if any(
        m.intended_role == DbIntendedRole.sync for m in db.members) else 0)
    f.sync_count.add_metric([name], sum(1 for m in cluster.members.values()
                                        if m.role in SYNC_ROLES and m.running))
    lags = copy_lags(db, obs)
    for lag in lags.values():
        labels = [name, lag.center]
        f.streaming.add_metric(labels, 1 if lag.streaming else 0)
        f.unflushed.add_metric(labels, lag.unflushed_bytes)
        if lag.replay_bytes is not None:
            f.lag_bytes.add_metric(labels, lag.replay_bytes)
        if lag.replay_seconds is not None:
            f.lag_seconds.add_metric(labels, lag.replay_seconds)
    for loss in LOSSES:
        rpo_bytes, rpo_seconds = rpo_estimate(view, db, obs, loss, lags)
        f.rpo_bytes.add_metric([name, loss], rpo_bytes)
        if rpo_seconds is not None:
            f.rpo_seconds.add_metric([name, loss], rpo_seconds)


def _haproxy(f: Families, view: InventoryView, obs: Observation) -> None:
    for server in obs.haproxy or []:
        kind, system, center = view.server_owner(server)
        labels = [server.proxy, server.server, kind, system, center or "unknown"]
        f.server_up.add_metric(labels, 1 if server.status == "UP" else 0)
        f.sessions.add_metric(labels, server.sessions_total)


def _etcd(f: Families, view: InventoryView, obs: Observation) -> None:
    members = {m.member_id: view.etcd_center(m.url) for m in obs.etcd if m.member_id}
    # The leader id most healthy members report: a partitioned member may still name an old one.
    votes: dict[str, int] = {}
    for m in obs.etcd:
        if m.healthy and m.leader_id:
            votes[m.leader_id] = votes.get(m.leader_id, 0) + 1
    leader = max(votes, key=lambda k: votes[k]) if votes else None
    for m in obs.etcd:
        center = view.etcd_center(m.url)
        f.etcd_healthy.add_metric([center], 1 if m.healthy else 0)
        f.etcd_leader.add_metric([center], 1 if leader and members.get(leader) == center
                                 and m.member_id == leader else 0)


def _object_store(f: Families, obs: Observation, now: float) -> None:
    if obs.heartbeat is None:
        return
    written, seen = obs.heartbeat
    for center, stamp in sorted(seen.items()):
        f.store_lag.add_metric([center], INF if stamp is None else max(written - stamp, 0.0))

