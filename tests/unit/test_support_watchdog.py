"""The watchdog that bounds queries on kept connections: an armed action runs once its
deadline passes, a disarmed one never does, and a later deadline does not hold up an
earlier one."""
from __future__ import annotations

import threading

from support.watchdog import Watchdog


def test_an_armed_action_runs_after_its_deadline() -> None:
    fired = threading.Event()
    Watchdog().arm(0.05, fired.set)
    assert fired.wait(5)


def test_a_disarmed_action_never_runs() -> None:
    watchdog, ran, last = Watchdog(), [], threading.Event()
    token = watchdog.arm(0.05, lambda: ran.append("disarmed"))
    watchdog.disarm(token)
    watchdog.arm(0.1, last.set)  # due after the disarmed one: when it ran, that one had its turn
    assert last.wait(5)
    assert ran == []


def test_an_earlier_deadline_armed_later_runs_first() -> None:
    watchdog, order, done = Watchdog(), [], threading.Event()
    watchdog.arm(30, lambda: order.append("late"))
    watchdog.arm(0.05, lambda: (order.append("early"), done.set()))
    assert done.wait(5)  # the thread waiting 30 s for the first was woken for the second
    assert order == ["early"]
