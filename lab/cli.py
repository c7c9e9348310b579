"""`tricenter lab …`: the three centers on this machine, as real processes."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from support.console import LazyConsole, console as make_console
from rich.live import Live
from rich.table import Table

from inventory.cli import report_invalid
from inventory.errors import InvalidInventory
from inventory.loader import LAB_INVENTORY
from lab import labdir
from lab.context import CENTERS, PATRONI_PROFILES, LabContext
from lab.lab import Lab, LabError
from lab.labdir import LabDirError

console = LazyConsole(stderr=True)


def _status_table(status: dict, elapsed: float | None = None) -> Table:
    title = "lab " + ("healthy" if status["healthy"] else "not healthy")
    if elapsed is not None:
        title += f" — {elapsed:.0f}s"
    settings = status.get("settings") or {}
    if settings:
        title += (f" — network {'netns' if settings.get('netns') else 'loopback'}, "
                  f"Patroni profile {settings.get('patroni_profile')}")
    table = Table(title=title, show_lines=False)
    for column in ("center", "role", "database", "programs", "health"):
        table.add_column(column)
    sites = {**status["centers"], **status.get("locations", {})}
    for site, info in sites.items():
        programs = ", ".join(
            f"{name.removeprefix(site + '-')} {'✓' if p['state'] == 'RUNNING' else p['state']}"
            for name, p in info["programs"].items()) or "-"
        health = "[green]healthy[/]" if info["healthy"] else \
            "[red]" + "; ".join(info["problems"] or ["not running"]) + "[/]"
        table.add_row(site, info["role"], info.get("database_role") or "-", programs, health)
    database = status["database"]
    table.caption = (f"primary {database['leader'] or '-'}, sync {database['sync_standby'] or '-'}, "
                     f"etcd leader {status['etcd']['leader'] or '-'}, app entry served by "
                     f"{', '.join(status['app_entry']['served_by']) or 'nobody'}")
    others = [f"{system}: primary {d['leader'] or '-'}" + (f", sync {d['sync_standby']}" if d["sync_standby"] else "")
              for system, d in status.get("databases", {}).items() if d is not database]
    if others:
        table.caption += "; " + "; ".join(others)
    return table


def _fail(message: str, exit_code: int, as_json: bool, **extra: object) -> NoReturn:
    """Exit with `message`: a JSON object on stdout under --json, plain text on stderr else."""
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": exit_code, **extra}, default=str))
    else:
        console.print(message, markup=False, highlight=False, soft_wrap=True)
    sys.exit(exit_code)


def _refuse(command: str, error: LabDirError, as_json: bool = False) -> NoReturn:
    _fail(f"{command} refused: {error}", 2, as_json)


def _context(as_json: bool = False, inventory: Path | None = None) -> LabContext:
    """The lab's context, or exit 2 naming what in its inventory it cannot run."""
    try:
        return LabContext(inventory=inventory)
    except InvalidInventory as error:
        report_invalid(error, as_json)
        if not as_json:
            click.echo(f"(choose the inventory the lab follows with `tricenter lab up --inventory "
                       f"DIR`; the shipped one is {LAB_INVENTORY})", err=True)
        sys.exit(2)


def _lab(as_json: bool = False, inventory: Path | None = None) -> Lab:
    return Lab(_context(as_json, inventory))


@click.group()
def lab() -> None:
    """The three centers (and a legacy IDC) on this machine, as real processes."""


@lab.command()
@click.option("--patroni-profile", type=click.Choice(PATRONI_PROFILES),
              help="Patroni timing: fast (ttl 5 / loop_wait 1 / retry 2) or stock "
                   "(30 / 10 / 10). Default: the lab's last choice, else fast.")
@click.option("--netns/--loopback", "netns", default=None,
              help="Each center in its own network namespace, so isolating one is a real "
                   "partition (root and `ip netns` required), or loopback addresses per "
                   "center. Default: the lab's last choice, else loopback. Switching needs "
                   "a stopped lab.")
