"""The writer's ledger: downtime and acknowledged writes as the writer saw them, in
`migrate status`; its ids reach SQL only for migrated tables and plain key columns."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from playbooks.migration import ledger
from playbooks.migration.cli import migrate
from playbooks.migration.record import RecordStore
from playbooks.migration.steps import acked_vars


def ack(n: int, side: str, at: float) -> ledger.Ack:
    return ledger.Ack(table="public.person", key="id", id=n, side=side, at=at)


WRITES = [ack(1, "source", 10.0), ack(2, "source", 10.5), ack(3, "target", 12.25),
          ack(4, "target", 12.5), ack(5, "source", 20.0)]  # 5: after a rollback


def test_downtime_is_last_source_ack_to_first_target_ack():
    assert ledger.downtime(WRITES) == 1.75
    assert ledger.downtime(WRITES[:2]) is None  # not cut over yet


def test_the_ledger_round_trips_and_a_broken_line_is_named(tmp_path):
    file = tmp_path / "registry.writes.jsonl"
    book = ledger.Ledger(file)
    for write in WRITES:
        book.add(write)
    assert ledger.read(file) == WRITES
    file.write_text(file.read_text() + "{not json\n")
    with pytest.raises(ledger.LedgerProblem, match=r"registry.writes.jsonl:6"):
        ledger.read(file)


def test_status_reports_what_the_writer_saw(tmp_path):
    store = RecordStore(tmp_path / "migration")
    record = store.load("registry")
    record.cutover_downtime_seconds = 0.4  # the fence window the host measured
    store.save(record)
    book = ledger.Ledger(ledger.ledger_file(store.folder, "registry"))
    for write in WRITES:
        book.add(write)
    result = CliRunner().invoke(migrate, ["status", "registry", "--json", "--state-dir",
                                          str(store.folder)])
    status = json.loads(result.output)
    assert status["cutover_downtime_seconds"] == 1.75
    assert status["acknowledged_writes"] == 5 and status["lost_writes"] == 0


def test_ledger_ids_reach_sql_only_for_migrated_tables_and_plain_keys():
    from playbooks.migration.record import MigrationRecord
    record = MigrationRecord(system="registry", discovery={"database": {"tables": [
        {"name": "public.person"}]}})
    assert acked_vars(record, WRITES)["migration_acked"] == {
        "public.person": {"key": "id", "ids": [1, 2, 3, 4, 5]}}
    for table, key in (("public.person", "id; DROP TABLE person"), ("public.other", "id")):
        bad = [ledger.Ack(table=table, key=key, id=1, side="source", at=1.0)]
        with pytest.raises(ledger.LedgerProblem, match="not a key column of a migrated table"):
            acked_vars(record, bad)
