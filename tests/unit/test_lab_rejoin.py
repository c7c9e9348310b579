"""Which replicas `lab up` rewinds: only those stuck without streaming past the grace."""
from __future__ import annotations

from lab.rejoin import DivergenceWatch


def summary(remote: dict, leader: str = "main") -> dict:
    return {"leader": leader, "replicas": {
        "main": {"state": "running", "timeline": 14, "streaming": True},
        "samecity": {"state": "streaming", "timeline": 14, "streaming": True},
        "remote": remote}}


# Seen after a failed regional drill: main and the promoted remote both on timeline 14,
# with two histories; the remote asks for WAL ahead of main's flush position forever.
STUCK = {"state": "running", "timeline": 14, "streaming": False, "lag": 16417120}


def test_a_replica_running_without_streaming_past_the_grace_is_reported() -> None:
    watch = DivergenceWatch(grace_seconds=10)
    assert watch.diverged(summary(STUCK), now=100.0) == []
    assert watch.diverged(summary(STUCK), now=109.0) == []
    assert watch.diverged(summary(STUCK), now=110.5) == ["remote"]


def test_a_replica_on_another_timeline_is_reported_too() -> None:
    watch = DivergenceWatch(grace_seconds=10)
    ahead = {**STUCK, "timeline": 15}
    watch.diverged(summary(ahead), now=0.0)
    assert watch.diverged(summary(ahead), now=11.0) == ["remote"]


def test_streaming_again_restarts_the_grace() -> None:
    watch = DivergenceWatch(grace_seconds=10)
    watch.diverged(summary(STUCK), now=0.0)
    watch.diverged(summary({**STUCK, "streaming": True}), now=5.0)
    assert watch.diverged(summary(STUCK), now=12.0) == []
    assert watch.diverged(summary(STUCK), now=22.5) == ["remote"]


def test_members_patroni_is_still_working_on_are_left_alone() -> None:
    watch = DivergenceWatch(grace_seconds=10)
    for state in ("stopped", "starting", "running pg_rewind", "creating replica"):
        watch.diverged(summary({**STUCK, "state": state}), now=0.0)
        assert watch.diverged(summary({**STUCK, "state": state}), now=60.0) == []


def test_nothing_is_reported_without_a_leader() -> None:
    watch = DivergenceWatch(grace_seconds=10)
    no_leader = {"leader": None, "replicas": {"remote": STUCK}}
    watch.diverged(no_leader, now=0.0)
    assert watch.diverged(no_leader, now=60.0) == []
