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


REMOTE_CLUSTER_LEVEL = 6
"""GB/T 20988 level 6 is "数据零丢失和远程集群支持": its RTO/RPO bounds alone do not make it;
recovery must also have happened in a remote cluster (the other city)."""


@dataclass(frozen=True)
class LevelClaim:
    """The level a report may state, or why it states none (or a lower one)."""

    level: GbtLevel | None
    note: str | None


def claimed_level(table: GbtStandard, *, status: str, rto_seconds: float | None,
                  rpo_measured: bool, rpo_seconds: float, lost_writes: int,
                  recovered_role: str | None) -> LevelClaim:
    """A level only for a drill that passed and measured both RTO and RPO; level 6 only
    when writes came back in the remote center. An auditor reads a stated level as proven."""
    if status != "passed":
        return LevelClaim(None, f"no level is claimed: the drill did not pass ({status})")
    if rto_seconds is None:
        return LevelClaim(None, "no level is claimed: this drill measured no RTO "
                                "(no fault was injected, or writes never came back)")
    if not rpo_measured:
        return LevelClaim(None, "no level is claimed: RPO was not measured "
                                "(the write ledger could not be read back)")
    level = level_reached(table, rto_seconds, rpo_seconds, lost_writes)
    if level is None or level.level < REMOTE_CLUSTER_LEVEL or recovered_role == "remote":
        return LevelClaim(level, None)
    lower = max((lv for lv in table.levels if lv.level < REMOTE_CLUSTER_LEVEL
                 and lv.level <= level.level), key=lambda lv: lv.level, default=None)
    where = recovered_role or "an unknown center"
    return LevelClaim(lower, f"the figures meet level {REMOTE_CLUSTER_LEVEL}'s bounds, but writes "
                             f"came back in {where}, not in a remote cluster, so level "
                             f"{REMOTE_CLUSTER_LEVEL} is not claimed")


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
