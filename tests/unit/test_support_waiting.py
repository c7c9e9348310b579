"""The one waiting helper: returns what the condition found, counts chosen errors as "not
yet", and says what was not reached and the last thing seen instead."""
from __future__ import annotations

import threading

import pytest

from support.waiting import WaitTimeout, wait_until


class LabError(RuntimeError):
    pass


def answers(*values):
    """A condition that gives `values` one after the other (raising the exceptions)."""
    queue = list(values)

    def condition():
        value = queue.pop(0)
        if isinstance(value, BaseException):
            raise value
        return value
    return condition


def test_returns_the_first_true_answer_and_counts_chosen_errors_as_not_yet() -> None:
    condition = answers(None, OSError("refused"), 0, "leader pg-samecity")
    assert wait_until("a leader", condition, timeout=60, interval=0,
                      retry_on=(OSError,)) == "leader pg-samecity"


def test_an_error_not_chosen_stops_the_wait_at_once() -> None:
    with pytest.raises(KeyError):
        wait_until("a leader", answers(KeyError("x"), True), timeout=60, interval=0,
                   retry_on=(OSError,))


def test_the_deadline_names_what_was_awaited_and_the_last_answer() -> None:
    with pytest.raises(LabError, match=r"remote leaves recovery: not reached within 0 s "
                                       r"\(last: connection refused\)"):
        wait_until("remote leaves recovery", answers(OSError("connection refused")), timeout=0,
                   retry_on=(OSError,), error=LabError)


def test_a_set_stop_event_ends_the_wait_without_waiting_out_the_deadline() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(WaitTimeout, match="stopped before it was reached"):
        wait_until("writes after the fault", lambda: None, timeout=3600, stop=stop)


# Deadline loops not yet on the helper, each with why: the Patroni client is being
# replaced as a whole, and the pgBackRest component belongs to another change.
NOT_YET = {"dr/patroni.py", "lab/components/pgbackrest.py"}


def deadline_loops(file) -> list[int]:
    """Lines of `while` loops that keep a deadline of their own (paced workers and log
    followers, which sleep without one, are not waits)."""
    import ast
    lines = []
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.While):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            in_test = {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
            if "deadline" in names or "monotonic" in in_test:
                lines.append(node.lineno)
    return lines


def test_every_plane_waits_through_the_one_helper() -> None:
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    found = {}
    for plane in ("dr", "lab", "inventory", "stacks", "playbooks", "monitoring", "scripts",
                  "benchmarks"):
        for file in sorted((repo / plane).rglob("*.py")):
            rel = file.relative_to(repo).as_posix()
            if rel not in NOT_YET and (lines := deadline_loops(file)):
                found[rel] = lines
    assert found == {}, f"hand-written wait loops: use support.waiting.wait_until in {found}"
