"""From a write ledger to measured RTO, RPO, duplicates and split brain. Pure logic.

Definitions (DESIGN.md §3 Recovery):
- RTO: from the fault to the first acknowledged write after it. Writers retry, so writes
  may succeed, fail again and succeed (a node still promoting); we count until writes are
  *stable*: the first acknowledgement of a write sent after the last failed attempt of
  the recovery window. Without any failure, the first acknowledgement after the fault.
- RPO: acknowledged writes missing from what the recovered primary holds (count), and the
  age of the oldest lost one at the moment of the fault (seconds).
- Split brain: two nodes accepting writes for one system at any moment. Checked three ways
  on acknowledged writes: an older incarnation (system id, timeline, node) acknowledging
  after a newer one began; one timeline acknowledged by two nodes (diverged histories);
  a node acknowledging while Patroni, before and after, named another leader.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from dr.ledger import Observation, Read, Write

Incarnation = tuple[str | None, int | None, str | None]  # system id, timeline, node


@dataclass(frozen=True)
class SplitBrainEvent:
    kind: str  # "overlap" | "diverged-timeline" | "not-leader"
    detail: str
    at: float


@dataclass
class Findings:
    acknowledged_writes: int
    failed_attempts: int
    rto_seconds: float | None  # None: writes never came back within the window
    first_ack_after_fault_seconds: float | None
    read_rto_seconds: float | None
    max_write_gap_seconds: float | None
    lost_write_ids: list[int]
    rpo_seconds: float
    duplicate_ids: list[int]
    split_brain: list[SplitBrainEvent] = field(default_factory=list)
    incarnations: list[dict] = field(default_factory=list)

    @property
    def rpo_lost_writes(self) -> int:
        return len(self.lost_write_ids)


def _acked(writes: Iterable[Write]) -> list[Write]:
    return sorted((w for w in writes if w.acked), key=lambda w: w.done_at)


def recovery_time(attempts: Sequence[Write | Read], fault_at: float, window_end: float) -> float | None:
    """Seconds from the fault until the attempts succeed stably (see module docstring)."""
    ok = lambda a: a.acked if isinstance(a, Write) else a.ok  # noqa: E731
    in_window = [a for a in attempts if a.done_at >= fault_at and a.sent_at <= window_end]
    failures = [a for a in in_window if not ok(a)]
    after = max([fault_at, *(a.sent_at for a in failures)])
    successes = [a.done_at for a in in_window if ok(a) and a.sent_at >= after]
    if not successes:
        return None
    return max(0.0, min(successes) - fault_at)


def first_ack_after(writes: Sequence[Write], fault_at: float) -> float | None:
    times = [w.done_at for w in writes if w.acked and w.sent_at >= fault_at]
    return min(times) - fault_at if times else None


def recovered_on(writes: Sequence[Write], fault_at: float | None) -> str | None:
    """The node (member name) that acknowledged the first database write sent after the fault."""
    if fault_at is None:
        return None
    acked = sorted((w for w in writes if w.channel == "db" and w.acked and w.sent_at >= fault_at and w.node),
                   key=lambda w: w.done_at)
    return acked[0].node if acked else None


def max_ack_gap(writes: Sequence[Write], start: float, end: float) -> float | None:
    """Longest time without any acknowledged write between start and end (inclusive of
    the edges: a window that opens with an outage counts from `start`)."""
    times = sorted(w.done_at for w in writes if w.acked and start <= w.done_at <= end)
    if not times:
        return None if end <= start else end - start
    points = [start, *times, end]
    return max(b - a for a, b in zip(points, points[1:]))


def lost_writes(writes: Sequence[Write], present: Counter) -> list[Write]:
    """Acknowledged writes whose id the recovered data does not hold."""
    return [w for w in _acked(writes) if present.get(w.id, 0) == 0]


def lost_across(writes: Sequence[Write], readbacks: Sequence[tuple[float, Counter]]) -> list[Write]:
    """Acknowledged writes missing from any read-back taken after they were acknowledged
    (a read-back cannot hold what was acknowledged after it started)."""
    lost: dict[int, Write] = {}
    for taken_at, present in readbacks:
        for w in _acked(writes):
            if w.done_at < taken_at and present.get(w.id, 0) == 0:
                lost.setdefault(w.id, w)
    return sorted(lost.values(), key=lambda w: w.done_at)


def rpo_seconds(lost: Sequence[Write], fault_at: float | None, checked_at: float) -> float:
    """Age of the oldest lost acknowledged write at the fault (or at the check)."""
    if not lost:
        return 0.0
    reference = fault_at if fault_at is not None else checked_at
    return max(0.0, reference - min(w.done_at for w in lost))


def duplicate_ids(present: Counter) -> list[int]:
    return sorted(i for i, n in present.items() if n > 1)


def incarnations(writes: Sequence[Write]) -> dict[Incarnation, list[Write]]:
    groups: dict[Incarnation, list[Write]] = {}
    for w in _acked(writes):
        if w.channel != "db":
            continue  # only the database channel reports who acknowledged
        groups.setdefault((w.system_id, w.timeline, w.node), []).append(w)
    return groups


def _start(w: Write) -> float:
    return w.server_time if w.server_time is not None else w.sent_at


def split_brain(writes: Sequence[Write], observations: Sequence[Observation] = (),
                tolerance: float = 0.0, observation_slack: float = 1.0) -> list[SplitBrainEvent]:
    """Every sign of two nodes accepting writes at once (empty list: none)."""
    events: list[SplitBrainEvent] = []
    groups = incarnations(writes)
    spans = sorted(((min(map(_start, ws)), max(map(_start, ws)), key) for key, ws in groups.items()),
                   key=lambda s: s[0])
    for i, (first_a, last_a, a) in enumerate(spans):
        for first_b, _last_b, b in spans[i + 1:]:
            if last_a > first_b + tolerance:
                events.append(SplitBrainEvent(
                    "overlap",
                    f"node {a[2]} (timeline {a[1]}) acknowledged a write at {last_a:.3f} after "
                    f"node {b[2]} (timeline {b[1]}) had begun accepting writes at {first_b:.3f}",
                    first_b))
    by_timeline: dict[tuple[str | None, int | None], set[str | None]] = {}
    for sysid, tl, node in groups:
        by_timeline.setdefault((sysid, tl), set()).add(node)
    for (sysid, tl), nodes in by_timeline.items():
        if tl is not None and len(nodes) > 1:
            at = min(_start(w) for k, ws in groups.items() if k[:2] == (sysid, tl) for w in ws)
            events.append(SplitBrainEvent(
                "diverged-timeline",
                f"timeline {tl} has acknowledged writes on {len(nodes)} nodes: "
                f"{', '.join(sorted(map(str, nodes)))}", at))
    events.extend(_not_leader(writes, observations, observation_slack))
    return events


def _not_leader(writes: Sequence[Write], observations: Sequence[Observation],
                slack: float) -> list[SplitBrainEvent]:
    """Acks by a node while every observation within ±slack named another leader.

    Observations are polled, so they lag; requiring agreement on both sides of the write
    keeps a poll's lag from being reported as split brain."""
    if not observations:
        return []
    obs = sorted(observations, key=lambda o: o.at)
    events: list[SplitBrainEvent] = []
    flagged: set[str] = set()
    for w in _acked(writes):
        if w.channel != "db" or w.node is None or w.node in flagged:
            continue
        t = _start(w)
        near = [o for o in obs if t - slack <= o.at <= t + slack]
        before = [o for o in near if o.at <= t]
        after = [o for o in near if o.at >= t]
        if not before or not after:
            continue
        if all(o.leader is not None and o.leader != w.node for o in near):
            flagged.add(w.node)
            events.append(SplitBrainEvent(
                "not-leader", f"node {w.node} acknowledged write {w.id} at {t:.3f} while Patroni "
                f"named {near[0].leader} the leader", t))
    return events


