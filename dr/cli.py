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
from pydantic import ValidationError
from rich.table import Table

from dr import history
from dr.scenario import ScenarioProblem, UnknownScenario, get_scenario, load_catalogue
from dr.world import WORLDS_META, UnknownWorld, World, make_world
from inventory.runtime import MissingTierTargets, RuntimeInventory
from support.console import LazyConsole, console

err = LazyConsole(stderr=True)
out = LazyConsole()


class UserError(click.ClickException):
    exit_code = 2


# Key of click's context meta under which the entry point hands over where the runtime
# inventory is when --runtime is not given (the lab's, which this plane cannot locate itself).
DEFAULT_RUNTIME_META = "tricenter.default_runtime"


def _default_runtime() -> Path:
    ctx = click.get_current_context(silent=True)
    locate = ctx.meta.get(DEFAULT_RUNTIME_META) if ctx else None
    return locate() if locate else Path(".lab/runtime-inventory.yaml")


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
    console().print(table)


def report_context(runtime, runtime_file: Path | None, world: World) -> dict:
    """Where and with what a drill ran, for the report's context block."""
    from support.about import about
    context = {"environment": "lab" if runtime.source == "lab" else "production",
               "runtime_source": runtime.source, "world": world.name,
               "runtime_inventory": str(runtime_file) if runtime_file else None,
               "tiers_file": f"{runtime_file or 'runtime inventory'} (tiers)",
               "center_roles": {name: c.role for name, c in runtime.centers.items()},
               **world.report_context()}
    info = about()
    return {**context, "tricenter": info["tricenter"], "commit": info["commit"],
            "components": info["components"]}


def load_runtime(runtime_file: Path) -> RuntimeInventory:
    if not runtime_file.exists():
        raise UserError(f"no runtime inventory at {runtime_file}: bring the lab up first "
                        "(`tricenter lab up`) or pass --runtime FILE")
    try:
        return RuntimeInventory.load(runtime_file)
    except (ValidationError, ValueError, OSError) as exc:
        raise UserError(f"{runtime_file}: not a runtime inventory: {exc}") from None


def open_world(runtime: RuntimeInventory, name: str | None) -> World:
    """The world named (default: the runtime inventory's), from those the entry point knows."""
    ctx = click.get_current_context(silent=True)
    worlds = (ctx.meta.get(WORLDS_META) if ctx else None) or {}
    try:
        return make_world(name or runtime.world, runtime, worlds)
    except UnknownWorld as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:  # the world refuses this runtime inventory
        raise UserError(str(exc)) from None


def confirm(world: World, scenario, system, runtime: RuntimeInventory, cloud: str | None,
            as_json: bool) -> None:
    """Nothing runs on real hosts unless the plan can be carried out, the operator named
    the cloud it runs on and the world finds the hosts and cluster the runtime inventory
    names; otherwise print the plan (or the mismatch) and exit 2."""
    try:
        steps = world.plan(scenario, system)
    except RuntimeError as exc:
        raise UserError(f"the {world.name} world cannot run {scenario.name}: {exc}") from None
    if cloud == runtime.cloud:
        try:
            world.preflight(scenario, system)
        except RuntimeError as exc:
            raise UserError(f"refused, nothing was changed: {exc}") from None
        return
    stream = err if as_json else out
    stream.print(f"plan of {scenario.name} on cloud {runtime.cloud} ({world.name} world):",
                 markup=False, highlight=False)
    for line in steps:
        stream.print(f"  {line}", markup=False, highlight=False)
    said = f"--confirm {cloud} does not match" if cloud else "nothing was changed"
    raise UserError(f"{said}: the {world.name} world acts on real hosts; pass "
                    f"--confirm {runtime.cloud} to run this plan")


def _pick_system(runtime, name: str | None):
    with_db = {n: s for n, s in runtime.systems.items() if s.database is not None}
    if name:
        if name not in runtime.systems:
            raise UserError(f"no system '{name}' in the runtime inventory — known: {', '.join(runtime.systems)}")
        return runtime.systems[name]
    if not with_db:
        raise UserError("the runtime inventory has no system with a database to drill")
    return next(iter(with_db.values()))


def run_once(scenario, runtime, system, world: World, quiet: bool,
             runtime_file: Path | None = None):
    from dr.engine import Drill
    from dr.report import write_report
    started = time.monotonic()

    def progress(phase: str, message: str) -> None:
        if not quiet:
            err.print(f"[dim]{time.monotonic() - started:7.2f}s[/dim] [bold]{phase:9}[/bold] {message}")

    try:
        drill_ = Drill(scenario, runtime, system, world, progress)
    except MissingTierTargets as exc:
        raise UserError(f"{runtime_file or 'runtime inventory'}: {exc}") from None
    outcome = drill_.run()
    report_dir, data = write_report(outcome, context=report_context(runtime, runtime_file, world))
    if outcome.status not in ("skipped",):
        history.append(data)
    return outcome, data


def _seconds(x: float | None) -> str:
    return "not measured" if x is None else f"{x:.3f} s"


