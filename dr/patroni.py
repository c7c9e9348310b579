"""What the drill sees and asks of a Patroni cluster, through its REST API only.

Any member's `/cluster` describes the whole cluster; members that are down or frozen
just time out, so every call tries the members in turn with a short timeout.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests

from dr.ledger import Observation, WriteLedger
from inventory.runtime import DatabaseCluster, DbIntendedRole


class PatroniUnavailable(Exception):
    """No member's REST API answered."""


class DeadlineExceeded(Exception):
    """A condition polled for did not hold before its deadline."""


@dataclass(frozen=True)
class MemberState:
    name: str
    role: str  # leader | sync_standby | replica | standby_leader | ...
    state: str  # running | streaming | stopped | starting | ...
    timeline: int | None
    lag: int | None  # bytes behind the leader; None for the leader or unknown

    @property
    def running(self) -> bool:
        return self.state in ("running", "streaming")


@dataclass(frozen=True)
class ClusterState:
    members: dict[str, MemberState]
    seen_by: str

    @property
    def leader(self) -> str | None:
        return next((m.name for m in self.members.values()
                     if m.role in ("leader", "master", "primary", "standby_leader") and m.running), None)

    @property
    def sync_standby(self) -> str | None:
        return next((m.name for m in self.members.values()
                     if m.role in ("sync_standby", "synchronous_standby") and m.running), None)

    @property
    def timeline(self) -> int | None:
        leader = self.leader
        return self.members[leader].timeline if leader else None


class PatroniCluster:
    def __init__(self, db: DatabaseCluster, timeout: float = 0.5):
        self.db = db
        self.timeout = timeout
        self._preferred = 0  # index of the member that answered last: ask it first
        self._session = requests.Session()

    def _ordered(self) -> list[int]:
        n = len(self.db.members)
        return [(self._preferred + i) % n for i in range(n)]

    def state(self) -> ClusterState:
        last_error: Exception | None = None
        for index in self._ordered():
            member = self.db.members[index]
            try:
                reply = self._session.get(member.api_url.rstrip("/") + "/cluster", timeout=self.timeout)
                reply.raise_for_status()
            except requests.RequestException as exc:
                last_error = exc
                continue
            self._preferred = index
            return ClusterState(_members(reply.json()), member.name)
        raise PatroniUnavailable(f"no Patroni REST API answered: {last_error}")

    def dynamic_config(self) -> dict:
        for index in self._ordered():
            try:
                reply = self._session.get(self.db.members[index].api_url.rstrip("/") + "/config",
                                          timeout=self.timeout)
                reply.raise_for_status()
                return reply.json()
            except requests.RequestException:
                continue
        raise PatroniUnavailable("no Patroni REST API answered /config")

    def lease_seconds(self) -> float:
        """The leader lease in force. Patroni 4 raises a ttl below 20 s to 20 s (and says so
        only in its log), so a hold sized on the configured ttl would end too early."""
        ttl = float(self.dynamic_config().get("ttl", 30))
        return max(ttl, 20.0) if self.major_version() >= 4 else ttl

    def major_version(self) -> int:
        for index in self._ordered():
            try:
                reply = self._session.get(self.db.members[index].api_url.rstrip("/") + "/patroni",
                                          timeout=self.timeout)
                return int(str(reply.json().get("patroni", {}).get("version", "0")).split(".")[0])
            except (requests.RequestException, ValueError):
                continue
        return 0

    def switchover(self, leader: str, candidate: str, timeout: float = 60) -> str:
        """Ask Patroni for a planned switchover; returns its message once it is done."""
        api = self.db.member(leader).api_url.rstrip("/")
        reply = self._session.post(api + "/switchover", json={"leader": leader, "candidate": candidate},
                                   timeout=timeout)
        if reply.status_code != 200:
            raise RuntimeError(f"switchover {leader} → {candidate} refused: "
                               f"HTTP {reply.status_code} {reply.text.strip()}")
        return reply.text.strip()

    def intended(self, role: DbIntendedRole) -> str | None:
        return next((m.name for m in self.db.members if m.intended_role == role), None)

    def layout_problems(self, state: ClusterState | None = None) -> list[str]:
        """Why the cluster is not in its intended layout (empty: it is)."""
        state = state or self.state()
        problems: list[str] = []
        for member in self.db.members:
            seen = state.members.get(member.name)
            if seen is None or not seen.running:
                problems.append(f"member {member.name} is not running "
                                f"({seen.state if seen else 'absent from the cluster'})")
        leader, sync = self.intended(DbIntendedRole.leader), self.intended(DbIntendedRole.sync)
        if state.leader != leader:
            problems.append(f"leader is {state.leader}, intended {leader}")
        if sync and state.sync_standby != sync:
            problems.append(f"sync standby is {state.sync_standby}, intended {sync}")
        for member in self.db.members:
            seen = state.members.get(member.name)
            if (member.intended_role == DbIntendedRole.async_ and seen is not None
                    and seen.timeline is not None and state.timeline is not None
                    and seen.timeline != state.timeline):
                problems.append(f"async member {member.name} is on timeline {seen.timeline}, "
                                f"leader on {state.timeline}")
        return problems

    def wait_for(self, describe: str, condition: Callable[[ClusterState], bool], timeout: float,
                 interval: float = 0.2) -> ClusterState:
        """Poll until condition(state) holds; raise DeadlineExceeded with the last state."""
        deadline = time.monotonic() + timeout
        last: ClusterState | str = "no answer yet"
        while time.monotonic() < deadline:
            try:
                state = self.state()
                if condition(state):
                    return state
                last = state
            except PatroniUnavailable as exc:
                last = str(exc)
            time.sleep(interval)
        raise DeadlineExceeded(f"{describe}: not reached within {timeout:.0f} s; last seen: "
                               f"{describe_state(last)}")


def describe_state(state: ClusterState | str) -> str:
    if isinstance(state, str):
        return state
    return ", ".join(f"{m.name}={m.role}/{m.state}/tl{m.timeline}" for m in state.members.values())


def _members(payload: dict) -> dict[str, MemberState]:
    out = {}
    for m in payload.get("members", []):
        lag = m.get("lag")
        out[m["name"]] = MemberState(m["name"], m.get("role", "?"), m.get("state", "?"),
                                     m.get("timeline"), lag if isinstance(lag, int) else None)
    return out


class ClusterObserver(threading.Thread):
    """Polls Patroni in the background and records each answer in the ledger."""

    def __init__(self, cluster: PatroniCluster, ledger: WriteLedger, interval: float = 0.25):
        super().__init__(name="patroni-observer", daemon=True)
        self.cluster = PatroniCluster(cluster.db, timeout=0.3)  # own session: not thread-shared
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
