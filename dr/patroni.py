"""The drill's record of the cluster: a background poller writing what Patroni says into
the ledger. The client itself is support/patroni.py, shared with the exporter and the lab."""
from __future__ import annotations

import threading
import time

from dr.ledger import Observation, WriteLedger
from support.patroni import PatroniCluster, PatroniUnavailable


class ClusterObserver(threading.Thread):
    """Polls Patroni in the background and records each answer in the ledger."""

    def __init__(self, cluster: PatroniCluster, ledger: WriteLedger, interval: float = 0.25):
        super().__init__(name="patroni-observer", daemon=True)
        # own session: not thread-shared
        self.cluster = PatroniCluster(cluster.db, cluster.access, timeout=0.3)
        self.ledger = ledger
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            at = time.time()
            try:
                state = self.cluster.state()
                self.ledger.add_observation(Observation(
                    at, state.leader, state.timeline,
                    {m.name: f"{m.role}/{m.state}" for m in state.members.values()}))
            except PatroniUnavailable:
                self.ledger.add_observation(Observation(at, None, None, {}))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