def verdict_lines(data: dict) -> list[str]:
    """The verdict as a person reads it: judged RTO with its definition, units everywhere."""
    lines = [f"{data['status'].upper()} {data['scenario']} on {data['system']}"
             + (f" — {data['reason'].strip().splitlines()[0]}" if data.get("reason") else "")]
    if data["status"] != "skipped":
        judged = "from the declaration" if data.get("rto_from") == "declaration" else "from the fault"
        lines.append(f"  RTO {judged} {_seconds(data.get('rto_judged_seconds', data['rto_seconds']))}"
                     f" (from the fault {_seconds(data['rto_seconds'])}, app entry "
                     f"{_seconds(data['app_rto_seconds'])}, read {_seconds(data['read_rto_seconds'])}); "
                     f"longest write gap {_seconds(data['max_write_gap_seconds'])}")
        if data.get("failback_max_write_gap_seconds") is not None:
            lines.append(f"  failback write gap {_seconds(data['failback_max_write_gap_seconds'])}")
        level = data.get("gbt20988_level")
        lines.append(f"  RPO {data['rpo_lost_writes']} of {data['acknowledged_writes']} acknowledged "
                     f"writes lost (oldest {_seconds(data['rpo_seconds'])}); split brain: "
                     f"{'YES' if data['split_brain'] else 'no'}; "
                     f"GB/T 20988-{data.get('gbt20988_edition') or '2007'}: "
                     + (f"level {level}" if level else "no level stated"))
        if data.get("gbt20988_level_note"):
            lines.append(f"  {data['gbt20988_level_note']}")
        if data.get("center_summary"):
            summary = data["center_summary"]
            lines.append(f"  center-wide: {summary['passed']} of {summary['systems']} systems passed, "
                         f"worst RTO {_seconds(summary['worst_rto_seconds'])}, "
                         f"{summary['lost_writes']} acknowledged writes lost")
            lines += [f"    {t['name']} ({t['tier']}): RTO {_seconds(t['rto_seconds'])}, "
                      f"{t['rpo_lost_writes']} of {t['acknowledged_writes']} lost, "
                      f"{'passed' if t['passed'] else 'FAILED'}" + (f" — {t['note']}" if t["note"] else "")
                      for t in data.get("touched_systems", [])]
        for c in data["criteria"]:
            if not c["ok"]:
                unit = f" {c['unit']}" if c.get("unit") else ""
                lines.append(f"  ✘ {c['name']}: measured {c['measured']}{unit}, target {c['target']}{unit}")
    lines += [f"  restored: {item}" for item in data.get("restored", [])]
    lines += [f"  left to do: {item}" for item in data.get("left_to_do", [])]
    if data["status"] in ("aborted", "error") and not data.get("left_to_do"):
        lines.append("  nothing left to do: every fault was undone and the layout is the original")
    lines.append(f"  report: {data['report_dir']}/report.html (Chinese: report.zh.html)")
    return lines


def _print_result(data: dict, as_json: bool) -> None:
    """Verdict on stdout for people (stderr under --json, whose stdout is JSON only)."""
    stream = err if as_json else out
    for line in verdict_lines(data):
        stream.print(line, markup=False, highlight=False)


@drill.command()
@click.argument("scenario")
@click.option("--system", "system_name", help="System to drill (default: the first with a database).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Run the drill N times back to back; prints min/median/max.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--runtime", "runtime_file", type=click.Path(path_type=Path), default=None,
              help="Runtime inventory (default: the lab's).")
@click.option("--world", "world_name", default=None,
              help="What acts on the environment: lab (the lab's processes) or ssh (hosts over "
                   "SSH). Default: the runtime inventory's `world`.")
@click.option("--confirm", "confirm_cloud", default=None, metavar="CLOUD",
              help="Run on real hosts (ssh world): the runtime inventory's cloud name. Without "
                   "it the ssh world prints its plan and exits 2 having changed nothing.")
def run(scenario: str, system_name: str | None, repeat: int, as_json: bool, runtime_file: Path | None,
        world_name: str | None, confirm_cloud: str | None) -> None:
    """Run SCENARIO against the environment of a runtime inventory and report measured RTO/RPO."""
    try:
        sc = get_scenario(scenario)
    except (UnknownScenario, ScenarioProblem) as exc:
        raise UserError(str(exc)) from None
    runtime_file = runtime_file or _default_runtime()
    runtime = load_runtime(runtime_file)
    system = _pick_system(runtime, system_name)
    try:
        runtime.tier_of(system)
    except MissingTierTargets as exc:
        raise UserError(f"{runtime_file}: {exc}") from None
    world = open_world(runtime, world_name)
    if world.confirmation_needed:
        confirm(world, sc, system, runtime, confirm_cloud, as_json)
    results = []
    for i in range(repeat):
        if repeat > 1:
            err.print(f"── {sc.name}: trial {i + 1}/{repeat} ──")
        try:
            outcome, data = run_once(sc, runtime, system, world, quiet=False,
                                     runtime_file=runtime_file)
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            sys.exit(1)
        results.append(data)
        _print_result(data, as_json)
        if data["status"] in ("skipped", "aborted", "error"):
            break
    final = results[0] if repeat == 1 else repeat_summary(sc.name, results)
    if as_json:
        click.echo(json.dumps(final, indent=2, ensure_ascii=False))
    elif repeat > 1:
        out.print_json(json.dumps({k: v for k, v in final.items() if k != "trials_detail"}))
    if final.get("status") == "skipped":
        sys.exit(2)
    sys.exit(0 if final["passed"] else 1)