@click.option("--inventory", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The inventory the lab follows (its tier placement decides where the "
                   "database leads and the app serves), e.g. an edited copy of inventory/lab. "
                   "Default: the lab's last choice, else inventory/lab.")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON.")
@click.option("--timeout", default=180, show_default=True, help="Seconds to wait for health.")
def up(patroni_profile: str | None, netns: bool | None, inventory: Path | None, as_json: bool,
       timeout: int) -> None:
    """Start the lab (idempotent) and wait until it is healthy: exit 0 healthy, 1 not."""
    the_lab = _lab(as_json, inventory)
    started = time.monotonic()
    status: dict = {}
    try:
        progress_console = make_console(stderr=True)
        with Live(console=progress_console, transient=as_json, refresh_per_second=2) as live:
            live.update("writing configuration, starting supervisord …")

            def progress(current: dict) -> None:
                live.update(_status_table(current, time.monotonic() - started))

            status = the_lab.up(profile=patroni_profile, netns=netns, progress=progress,
                                deadline_seconds=timeout)
        if not progress_console.is_terminal and not as_json:
            progress_console.line()  # Live leaves its last table unterminated off a terminal
    except LabDirError as exc:
        _refuse("lab up", exc, as_json)
    except LabError as exc:
        _fail(f"lab up failed: {exc}", 1, as_json, status=the_lab.status() if as_json else None)
    elapsed = time.monotonic() - started
    if as_json:
        click.echo(json.dumps({**status, "up_seconds": round(elapsed, 1)}, indent=2, default=str))
    else:
        for action in status.get("recovered", []):
            console.print(f"[yellow]recovered:[/] {action}")
        console.print(f"[green]lab healthy[/] in {elapsed:.1f}s — runtime inventory: "
                      f"{status['runtime_inventory']}")


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON.")
def down(as_json: bool) -> None:
    """Stop every lab process; exit 0 only when no process and no port remains.

    Exit 2, with nothing stopped, when the directory is not a lab's (no marker)."""
    try:
        result = _lab(as_json).down()
    except LabDirError as exc:
        _refuse("lab down", exc, as_json)
    except LabError as exc:
        _fail(f"lab down incomplete: {exc}", 1, as_json)
    if as_json:
        click.echo(json.dumps({"stopped": True, **result}, indent=2, default=str))
        return
    console.print(f"lab stopped; no lab process or listening port remains "
                  f"({len(result['listening'])} ports)")


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable status.")
def status(as_json: bool) -> None:
    """What runs in each center, its role and health: exit 0 healthy, 1 not."""
    current = _lab(as_json).status()
    if as_json:
        click.echo(json.dumps(current, indent=2, default=str))
    else:
        make_console().print(_status_table(current))
        for problem in current["problems"]:
            console.print(f"[yellow]- {problem}[/]")
        for entry in current.get("kept", []):
            console.print(f"kept aside: {entry['path']} ({entry.get('why', '')})")
    sys.exit(0 if current["healthy"] else 1)


def _log_files(ctx: LabContext, component: str, center: str | None) -> list:
    manifest_file = ctx.path("programs.json")
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    # PostgreSQL under Patroni writes to Patroni's log (no logging collector).
    wanted = {component, "patroni"} if component == "postgres" else {component}
    names = [name for name, info in sorted(manifest.items())
             if (info["component"] in wanted or name.endswith(f"-{component}"))
             and (center is None or info["center"] == center)]
    files = [ctx.log_file(name) for name in names if ctx.log_file(name).exists()]
    if not files:
        known = sorted({info["component"] for info in manifest.values()})
        raise click.UsageError(f"no log for {component!r}"
                               f"{' in ' + center if center else ''}; known: {', '.join(known)}")
    return files


def follow(files: list, lines: int, poll_seconds: float = 0.5, rounds: int | None = None) -> None:
    """Like `tail -n N -f`: the last lines of each file, then what is appended, each line
    prefixed by its file when there are several (Ctrl-C stops). `rounds` bounds the polls."""
    offsets = {}
    for file in files:
        text = file.read_text(errors="replace")
        for line in text.splitlines()[-lines:]:
            click.echo(f"{file.name}: {line}" if len(files) > 1 else line)
        offsets[file] = len(text.encode(errors="replace"))
    done = 0
    try:
        while rounds is None or done < rounds:
            for file in files:
                size = file.stat().st_size if file.exists() else 0
                if size < offsets[file]:
                    offsets[file] = 0  # rotated or truncated: start again from its top
                if size > offsets[file]:
                    with file.open("rb") as handle:
                        handle.seek(offsets[file])
                        chunk = handle.read()
                    offsets[file] += len(chunk)
                    for line in chunk.decode(errors="replace").splitlines():
                        click.echo(f"{file.name}: {line}" if len(files) > 1 else line)
            done += 1
            if rounds is None or done < rounds:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        pass


@lab.command()
@click.argument("component")
@click.option("--center", type=click.Choice([*CENTERS, "legacy", "global"]),
              help="Only this center's log (default: every center running it).")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines from the end.")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing what is appended (Ctrl-C stops).")
