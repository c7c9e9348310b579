"""GB/T 20988 capability level reached by measured figures, and the tier's targets."""
from __future__ import annotations

from dataclasses import dataclass

from inventory.model import GbtLevel, GbtStandard


def level_reached(table: GbtStandard, rto_seconds: float | None, rpo_seconds: float,
                  lost_writes: int = 0) -> GbtLevel | None:
    """The highest level whose RTO and RPO bounds both hold; None when not even level 1.

    A null bound is unbounded. An RTO that was never reached (None) only satisfies
    unbounded levels. A level whose RPO bound is 0 demands that no write was lost, not
    only that the lost ones were young."""
    best: GbtLevel | None = None
    for level in sorted(table.levels, key=lambda lv: lv.level):
        rto_ok = level.rto_max_seconds is None or (
            rto_seconds is not None and rto_seconds <= level.rto_max_seconds)
        rpo_ok = level.rpo_max_seconds is None or (
            rpo_seconds <= level.rpo_max_seconds and (level.rpo_max_seconds > 0 or lost_writes == 0))
        if rto_ok and rpo_ok:
            best = level
    return best


@dataclass(frozen=True)
class Targets:
    """What one drill must meet: the tier's RTO/RPO, tightened by the scenario."""

    rto_seconds: float | None
    rpo_seconds: float | None
    max_write_gap_seconds: float | None
    tier: str | None
    tier_level: int | None


def combine(tier_rto: float | None, tier_rpo: float | None, scenario_rto: float | None,
            scenario_rpo: float | None, max_gap: float | None, tier: str | None,
            tier_level: int | None) -> Targets:
    """The stricter of tier and scenario for each figure (None: no target)."""
    def stricter(a: float | None, b: float | None) -> float | None:
        values = [v for v in (a, b) if v is not None]
        return min(values) if values else None
    return Targets(stricter(tier_rto, scenario_rto), stricter(tier_rpo, scenario_rpo),
                   max_gap, tier, tier_level)