def repeat_summary(scenario: str, results: list[dict]) -> dict:
    """The JSON of `drill run --repeat N` (N > 1). Keys it shares with a single run's result
    keep their type and meaning (numbers stay numbers: totals or worst cases); spreads and
    per-trial lists have names of their own, so a script never meets one key in two shapes."""
    def figures(key: str) -> list[float]:
        return [r[key] for r in results if r.get(key) is not None]
    rtos = figures("rto_seconds")
    return {
        "scenario": scenario, "trials": len(results),
        "passed": all(r["passed"] for r in results), "passed_trials": sum(r["passed"] for r in results),
        "status": "skipped" if any(r["status"] == "skipped" for r in results) else (
            "passed" if all(r["passed"] for r in results) else "failed"),
        "rto_seconds_spread": history.spread(rtos),
        "rto_seconds_all": rtos,
        "app_rto_seconds_spread": history.spread(figures("app_rto_seconds")),
        "max_write_gap_seconds_spread": history.spread(figures("max_write_gap_seconds")),
        "rpo_lost_writes": sum(r.get("rpo_lost_writes") or 0 for r in results),
        "rpo_lost_writes_per_trial": [r.get("rpo_lost_writes") for r in results],
        "rpo_seconds": max(figures("rpo_seconds"), default=0.0),
        "acknowledged_writes": sum(r.get("acknowledged_writes") or 0 for r in results),
        "split_brain": any(r.get("split_brain") for r in results),
        "gbt20988_level": min((r["gbt20988_level"] for r in results if r.get("gbt20988_level")), default=None),
        "report_dirs": [r["report_dir"] for r in results],
        "trials_detail": [{k: r.get(k) for k in ("status", "rto_seconds", "rpo_lost_writes",
                                                  "split_brain", "center_summary", "report_dir")}
                          for r in results],
    }


@drill.command()
@click.argument("report_id")
@click.option("--json", "as_json", is_flag=True, help="Print report.json.")
@click.option("--chinese", "--zh", "chinese", is_flag=True, help="Print the Chinese report (report.zh.md).")
def report(report_id: str, as_json: bool, chinese: bool) -> None:
    """Show a drill report: its path (as `drill run` printed it), directory name, run id,
    a unique prefix of either, or 'latest'."""
    from dr.paths import reports_dir
    from dr.report import AmbiguousReport, find_report
    try:
        directory = find_report(report_id)
    except AmbiguousReport as exc:
        raise UserError(str(exc)) from None
    if directory is None:
        raise UserError(f"no report '{report_id}' in {reports_dir()} — see `tricenter drill "
                        "history` for run ids, or pass the path `drill run` printed")
    data = json.loads((directory / "report.json").read_text())
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    name = "report.zh" if chinese and (directory / "report.zh.md").exists() else "report"
    click.echo((directory / f"{name}.md").read_text())
    err.print(f"HTML: {directory / (name + '.html')}", markup=False, highlight=False)


@drill.command("history")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable trend.")
@click.option("--scenario", default=None, help="Only this scenario.")
def history_(as_json: bool, scenario: str | None) -> None:
    """Trend per scenario and system: runs, passes, RTO min/median/max, lost writes, and
    the last run's id (for `tricenter drill report RUN_ID`)."""
    records = history.load()
    if scenario is not None:
        known = sorted(set(load_catalogue()) | {r["scenario"] for r in records})
        if scenario not in known:
            raise UserError(f"unknown scenario '{scenario}'; known: {', '.join(known)}")
        records = [r for r in records if r["scenario"] == scenario]
    rows = history.trend(records)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        what = f"no '{scenario}' drill yet" if scenario else "no drills yet"
        err.print(f"{what}: `tricenter drill run {scenario or 'main-center-loss'}`", markup=False)
        return
    table = Table("scenario", "system", "runs", "passed", "RTO s min/med/max", "last RTOs s",
                  "lost", "split brain", "last run", "last run id", "level")
    for r in rows:
        rto = r["rto_seconds"]
        table.add_row(r["scenario"], r["system"], str(r["runs"]), str(r["passed"]),
                      f"{rto['min']}/{rto['median']}/{rto['max']}" if rto else "—",
                      " ".join(f"{x:.3f}" if x is not None else "—" for x in r["last_rtos"]),
                      str(r["lost_writes_total"]), str(r["split_brain_runs"]),
                      f"{r['last_status']} {(r['last_at'] or '')[5:16].replace('T', ' ')}",
                      r.get("last_run_id") or "—", str(r["last_level"] or "—"))
    console().print(table)
