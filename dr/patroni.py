"""The drill's record of the cluster: a background poller writing what Patroni says into
the ledger. The client itself is support/patroni.py, shared with the exporter and the lab."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from dr.ledger import Observation, WriteLedger
from support.patroni import ClusterState, PatroniCluster


def agreed(at: float, views: list[ClusterState]) -> Observation:
    """One observation from every member's own /cluster. A member cut off from etcd keeps
    answering from its watch cache, naming the leader it last saw (a partitioned old
    primary names itself for seconds after another was promoted), so a leader counts only
    when a strict majority of the members that answered name it; one answer is taken
    as it is."""
    if not views:
        return Observation(at, None, None, {})
    named = Counter(v.leader for v in views)
    leader, count = named.most_common(1)[0]
    disputed = {v.seen_by: v.leader for v in views} if len(named) > 1 else {}
    if disputed and count * 2 <= len(views):
        return Observation(at, None, None, {}, disputed)
    view = next(v for v in views if v.leader == leader)
    return Observation(at, view.leader, view.timeline,
                       {m.name: f"{m.role}/{m.state}" for m in view.members.values()}, disputed)


class ClusterObserver(threading.Thread):
    """Polls every member's Patroni in the background and records what they agree on."""

    def __init__(self, cluster: PatroniCluster, ledger: WriteLedger, interval: float = 0.25):
        super().__init__(name="patroni-observer", daemon=True)
        # own client: its pools are not shared with the drill's actions
        self.cluster = PatroniCluster(cluster.db, cluster.access, timeout=0.3)
        self.names = [m.name for m in cluster.db.members]
        self.ledger = ledger
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        # in parallel: a member that drops packets costs the round its timeout once
        with ThreadPoolExecutor(len(self.names), thread_name_prefix="patroni-observer") as pool:
            while not self._halt.is_set():
                at = time.time()
                views = [v for v in pool.map(self.cluster.member_view, self.names) if v is not None]
                self.ledger.add_observation(agreed(at, views))
                self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
