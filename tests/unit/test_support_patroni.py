"""Patroni's REST API as the drills and the lab use it: a switchover whose outcome Patroni
could not tell in time is no refusal (it goes on, and callers wait for the candidate to
lead); every other error answer is."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from inventory.runtime import DatabaseCluster, DbIntendedRole, DbMember, HostPort, SecretRef
from support.patroni import SWITCHOVER_STATUS_UNKNOWN, PatroniCluster, PatroniRefused


class Answering:
    def __init__(self, status: int, text: str) -> None:
        self.status, self.text = status, text

    def request(self, method: str, url: str, json: dict, auth: object, timeout: float,
                verify: object) -> SimpleNamespace:
        return SimpleNamespace(ok=self.status < 400, status_code=self.status, text=self.text)


def cluster(status: int, text: str) -> PatroniCluster:
    db = DatabaseCluster(cluster="c", dbname="d", user="u", password=SecretRef(env="PW"),
                         read_write=HostPort(host="127.0.0.1", port=5000),
                         read_only=HostPort(host="127.0.0.1", port=5001),
                         members=[DbMember(name="pg-main", center="main", host="127.0.0.1",
                                           api_url="http://127.0.0.1:8008",
                                           intended_role=DbIntendedRole.leader)])
    patroni = PatroniCluster(db)
    patroni._session = Answering(status, text)
    return patroni


def test_a_switchover_patroni_could_not_confirm_in_time_goes_on() -> None:
    message = cluster(503, SWITCHOVER_STATUS_UNKNOWN).switchover("pg-main", "pg-samecity")
    assert "HTTP 503 Switchover status unknown" in message and "goes on" in message


@pytest.mark.parametrize("status, text", [(503, "Switchover failed"), (412, "candidate name does not match")])
def test_a_switchover_patroni_refuses_or_fails_is_an_error(status: int, text: str) -> None:
    with pytest.raises(PatroniRefused, match=f"HTTP {status} {text}") as refused:
        cluster(status, text).switchover("pg-main", "pg-samecity")
    assert (refused.value.status, refused.value.text) == (status, text)
