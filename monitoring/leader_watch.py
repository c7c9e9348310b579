"""Catches a primary outage shorter than the scrape interval.

Prometheus scrapes every 5 s; the lab's Patroni fails over in about 5 s, and Patroni
restarts a crashed PostgreSQL within a second, so a scrape can miss the whole outage (seen
in db-primary-crash and main-center-freeze drills). This watch asks, every second, whether
each cluster has a leader that confirms it leads, and counts every run of at least
`threshold` unconfirmed polls as one leaderless episode. A planned switchover leaves the
cluster without a confirmed leader for about one poll, under the default threshold of 3.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from inventory.runtime import DatabaseCluster, RuntimeInventory

log = logging.getLogger(__name__)


class LeaderWatch:
    def __init__(self, runtime: RuntimeInventory, confirmed: Callable[[DatabaseCluster], bool],
                 interval: float = 1.0, threshold: int = 3):
        self.databases = {name: s.database for name, s in runtime.systems.items() if s.database}
        self.confirmed, self.interval, self.threshold = confirmed, interval, threshold
        self.misses = {name: 0 for name in self.databases}
        self.episodes = {name: 0 for name in self.databases}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def update(self, system: str, confirmed: bool) -> None:
        """One poll's answer; the episode counts once, when it reaches the threshold."""
        with self._lock:
            self.misses[system] = 0 if confirmed else self.misses[system] + 1
            if self.misses[system] == self.threshold:
                self.episodes[system] += 1
                log.warning("%s: no confirmed leader for %d polls", system, self.threshold)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.episodes)

    def poll_once(self, pool: ThreadPoolExecutor) -> None:
        answers = {name: pool.submit(self.confirmed, db) for name, db in self.databases.items()}
        for name, answer in answers.items():
            try:
                self.update(name, bool(answer.result()))
            except Exception as exc:  # noqa: BLE001 — a probe error is an unconfirmed leader
                log.info("%s: leader check failed: %s", name, exc)
                self.update(name, False)

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            while not self._stop.wait(self.interval):
                self.poll_once(pool)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="leader-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
