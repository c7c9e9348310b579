"""Drill reports: report.json for machines; report.md and report.html (with a timeline
plot) for people and auditors, and report.zh.md / report.zh.html in Chinese, all in
<reports dir>/<time>-<scenario>/ (see `dr.paths`)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import jinja2

from dr import checker, report_view
from dr.engine import DrillOutcome
from dr.levels import claimed_level
from dr.paths import reports_dir
from dr.touched import center_summary, drilled_row
from inventory.loader import load_gbt_table



def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


def _event(e, fault: float | None) -> dict:
    """A step with its start and end, also as seconds from the fault (a step such as
    "recovered" starts when waiting starts; what matters is when it ended)."""
    since = (lambda t: round(t - fault, 3)) if fault is not None else (lambda t: None)
    return {"at": _iso(e.at), "phase": e.phase, "action": e.action, "detail": e.detail,
            "ok": e.ok, "seconds": round(e.seconds, 3), "ended_at": _iso(e.at + e.seconds),
            "from_fault_seconds": since(e.at), "ended_from_fault_seconds": since(e.at + e.seconds)}


def recovered_in(out: DrillOutcome) -> str | None:
    """The center whose database member acknowledged the first write sent after the fault."""
    if out.system.database is None:
        return None
    members = {m.name: m.center for m in out.system.database.members}
    return members.get(checker.recovered_on(out.ledger.writes, out.markers.get("fault")))


def _level(out: DrillOutcome, center: str | None, context: dict) -> dict:
    f = out.findings
    rpo_measured = f is not None and out.rpo_verified
    role = (context.get("center_roles") or {}).get(center, center)
    table = out.gbt or load_gbt_table()
    claim = claimed_level(table, status=out.status,
                          rto_seconds=f.rto_seconds if f and out.markers.get("fault") else None,
                          rpo_measured=rpo_measured, rpo_seconds=f.rpo_seconds if f else 0.0,
                          lost_writes=f.rpo_lost_writes if f else 0, recovered_role=role)
    level = claim.level
    return {"gbt20988_edition": table.edition,
            "gbt20988_table_note": table.note,
            "gbt20988_level": level.level if level else None,
            "gbt20988_level_name": level.name if level else None,
            "gbt20988_level_reading": level.reading if level else None,
            "gbt20988_level_note": claim.note}


def summary(out: DrillOutcome, report_dir: Path | None, context: dict | None = None) -> dict:
    """The contract's JSON: scenario, rto_seconds, rpo_lost_writes, rpo_seconds,
    acknowledged_writes, split_brain, gbt20988_level, passed, report_dir, and the rest.

    `rto_judged_seconds` is the RTO the target applies to (`rto_from`: fault or
    declaration); `gbt20988_level` is null unless the drill passed having measured RTO and
    RPO (`gbt20988_level_note` says why)."""
    f = out.findings
    t = out.targets
    context = context or {}
    rto_from = out.scenario.targets.rto_from
    center = recovered_in(out)
    result = {
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
        "rto_from": rto_from,
        "rto_judged_seconds": _r(out.rto_from_declaration_seconds if rto_from == "declaration"
                                 else (f.rto_seconds if f else None)),
        "recovered_in": center,
        **_level(out, center, context),
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
        "events": [_event(e, out.markers.get("fault")) for e in out.events],
        "incarnations": f.incarnations if f else [],
        "restored": out.restored,
        "left_to_do": out.left_to_do,
        **({k: v for k, v in out.extra.items() if k in ("copy", "backup")}),
        "expected_alerts": out.scenario.alerts,
        "alerts": out.extra.get("alerts", []),
        "alerts_missing": out.extra.get("alerts_missing", []),
        "alerts_note": out.extra.get("alerts_note"),
        "report_dir": str(report_dir) if report_dir else None,
        "context": {k: v for k, v in context.items() if k != "center_roles"},
    }
    if out.touched:  # a center fault's other systems, and the summary over all of them
        result["touched_systems"] = [t.as_json() for t in out.touched]
        result["center_summary"] = center_summary(drilled_row(result), out.touched)
    return result


def report_dir_for(out: DrillOutcome, base: Path) -> Path:
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


def write_report(out: DrillOutcome, base: Path | None = None,
                 context: dict | None = None) -> tuple[Path, dict]:
    """Write the report files; `context` says where and with what the drill ran (see
    `dr.cli.report_context`)."""
    directory = report_dir_for(out, base or reports_dir())
    directory.mkdir(parents=True, exist_ok=True)
    detect = detect_time(out)
    if detect is not None:
        out.markers.setdefault("detect", detect)
    data = summary(out, directory, context)
    (directory / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))
    out.ledger.save(directory / "ledger.jsonl")
    plot_ok = False
    if out.ledger.writes:
        from dr.plot import timeline_plot
        timeline_plot(out, directory / "timeline.png")
        plot_ok = True
    render_reports(directory, data, out, plot_ok)
    return directory, data


def render_reports(directory: Path, data: dict, out: DrillOutcome, plot: bool) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=_autoescape, trim_blocks=True, lstrip_blocks=True)
    env.filters["code"] = report_view.code_spans
    env.filters["cell"] = report_view.md_cell
    for lang, suffix in (("en", ""), ("zh", ".zh")):
        view = report_view.build(data, out, lang, plot)
        for fmt in ("md", "html"):
            text = env.get_template(f"report.{fmt}.j2").render(v=view, r=data)
            (directory / f"report{suffix}.{fmt}").write_text(text)


class AmbiguousReport(LookupError):
    """A prefix matched more than one report; `candidates` names them."""

    def __init__(self, report_id: str, candidates: list[Path]):
        self.candidates = candidates
        names = ", ".join(p.name for p in candidates[:5]) + (" …" if len(candidates) > 5 else "")
        super().__init__(f"'{report_id}' matches {len(candidates)} reports ({names}): "
                         "give more of the name, or the run id")


def _as_path(report_id: str) -> Path | None:
    """The report directory `drill run` printed (…/report.html, the directory, any file in it)."""
    candidate = Path(report_id).expanduser()
    if candidate.is_file():
        candidate = candidate.parent
    return candidate if (candidate / "report.json").is_file() else None


def find_report(report_id: str, base: Path | None = None) -> Path | None:
    """A report by path, directory name, unique prefix, run id (or its prefix), or 'latest'.

    Raises AmbiguousReport when a prefix matches several reports."""
    if ("/" in report_id or report_id.startswith(".")) and _as_path(report_id):
        return _as_path(report_id)
    base = base or reports_dir()
    if not base.is_dir():
        return None
    dirs = sorted(p for p in base.iterdir() if (p / "report.json").exists())
    if report_id == "latest":
        return dirs[-1] if dirs else None
    exact = [p for p in dirs if p.name == report_id]
    if exact:
        return exact[0]
    run_ids = {p: json.loads((p / "report.json").read_text()).get("run_id") or "" for p in dirs}
    by_run = [p for p in dirs if run_ids[p] == report_id]
    if by_run:
        return by_run[0]
    prefixed = [p for p in dirs if p.name.startswith(report_id) or run_ids[p].startswith(report_id)]
    if len(prefixed) > 1:
        raise AmbiguousReport(report_id, prefixed)
    return prefixed[0] if prefixed else None
