"""One look at everything the runtime inventory names: `observe` asks every endpoint
(through monitoring/probes.py, concurrently, each with a short timeout) and returns plain
data, which monitoring/families.py turns into metrics without any I/O."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from inventory.runtime import SystemRuntime
from monitoring import probes
from monitoring.inventory_view import InventoryView
from monitoring.secrets import Secrets
from monitoring.probes import (
    EtcdMemberStatus,
    HaproxyServer,
    ProbeFailed,
    ReplicationRow,
)
from support.patroni import ClusterState

log = logging.getLogger(__name__)

# Probing threads: enough to overlap the waits on 100 systems' endpoints, few enough that
# the interpreter lock is not fought over (the work between waits is Python).
WORKERS = 16


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
    patroni_dcs: bool = False  # the clusters' states came from etcd this scrape
    certificates: dict[str, float] = field(default_factory=dict)  # https URL → not-after
    failures: dict[str, str] = field(default_factory=dict)  # global probe → why


@dataclass
class Sources:
    """Where the exporter looks, besides the runtime inventory; probes are replaceable."""

    haproxy_stats: list[str] = field(default_factory=list)
    pgbackrest_config: Path | None = None
    pgbackrest_user: str | None = None
    drill_history: Path | None = None
    # Every secret a probe needs, read through one cache (monitoring/secrets.py), which
    # knows where relative secret files start.
    secrets: Secrets = field(default_factory=Secrets)
    patroni: Callable = probes.patroni_cluster
    # Every cluster's state from etcd in one read (probes.patroni_clusters), asked before
    # `patroni`, which remains for a cluster the read did not cover; None: REST API only.
    patroni_dcs: Callable[[], dict[str, ClusterState]] | None = None
    leader_check: Callable = probes.patroni_leader_answers
    # Read off the scrape path once an hour: a certificate changes rarely, and a handshake
    # per https endpoint per scrape cost more than the rest of the scrape.
    tls: Callable = field(default_factory=lambda: probes.Background(probes.tls_not_after, max_age=3600))
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


def _observe_system(system: SystemRuntime, sources: Sources, ca_file: str | None = None,
                    cluster: ClusterState | None = None) -> SystemObservation:
    """`cluster`: the state etcd gave, if it did; else this asks Patroni's REST API."""
    from dr.workload import SecretUnavailable

    obs = SystemObservation(cluster=cluster)
    db = system.database
    if db is None:
        return obs
    if obs.cluster is None:
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
            password = sources.secrets(db.password)
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


def _dcs_clusters(sources: Sources, obs: Observation) -> dict[str, ClusterState]:
    """Asked in the scrape's thread before the systems fan out: one request, whose answer
    they all wait for."""
    from dr.workload import SecretUnavailable

    if sources.patroni_dcs is None:
        return {}
    try:
        clusters = sources.patroni_dcs()
    except (ProbeFailed, SecretUnavailable, OSError) as exc:
        obs.failures["patroni_dcs"] = str(exc)
        return {}
    obs.patroni_dcs = True
    return clusters


def observe(view: InventoryView, sources: Sources,
            pool: ThreadPoolExecutor | None = None) -> Observation:
    """One look at everything the runtime inventory names; `pool`: the collector's own,
    whose threads (and their kept connections) outlive the scrape."""
    if pool is None:
        with ThreadPoolExecutor(max_workers=WORKERS) as own:
            return observe(view, sources, own)
    from dr import history
    from dr.workload import SecretUnavailable

    runtime = view.runtime
    obs = Observation()
    from_dcs = _dcs_clusters(sources, obs)
    systems = {name: pool.submit(_observe_system, s, sources, runtime.tls_ca_file,
                                 from_dcs.get(s.database.cluster) if s.database else None)
               for name, s in runtime.systems.items()}
    etcd = [pool.submit(sources.etcd, url) for url in runtime.etcd]
    haproxy = pool.submit(_haproxy_servers, sources) if sources.haproxy_stats else None
    obs.systems = {name: future.result() for name, future in systems.items()}
    obs.etcd = [future.result() for future in etcd]
    # Asked here, not in the pool: the certificate probe answers from its cache (see
    # Sources.tls), quicker than a hand-off to a thread.
    obs.certificates = {url: t for url in view.https_endpoints
                        if (t := _not_after(sources, url)) is not None}
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
            args = (store, sources.secrets(store.access_key), sources.secrets(store.secret_key),
                    writer)
            obs.heartbeat = sources.heartbeat(*args)
            obs.heartbeat_age = answer_age(sources.heartbeat, args)
        except (ProbeFailed, SecretUnavailable, OSError) as exc:
            obs.failures["object_store"] = str(exc)
    if sources.drill_history is not None:
        obs.drills = history.load_unless_unchanged(sources.drill_history)
    for probe, why in [*obs.failures.items(),
                       *((p, w) for s in obs.systems.values() for p, w in s.failures.items())]:
        log.warning("probe %s failed: %s", probe, why)
    return obs

