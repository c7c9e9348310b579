"""Catches a primary outage shorter than the scrape interval, without crying wolf.

Prometheus scrapes every 5 s; the lab's Patroni fails over in about 5 s, and Patroni
restarts a crashed PostgreSQL within a second, so a scrape can miss the whole outage (seen
in db-primary-crash and main-center-freeze drills). This watch asks, every second, whether
each cluster's leader confirms it leads, and counts every long enough run without that
confirmation as one leaderless episode.

A leader that does not answer in time is not yet a lost leader: on a loaded machine its
REST API can take longer than a second (a 0.5 s timeout and 3 misses raised false
"primary lost" alerts). So the watch tells evidence apart (`judge`):

- definite: the leader refuses connections or says it is not the primary, or the other
  members answer and none names a running leader (or they name another one) — counted
  after `grace` (2 s: a planned switchover leaves about one poll unconfirmed);
- silent: the leader does not answer and the other members still name it (their view is
  the DCS's, which keeps the leader until its lease runs out) — counted only after
  `silent_grace`, a whole scrape interval by default: time for a slow answer to come.

Timeouts come from the scrape interval: a request may take up to `timeout` (0.4 of it),
so an answer slower than a poll still counts as an answer.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from inventory.runtime import DatabaseCluster, RuntimeInventory
from support.patroni import PrimaryAnswer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderPoll:
    """One look at a cluster: the leader asked, its own answer, and what the other members
    that answered /cluster name as leader (None: a member that names none)."""

    leader: str | None
    answer: PrimaryAnswer
    views: tuple[str | None, ...] = ()


class Verdict(StrEnum):
    confirmed = "confirmed"
    lost = "lost"  # definite evidence: no leader leads
    unsure = "unsure"  # only silence: gone, cut off, or slow


def judge(poll: LeaderPoll) -> Verdict:
    """What one poll proves about the cluster's leader."""
    if poll.answer is PrimaryAnswer.yes:
        return Verdict.confirmed
    if poll.answer in (PrimaryAnswer.no, PrimaryAnswer.refused):
        return Verdict.lost
    if poll.views and (poll.leader is None or any(v != poll.leader for v in poll.views)):
        return Verdict.lost  # the members answer, and not for this leader
    return Verdict.unsure


@dataclass
class Run:
    """A run of polls without a confirmed leader."""

    since: float
    last: float = 0.0  # the run's latest unconfirmed poll
    leader: str | None = None  # the leader that went unconfirmed
    definite: bool = False
    silent: bool = False  # the leader let a poll time out (gone, frozen, cut off)
    counted: bool = False


@dataclass(frozen=True)
class Timing:
    """The watch's clock, derived from the scrape interval (see the module docstring)."""

    interval: float = 1.0
    grace: float = 2.0
    silent_grace: float = 5.0
    timeout: float = 2.0
    patroni_every: int = 5  # polls: in between, a quick one may confirm (see probes.leader_poll)

    @classmethod
    def for_scrapes(cls, scrape_interval: float, interval: float = 1.0) -> Timing:
        if scrape_interval <= 0 or interval <= 0:
            raise ValueError(f"intervals must be positive (scrape {scrape_interval}, poll {interval})")
        return cls(interval=interval, grace=2 * interval, silent_grace=max(scrape_interval, 2 * interval),
                   timeout=max(0.4 * scrape_interval, 0.5),
                   patroni_every=max(1, round(scrape_interval / interval)))


def _done(call: Callable[[str], LeaderPoll], name: str) -> Future:
    """`call(name)` run here, as a finished Future (its result or its exception)."""
    future: Future = Future()
    try:
        future.set_result(call(name))
    except Exception as exc:  # noqa: BLE001 — handed on to the caller's result()
        future.set_exception(exc)
    return future


