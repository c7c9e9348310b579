"""The leader watch counts outages too short for a scrape, and not a switchover's blink."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from monitoring.leader_watch import LeaderWatch
from tests.unit.test_monitoring_exporter import runtime


def test_three_unconfirmed_polls_are_one_episode_counted_once() -> None:
    watch = LeaderWatch(runtime(), confirmed=lambda db: True)
    for confirmed in (True, False, False, False, False, False, True, False, True):
        watch.update("registry", confirmed)
    assert watch.counts() == {"registry": 1}


def test_a_switchover_blink_is_no_episode() -> None:
    watch = LeaderWatch(runtime(), confirmed=lambda db: True)
    for confirmed in (True, False, True, False, False, True):
        watch.update("registry", confirmed)
    assert watch.counts() == {"registry": 0}


def test_a_failing_probe_counts_as_unconfirmed() -> None:
    def broken(db) -> bool:
        raise OSError("connection refused")
    watch = LeaderWatch(runtime(), confirmed=broken)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(3):
            watch.poll_once(pool)
    assert watch.counts() == {"registry": 1}


def test_the_collector_exports_the_watchs_episodes(tmp_path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from monitoring.collector import TricenterCollector
    from tests.unit.test_monitoring_exporter import TARGETS, sources, value

    watch = LeaderWatch(runtime(), confirmed=lambda db: False)
    for _ in range(3):
        watch.update("registry", False)
    registry = CollectorRegistry()
    registry.register(TricenterCollector(runtime(), sources(tmp_path), TARGETS, watch=watch))
    text = generate_latest(registry).decode()
    assert value(text, "tricenter_db_leaderless_episodes_total", system="registry") == 1
