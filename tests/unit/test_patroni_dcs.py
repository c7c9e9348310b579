"""Patroni's keys in etcd read as Patroni's own /cluster would show them."""
from __future__ import annotations

import base64
import json

import pytest
import urllib3

from support.patroni import Role, _members
from support.patroni_dcs import DcsUnavailable, PatroniDcs, cluster_state, scopes

# The lab's registry cluster as etcd held it, and /cluster from Patroni 3.1.2 at that moment.
KEYS = {
    "leader": "pg-main",
    "members/pg-main": json.dumps({"conn_url": "postgres://127.0.1.1:5432/postgres",
                                   "api_url": "https://127.0.1.1:8008/patroni", "state": "running",
                                   "role": "master", "xlog_location": 83888840, "timeline": 2}),
    "members/pg-samecity": json.dumps({"api_url": "https://127.0.2.1:8008/patroni", "state": "running",
                                       "role": "replica", "xlog_location": 83888000,
                                       "replication_state": "streaming", "timeline": 2}),
    "members/pg-remote": json.dumps({"api_url": "https://127.0.3.1:8008/patroni", "state": "running",
                                     "role": "replica", "tags": {"nofailover": True},
                                     "xlog_location": 83880000, "timeline": 2}),
    "status": json.dumps({"optime": 83888840}),
    "sync": json.dumps({"leader": "pg-main", "sync_standby": "pg-samecity"}),
    "history": "[[1,83886240,\"no recovery target specified\"]]",
    "initialize": "7715487710258350323",
}
CLUSTER = {"members": [
    {"name": "pg-main", "role": "leader", "state": "running",
     "api_url": "https://127.0.1.1:8008/patroni", "timeline": 2},
    {"name": "pg-remote", "role": "replica", "state": "running",
     "api_url": "https://127.0.3.1:8008/patroni", "timeline": 2, "lag": 8840},
    {"name": "pg-samecity", "role": "sync_standby", "state": "streaming",
     "api_url": "https://127.0.2.1:8008/patroni", "timeline": 2, "lag": 840}]}


def test_the_keys_give_what_patronis_cluster_endpoint_gives() -> None:
    state = cluster_state(KEYS, "https://127.0.1.1:2379")
    assert state.members == _members(CLUSTER)
    assert list(state.members) == ["pg-main", "pg-remote", "pg-samecity"]  # /cluster's order
    assert (state.leader, state.sync_standby, state.timeline) == ("pg-main", "pg-samecity", 2)


def test_sync_standbys_are_matched_as_postgresql_matches_them() -> None:
    keys = {**KEYS, "sync": json.dumps({"leader": "pg-main", "sync_standby": "PG-Samecity, pg-remote"})}
    roles = {m.name: m.role for m in cluster_state(keys, "etcd").members.values()}
    assert roles == {"pg-main": Role.leader, "pg-samecity": Role.sync_standby, "pg-remote": Role.sync_standby}
    # A /sync key naming no leader is empty: nobody is synchronous.
    keys = {**KEYS, "sync": json.dumps({"leader": None, "sync_standby": "pg-samecity"})}
    assert cluster_state(keys, "etcd").sync_standby is None


def test_a_standby_cluster_has_a_standby_leader_and_a_vanished_leader_none() -> None:
    keys = {**KEYS, "config": json.dumps({"standby_cluster": {"host": "10.0.0.1"}})}
    assert cluster_state(keys, "etcd").members["pg-main"].role is Role.standby_leader
    # The leader key outlives its member's key only by a race; /cluster then names no leader.
    keys = {k: v for k, v in KEYS.items() if k != "members/pg-main"}
    assert cluster_state(keys, "etcd").leader is None


def test_lag_without_a_status_key_comes_from_the_old_optime_key() -> None:
    keys = {k: v for k, v in KEYS.items() if k != "status"} | {"optime/leader": "83889000"}
    assert cluster_state(keys, "etcd").members["pg-remote"].lag == 9000
    keys = {k: v for k, v in KEYS.items() if k != "status"}
    # No known leader position: a standby ahead of it lags by 0, as /cluster says.
    assert cluster_state(keys, "etcd").members["pg-remote"].lag == 0


def test_keys_are_grouped_per_cluster_under_the_namespace_only() -> None:
    kvs = [("/tricenter/registry/leader", "pg-main"), ("/tricenter/charity/leader", "pg-remote"),
           ("/tricenter/registry/members/pg-main", "{}"), ("/other/registry/leader", "x"),
           ("/tricenter/stray", "y")]
    assert scopes("/tricenter/", kvs) == {
        "registry": {"leader": "pg-main", "members/pg-main": "{}"}, "charity": {"leader": "pg-remote"}}


class FakeEtcd:
    """Answers PatroniDcs._post as etcd's gateway would: tokens it issued, expiry on demand,
    members that do not answer."""

    def __init__(self, down: set[str] = frozenset()):
        self.down, self.valid, self.calls, self.issued = set(down), set(), [], 0

    def post(self, url: str, path: str, body: bytes, token: str | None) -> tuple[int, dict]:
        self.calls.append((url, path))
        if url in self.down:
            raise urllib3.exceptions.ConnectTimeoutError(None, f"{url} timed out")
        if path == "/v3/auth/authenticate":
            if json.loads(body)["password"] != "pw":
                return 400, {"error": "etcdserver: authentication failed, invalid user ID or password"}
            self.issued += 1
            self.valid.add(f"t{self.issued}")
            return 200, {"token": f"t{self.issued}"}
        if token not in self.valid:
            return 401, {"error": "etcdserver: invalid auth token", "code": 16}
        kvs = [{"key": base64.b64encode(f"/tricenter/registry/{k}".encode()).decode(),
                "value": base64.b64encode(v.encode()).decode()} for k, v in KEYS.items()]
        return 200, {"kvs": kvs, "count": str(len(kvs))}


def reader(etcd: FakeEtcd, password: str = "pw") -> PatroniDcs:
    dcs = PatroniDcs(["https://e1:2379", "https://e2:2379", "https://e3:2379"], "/tricenter/",
                     "tricenter-monitor", lambda: password)
    dcs._post = etcd.post
    return dcs


def test_the_reader_logs_in_once_and_again_when_etcd_drops_its_token() -> None:
    etcd = FakeEtcd()
    dcs = reader(etcd)
    assert dcs.clusters()["registry"].leader == "pg-main"
    dcs.clusters()
    assert [p for _, p in etcd.calls].count("/v3/auth/authenticate") == 1
    etcd.valid.clear()  # expired
    assert dcs.clusters()["registry"].sync_standby == "pg-samecity"
    assert [p for _, p in etcd.calls].count("/v3/auth/authenticate") == 2


def test_the_reader_moves_to_a_member_that_answers_and_stays_there() -> None:
    etcd = FakeEtcd(down={"https://e1:2379"})
    dcs = reader(etcd)
    assert dcs.clusters()["registry"].seen_by == "https://e2:2379"
    etcd.calls.clear()
    dcs.clusters()
    assert {url for url, _ in etcd.calls} == {"https://e2:2379"}
    etcd.down = {"https://e1:2379", "https://e2:2379", "https://e3:2379"}
    with pytest.raises(DcsUnavailable, match="e3:2379"):
        dcs.clusters()


def test_a_refused_login_is_a_failed_read_naming_the_user() -> None:
    with pytest.raises(DcsUnavailable, match="login as tricenter-monitor refused"):
        reader(FakeEtcd(), password="wrong").clusters()