class LeaderWatch:
    """`poll(db, last_leader, timeout, quick)`: one LeaderPoll. `quick` is True except on
    every `patroni_every`-th poll, and after one that did not confirm: a quick poll may
    confirm the leader by its database alone, so Patroni's word is heard at least once a
    scrape interval. A scrape's /cluster is that word (`patroni_named`): while it names
    the leader the watch follows, the watch does not ask Patroni again; when it names
    another, the next poll does. Each Patroni request costs a TLS handshake, since Patroni
    closes every connection."""

    def __init__(self, runtime: RuntimeInventory,
                 poll: Callable[[DatabaseCluster, str | None, float, bool], LeaderPoll],
                 timing: Timing = Timing(), clock: Callable[[], float] = time.monotonic,
                 confirm: Callable[[dict[str, tuple[DatabaseCluster, str]], float], set[str]] | None = None):
        self.databases = {name: s.database for name, s in runtime.systems.items() if s.database}
        self.poll, self.timing, self.clock, self.confirm = poll, timing, clock, confirm
        self.leaders: dict[str, str | None] = {name: None for name in self.databases}
        self.runs: dict[str, Run | None] = {name: None for name in self.databases}
        self.polled: set[str] = set()
        self.episodes = {name: 0 for name in self.databases}
        self.named: dict[str, tuple[str | None, float]] = {}  # system → (leader, when) per /cluster
        self.rounds = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def update(self, system: str, poll: LeaderPoll, at: float | None = None) -> Verdict:
        """One poll's answer; an episode counts once, when its run outlasts its grace, or
        when it ends with another leader confirmed after unconfirmed polls spanning `grace`:
        a failover proves the old leader was lost, though its silence was shorter than
        `silent_grace` (a center cut off, whose lease ran out before the scrape interval).
        After a silent poll the run lasts until the takeover is confirmed: one poll waiting
        out its timeouts on a frozen or cut-off leader can cover the whole outage, so it may
        be the run's only unconfirmed poll (missed in 3 of 10 isolation and freeze drills)."""
        at = self.clock() if at is None else at
        verdict = judge(poll)
        with self._lock:
            self.polled.add(system)
            previous = self.leaders[system]
            if poll.leader is not None:
                self.leaders[system] = poll.leader
            if verdict is Verdict.confirmed:
                run = self.runs[system]
                if run is not None and not run.counted and self._ended_an_outage(run, poll, at):
                    self.episodes[system] += 1
                    log.warning("%s: %s confirmed after %.1f s without a confirmed leader (%s%s)",
                                system, poll.leader, at - run.since, run.leader,
                                ", restarted in place" if poll.leader == run.leader else "")
                self.runs[system] = None
                return verdict
            run = self.runs[system] = self.runs[system] or Run(since=at, leader=previous)
            # Rare (only while a leader is in doubt), and the evidence a missed page needs.
            log.info("%s: leader %s unconfirmed %.1f s into the run: %s answered %s, members name %s",
                     system, previous, at - run.since, poll.leader, poll.answer, list(poll.views))
            run.last = at
            run.definite |= verdict is Verdict.lost
            run.silent |= poll.answer is PrimaryAnswer.silent
            if not run.counted and self._outlasted(run, at):
                run.counted = True
                self.episodes[system] += 1
                log.warning("%s: no confirmed leader for %.1f s (%s; %s answered %s)", system,
                            at - run.since, "definite" if run.definite else "silence only",
                            poll.leader, poll.answer)
        return verdict

    def _ended_an_outage(self, run: Run, poll: LeaderPoll, at: float) -> bool:
        """Whether a run that a confirmation ends was a lost leader after all.

        - Another leader took over after unconfirmed polls spanning `grace` (see update).
        - The same leader, after definite evidence (its database refused writers, or it
          said it is not the primary), is back only `grace` after the run began: a
          primary's PostgreSQL crashed and restarted in place. Here its refusals spanned
          2.3 s, just over the grace, while writers saw about 5 s without a primary; a
          quicker restart (refused at 0.0 and 1.2 s, back at 2.2 s) never outlasts the
          grace while unconfirmed (db-primary-crash missed its page in 2 of 5 CI runs).
          A switchover ends with another leader, so it is not counted here."""
        if poll.leader != run.leader:
            return (at if run.silent else run.last) - run.since >= self.timing.grace
        return run.definite and at - run.since >= self.timing.grace

    def _outlasted(self, run: Run, at: float) -> bool:
        grace = self.timing.grace if run.definite else self.timing.silent_grace
        return at - run.since >= grace

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.episodes)

    def leader_lost(self, system: str) -> bool | None:
        """Whether the current run without a confirmed leader has counted as an episode
        (the exporter's tricenter_db_leader_present follows it); None before a first poll."""
        with self._lock:
            if system not in self.polled:
                return None
            run = self.runs.get(system)
            return run is not None and run.counted

    def patroni_named(self, system: str, leader: str | None) -> None:
        """A scrape's /cluster named `leader` for `system` just now."""
        with self._lock:
            if system in self.databases:
                self.named[system] = (leader, self.clock())

    def _quick(self, system: str, full_round: bool, now: float) -> bool:
        """Whether this poll may confirm by the database alone (see the class docstring)."""
        if self.runs[system] is not None:
            return False
        named = self.named.get(system)
        if named is None:
            return not full_round
        leader, at = named
        if leader != self.leaders[system]:
            return False
        # Scrapes come a scrape interval apart, give or take a little: a poll's slack on top,
        # or a scrape a few ms late sends every other full round to Patroni (a TLS handshake,
        # ~3.6 ms of CPU, the exporter's largest single cost).
        return not full_round or now - at < (self.timing.patroni_every + 1) * self.timing.interval

    def poll_once(self, pool: ThreadPoolExecutor) -> None:
        if not self.databases:
            return
        started = self.clock()  # what a poll finds held when it was asked, not when it ended
        full_round = self.rounds % self.timing.patroni_every == 0
        self.rounds += 1
        with self._lock:
            quick = {name: self._quick(name, full_round, started) for name in self.databases}
        unasked = list(self.databases)
        if self.confirm is not None:
            # Every quick confirmation at once, in this thread; only the clusters it did
            # not confirm are polled one by one (and not quickly again).
            asks = {name: (self.databases[name], self.leaders[name]) for name in unasked
                    if quick[name] and self.leaders[name] is not None}
            try:
                confirmed = self.confirm(asks, self.timing.timeout / 2) if asks else set()
            except Exception as exc:  # noqa: BLE001 — as a poll that breaks: proves nothing
                log.info("quick confirmation failed: %s", exc)
                confirmed = set()
            for name in confirmed:
                self.update(name, LeaderPoll(self.leaders[name], PrimaryAnswer.yes), at=started)
                unasked.remove(name)
            quick.update(dict.fromkeys(asks, False))
        if not unasked:
            return

        def ask(name: str) -> LeaderPoll:
            return self.poll(self.databases[name], self.leaders[name], self.timing.timeout, quick[name])

        # The last cluster is asked in this thread: with one cluster, a poll costs no
        # hand-off to a pool thread (that cost more CPU than the poll's query).
        *others, last = unasked
        answers = {name: pool.submit(ask, name) for name in others}
        answers[last] = _done(ask, last)
        for name, answer in answers.items():
            try:
                poll = answer.result()
            except Exception as exc:  # noqa: BLE001 — a probe that breaks proves nothing
                log.info("%s: leader poll failed: %s", name, exc)
                poll = LeaderPoll(self.leaders[name], PrimaryAnswer.silent)
            self.update(name, poll, at=started)

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="leader-watch") as pool:
            while not self._stop.wait(self.timing.interval):
                self.poll_once(pool)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="leader-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
