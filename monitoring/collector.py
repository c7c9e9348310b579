"""tricenter's own metrics: active-active health, replication and RPO per system and center.

`observe` asks every endpoint the runtime inventory names (through monitoring/probes.py,
concurrently, each with a short timeout); `families` turns one such observation into
metric families without any I/O, so unit tests feed it observations directly.

Labels are bounded by the inventory: system, center, tier, proxy and the fixed
vocabularies below (role, loss, probe, type). A member is named by its center, never by
an address or an id.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from support.patroni import ClusterState
from inventory.runtime import DatabaseCluster, DbIntendedRole, RuntimeInventory, SystemRuntime
from monitoring import probes
from monitoring.probes import EtcdMemberStatus, HaproxyServer, ProbeFailed, ReplicationRow

log = logging.getLogger(__name__)

INF = math.inf
# Probing threads: enough to overlap the waits on 100 systems' endpoints, few enough that
# the interpreter lock is not fought over (the work between waits is Python).
WORKERS = 16
ROLES = ("leader", "sync_standby", "replica")  # anything else is reported as "other"
LEADER_ROLES = ("leader", "master", "primary", "standby_leader")
SYNC_ROLES = ("sync_standby", "synchronous_standby")
SYNC_STATES = ("sync", "quorum")  # commits wait for these standbys' flush
# The two losses a DR team plans for: the leader's center, or its whole city.
LOSSES = ("center", "region")
RESTORE_SCENARIO = "backup-restore"


@dataclass
class SystemObservation:
    cluster: ClusterState | None = None
    leader_answers: bool | None = None  # the leader's own REST API confirms it leads
    watched: bool = False  # leader_answers is the leader watch's verdict, not this scrape's
    replication: list[ReplicationRow] | None = None
    backup: dict | None = None  # the stanza's `pgbackrest info` entry
    backup_age: float | None = None  # seconds since that entry was read (a cached answer)
    failures: dict[str, str] = field(default_factory=dict)  # probe → why


@dataclass
class Observation:
    systems: dict[str, SystemObservation] = field(default_factory=dict)
    haproxy: list[HaproxyServer] | None = None
    etcd: list[EtcdMemberStatus] = field(default_factory=list)
    heartbeat: tuple[float, dict[str, float | None]] | None = None  # object store
    heartbeat_age: float | None = None  # seconds since the heartbeat was taken (cached)
    drills: list[dict] = field(default_factory=list)  # the drill history
    certificates: dict[str, float] = field(default_factory=dict)  # https URL → not-after
    failures: dict[str, str] = field(default_factory=dict)  # global probe → why


@dataclass(frozen=True)
class Targets:
    rto_seconds: float
    rpo_seconds: float


# --- pure: observation → metric families -------------------------------------------------

def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _role(role: str) -> str:
    if role in LEADER_ROLES:
        return "leader"
    if role in SYNC_ROLES:
        return "sync_standby"
    return role if role in ROLES else "other"


def _as_intended(intended: DbIntendedRole, role: str, running: bool) -> bool:
    wanted = {DbIntendedRole.leader: "leader", DbIntendedRole.sync: "sync_standby",
              DbIntendedRole.async_: "replica"}[intended]
    return running and _role(role) == wanted


def center_city(runtime: RuntimeInventory, center: str) -> str:
    """main and samecity share a city; remote is the other one."""
    c = runtime.centers.get(center)
    return "remote" if c is not None and c.role == "remote" else "home"


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
            synchronous = _role(seen.role) == "sync_standby"
            unflushed = 0.0 if synchronous else float(seen.lag)
            lags[member.name] = CopyLag(member.center, unflushed, 0.0 if unflushed == 0 else None,
                                        float(seen.lag), None, seen.state == "streaming")
        else:
            lags[member.name] = CopyLag(member.center, INF, None, None, None, False)
    return lags


def rpo_estimate(runtime: RuntimeInventory, db: DatabaseCluster, obs: SystemObservation,
                 loss: str) -> tuple[float, float | None]:
    """(bytes, seconds) of acknowledged WAL no surviving copy has, if the leader's center
    (loss="center") or its city (loss="region") were lost now. No leader, or no copy
    outside the lost place: unbounded (+Inf)."""
    cluster = obs.cluster
    if cluster is None or cluster.leader is None:
        return INF, INF
    lost_center = db.member(cluster.leader).center
    lost_city = center_city(runtime, lost_center)
    survivors = [lag for lag in copy_lags(db, obs).values()
                 if (lag.center != lost_center if loss == "center"
                     else center_city(runtime, lag.center) != lost_city)]
    if not survivors:
        return INF, INF
    best = min(survivors, key=lambda lag: (lag.unflushed_bytes, lag.unflushed_seconds or 0.0))
    return best.unflushed_bytes, best.unflushed_seconds


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


def last_verified_restore(drills: list[dict], system: str) -> float | None:
    """When the newest passed backup-restore drill of a system finished (or started)."""
    times = [_epoch(r.get("finished_at") or r.get("started_at")) for r in drills
             if r.get("scenario") == RESTORE_SCENARIO and r.get("system") == system
             and r.get("passed")]
    return max((t for t in times if t is not None), default=None)


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


def families(runtime: RuntimeInventory, obs: Observation, targets: dict[str, Targets],
             now: float, leaderless_episodes: dict[str, int] | None = None) -> list:
    f = Families()
    for system, episodes in sorted((leaderless_episodes or {}).items()):
        f.leaderless.add_metric([system], episodes)
    for center in runtime.centers.values():
        f.center_info.add_metric([center.name, center.role], 1)
    for system in runtime.systems.values():
        _system(f, runtime, system, obs.systems.get(system.name, SystemObservation()), targets,
                obs.drills)
    _haproxy(f, runtime, obs)
    _etcd(f, runtime, obs)
    _object_store(f, obs, now)
    for url, not_after in sorted(obs.certificates.items()):
        f.cert_expiry.add_metric([_hostport(url)], not_after)
    for probe, _ in obs.failures.items():
        f.probe_ok.add_metric([probe, ""], 0)
    if obs.heartbeat_age is not None:
        f.probe_age.add_metric(["object_store", ""], obs.heartbeat_age)
    for probe in ("haproxy", "etcd", "object_store"):
        if probe not in obs.failures and _global_probe_ran(obs, probe):
            f.probe_ok.add_metric([probe, ""], 1)
    return f.all()


def _global_probe_ran(obs: Observation, probe: str) -> bool:
    return {"haproxy": obs.haproxy is not None, "etcd": bool(obs.etcd),
            "object_store": obs.heartbeat is not None}[probe]


def _system(f: Families, runtime: RuntimeInventory, system: SystemRuntime, obs: SystemObservation,
            targets: dict[str, Targets], drills: list[dict]) -> None:
    name = system.name
    target = targets.get(system.tier)
    if target is not None:
        f.rpo_target.add_metric([name, system.tier], target.rpo_seconds)
        f.rto_target.add_metric([name, system.tier], target.rto_seconds)
    verified = last_verified_restore(drills, name)
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
        _database(f, runtime, system.database, name, obs)


def _database(f: Families, runtime: RuntimeInventory, db: DatabaseCluster, name: str,
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
        role = _role(seen.role) if seen else "other"
        holds = _as_intended(member.intended_role, seen.role if seen else "", running)
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
    for lag in copy_lags(db, obs).values():
        labels = [name, lag.center]
        f.streaming.add_metric(labels, 1 if lag.streaming else 0)
        f.unflushed.add_metric(labels, lag.unflushed_bytes)
        if lag.replay_bytes is not None:
            f.lag_bytes.add_metric(labels, lag.replay_bytes)
        if lag.replay_seconds is not None:
            f.lag_seconds.add_metric(labels, lag.replay_seconds)
    for loss in LOSSES:
        rpo_bytes, rpo_seconds = rpo_estimate(runtime, db, obs, loss)
        f.rpo_bytes.add_metric([name, loss], rpo_bytes)
        if rpo_seconds is not None:
            f.rpo_seconds.add_metric([name, loss], rpo_seconds)


def _host(url_or_address: str) -> str:
    rest = url_or_address.split("://", 1)[-1].split("/", 1)[0]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def _hostport(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def server_owners(runtime: RuntimeInventory) -> dict[str, tuple[str, str, str]]:
    """host:port of every app instance and database member → (kind, system, center)."""
    owners: dict[str, tuple[str, str, str]] = {}
    for system in runtime.systems.values():
        for center, urls in system.app_backends.items():
            for url in urls:
                owners[_hostport(url)] = ("app", system.name, center)
        if system.database is not None:
            for member in system.database.members:
                owners[f"{member.host}:{member.port}"] = ("db", system.name, member.center)
    return owners


def https_endpoints(runtime: RuntimeInventory) -> list[str]:
    """Every https URL the inventory names: their certificates can expire."""
    urls: list[str] = list(runtime.etcd) + list(runtime.monitoring.exporters.values())
    if runtime.object_store is not None:
        urls.append(runtime.object_store.endpoint)
    if runtime.monitoring.prometheus_url:
        urls.append(runtime.monitoring.prometheus_url)
    for system in runtime.systems.values():
        urls += [system.app_url or ""] + [u for us in system.app_backends.values() for u in us]
        if system.database is not None:
            urls += [m.api_url for m in system.database.members]
    return sorted({u for u in urls if u.startswith("https://")})


def member_owners(runtime: RuntimeInventory) -> dict[str, tuple[str, str, str]]:
    """Database member name → ("db", system, center)."""
    return {m.name: ("db", s.name, m.center) for s in runtime.systems.values()
            if s.database is not None for m in s.database.members}


def server_owner(runtime: RuntimeInventory, owners: dict[str, tuple[str, str, str]],
                 server: HaproxyServer, members: dict[str, tuple[str, str, str]] | None = None
                 ) -> tuple[str, str, str]:
    """(kind, system, center) of a HAProxy server: by its address, else by its name — the
    stats page leaves `addr` empty unless `stats show-legends` is on. `members`:
    member_owners(runtime), computed once per scrape rather than once per server."""
    if server.address in owners:
        return owners[server.address]
    members = member_owners(runtime) if members is None else members
    if server.server in members:
        return members[server.server]
    by_address = {a: c.name for c in runtime.centers.values() for a in c.addresses}
    tokens = set(server.server.split("-"))
    center = next((c for c in runtime.centers if c in tokens), by_address.get(_host(server.address), ""))
    serving = [s.name for s in runtime.systems.values() if center and center in s.app_backends]
    return ("app", serving[0], center) if len(serving) == 1 else ("", "", center)


def _haproxy(f: Families, runtime: RuntimeInventory, obs: Observation) -> None:
    owners, members = server_owners(runtime), member_owners(runtime)
    for server in obs.haproxy or []:
        kind, system, center = server_owner(runtime, owners, server, members)
        labels = [server.proxy, server.server, kind, system, center or "unknown"]
        f.server_up.add_metric(labels, 1 if server.status == "UP" else 0)
        f.sessions.add_metric(labels, server.sessions_total)


def etcd_center(runtime: RuntimeInventory, url: str) -> str:
    by_address = {a: c.name for c in runtime.centers.values() for a in c.addresses}
    return by_address.get(_host(url), "unknown")


def _etcd(f: Families, runtime: RuntimeInventory, obs: Observation) -> None:
    members = {m.member_id: etcd_center(runtime, m.url) for m in obs.etcd if m.member_id}
    # The leader id most healthy members report: a partitioned member may still name an old one.
    votes: dict[str, int] = {}
    for m in obs.etcd:
        if m.healthy and m.leader_id:
            votes[m.leader_id] = votes.get(m.leader_id, 0) + 1
    leader = max(votes, key=lambda k: votes[k]) if votes else None
    for m in obs.etcd:
        center = etcd_center(runtime, m.url)
        f.etcd_healthy.add_metric([center], 1 if m.healthy else 0)
        f.etcd_leader.add_metric([center], 1 if leader and members.get(leader) == center
                                 and m.member_id == leader else 0)


def _object_store(f: Families, obs: Observation, now: float) -> None:
    if obs.heartbeat is None:
        return
    written, seen = obs.heartbeat
    for center, stamp in sorted(seen.items()):
        f.store_lag.add_metric([center], INF if stamp is None else max(written - stamp, 0.0))


# --- I/O: asking the endpoints --------------------------------------------------------------

@dataclass
class Sources:
    """Where the exporter looks, besides the runtime inventory; probes are replaceable."""

    haproxy_stats: list[str] = field(default_factory=list)
    pgbackrest_config: Path | None = None
    pgbackrest_user: str | None = None
    drill_history: Path | None = None
    secret_base: Path | None = None  # resolves relative secret file references
    patroni: Callable = probes.patroni_cluster
    leader_check: Callable = probes.patroni_leader_answers
    tls: Callable = probes.tls_not_after
    replication: Callable = probes.replication
    haproxy: Callable = probes.haproxy_stats
    etcd: Callable = probes.etcd_member
    pgbackrest: Callable = probes.pgbackrest_info
    heartbeat: Callable = probes.object_store_heartbeat
    # system → the leader watch's verdict (True: leader lost, None: no verdict yet), which
    # replaces the scrape's own /primary; set when a watch runs (monitoring/cli.py).
    leader_lost: Callable[[str], bool | None] = lambda system: None


def confirmed_leader(obs: SystemObservation) -> str | None:
    return obs.cluster.leader if obs.cluster is not None and obs.leader_answers else None


def _observe_system(system: SystemRuntime, sources: Sources, ca_file: str | None = None
                    ) -> SystemObservation:
    from dr.workload import SecretUnavailable, resolve_secret

    obs = SystemObservation()
    db = system.database
    if db is None:
        return obs
    try:
        obs.cluster = sources.patroni(db, ca_file)
    except ProbeFailed as exc:
        obs.failures["patroni"] = str(exc)
    lost = sources.leader_lost(system.name)
    if lost is not None:
        obs.leader_answers, obs.watched = not lost, True
    elif obs.cluster is not None and obs.cluster.leader is not None:
        obs.leader_answers = sources.leader_check(db, db.member(obs.cluster.leader), ca_file)
    # Only a leader that answers: a frozen one would hold the scrape for the connect timeout.
    if obs.leader_answers and obs.cluster is not None and obs.cluster.leader is not None:
        try:
            password = resolve_secret(db.password, sources.secret_base)
            obs.replication = sources.replication(db, db.member(obs.cluster.leader), password,
                                                  ca_file)
        except (ProbeFailed, SecretUnavailable, OSError) as exc:
            obs.failures["postgres"] = str(exc)
    if sources.pgbackrest_config is not None:
        args = (sources.pgbackrest_config, db.cluster, sources.pgbackrest_user)
        try:
            obs.backup = sources.pgbackrest(*args)
        except ProbeFailed as exc:
            obs.failures["pgbackrest"] = str(exc)
        obs.backup_age = answer_age(sources.pgbackrest, args)
    return obs


def answer_age(probe: Callable, args: tuple) -> float | None:
    """How old the answer of a cached probe (probes.Background) is; None for a live one."""
    age = getattr(probe, "age", None)
    return age(*args) if age is not None else None


def _not_after(sources: Sources, url: str) -> float | None:
    try:
        return sources.tls(url)
    except ProbeFailed as exc:
        log.warning("certificate of %s unreadable: %s", url, exc)
        return None


def _haproxy_servers(sources: Sources) -> list[HaproxyServer]:
    return [s for url in sources.haproxy_stats for s in sources.haproxy(url)]


def observe(runtime: RuntimeInventory, sources: Sources,
            pool: ThreadPoolExecutor | None = None) -> Observation:
    """One look at everything the runtime inventory names; `pool`: the collector's own,
    whose threads (and their kept connections) outlive the scrape."""
    if pool is None:
        with ThreadPoolExecutor(max_workers=WORKERS) as own:
            return observe(runtime, sources, own)
    from dr import history
    from dr.workload import SecretUnavailable, resolve_secret

    obs = Observation()
    systems = {name: pool.submit(_observe_system, s, sources, runtime.tls_ca_file)
               for name, s in runtime.systems.items()}
    etcd = [pool.submit(sources.etcd, url) for url in runtime.etcd]
    certificates = {url: pool.submit(_not_after, sources, url) for url in https_endpoints(runtime)}
    haproxy = pool.submit(_haproxy_servers, sources) if sources.haproxy_stats else None
    obs.systems = {name: future.result() for name, future in systems.items()}
    obs.etcd = [future.result() for future in etcd]
    obs.certificates = {url: t for url, f in certificates.items() if (t := f.result()) is not None}
    if haproxy is not None:
        try:
            obs.haproxy = haproxy.result()
        except ProbeFailed as exc:
            obs.failures["haproxy"] = str(exc)
    store = runtime.object_store
    if store is not None and store.regions:
        writer = next((c for c in store.regions if runtime.centers.get(c) and
                       runtime.centers[c].role == "main"), next(iter(store.regions)))
        try:
            args = (store, resolve_secret(store.access_key, sources.secret_base),
                    resolve_secret(store.secret_key, sources.secret_base), writer)
            obs.heartbeat = sources.heartbeat(*args)
            obs.heartbeat_age = answer_age(sources.heartbeat, args)
        except (ProbeFailed, SecretUnavailable, OSError) as exc:
            obs.failures["object_store"] = str(exc)
    if sources.drill_history is not None:
        obs.drills = history.load(sources.drill_history)
    for probe, why in [*obs.failures.items(),
                       *((p, w) for s in obs.systems.values() for p, w in s.failures.items())]:
        log.warning("probe %s failed: %s", probe, why)
    return obs


class TricenterCollector(Collector):
    """Observes at every scrape: what Prometheus stores is what held at that moment."""

    def __init__(self, runtime: RuntimeInventory, sources: Sources,
                 targets: dict[str, Targets] | None = None, watch=None):
        self.runtime = runtime
        self.watch = watch  # a started monitoring.leader_watch.LeaderWatch, or None
        self.sources = sources
        self.targets = targets or {}
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="probe")

    def describe(self) -> list:
        return []  # registering must not probe every endpoint once more

    def collect(self) -> Iterator:
        started = time.monotonic()
        obs = observe(self.runtime, self.sources, self.pool)
        episodes = self.watch.counts() if self.watch is not None else None
        yield from families(self.runtime, obs, self.targets, time.time(), episodes)
        if self.sources.drill_history is not None:
            from monitoring.drill_exporter import DrillCollector
            yield from DrillCollector(self.sources.drill_history).collect()
        duration = _gauge("tricenter_exporter_scrape_duration_seconds",
                          "How long observing every endpoint took", [])
        duration.add_metric([], time.monotonic() - started)
        yield duration


def exported_metric_names() -> set[str]:
    """Every sample name the tricenter exporter can expose (counters with `_total`), so
    rules and dashboards can be checked against what really exists."""
    from monitoring.drill_exporter import DrillCollector

    names = {"tricenter_exporter_scrape_duration_seconds"}
    empty_history = Path("/nonexistent/drills.jsonl")
    for family in [*Families().all(), *DrillCollector(empty_history).collect()]:
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names
