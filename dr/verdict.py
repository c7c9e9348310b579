"""Measured figures against targets: one criterion per promise, the verdict is all of them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from dr.checker import Findings
from dr.levels import Targets


@dataclass(frozen=True)
class Criterion:
    name: str
    measured: object
    target: object
    ok: bool

    @property
    def unit(self) -> str | None:
        return UNITS.get(self.name)

    def as_dict(self) -> dict:
        """Seconds rounded to the millisecond, like every figure in a report."""
        out = asdict(self)
        for key in ("measured", "target"):
            if isinstance(out[key], float):
                out[key] = round(out[key], 3)
        return {**out, "unit": self.unit}


UNITS = {"rto_seconds": "s", "app_rto_seconds": "s", "rpo_seconds": "s",
         "max_write_gap_seconds": "s", "rpo_lost_writes": "writes", "split_brain": "events",
         "duplicate_writes": "writes"}


def evaluate(findings: Findings, targets: Targets, checks: dict[str, bool],
             rto_seconds: float | None, rpo_bound_seconds: float | None = None) -> list[Criterion]:
    """Every criterion of the drill. `rto_seconds` is the RTO the target applies to (from
    the fault, or from the declaration); `rpo_bound_seconds` replaces the tier's RPO when
    the scenario measures RPO against the replication lag (async copies)."""
    out: list[Criterion] = []
    if targets.rto_seconds is not None:
        out.append(Criterion("rto_seconds", rto_seconds, targets.rto_seconds,
                             rto_seconds is not None and rto_seconds <= targets.rto_seconds))
    rpo_target = rpo_bound_seconds if rpo_bound_seconds is not None else targets.rpo_seconds
    if rpo_target is not None:
        if rpo_target == 0:
            out.append(Criterion("rpo_lost_writes", findings.rpo_lost_writes, 0,
                                 findings.rpo_lost_writes == 0))
        else:
            out.append(Criterion("rpo_seconds", round(findings.rpo_seconds, 3), rpo_target,
                                 findings.rpo_seconds <= rpo_target))
    if targets.max_write_gap_seconds is not None:
        gap = findings.max_write_gap_seconds
        out.append(Criterion("max_write_gap_seconds", gap, targets.max_write_gap_seconds,
                             gap is not None and gap <= targets.max_write_gap_seconds))
    out.append(Criterion("split_brain", len(findings.split_brain), 0, not findings.split_brain))
    out.append(Criterion("duplicate_writes", len(findings.duplicate_ids), 0, not findings.duplicate_ids))
    for name, ok in checks.items():
        out.append(Criterion(f"check:{name}", ok, True, ok))
    return out


def passed(criteria: list[Criterion]) -> bool:
    return all(c.ok for c in criteria)