def check(writes: Sequence[Write], reads: Sequence[Read], observations: Sequence[Observation],
          present: Counter, fault_at: float | None, window_end: float, checked_at: float,
          gap_from: float | None = None, tolerance: float = 0.0,
          readbacks: Sequence[tuple[float, Counter]] | None = None) -> Findings:
    """Everything the verdict needs, from one ledger and the read-backs of the data
    (`present` is the last one; `readbacks` all of them with the time each started)."""
    lost = lost_across(writes, readbacks) if readbacks else lost_writes(writes, present)
    reference = fault_at if fault_at is not None else (min((w.sent_at for w in writes), default=0.0))
    gap_start = gap_from if gap_from is not None else reference
    groups = incarnations(writes)
    return Findings(
        acknowledged_writes=sum(1 for w in writes if w.acked),
        failed_attempts=sum(1 for w in writes if not w.acked),
        rto_seconds=recovery_time(writes, fault_at, window_end) if fault_at is not None else None,
        first_ack_after_fault_seconds=first_ack_after(writes, fault_at) if fault_at is not None else None,
        read_rto_seconds=(recovery_time(reads, fault_at, window_end)
                          if fault_at is not None and reads else None),
        max_write_gap_seconds=max_ack_gap(writes, gap_start, window_end),
        lost_write_ids=sorted(w.id for w in lost),
        rpo_seconds=rpo_seconds(lost, fault_at, checked_at),
        duplicate_ids=duplicate_ids(present),
        split_brain=split_brain(writes, observations, tolerance),
        incarnations=[{"system_id": k[0], "timeline": k[1], "node": k[2], "writes": len(ws),
                       "first": min(map(_start, ws)), "last": max(map(_start, ws))}
                      for k, ws in sorted(groups.items(), key=lambda kv: min(map(_start, kv[1])))],
    )
