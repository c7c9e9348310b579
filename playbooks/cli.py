"""`tricenter configure`: the configuration plane's command."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

EXIT_FAILED = 1
EXIT_INVALID = 2
RUNTIME_ENV = "TRICENTER_RUNTIME"


class _Progress:
    """One line per task and per host outcome worth seeing; skipped hosts stay quiet."""

    def __init__(self, err: bool) -> None:
        self.err = err

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "play":
            click.echo(f"PLAY {event['name']}", err=self.err)
        elif kind == "task":
            click.echo(f"  TASK {event['name']}", err=self.err)
        elif kind == "result" and event["status"] != "skipped":
            line = f"    {event['host']}: {event['status']}"
            if event.get("msg"):
                line += f" — {event['msg']}"
            click.echo(line, err=self.err)
            if event.get("diff"):
                click.echo(event["diff"].rstrip("\n"), err=self.err)


def _print_recap(hosts: dict[str, dict[str, int]]) -> None:
    click.echo("RECAP")
    width = max((len(h) for h in hosts), default=4)
    for host, counts in sorted(hosts.items()):
        click.echo(f"  {host:<{width}}  ok={counts.get('ok', 0)} changed={counts.get('changed', 0)} "
                   f"failed={counts.get('failed', 0)} unreachable={counts.get('unreachable', 0)}")


@click.command()
@click.option("--runtime", "runtime_file", type=click.Path(path_type=Path), default=None,
              help=f"Runtime inventory (default: ${RUNTIME_ENV}).")
@click.option("--check", is_flag=True, help="Change nothing; report what would change.")
@click.option("--diff", is_flag=True, help="Show what changes in each file (never a secret's).")
@click.option("--limit", default=None, help="Only these hosts or groups (Ansible pattern).")
@click.option("--tags", default=None,
              help="Only these roles or phases, e.g. etcd,haproxy or config,check.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the recap as JSON on stdout; progress goes to stderr.")
def configure(runtime_file: Path | None, check: bool, diff: bool, limit: str | None,
              tags: str | None, as_json: bool) -> None:
    """Configure the hosts of a runtime inventory with the roles of playbooks/site.yml.

    Exit 0 when every host converged, 1 when a host failed or was unreachable, 2 when
    the runtime inventory is missing or wrong."""
    from playbooks import configure as runner

    if runtime_file is None:
        if not os.environ.get(RUNTIME_ENV):
            click.echo(f"name the runtime inventory with --runtime FILE or ${RUNTIME_ENV}", err=True)
            sys.exit(EXIT_INVALID)
        runtime_file = Path(os.environ[RUNTIME_ENV])
    try:
        runtime = runner.load_runtime(runtime_file)
    except runner.BadInput as exc:
        click.echo(f"invalid runtime inventory: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    recap = runner.run(runtime, check=check, diff=diff, limit=limit, tags=tags,
                       on_event=_Progress(err=as_json))
    if as_json:
        click.echo(json.dumps(recap.as_json(), indent=2))
    else:
        _print_recap(recap.hosts)
    if recap.errors:
        click.echo(recap.errors, err=True)
    if recap.bad_input:
        click.echo(f"the runtime inventory {runtime_file} does not fit the roles:", err=True)
        for message in recap.bad_input:
            click.echo(f"  {message}", err=True)
        sys.exit(EXIT_INVALID)
    sys.exit(0 if recap.ok else EXIT_FAILED)
