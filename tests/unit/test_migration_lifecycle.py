"""The migration lifecycle: which step runs when, and a record that survives a crash."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from playbooks.migration.lifecycle import OutOfOrder, State, Step, check
from playbooks.migration.record import MigrationRecord, RecordProblem, RecordStore

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def walk(record: MigrationRecord, *steps: Step) -> MigrationRecord:
    for n, step in enumerate(steps):
        record.begin(step, T0 + timedelta(minutes=n))
        record.finish(step, T0 + timedelta(minutes=n, seconds=30))
    return record


def test_happy_path_follows_the_mgn_lifecycle():
    record = MigrationRecord(system="registry")
    seen = []
    for step in (Step.discover, Step.precheck, Step.replicate, Step.test_cutover, Step.cutover,
                 Step.verify, Step.finalize):
        walk(record, step)
        seen.append(record.state)
    assert seen == [State.not_ready, State.not_ready, State.ready_for_testing,
                    State.ready_for_cutover, State.cutover_complete, State.cutover_complete,
                    State.finalized]
    assert record.steps[Step.cutover].seconds == 30


@pytest.mark.parametrize("state,step", [
    (State.not_ready, Step.cutover), (State.not_ready, Step.verify),
    (State.ready_for_testing, Step.finalize), (State.cutover_complete, Step.replicate),
    (State.finalized, Step.rollback), (State.rolled_back, Step.cutover),
    (State.ready_for_cutover, Step.rollback)])
def test_steps_out_of_order_are_refused_with_the_next_step(state, step):
    with pytest.raises(OutOfOrder, match="cannot run in state"):
        check(step, state)


def test_an_interrupted_step_is_resumed_not_restarted():
    record = walk(MigrationRecord(system="registry"), Step.precheck, Step.replicate)
    record.begin(Step.cutover, T0)
    assert record.state == State.cutting_over
    # crash: nothing finishes; a rerun of the same step resumes from the same start
    record.begin(Step.cutover, T0 + timedelta(minutes=5))
    record.finish(Step.cutover, T0 + timedelta(minutes=6))
    assert record.state == State.cutover_complete
    assert record.steps[Step.cutover].seconds == 360


def test_only_the_interrupted_step_or_a_rollback_may_follow_a_crashed_cutover():
    record = walk(MigrationRecord(system="registry"), Step.precheck, Step.replicate)
    record.begin(Step.cutover, T0)
    with pytest.raises(OutOfOrder, match="`cutover` was interrupted"):
        record.begin(Step.verify)
    record.begin(Step.rollback)
    record.finish(Step.rollback)
    assert record.state == State.rolled_back and record.running is None


def test_a_failed_step_returns_to_where_it_started_but_a_failed_cutover_stays():
    record = walk(MigrationRecord(system="registry"), Step.precheck)
    record.begin(Step.replicate)
    record.fail(Step.replicate, "source unreachable")
    assert record.state == State.not_ready and record.running is None
    walk(record, Step.replicate)
    record.begin(Step.cutover)
    record.fail(Step.cutover, "lag did not drain")
    assert record.state == State.cutting_over and record.running.step == Step.cutover


def test_rerunning_replicate_keeps_a_passed_test_cutover():
    record = walk(MigrationRecord(system="registry"), Step.replicate, Step.test_cutover,
                  Step.replicate)
    assert record.state == State.ready_for_cutover


def test_record_round_trips_through_a_readable_yaml_file(tmp_path):
    store = RecordStore(tmp_path)
    record = walk(MigrationRecord(system="registry"), Step.precheck, Step.replicate)
    record.begin(Step.cutover, T0)
    store.save(record)
    text = store.file("registry").read_text()
    assert "state: cutting-over" in text and "step: cutover" in text
    again = store.load("registry")
    assert again == record
    assert list(tmp_path.iterdir()) == [store.file("registry")]  # no temporary left


def test_a_missing_record_is_a_fresh_migration_and_a_broken_one_is_named(tmp_path):
    store = RecordStore(tmp_path)
    assert store.load("registry").state == State.not_ready
    store.file("registry").write_text("state: flying\n")
    with pytest.raises(RecordProblem, match=r"registry\.yaml: not a migration record"):
        store.load("registry")


def test_status_contract():
    record = walk(MigrationRecord(system="registry"), Step.precheck)
    assert record.status() == {"system": "registry", "state": "not-ready",
                               "cutover_downtime_seconds": None, "acknowledged_writes": 0,
                               "lost_writes": 0, "verified": False}
