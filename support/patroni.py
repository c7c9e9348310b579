"""The one client of Patroni's REST API: drills, the exporter and the lab all ask through it.

Any member's `/cluster` describes the whole cluster; members that are down or frozen just
time out, so reads try the members in turn with a short timeout. Every URL is verified
against the CA the runtime inventory names (`tls_ca_file`); unsafe calls (switchover,
config, reload, reinitialize, restart) log in with the cluster's REST API account.
"""
from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

import requests
import urllib3

from inventory.runtime import DatabaseCluster, DbIntendedRole, DbMember, RuntimeInventory, SecretRef
from support.tls import client_context


class PatroniUnavailable(Exception):
    """No member's REST API answered."""


class PatroniRefused(RuntimeError):
    """A member answered an unsafe call with an error; the message has its status and text."""

    def __init__(self, message: str, status: int = 0, text: str = "") -> None:
        super().__init__(message)
        self.status, self.text = status, text


# Patroni's answer when its own wait for a switchover's outcome ran out (a loaded host):
# the switchover goes on, and may well complete
SWITCHOVER_STATUS_UNKNOWN = "Switchover status unknown"


class DeadlineExceeded(Exception):
    """A condition polled for did not hold before its deadline."""


class Role(StrEnum):
    """A member's role in /cluster, whatever the Patroni version calls it."""

    leader = "leader"
    standby_leader = "standby_leader"
    sync_standby = "sync_standby"
    replica = "replica"
    other = "other"

    @classmethod
    def of(cls, raw: str | None) -> "Role":
        aliases = {"master": cls.leader, "primary": cls.leader,
                   "synchronous_standby": cls.sync_standby}
        if raw in aliases:
            return aliases[raw]
        try:
            return cls(raw)
        except ValueError:
            return cls.other


class PrimaryAnswer(StrEnum):
    """A member's answer to /primary."""

    yes = "yes"  # 200: it is the writable primary and holds the leader lock
    no = "no"  # it answered: it is not
    refused = "refused"  # no REST API there: connection refused or reset
    silent = "silent"  # no answer within the timeout


# /cluster calls a healthy replica "streaming" from Patroni 3.0.4 on, "running" before.
RUNNING_STATES = ("running", "streaming")


@dataclass(frozen=True)
class ApiAccess:
    """How to reach a cluster's REST API: the CA its certificates chain to (None: the
    system's trust store) and the account for unsafe endpoints (None: reads only)."""

    ca_file: str | None = None
    auth: tuple[str, str] | None = None

    @classmethod
    def of(cls, runtime: RuntimeInventory, db: DatabaseCluster,
           resolve: Callable[[SecretRef], str] | None = None) -> "ApiAccess":
        """From the runtime inventory; `resolve` reads the password reference (without
        it, the client can read but not act)."""
        auth = (db.api_user, resolve(db.api_password)) if resolve and db.api_password else None
        return cls(ca_file=runtime.tls_ca_file, auth=auth)


@dataclass(frozen=True)
class MemberState:
    name: str
    role: Role
    state: str  # running | streaming | stopped | starting | ...
    timeline: int | None
    lag: int | None  # bytes behind the leader; None for the leader or unknown
    api_url: str | None = None

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class ClusterState:
    members: dict[str, MemberState]
    seen_by: str

    @functools.cached_property  # asked per member and per loss at every scrape
    def leader(self) -> str | None:
        return next((m.name for m in self.members.values()
                     if m.role in (Role.leader, Role.standby_leader) and m.running), None)

    @property
    def sync_standby(self) -> str | None:
        return next((m.name for m in self.members.values()
                     if m.role == Role.sync_standby and m.running), None)

    @property
    def timeline(self) -> int | None:
        leader = self.leader
        return self.members[leader].timeline if leader else None


def direct_session() -> requests.Session:
    """A session that talks to the inventory's endpoints directly. Without trust_env,
    requests neither reads proxies and ~/.netrc from the environment on every request
    (a third of an exporter scrape's CPU went there) nor sends the REST API through an
    HTTP(S)_PROXY meant for the outside world."""
    session = requests.Session()
    session.trust_env = False
    return session


