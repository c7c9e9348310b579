"""Drill reports: report.json for machines, report.md and report.html (with a timeline
plot) for people and auditors, all in dr/reports/<time>-<scenario>/."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import jinja2

from dr.engine import DrillOutcome

REPORTS_DIR = Path(__file__).resolve().parent / "reports"


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


def summary(out: DrillOutcome, report_dir: Path | None) -> dict:
    """The contract's JSON: scenario, rto_seconds, rpo_lost_writes, rpo_seconds,
    acknowledged_writes, split_brain, gbt20988_level, passed, report_dir, and the rest."""
    f = out.findings
    t = out.targets
    return {
        "scenario": out.scenario.name,
        "system": out.system.name,
        "run_id": out.run_id,
        "status": out.status,
        "passed": out.passed,
        "reason": out.reason or None,
        "rto_seconds": _r(f.rto_seconds) if f else None,
        "rto_from_declaration_seconds": _r(out.rto_from_declaration_seconds),
        "first_ack_after_fault_seconds": _r(f.first_ack_after_fault_seconds) if f else None,
        "app_rto_seconds": _r(out.app_rto_seconds),
        "read_rto_seconds": _r(f.read_rto_seconds) if f else None,
        "max_write_gap_seconds": _r(f.max_write_gap_seconds) if f else None,
        "failback_max_write_gap_seconds": _r(out.failback_max_write_gap_seconds),
        "rpo_lost_writes": f.rpo_lost_writes if f else None,
        "rpo_seconds": _r(f.rpo_seconds) if f else None,
        "lost_write_ids": f.lost_write_ids[:100] if f else [],
        "acknowledged_writes": f.acknowledged_writes if f else 0,
        "failed_attempts": f.failed_attempts if f else 0,
        "duplicate_writes": len(f.duplicate_ids) if f else 0,
        "split_brain": bool(f.split_brain) if f else False,
        "split_brain_events": [asdict(e) for e in f.split_brain] if f else [],
        "replication_lag_before_fault_seconds": _r(out.replication_lag_seconds),
        "gbt20988_level": out.gbt_level,
        "gbt20988_level_name": out.gbt_level_name,
        "tier": t.tier if t else None,
        "targets": {"rto_seconds": t.rto_seconds, "rpo_seconds": t.rpo_seconds,
                    "max_write_gap_seconds": t.max_write_gap_seconds,
                    "gbt20988_level": t.tier_level} if t else None,
        "criteria": [c.as_dict() for c in out.criteria],
        "checks": out.checks,
        "check_details": out.check_details,
        "markers": {k: _iso(v) for k, v in out.markers.items()},
        "started_at": _iso(out.started_at),
        "finished_at": _iso(out.finished_at),
        "events": [{"at": _iso(e.at), "phase": e.phase, "action": e.action, "detail": e.detail,
                    "ok": e.ok, "seconds": e.seconds} for e in out.events],
        "incarnations": f.incarnations if f else [],
        "restored": out.restored,
        "left_to_do": out.left_to_do,
        **({k: v for k, v in out.extra.items() if k in ("copy", "backup")}),
        "expected_alerts": out.scenario.alerts,
        "alerts": out.extra.get("alerts", []),
        "alerts_missing": out.extra.get("alerts_missing", []),
        "alerts_note": out.extra.get("alerts_note"),
        "report_dir": str(report_dir) if report_dir else None,
    }


def report_dir_for(out: DrillOutcome, base: Path = REPORTS_DIR) -> Path:
    stamp = dt.datetime.fromtimestamp(out.started_at, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return base / f"{stamp}-{out.scenario.name}"


def detect_time(out: DrillOutcome) -> float | None:
    """When the cluster visibly reacted: the first observation after the fault whose leader
    differs from the one before it (or has none)."""
    fault = out.markers.get("fault")
    if fault is None:
        return None
    obs = sorted(out.ledger.observations, key=lambda o: o.at)
    before = [o.leader for o in obs if o.at < fault and o.leader]
    leader = before[-1] if before else None
    return next((o.at for o in obs if o.at >= fault and o.leader != leader), None)


def _autoescape(template: str | None) -> bool:
    """Escape every template but Markdown. The report quotes Patroni's replies, database
    errors and names, none of which may become markup; and `select_autoescape(["html"])`
    would miss `report.html.j2`, which ends in `.j2`."""
    return not (template or "").endswith(".md.j2")


def write_report(out: DrillOutcome, base: Path = REPORTS_DIR) -> tuple[Path, dict]:
    directory = report_dir_for(out, base)
    directory.mkdir(parents=True, exist_ok=True)
    detect = detect_time(out)
    if detect is not None:
        out.markers.setdefault("detect", detect)
    data = summary(out, directory)
    (directory / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))
    out.ledger.save(directory / "ledger.jsonl")
    plot_ok = False
    if out.ledger.writes:
        from dr.plot import timeline_plot
        timeline_plot(out, directory / "timeline.png")
        plot_ok = True
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=_autoescape)
    ctx = {"r": data, "plot": plot_ok, "title": out.scenario.title, "description": out.scenario.description}
    (directory / "report.md").write_text(env.get_template("report.md.j2").render(**ctx))
    (directory / "report.html").write_text(env.get_template("report.html.j2").render(**ctx))
    return directory, data


def find_report(report_id: str, base: Path = REPORTS_DIR) -> Path | None:
    """A report by directory name, unique prefix, or run id."""
    if not base.exists():
        return None
    dirs = sorted(p for p in base.iterdir() if (p / "report.json").exists())
    exact = [p for p in dirs if p.name == report_id]
    if exact:
        return exact[0]
    prefixed = [p for p in dirs if p.name.startswith(report_id)]
    if len(prefixed) == 1:
        return prefixed[0]
    for p in dirs:
        if json.loads((p / "report.json").read_text()).get("run_id") == report_id:
            return p
    if report_id == "latest" and dirs:
        return dirs[-1]
    return None
