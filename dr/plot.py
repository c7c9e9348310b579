"""The timeline plot of a drill: acknowledged writes/s, errors/s, and the markers."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written on servers without a display
import matplotlib.pyplot as plt  # noqa: E402

from dr.engine import DrillOutcome  # noqa: E402

MARKERS = {"fault": ("fault", "red"), "detect": ("detect", "orange"), "declare": ("declare", "purple"),
           "recovered": ("recovered", "green"), "restore_start": ("restore", "gray"),
           "restore_end": ("restored", "black")}


def per_second(times: list[float], start: float, end: float, bin_s: float = 0.25) -> tuple[list[float], list[float]]:
    n = max(1, int((end - start) / bin_s) + 1)
    counts = [0] * n
    for t in times:
        i = int((t - start) / bin_s)
        if 0 <= i < n:
            counts[i] += 1
    return [i * bin_s for i in range(n)], [c / bin_s for c in counts]


def timeline_plot(out: DrillOutcome, file: Path) -> None:
    writes = out.ledger.writes
    start = min(w.sent_at for w in writes)
    end = max(w.done_at for w in writes)
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=100)
    for channel, colour in (("db", "tab:blue"), ("app", "tab:cyan")):
        acks = [w.done_at for w in writes if w.acked and w.channel == channel]
        if acks:
            x, y = per_second(acks, start, end)
            ax.plot(x, y, color=colour, lw=1.2, label=f"acknowledged writes/s ({channel})")
    errors = [w.done_at for w in writes if not w.acked]
    if errors:
        x, y = per_second(errors, start, end)
        ax.fill_between(x, y, step="mid", color="tab:red", alpha=0.35, label="failed attempts/s")
    top = ax.get_ylim()[1]
    for key, (label, colour) in MARKERS.items():
        at = out.markers.get(key)
        if at is not None and start <= at <= end + 5:
            ax.axvline(at - start, color=colour, ls="--", lw=1)
            ax.text(at - start, top * 0.97, f" {label}", color=colour, fontsize=8, va="top", rotation=90)
    f = out.findings
    rto = f"RTO {f.rto_seconds:.2f} s" if f and f.rto_seconds is not None else "RTO n/a"
    rpo = f"lost writes {f.rpo_lost_writes}" if f else ""
    ax.set_title(f"{out.scenario.name} on {out.system.name}: {rto}, {rpo}", fontsize=10)
    ax.set_xlabel("seconds since the workload started")
    ax.set_ylabel("per second")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(file)
    plt.close(fig)
