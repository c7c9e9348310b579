"""GB/T 20988 level reached, targets and verdict."""
from __future__ import annotations

from dr.checker import Findings, SplitBrainEvent
from dr.levels import combine, level_reached
from dr.verdict import evaluate, passed
import pytest

from inventory.loader import load_gbt_table
from inventory.model import GBT_EDITIONS

GBT = load_gbt_table()


def test_every_edition_a_tier_may_name_is_shipped_as_data() -> None:
    assert set(GBT_EDITIONS) == {"2007", "2025"}
    for edition in GBT_EDITIONS:
        table = load_gbt_table(edition)
        assert table.edition == edition and [lv.level for lv in table.levels] == [1, 2, 3, 4, 5, 6]


def test_an_edition_not_shipped_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="edition '2099' is not shipped; known: 2007, 2025"):
        load_gbt_table("2099")


def test_zero_loss_and_minutes_reach_level_6() -> None:
    assert level_reached(GBT, 5.0, 0.0, 0).level == 6


def test_one_lost_write_drops_below_level_6_even_if_young() -> None:
    assert level_reached(GBT, 5.0, 0.0, 1).level == 5


def test_rpo_of_an_hour_is_level_4() -> None:
    assert level_reached(GBT, 60.0, 3600.0, 10).level == 4


def test_rto_over_two_days_leaves_only_unbounded_levels() -> None:
    assert level_reached(GBT, 3 * 86400.0, 0.0, 0).level == 3


def test_never_recovered_counts_as_unbounded_rto() -> None:
    assert level_reached(GBT, None, 0.0, 0).level == 3


def test_rpo_over_a_week_reaches_no_level() -> None:
    assert level_reached(GBT, 1.0, 8 * 86400.0, 5) is None


def test_combine_takes_the_stricter() -> None:
    t = combine(120, 0, 60, None, 1.0, "critical", 6)
    assert (t.rto_seconds, t.rpo_seconds, t.max_write_gap_seconds) == (60, 0, 1.0)


def findings(**kw) -> Findings:
    base = dict(acknowledged_writes=100, failed_attempts=5, rto_seconds=4.0,
                first_ack_after_fault_seconds=4.0, read_rto_seconds=1.0, max_write_gap_seconds=4.0,
                lost_write_ids=[], rpo_seconds=0.0, duplicate_ids=[])
    base.update(kw)
    return Findings(**base)


def test_verdict_passes_when_every_criterion_holds() -> None:
    crit = evaluate(findings(), combine(120, 0, None, None, None, "c", 6), {"x": True}, 4.0)
    assert passed(crit)


def test_verdict_fails_on_a_lost_write_when_rpo_is_zero() -> None:
    crit = evaluate(findings(lost_write_ids=[7], rpo_seconds=0.2),
                    combine(120, 0, None, None, None, "c", 6), {}, 4.0)
    assert not passed(crit)
    assert [c.name for c in crit if not c.ok] == ["rpo_lost_writes"]


def test_verdict_fails_on_split_brain_and_slow_rto() -> None:
    crit = evaluate(findings(split_brain=[SplitBrainEvent("overlap", "x", 1.0)]),
                    combine(3, 0, None, None, None, "c", 6), {}, 4.0)
    assert {c.name for c in crit if not c.ok} == {"split_brain", "rto_seconds"}


def test_async_rpo_is_judged_against_the_replication_lag() -> None:
    f = findings(lost_write_ids=[1, 2], rpo_seconds=0.3)
    assert passed(evaluate(f, combine(None, 0, 60, None, None, "c", 6), {}, 10.0, rpo_bound_seconds=0.6))
    assert not passed(evaluate(f, combine(None, 0, 60, None, None, "c", 6), {}, 10.0, rpo_bound_seconds=0.1))


def test_unreached_rto_fails() -> None:
    crit = evaluate(findings(rto_seconds=None), combine(120, 0, None, None, None, "c", 6), {}, None)
    assert not passed(crit)
