"""`tricenter drill list | run SCENARIO | report ID | history`.

Exit codes: 0 the drill met its targets; 1 it ran (or started) and missed them, or was
aborted; 2 user mistake (unknown scenario or system, no runtime inventory, the scenario
needs something this lab does not offer — reported as skipped, never as a pass).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dr import history
from dr.scenario import ScenarioProblem, UnknownScenario, get_scenario, load_catalogue

err = Console(stderr=True)


class UserError(click.ClickException):
    exit_code = 2


def _default_runtime() -> Path:
    try:
        from lab.context import lab_dir
        return lab_dir() / "runtime-inventory.yaml"
    except ImportError:
        return Path(".lab/runtime-inventory.yaml")


@click.group()
def drill() -> None:
    """Disaster-recovery drills: measured RTO/RPO, split-brain check, reports, history."""


@drill.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """The scenario catalogue (dr/scenarios/*.yaml)."""
    try:
        catalogue = load_catalogue()
    except ScenarioProblem as exc:
        raise UserError(str(exc)) from None
    if as_json:
        click.echo(json.dumps([{"name": s.name, "kind": s.kind, "title": s.title,
                                "requires": s.requires} for s in catalogue.values()], indent=2))
        return
    table = Table("scenario", "kind", "what it does", "needs")
    for s in catalogue.values():
        table.add_row(s.name, s.kind, s.title, ", ".join(s.requires))
    Console().print(table)


def _tier_targets(system_tier: str, runtime_source: str) -> tuple:
    """RTO/RPO targets of the system's tier from the topology behind the runtime inventory."""
    from inventory.loader import LAB_INVENTORY, DEFAULT_INVENTORY, load_topology
    root = LAB_INVENTORY if runtime_source == "lab" else DEFAULT_INVENTORY
    try:
        tier = load_topology(root).tiers.get(system_tier)
    except Exception as exc:  # noqa: BLE001 — an unreadable topology is a setup problem
        raise UserError(f"cannot read the tiers of {root}: {exc}") from None
    if tier is None:
        raise UserError(f"tier '{system_tier}' is not declared in {root}/tiers.yaml")
    return float(tier.rto_seconds), float(tier.rpo_seconds), tier.name, tier.gbt20988_level


def _world(runtime_file: Path):
    from inventory.runtime import RuntimeInventory
    if not runtime_file.exists():
        raise UserError(f"no runtime inventory at {runtime_file}: bring the lab up first "
                        "(`tricenter lab up`) or pass --runtime FILE")
    runtime = RuntimeInventory.load(runtime_file)
    if runtime.source != "lab":
        raise UserError(f"runtime inventory {runtime_file} comes from {runtime.source}: drills on a "
                        "real cloud need its SSH fault injector, which is not built yet")
    from dr.lab_runbook import LabRunbook, lab_faults
    return runtime, lab_faults(), LabRunbook()


def _pick_system(runtime, name: str | None):
    with_db = {n: s for n, s in runtime.systems.items() if s.database is not None}
    if name:
        if name not in runtime.systems:
            raise UserError(f"no system '{name}' in the runtime inventory — known: {', '.join(runtime.systems)}")
        return runtime.systems[name]
    if not with_db:
        raise UserError("the runtime inventory has no system with a database to drill")
    return next(iter(with_db.values()))


def run_once(scenario, runtime, system, injector, runbook, quiet: bool):
    from dr.engine import Drill
    from dr.report import write_report
    from inventory.loader import load_gbt_table
    targets = _tier_targets(system.tier, runtime.source)
    started = time.monotonic()

    def progress(phase: str, message: str) -> None:
        if not quiet:
            err.print(f"[dim]{time.monotonic() - started:7.2f}s[/dim] [bold]{phase:9}[/bold] {message}")

    drill_ = Drill(scenario, runtime, system, injector, runbook, load_gbt_table(), targets, progress)
    outcome = drill_.run()
    report_dir, data = write_report(outcome)
    if outcome.status not in ("skipped",):
        history.append(data)
    return outcome, data


def _print_result(data: dict) -> None:
    colour = "green" if data["passed"] else "red"
    err.print(f"[bold {colour}]{data['status'].upper()}[/] {data['scenario']} on {data['system']}"
              + (f" — {data['reason']}" if data.get("reason") else ""))
    if data["status"] != "skipped":
        err.print(f"  RTO {data['rto_seconds']} s (app {data['app_rto_seconds']} s, read {data['read_rto_seconds']} s), "
                  f"longest write gap {data['max_write_gap_seconds']} s")
        err.print(f"  RPO {data['rpo_lost_writes']} lost of {data['acknowledged_writes']} acknowledged writes "
                  f"({data['rpo_seconds']} s); split brain: {'YES' if data['split_brain'] else 'no'}; "
                  f"GB/T 20988 level {data['gbt20988_level']}")
        for c in data["criteria"]:
            if not c["ok"]:
                err.print(f"  [red]✘[/] {c['name']}: measured {c['measured']}, target {c['target']}")
    for item in data.get("restored", []):
        err.print(f"  [green]restored:[/] {item}")
    for item in data.get("left_to_do", []):
        err.print(f"  [yellow]left to do:[/] {item}")
    if data["status"] in ("aborted", "error") and not data.get("left_to_do"):
        err.print("  nothing left to do: every fault was undone and the layout is the original")
    err.print(f"  report: {data['report_dir']}/report.html")


@drill.command()
@click.argument("scenario")
@click.option("--system", "system_name", help="System to drill (default: the first with a database).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Run the drill N times back to back; prints min/median/max.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--runtime", "runtime_file", type=click.Path(path_type=Path), default=None,
              help="Runtime inventory (default: the lab's).")
def run(scenario: str, system_name: str | None, repeat: int, as_json: bool, runtime_file: Path | None) -> None:
    """Run SCENARIO against the running lab and report measured RTO/RPO."""
    try:
        sc = get_scenario(scenario)
    except (UnknownScenario, ScenarioProblem) as exc:
        raise UserError(str(exc)) from None
    runtime, injector, runbook = _world(runtime_file or _default_runtime())
    system = _pick_system(runtime, system_name)
    results = []
    for i in range(repeat):
        if repeat > 1:
            err.rule(f"{sc.name}: trial {i + 1}/{repeat}")
        try:
            outcome, data = run_once(sc, runtime, system, injector, runbook, quiet=False)
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            sys.exit(1)
        results.append(data)
        _print_result(data)
        if data["status"] in ("skipped", "aborted", "error"):
            break
    final = results[0] if repeat == 1 else repeat_summary(sc.name, results)
    if as_json:
        click.echo(json.dumps(final, indent=2, ensure_ascii=False))
    elif repeat > 1:
        err.print_json(json.dumps({k: v for k, v in final.items() if k != "trials"}))
    if final.get("status") == "skipped":
        sys.exit(2)
    sys.exit(0 if final["passed"] else 1)


def repeat_summary(scenario: str, results: list[dict]) -> dict:
    def figures(key: str) -> list[float]:
        return [r[key] for r in results if r.get(key) is not None]
    rtos = figures("rto_seconds")
    return {
        "scenario": scenario, "trials": len(results),
        "passed": all(r["passed"] for r in results), "passed_trials": sum(r["passed"] for r in results),
        "status": "skipped" if any(r["status"] == "skipped" for r in results) else (
            "passed" if all(r["passed"] for r in results) else "failed"),
        "rto_seconds": history.spread(rtos),
        "rto_seconds_all": rtos,
        "app_rto_seconds": history.spread(figures("app_rto_seconds")),
        "max_write_gap_seconds": history.spread(figures("max_write_gap_seconds")),
        "rpo_lost_writes": sum(r.get("rpo_lost_writes") or 0 for r in results),
        "rpo_lost_writes_per_trial": [r.get("rpo_lost_writes") for r in results],
        "rpo_seconds": max(figures("rpo_seconds"), default=0.0),
        "acknowledged_writes": sum(r.get("acknowledged_writes") or 0 for r in results),
        "split_brain": any(r.get("split_brain") for r in results),
        "gbt20988_level": min((r["gbt20988_level"] for r in results if r.get("gbt20988_level")), default=None),
        "report_dir": [r["report_dir"] for r in results],
        "trials_detail": [{k: r.get(k) for k in ("status", "rto_seconds", "rpo_lost_writes",
                                                  "split_brain", "report_dir")} for r in results],
    }


@drill.command()
@click.argument("report_id")
@click.option("--json", "as_json", is_flag=True)
def report(report_id: str, as_json: bool) -> None:
    """Show a drill report (directory name, prefix, run id, or 'latest')."""
    from dr.report import find_report
    directory = find_report(report_id)
    if directory is None:
        raise UserError(f"no report '{report_id}' under dr/reports — see `tricenter drill history`")
    data = json.loads((directory / "report.json").read_text())
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo((directory / "report.md").read_text())
    err.print(f"HTML: {directory / 'report.html'}")


@drill.command("history")
@click.option("--json", "as_json", is_flag=True)
@click.option("--scenario", default=None, help="Only this scenario.")
def history_(as_json: bool, scenario: str | None) -> None:
    """Trend per scenario and system: runs, passes, RTO min/median/max, lost writes."""
    records = [r for r in history.load() if scenario is None or r["scenario"] == scenario]
    rows = history.trend(records)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        err.print("no drills yet: `tricenter drill run main-center-loss`")
        return
    table = Table("scenario", "system", "runs", "passed", "RTO s min/med/max", "last RTOs s",
                  "lost", "split brain", "last run", "level")
    for r in rows:
        rto = r["rto_seconds"]
        table.add_row(r["scenario"], r["system"], str(r["runs"]), str(r["passed"]),
                      f"{rto['min']}/{rto['median']}/{rto['max']}" if rto else "—",
                      " ".join(f"{x:.1f}" if x is not None else "—" for x in r["last_rtos"]),
                      str(r["lost_writes_total"]), str(r["split_brain_runs"]),
                      f"{r['last_status']} {(r['last_at'] or '')[5:16].replace('T', ' ')}", str(r["last_level"]))
    Console(width=max(Console().width, 150)).print(table)
