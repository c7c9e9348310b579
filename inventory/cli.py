"""Inventory-plane commands: validate, capacity, ipam, generate."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from support.console import console as make_console
from rich.markup import escape
from rich.table import Table

from inventory import ipam
from inventory.capacity import DIMENSIONS, CapacityReport, capacity_report
from inventory.demand import system_demand
from inventory.errors import InvalidInventory
from inventory.loader import DEFAULT_INVENTORY, INVENTORY_ENV, Topology
from inventory.model import System
from inventory.requests import find_request, quota_left, request_report
from inventory.validate import load_valid_topology

EXIT_INVALID = 2

inventory_option = click.option(
    "--inventory", "inventory_dir", type=click.Path(path_type=Path), default=DEFAULT_INVENTORY,
    envvar=INVENTORY_ENV, show_envvar=True, show_default="inventory/guangdong",
    help="Inventory directory to read.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def report_invalid(error: InvalidInventory, as_json: bool) -> None:
    """Print every problem; the caller exits 2."""
    if as_json:
        print_json({"valid": False, "errors": [p.as_dict() for p in error.problems]})
        return
    console = make_console(stderr=True)
    console.print(f"[bold red]Invalid inventory: {len(error.problems)} problem(s)[/]")
    for problem in error.problems:
        # Problems quote inventory text, which must not be read as rich markup ("[/]" raises).
        console.print(f"  [red]✗[/] {escape(str(problem))}", highlight=False, soft_wrap=True)


def load_or_exit(inventory_dir: Path, as_json: bool) -> Topology:
    """Load a valid topology, or print why it is not one and exit 2 (changing nothing)."""
    try:
        return load_valid_topology(inventory_dir)
    except InvalidInventory as error:
        report_invalid(error, as_json)
        sys.exit(EXIT_INVALID)


def inventory_summary(topo: Topology) -> dict:
    per_center: dict[str, int] = {}
    apps = dbs = 0
    for system in topo.systems.values():
        cloud = topo.cloud_of(system)
        demand = system_demand(cloud, topo.tiers[system.tier], system)
        for role, center_demand in demand.items():
            name = next((n for n, c in cloud.centers.items() if c.role == role), None)
            if name is None or center_demand.vms == 0:
                continue
            key = f"{cloud.name}/{name}"
            per_center[key] = per_center.get(key, 0) + center_demand.vms
            apps += center_demand.app_instances
            dbs += center_demand.vms - center_demand.app_instances
    return {"clouds": len(topo.clouds), "departments": len(topo.departments),
            "systems": len(topo.systems), "instances": apps + dbs, "app_instances": apps,
            "database_instances": dbs, "instances_per_center": per_center}


def ipam_warnings(plan: ipam.IpamPlan) -> list[str]:
    warnings = []
    if plan.new_keys:
        warnings.append(f"{len(plan.new_keys)} address block(s) not yet in ipam.lock.yaml "
                        f"(e.g. {plan.new_keys[0]}): run `tricenter ipam --write` and commit it")
    if plan.released_keys:
        warnings.append(f"{len(plan.released_keys)} locked block(s) have no owner any more "
                        f"(e.g. {plan.released_keys[0]}): `tricenter ipam --write` releases them")
    return warnings


@click.command()
@inventory_option
@click.option("--request", "requests", multiple=True, metavar="FILE|SYSTEM",
              help="A system request (its file in the inventory, or its name): show what it "
                   "adds per center and its department's quota left. Repeatable.")
@json_option
def validate(inventory_dir: Path, requests: tuple[str, ...], as_json: bool) -> None:
    """Check the inventory: schemas, references, quotas, placement, address space.

    Exit 0 valid, 2 invalid (every problem is listed, with file, field and line)."""
    topo = load_or_exit(inventory_dir, as_json)
    asked = [_request(topo, ref) for ref in requests]
    left = quota_left(topo)
    summary = {"valid": True, "inventory": str(topo.root), **inventory_summary(topo),
               "warnings": ipam_warnings(ipam.allocate(topo)),
               "quota_left": {dept: {q.role.value: q.as_dict() for q in lines}
                              for dept, lines in left.items()},
               "requests": [request_report(topo, system, left) for system in asked]}
    if as_json:
        print_json(summary)
        return
    console = make_console()
    console.print(f"[bold green]✓ valid[/] {topo.root}: {summary['clouds']} cloud(s), "
                  f"{summary['departments']} departments, {summary['systems']} systems, "
                  f"{summary['instances']} VMs ({summary['app_instances']} app + "
                  f"{summary['database_instances']} database)")
    for center, vms in summary["instances_per_center"].items():
        console.print(f"  {center}: {vms} VMs")
    for warning in summary["warnings"]:
        console.print(f"  [yellow]![/] {warning}")
    for report in summary["requests"]:
        _print_request(console, report)


def _request(topo: Topology, ref: str) -> System:
    system = find_request(topo, ref)
    if system is None:
        raise click.BadParameter(
            f"'{ref}' is neither a system file in {topo.root} nor a system name there — "
            "put the request under systems/<your-dept>/ in the inventory, or check --inventory",
            param_hint="--request")
    return system


def _amount(values: dict, prefix: str = "") -> str:
    return (f"{prefix}{values['vcpus']:,} vCPUs, {prefix}{values['ram_gib']:,} GiB RAM, "
            f"{prefix}{values['storage_gib']:,} GiB storage")


def _print_request(console, report: dict) -> None:
    console.print(f"[bold]Request {escape(report['system'])}[/] (department "
                  f"{report['department']}, tier {report['tier']}, {escape(report['file'])}) adds:",
                  highlight=False)
    for center, delta in report["adds"].items():
        console.print(f"  {center} ({delta['role']}): {delta['app_vms']} app + {delta['db_vms']} "
                      f"database VM(s); {_amount(delta, '+')}", highlight=False)
    total = report["adds_total"]
    console.print(f"  in all: {total['app_vms']} app + {total['db_vms']} database VM(s); "
                  f"{_amount(total, '+')}", highlight=False)
    console.print(f"Quota of {report['department']} left with it counted:", highlight=False)
    for role, quota in report["quota_left_after"].items():
        left, limit = quota["left"], quota["quota"]
        console.print(f"  {role}: " + ", ".join(
            f"{left[d]:,} of {limit[d]:,} {unit}" for d, unit in
            (("vcpus", "vCPUs"), ("ram_gib", "GiB RAM"), ("storage_gib", "GiB storage"),
             ("instances", "VMs"))), highlight=False)


def _bar(ratio: float, width: int = 10) -> str:
    filled = min(width, round(ratio * width))
    colour = "green" if ratio <= 0.7 else ("yellow" if ratio <= 1.0 else "red")
    return f"[{colour}]{'█' * filled}{'·' * (width - filled)}[/] {ratio:6.1%}"


def _tier_of(report: CapacityReport, system: str) -> str:
    return report.tiers.get(system, "?")


def _print_capacity(report: CapacityReport) -> None:
    console = make_console()
    table = Table(title="Capacity per center (demand / capacity)")
    table.add_column("center")
    for dim in DIMENSIONS:
        table.add_column(dim)
    for usage in report.centers:
        util = usage.utilization()
        table.add_row(f"{usage.cloud}/{usage.center} ({usage.role.value})",
                      *[f"{getattr(usage.demand, d)}/{getattr(usage.capacity, d)}\n{_bar(util[d])}"
                        for d in DIMENSIONS])
    console.print(table)
    for check in report.failover:
        verdict = "[green]fits[/]" if check.fits else "[red]does NOT fit[/]"
        lost = " + ".join(check.lost_centers)
        console.print(f"[bold]{check.cloud}: {check.scenario}[/] ({lost} lost → {check.survivor}): "
                      f"{verdict}; {len(check.extra)} system(s) absorbed")
        need, promised = check.required, check.promised
        console.print("  admitted systems use " + ", ".join(
            f"{d} {getattr(need, d)}/{getattr(check.capacity, d)}" for d in DIMENSIONS))
        if check.not_fitting:
            console.print("  keeping every promise needs " + ", ".join(
                f"{d} {getattr(promised, d)}" for d in DIMENSIONS)
                + "; short by [red]" + ", ".join(f"{d} {n}" for d, n in check.shortfall.items()) + "[/]")
            console.print(f"  [red]recovery promise broken for {len(check.not_fitting)} system(s):[/] "
                          + ", ".join(f"{s} ({_tier_of(report, s)})" for s in check.not_fitting))


@click.command()
@inventory_option
@json_option
def capacity(inventory_dir: Path, as_json: bool) -> None:
    """Demand against capacity per center, and whether survivors absorb a lost center.

    Exit 0 when everything fits, 1 when a center is over capacity or a tier's recovery
    promise does not fit (the systems and the shortfall are named), 2 invalid inventory."""
    report = capacity_report(load_or_exit(inventory_dir, as_json))
    if as_json:
        print_json(report.as_dict())
    else:
        _print_capacity(report)
    if not report.promises_kept:
        sys.exit(1)  # ran, and found a center or a recovery promise that does not fit


@click.command("ipam")
@inventory_option
@click.option("--write", is_flag=True, help="Record new blocks (and release unowned ones) in the lock.")
@json_option
def ipam_command(inventory_dir: Path, write: bool, as_json: bool) -> None:
    """Show the address plan; with --write, update ipam.lock.yaml next to the inventory."""
    topo = load_or_exit(inventory_dir, as_json)
    plan = ipam.allocate(topo)
    if write:
        ipam.write_lock(topo.ipam_lock_file, plan)
    if as_json:
        print_json({"blocks": plan.lock_data(), "new": plan.new_keys,
                    "released": plan.released_keys, "written": write})
        return
    for key, block in plan.lock_data().items():
        marker = " (new)" if key in plan.new_keys else ""
        click.echo(f"{block:<18} {key}{marker}")
    click.echo(f"{len(plan.blocks)} blocks, {len(plan.new_keys)} new, "
               f"{len(plan.released_keys)} released" + ("; lock written" if write else ""))


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory to write.")
@click.option("--systems", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--vms", type=click.IntRange(4), default=10000, show_default=True)
@click.option("--clouds", type=click.IntRange(1, 20), default=4, show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--force", is_flag=True, help="Delete what --out holds and replace it.")
def generate(out: Path, systems: int, vms: int, clouds: int, seed: int, force: bool) -> None:
    """Write a synthetic inventory (1+N+M clouds) of any size, for benchmarks.

    --out must be new or empty unless --force (exit 2, nothing touched)."""
    from inventory.generate import OutputNotEmpty, generate_inventory

    try:
        totals = generate_inventory(out, systems=systems, vms=vms, clouds=clouds, seed=seed,
                                    force=force)
    except OutputNotEmpty as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    print_json({"out": str(out), **totals})