def logs(component: str, center: str | None, lines: int, follow_: bool) -> None:
    """Show the end of a component's log (e.g. `tricenter lab logs patroni --center main -f`)."""
    files = _log_files(_context(), component, center)
    if follow_:
        follow(files, lines)
        return
    for file in files:
        click.echo(f"==> {file} <==")
        click.echo("\n".join(file.read_text(errors="replace").splitlines()[-lines:]))


@lab.command("legacy-data")
@click.argument("system")
@click.option("--size", required=True, help="Grow the source database to this size: 100MB, 1GB, 512MiB.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON.")
def legacy_data(system: str, size: str, as_json: bool) -> None:
    """Grow SYSTEM's legacy database to SIZE by COPY (its large table, archive_record)."""
    from lab import datagen
    from lab.components import legacy

    ctx = _context(as_json)
    systems = {s.name: s for s in legacy.systems(ctx)}
    if system not in systems:
        _fail(f"no legacy system {system!r} in the lab (legacy systems: "
              f"{', '.join(sorted(systems))})", 2, as_json)
    try:
        size_bytes = datagen.parse_size(size)
    except datagen.BadSize as exc:
        _fail(f"--size: {exc}", 2, as_json)
    try:
        grown = datagen.grow(legacy.app_conninfo(ctx, systems[system]), size_bytes)
    except datagen.psycopg.OperationalError as exc:
        _fail(f"the legacy database of {system} is not reachable (`tricenter lab up` "
              f"first): {str(exc).strip().splitlines()[0]}", 1, as_json)
    if as_json:
        click.echo(json.dumps({"system": system, **grown.as_json()}))
    else:
        click.echo(f"{system}: {grown.rows_added} rows added to {grown.table}; database now "
                   f"{grown.size_bytes / 1e6:.0f} MB")


@lab.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON; needs --yes.")
def reset(yes: bool, as_json: bool) -> None:
    """Stop the lab and delete its state directory (data, secrets, logs).

    Exit 2, with nothing stopped or deleted, when the directory is not a lab's."""
    the_lab = _lab(as_json)
    root = the_lab.ctx.root
    try:
        labdir.require_lab(root)  # before asking: never offer to delete a stranger's directory
        if as_json and not yes:
            _fail("lab reset --json cannot ask for confirmation: add --yes", 2, as_json)
        if not yes:
            click.confirm(f"Stop the lab and delete {root} with its data, secrets and logs?",
                          abort=True, err=True)
        the_lab.reset()
    except LabDirError as exc:
        _refuse("lab reset", exc, as_json)
    except LabError as exc:
        _fail(f"lab reset incomplete: {exc}", 1, as_json)
    if as_json:
        click.echo(json.dumps({"reset": True, "removed": str(root)}))
        return
    console.print(f"lab stopped and {the_lab.ctx.root} removed")
