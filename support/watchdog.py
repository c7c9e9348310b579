"""One thread that runs actions whose deadline passed, unless disarmed before.

The exporter bounds every query it runs through psycopg on a kept PostgreSQL connection
(a frozen server would block it for ever): pg_stat_replication at every scrape, and the
leader watch's fallbacks (its quick confirmations wait with a deadline of their own,
monitoring/probes.confirm_primaries). A threading.Timer per query started a thread per
query: 165 µs of CPU, as much as the query itself. Here one thread waits for the earliest
deadline.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable


class Watchdog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._wake = threading.Condition()
        self._due: list[tuple[float, int]] = []  # (deadline, token): a heap, earliest first
        self._armed: dict[int, Callable[[], None]] = {}  # token → action; disarmed: absent
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], None]) -> int:
        """Run `action` in the watchdog's thread after `seconds`; a token for disarm."""
        with self._wake:
            token = next(self._tokens)
            self._armed[token] = action
            heapq.heappush(self._due, (self.clock() + seconds, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            elif self._due[0][1] == token:  # earlier than what the thread waits for
                self._wake.notify()
        return token

    def disarm(self, token: int) -> None:
        """The action will not run (unless it already has)."""
        with self._wake:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                expired = self._expired()
                if not expired:
                    self._wake.wait(self._due[0][0] - self.clock() if self._due else None)
                    continue
            for action in expired:
                action()

    def _expired(self) -> list[Callable[[], None]]:
        """Pop what is due (the lock held): the actions still armed."""
        now, expired = self.clock(), []
        while self._due and self._due[0][0] <= now:
            action = self._armed.pop(heapq.heappop(self._due)[1], None)
            if action is not None:
                expired.append(action)
        return expired
