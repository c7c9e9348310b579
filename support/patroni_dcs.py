"""Every Patroni cluster's state as its keys in etcd say, in one request.

Patroni's `/cluster` is built from these keys (patroni.utils.cluster_as_json); reading
them directly gives the same members, roles, states, timelines and lags. The exporter
reads them every scrape: Patroni's REST API closes every connection, so each `/cluster`
cost a TLS handshake (~2.9 ms of CPU per cluster and scrape), where one range request over
the connection kept to etcd covers every cluster. The read is linearizable: a member cut
off from the quorum does not answer, rather than answer with what it last knew (a
partitioned Patroni's own `/cluster` did, and misled a drill's observer).

etcd's JSON gateway ignores client certificates' common names, so the reader logs in with
a user and password (a read-only user on Patroni's namespace) and keeps the token until
etcd stops taking it.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterable

import urllib3

from support.patroni import ClusterState, MemberState, Role
from support.tls import client_context

log = logging.getLogger(__name__)

# What etcd answers (HTTP 401, gRPC code 16) to a token it no longer takes: expired, or
# a simple token another member issued.
_UNAUTHENTICATED = 16


class DcsUnavailable(Exception):
    """No etcd member answered the read."""


def _json(raw: str | None) -> object:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _sync_members(raw: str | None) -> set[str]:
    """The /sync key's standbys, lower-cased (PostgreSQL compares names so); none while the
    key names no leader (Patroni's SyncState.is_empty)."""
    sync = _json(raw)
    if not isinstance(sync, dict) or not sync.get("leader"):
        return set()
    return {s.strip().lower() for s in str(sync.get("sync_standby") or "").split(",") if s.strip()}


def _last_lsn(keys: dict[str, str]) -> int:
    """The leader's last known WAL position: /status (Patroni 2.1 on), else /optime/leader."""
    status = _json(keys.get("status"))
    raw = status.get("optime") if isinstance(status, dict) else keys.get("optime/leader")
    try:
        return int(raw or 0)
    except (TypeError, ValueError):
        return 0


def cluster_state(keys: dict[str, str], seen_by: str) -> ClusterState:
    """One cluster's keys (relative to its scope: `leader`, `members/pg-main`, ...) as the
    ClusterState Patroni's /cluster would give, role for role."""
    leader = keys.get("leader")
    config = _json(keys.get("config"))
    standby_cluster = isinstance(config, dict) and bool(config.get("standby_cluster"))
    sync = _sync_members(keys.get("sync"))
    cluster_lsn = _last_lsn(keys)
    members: dict[str, MemberState] = {}
    for key in sorted(k for k in keys if k.startswith("members/") and k.count("/") == 1):
        name, data = key.split("/", 1)[1], _json(keys[key])
        data = data if isinstance(data, dict) else {}
        if name == leader:
            role = Role.standby_leader if standby_cluster else Role.leader
        else:
            role = Role.sync_standby if name.lower() in sync else Role.replica
        # As /cluster: a standby's replication state when it reports one, else its state.
        state = (data.get("replication_state", "") if role is not Role.leader else "") \
            or data.get("state", "")
        lag = None
        if name != leader and isinstance(data.get("xlog_location"), int):
            lag = max(cluster_lsn - data["xlog_location"], 0)
        timeline = data.get("timeline")
        members[name] = MemberState(name, role, state, timeline if isinstance(timeline, int) else None,
                                    lag, data.get("api_url"))
    return ClusterState(members, seen_by)


def scopes(prefix: str, kvs: Iterable[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """Keys under Patroni's namespace grouped by cluster: scope → {key within it: value}."""
    out: dict[str, dict[str, str]] = {}
    for key, value in kvs:
        if not key.startswith(prefix) or "/" not in key[len(prefix):]:
            continue
        scope, rest = key[len(prefix):].split("/", 1)
        out.setdefault(scope, {})[rest] = value
    return out


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _range_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class PatroniDcs:
    """Reads Patroni's namespace from etcd's v3 JSON gateway: the member that answered last
    first, each with `timeout`; logs in with `user` and `password()` when it has no token
    or etcd stops taking it. `http`: a connection pool to share (one is made from the TLS
    files otherwise). Thread-safe."""

    def __init__(self, urls: list[str], prefix: str, user: str, password: Callable[[], str],
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, timeout: float = 1.0,
                 http: urllib3.PoolManager | None = None):
        if not urls:
            raise ValueError("no etcd member to read from")
        self.urls = [u.rstrip("/") for u in urls]
        self.prefix, self.user, self.password, self.timeout = prefix, user, password, timeout
        self._http = http or urllib3.PoolManager(maxsize=4, retries=False,
                                                 ssl_context=client_context(ca_file, cert_file, key_file))
        self._token: str | None = None
        self._preferred = 0
        self._lock = threading.Lock()

    def clusters(self) -> dict[str, ClusterState]:
        """Every cluster under the namespace: scope → its state."""
        errors = []
        for index in [self._preferred, *(i for i in range(len(self.urls)) if i != self._preferred)]:
            url = self.urls[index]
            try:
                kvs = self._range(url)
            except (urllib3.exceptions.HTTPError, DcsUnavailable, ValueError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            self._preferred = index
            return {scope: cluster_state(keys, url) for scope, keys in scopes(self.prefix, kvs).items()}
        raise DcsUnavailable("; ".join(errors))

    def _range(self, url: str) -> list[tuple[str, str]]:
        body = json.dumps({"key": _b64(self.prefix), "range_end": _b64(_range_end(self.prefix))}).encode()
        token = self._token or self._login(url)
        status, reply = self._post(url, "/v3/kv/range", body, token)
        if status == 401 or reply.get("code") == _UNAUTHENTICATED:
            status, reply = self._post(url, "/v3/kv/range", body, self._login(url, stale=token))
        if status != 200:
            raise DcsUnavailable(f"HTTP {status}: {reply.get('message') or reply.get('error')}")
        return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode())
                for kv in reply.get("kvs", [])]

    def _login(self, url: str, stale: str | None = None) -> str:
        with self._lock:
            if self._token is not None and self._token != stale:
                return self._token  # another thread logged in meanwhile
            body = json.dumps({"name": self.user, "password": self.password()}).encode()
            status, reply = self._post(url, "/v3/auth/authenticate", body, None)
            if status != 200 or not reply.get("token"):
                raise DcsUnavailable(f"login as {self.user} refused: HTTP {status} "
                                     f"{reply.get('message') or reply.get('error') or ''}".rstrip())
            log.info("logged in to etcd at %s as %s", url, self.user)
            self._token = reply["token"]
            return self._token

    def _post(self, url: str, path: str, body: bytes, token: str | None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        reply = self._http.request("POST", url + path, body=body, headers=headers, timeout=self.timeout)
        payload = _json(reply.data.decode(errors="replace"))
        return reply.status, payload if isinstance(payload, dict) else {}
