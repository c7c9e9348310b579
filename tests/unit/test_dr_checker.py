"""The checker's promises, on synthetic ledgers: RTO, RPO, duplicates, split brain."""
from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from dr import checker
from dr.ledger import Observation, Read, Write

FAULT = 100.0


def ack(i: int, sent: float, node: str = "pg-main", tl: int = 1, done: float | None = None,
        channel: str = "db") -> Write:
    return Write(i, channel, 0, sent, done if done is not None else sent + 0.01, True,
                 node=node, timeline=tl, system_id="42", server_time=sent + 0.005)


def fail(i: int, sent: float, done: float | None = None) -> Write:
    return Write(i, "db", 0, sent, done if done is not None else sent + 0.01, False, error="boom")


def failover_ledger(outage: float = 4.0) -> list[Write]:
    """Writes every 0.1 s on main until the fault, failures for `outage` s, then samecity."""
    writes, i, t = [], 0, 90.0
    while t < max(110.0, FAULT + outage + 5):
        i += 1
        if t < FAULT:
            writes.append(ack(i, t))
        elif t < FAULT + outage:
            writes.append(fail(i, t))
        else:
            writes.append(ack(i, t, node="pg-samecity", tl=2))
        t = round(t + 0.1, 3)
    return writes


def test_rto_is_fault_to_first_stable_acknowledgement() -> None:
    writes = failover_ledger(outage=4.0)
    rto = checker.recovery_time(writes, FAULT, 110)
    assert rto is not None and 4.0 <= rto <= 4.1


def test_rto_waits_for_writes_to_be_stable_not_the_first_lucky_one() -> None:
    writes = failover_ledger(outage=4.0)
    # a write slipping through at 101 s, then failing again (a node still promoting)
    writes.append(ack(9001, 101.0, node="pg-samecity", tl=2))
    writes.append(fail(9002, 102.0))
    assert checker.first_ack_after(writes, FAULT) < 1.1
    assert checker.recovery_time(writes, FAULT, 110) >= 4.0


def test_rto_is_none_when_writes_never_come_back() -> None:
    writes = [ack(1, 99.0)] + [fail(i, 100 + i * 0.1) for i in range(2, 50)]
    assert checker.recovery_time(writes, FAULT, 105) is None


def test_rto_ignores_in_flight_writes_acknowledged_just_after_the_fault() -> None:
    writes = [ack(1, 99.99, done=100.02), fail(2, 100.05), ack(3, 103.0)]
    assert abs(checker.recovery_time(writes, FAULT, 110) - 3.01) < 1e-9


def test_read_rto_uses_read_probes() -> None:
    reads = [Read(99.0, 99.01, True), Read(100.5, 100.6, False), Read(102.0, 102.01, True)]
    assert abs(checker.recovery_time(reads, FAULT, 110) - 2.01) < 1e-9


def test_no_loss_when_every_acknowledged_write_is_present() -> None:
    writes = failover_ledger()
    present = Counter({w.id: 1 for w in writes if w.acked})
    f = checker.check(writes, [], [], present, FAULT, 110, 111)
    assert f.rpo_lost_writes == 0 and f.rpo_seconds == 0 and not f.duplicate_ids
    assert not f.split_brain


def test_unacknowledged_writes_present_are_not_duplicates_nor_losses() -> None:
    writes = failover_ledger()
    present = Counter({w.id: 1 for w in writes})  # failed attempts that committed anyway
    f = checker.check(writes, [], [], present, FAULT, 110, 111)
    assert f.rpo_lost_writes == 0 and not f.duplicate_ids


def test_rpo_counts_lost_acknowledged_writes_and_the_age_of_the_oldest() -> None:
    writes = failover_ledger()
    lost = {w.id for w in writes if w.acked and 99.0 <= w.sent_at < FAULT}
    present = Counter({w.id: 1 for w in writes if w.acked and w.id not in lost})
    f = checker.check(writes, [], [], present, FAULT, 110, 111)
    assert f.rpo_lost_writes == len(lost) == 10
    assert abs(f.rpo_seconds - (FAULT - 99.01)) < 1e-6


