"""Replication arithmetic: what each standby lacks, and what a lost center or city would
cost (the RPO estimate). Pure: observations in, numbers out."""
from __future__ import annotations

import math
from dataclasses import dataclass

from inventory.runtime import DatabaseCluster, DbIntendedRole
from monitoring.inventory_view import InventoryView
from monitoring.observation import SystemObservation

INF = math.inf
ROLES = ("leader", "sync_standby", "replica")  # anything else is reported as "other"
LEADER_ROLES = ("leader", "master", "primary", "standby_leader")
SYNC_ROLES = ("sync_standby", "synchronous_standby")
SYNC_STATES = ("sync", "quorum")  # commits wait for these standbys' flush
# The two losses a DR team plans for: the leader's center, or its whole city.
LOSSES = ("center", "region")
INTENDED = {DbIntendedRole.leader: "leader", DbIntendedRole.sync: "sync_standby",
            DbIntendedRole.async_: "replica"}


def role_name(role: str) -> str:
    if role in LEADER_ROLES:
        return "leader"
    if role in SYNC_ROLES:
        return "sync_standby"
    return role if role in ROLES else "other"


def as_intended(intended: DbIntendedRole, role: str, running: bool) -> bool:
    return running and role_name(role) == INTENDED[intended]


@dataclass(frozen=True)
class CopyLag:
    """What a standby lacks of the WAL the leader has acknowledged."""

    center: str
    unflushed_bytes: float  # INF when unknown (not streaming)
    unflushed_seconds: float | None  # None when only bytes are known
    replay_bytes: float | None
    replay_seconds: float | None
    streaming: bool


def copy_lags(db: DatabaseCluster, obs: SystemObservation) -> dict[str, CopyLag]:
    """Per non-leader member: its lag, from pg_stat_replication where readable, else from
    Patroni (bytes only: the exporter's user may lack pg_monitor)."""
    cluster = obs.cluster
    leader = cluster.leader if cluster else None
    rows = {r.member: r for r in obs.replication or []}
    lags: dict[str, CopyLag] = {}
    for member in db.members:
        if member.name == leader:
            continue
        seen = cluster.members.get(member.name) if cluster else None
        row = rows.get(member.name)
        if row is not None and row.flush_lag_bytes is not None:
            synchronous = row.sync_state in SYNC_STATES
            unflushed = 0.0 if synchronous else max(row.flush_lag_bytes, 0.0)
            seconds = 0.0 if synchronous or unflushed == 0 else row.flush_lag_seconds
            lags[member.name] = CopyLag(member.center, unflushed, seconds,
                                        max(row.replay_lag_bytes or 0.0, 0.0),
                                        row.replay_lag_seconds or 0.0, row.state == "streaming")
        elif seen is not None and seen.running and seen.lag is not None and leader:
            synchronous = role_name(seen.role) == "sync_standby"
            unflushed = 0.0 if synchronous else float(seen.lag)
            lags[member.name] = CopyLag(member.center, unflushed, 0.0 if unflushed == 0 else None,
                                        float(seen.lag), None, seen.state == "streaming")
        else:
            lags[member.name] = CopyLag(member.center, INF, None, None, None, False)
    return lags


def rpo_estimate(view: InventoryView, db: DatabaseCluster, obs: SystemObservation, loss: str,
                 lags: dict[str, CopyLag] | None = None) -> tuple[float, float | None]:
    """(bytes, seconds) of acknowledged WAL no surviving copy has, if the leader's center
    (loss="center") or its city (loss="region") were lost now. No leader, or no copy
    outside the lost place: unbounded (+Inf). `lags`: copy_lags(db, obs), when known."""
    cluster = obs.cluster
    if cluster is None or cluster.leader is None:
        return INF, INF
    lost_center = db.member(cluster.leader).center
    lost_city = view.city_of(lost_center)
    survivors = [lag for lag in (copy_lags(db, obs) if lags is None else lags).values()
                 if (lag.center != lost_center if loss == "center"
                     else view.city_of(lag.center) != lost_city)]
    if not survivors:
        return INF, INF
    best = min(survivors, key=lambda lag: (lag.unflushed_bytes, lag.unflushed_seconds or 0.0))
    return best.unflushed_bytes, best.unflushed_seconds