class PatroniCluster:
    """A cluster's members as the runtime inventory lists them, asked over their REST API.
    Reads are thread-safe (a urllib3 pool); unsafe calls share one requests session."""

    def __init__(self, db: DatabaseCluster, access: ApiAccess = ApiAccess(), timeout: float = 0.5):
        self.db = db
        self.access = access
        self.timeout = timeout
        self._preferred = 0  # index of the member that answered last: ask it first
        # Reads go through urllib3 alone, straight to each member's connection pool: the
        # exporter and the leader watch read every second, and requests' machinery around
        # each call cost a third of their CPU, urllib3's PoolManager (URL parsing, pool
        # lookup) a tenth. Keep-alive connections per member; thread-safe.
        self._reads: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}
        self._reads_lock = threading.Lock()
        self._session = direct_session()
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a
        # session's `verify` (psf/requests#3829), and that bundle lacks our CA.
        self._verify: str | bool = access.ca_file or True

    # --- one member ---------------------------------------------------------------------
    def url(self, member: str, path: str) -> str:
        return self.db.member(member).api_url.rstrip("/") + path

    def read(self, member: str, path: str, timeout: float | None = None) -> tuple[int, bytes]:
        """(HTTP status, body) of a GET; urllib3.exceptions.HTTPError when no answer."""
        pool, prefix = self._reads.get(member) or self._read_pool(member)
        reply = pool.urlopen("GET", prefix + path, timeout=timeout or self.timeout, retries=False,
                             redirect=False)
        return reply.status, reply.data

    def _read_pool(self, member: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        """The member's keep-alive pool and the path its REST API is under (none, except
        behind a proxy)."""
        url = urllib3.util.parse_url(self.db.member(member).api_url)
        tls = {"ssl_context": client_context(self.access.ca_file)} if url.scheme == "https" else {}
        with self._reads_lock:
            if member not in self._reads:
                pool = urllib3.connection_from_url(url.url, maxsize=4, retries=False, **tls)
                self._reads[member] = (pool, (url.path or "").rstrip("/"))
            return self._reads[member]

    def member_json(self, member: str, path: str, timeout: float | None = None) -> dict | None:
        """A read's JSON body, None when the member does not answer or answers nonsense."""
        try:
            status, body = self.read(member, path, timeout)
            return json.loads(body) if status < 400 else None
        except (urllib3.exceptions.HTTPError, ValueError):
            return None

    def member_view(self, member: str, timeout: float | None = None) -> ClusterState | None:
        """The cluster as this one member's /cluster says, None when it does not answer."""
        body = self.member_json(member, "/cluster", timeout)
        return ClusterState(_members(body), member) if body is not None else None

    def is_primary(self, member: str, timeout: float | None = None) -> bool:
        """Whether the member itself says it is the writable primary (/primary is 200)."""
        return self.primary_answer(member, timeout) is PrimaryAnswer.yes

    def primary_answer(self, member: str, timeout: float | None = None) -> PrimaryAnswer:
        """What the member's own /primary says, telling a member that is gone (refused)
        from one that did not answer in time (silent: gone, cut off, or only slow)."""
        try:
            status, _ = self.read(member, "/primary", timeout)
        except urllib3.exceptions.NewConnectionError:  # before TimeoutError: it subclasses it
            return PrimaryAnswer.refused
        except urllib3.exceptions.TimeoutError:
            return PrimaryAnswer.silent
        except urllib3.exceptions.HTTPError:
            return PrimaryAnswer.refused
        return PrimaryAnswer.yes if status == 200 else PrimaryAnswer.no

    def act(self, member: str, method: str, path: str, body: dict | None = None,
            timeout: float = 10) -> str:
        """An unsafe call, with the cluster's account; PatroniRefused unless 2xx."""
        reply = self._session.request(method, self.url(member, path), json=body,
                                      auth=self.access.auth, timeout=timeout, verify=self._verify)
        if not reply.ok:
            raise PatroniRefused(f"{method} {path} on {member}: HTTP {reply.status_code} "
                                 f"{reply.text.strip()[:300]}", reply.status_code, reply.text.strip())
        return reply.text.strip()

    def reload(self, member: str) -> str:
        return self.act(member, "POST", "/reload")

    def reinitialize(self, member: str) -> str:
        return self.act(member, "POST", "/reinitialize", {"force": True})

    def patch_config(self, member: str, values: dict) -> str:
        return self.act(member, "PATCH", "/config", values)

    def switchover(self, leader: str, candidate: str, timeout: float = 60) -> str:
        """Ask Patroni for a planned switchover; returns its message once it is done, or
        once Patroni says it could not tell in time (SWITCHOVER_STATUS_UNKNOWN): no
        refusal, so callers wait for the candidate to lead, as they do after every one."""
        try:
            return self.act(leader, "POST", "/switchover", {"leader": leader, "candidate": candidate},
                            timeout)
        except PatroniRefused as exc:
            if exc.status != 503 or exc.text != SWITCHOVER_STATUS_UNKNOWN:
                raise
            return f"{exc}: the switchover goes on"

    # --- the cluster --------------------------------------------------------------------
    def _ordered(self) -> list[int]:
        n = len(self.db.members)
        return [(self._preferred + i) % n for i in range(n)]

    def _first_answer(self, path: str) -> tuple[DbMember, dict]:
        last_error: Exception | None = None
        for index in self._ordered():
            member = self.db.members[index]
            try:
                status, raw = self.read(member.name, path)
                if status >= 400:
                    raise ValueError(f"HTTP {status} from {member.name}")
                body = json.loads(raw)
            except (urllib3.exceptions.HTTPError, ValueError) as exc:
                last_error = exc
                continue
            self._preferred = index
            return member, body
        raise PatroniUnavailable(f"no Patroni REST API answered {path}: {last_error}")

    def state(self) -> ClusterState:
        member, body = self._first_answer("/cluster")
        return ClusterState(_members(body), member.name)

    def dynamic_config(self) -> dict:
        return self._first_answer("/config")[1]

    def major_version(self) -> int:
        try:
            body = self._first_answer("/patroni")[1]
            return int(str(body.get("patroni", {}).get("version", "0")).split(".")[0])
        except (PatroniUnavailable, ValueError):
            return 0

    def lease_seconds(self) -> float:
        """The leader lease in force. Patroni 4 raises a ttl below 20 s to 20 s (and says so
        only in its log), so a hold sized on the configured ttl would end too early."""
        ttl = float(self.dynamic_config().get("ttl", 30))
        return max(ttl, 20.0) if self.major_version() >= 4 else ttl

    def streaming(self, leader: str) -> dict[str, str]:
        """member → walsender state, as the leader's /patroni reports its replication."""
        status = self.member_json(leader, "/patroni") or {}
        return {row.get("application_name", ""): row.get("state", "")
                for row in status.get("replication", [])}

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
        out[m["name"]] = MemberState(m["name"], Role.of(m.get("role")), m.get("state", "?"),
                                     m.get("timeline"), lag if isinstance(lag, int) else None,
                                     m.get("api_url"))
    return out