def test_duplicates_are_ids_stored_twice() -> None:
    writes = failover_ledger()
    present = Counter({w.id: 1 for w in writes if w.acked})
    present[3] = 2
    assert checker.check(writes, [], [], present, FAULT, 110, 111).duplicate_ids == [3]


def test_clean_failover_is_not_split_brain() -> None:
    assert checker.split_brain(failover_ledger()) == []


def test_old_primary_acknowledging_after_the_new_one_started_is_split_brain() -> None:
    writes = failover_ledger()
    writes.append(ack(9999, 106.0, node="pg-main", tl=1))  # the thawed old primary
    events = checker.split_brain(writes)
    assert [e.kind for e in events] == ["overlap"]
    assert "pg-main" in events[0].detail


def test_one_timeline_on_two_nodes_is_diverged_history() -> None:
    writes = [ack(1, 90, node="pg-main", tl=3), ack(2, 91, node="pg-samecity", tl=3)]
    kinds = {e.kind for e in checker.split_brain(writes)}
    assert "diverged-timeline" in kinds


def test_clock_tolerance_absorbs_small_skew() -> None:
    writes = [ack(1, 99.0), ack(2, 100.0, node="pg-samecity", tl=2), ack(3, 100.001)]
    assert checker.split_brain(writes, tolerance=0.0)
    assert not checker.split_brain(writes, tolerance=0.01)


def test_write_by_a_node_patroni_did_not_call_leader_is_flagged() -> None:
    writes = [ack(1, 100.0, node="pg-main")]
    obs = [Observation(t, "pg-samecity", 2, {}) for t in (99.5, 99.8, 100.2, 100.4)]
    assert [e.kind for e in checker.split_brain(writes, obs)] == ["not-leader"]


def test_observation_lag_around_a_leader_change_is_not_flagged() -> None:
    writes = [ack(1, 100.0, node="pg-samecity", tl=2)]
    obs = [Observation(99.8, "pg-main", 1, {}), Observation(100.2, "pg-samecity", 2, {})]
    assert checker.split_brain(writes, obs) == []


def test_max_gap_counts_an_outage_at_the_window_start() -> None:
    writes = [ack(1, 101.0), ack(2, 101.5)]
    assert abs(checker.max_ack_gap(writes, FAULT, 102.0) - 1.01) < 1e-9


def test_app_channel_writes_do_not_take_part_in_split_brain() -> None:
    writes = failover_ledger() + [ack(5000, 108.0, node="pg-main", channel="app")]
    assert checker.split_brain(writes) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50), st.booleans()), min_size=1, max_size=60),
       st.sets(st.integers(0, 59)))
def test_lost_writes_are_exactly_the_acknowledged_ones_missing(attempts, missing) -> None:
    writes = [Write(i, "db", 0, t, t + 0.01, ok, node="n", timeline=1, system_id="1", server_time=t)
              for i, (t, ok) in enumerate(attempts)]
    present = Counter({w.id: 1 for w in writes if w.id not in missing})
    lost = {w.id for w in checker.lost_writes(writes, present)}
    assert lost == {w.id for w in writes if w.acked and w.id in missing}
    assert checker.rpo_seconds(checker.lost_writes(writes, present), 60.0, 61.0) >= 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=50), st.floats(0, 100))
def test_single_node_single_timeline_is_never_split_brain(times, fault) -> None:
    writes = [ack(i, t) for i, t in enumerate(times)]
    assert checker.split_brain(writes) == []
    rto = checker.recovery_time(writes, fault, 200)
    assert rto is None or rto >= 0


@settings(max_examples=100, deadline=None)
@given(st.floats(0.1, 30))
def test_rto_tracks_the_outage_length(outage) -> None:
    rto = checker.recovery_time(failover_ledger(outage), FAULT, 140)
    assert rto is not None and outage - 0.11 <= rto <= outage + 0.11
