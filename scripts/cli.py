"""`tricenter`: the one CLI. Each plane contributes its own subcommands from its folder.

Exit codes scripts can trust: 0 success, 1 ran but failed (or internal error),
2 user mistake (invalid inventory, bad arguments).
"""
from __future__ import annotations

import importlib
import json
import sys

import click

# (module, attribute) of each plane's click command or group; registered lazily so a
# plane's heavy imports (pulumi, matplotlib) only load when its command runs.
PLANE_COMMANDS = {
    "validate": ("inventory.cli", "validate"),
    "capacity": ("inventory.cli", "capacity"),
    "ipam": ("inventory.cli", "ipam_command"),
    "generate": ("inventory.cli", "generate"),
    "plan": ("stacks.cli", "plan"),
    "deploy": ("stacks.cli", "deploy"),
    "destroy": ("stacks.cli", "destroy"),
    "runtime": ("stacks.cli", "runtime"),
    "cloud": ("stacks.cli", "cloud"),
    "configure": ("playbooks.cli", "configure"),
    "lab": ("lab.cli", "lab"),
    "version": ("scripts.cli", "version"),
    "drill": ("dr.cli", "drill"),
    "exporter": ("monitoring.cli", "exporter"),
    "migrate": ("playbooks.migration.cli", "migrate"),
}


# The drill worlds by name (`drill run --world`): "module:factory", the factory taking the
# runtime inventory. Named here, where the planes are composed, so `dr/` imports none.
DRILL_WORLDS = {
    "lab": "lab.world:LabWorld",
    "ssh": "dr.ssh_world:SshWorld",
}


def lab_runtime_file():
    """Where the lab keeps its runtime inventory (the drill plane's default --runtime)."""
    from lab.context import lab_dir
    return lab_dir() / "runtime-inventory.yaml"


def wants_json(args: list[str]) -> bool:
    return "--json" in args


class PlaneGroup(click.Group):
    """Lazily loaded plane commands, with one error convention: under `--json` a user
    mistake or failure is a JSON object on stdout (`{"ok": false, "error": …, "exit_code": …}`,
    the shape every plane uses for its own refusals), so a
    script reading stdout always gets JSON; otherwise Click's plain message on stderr."""

    def main(self, args=None, **kwargs):  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        if not wants_json(argv):
            return super().main(args=argv, **kwargs)
        try:
            return super().main(args=argv, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            click.echo(json.dumps({"ok": False, "error": exc.format_message(),
                                   "exit_code": exc.exit_code},
                                  ensure_ascii=False))
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo(json.dumps({"ok": False, "error": "aborted", "exit_code": 1}))
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in PLANE_COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        if name not in PLANE_COMMANDS:
            return None
        module_name, attr = PLANE_COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # that plane is not built yet
            raise
        return getattr(module, attr, None)


@click.group(cls=PlaneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tricenter")
@click.option("-v", "--verbose", count=True,
              help="Log what the planes do to stderr: -v actions, -vv details, -vvv libraries too.")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Infrastructure as code and operations for a two-sites-three-centers cloud."""
    from support.logs import configure
    configure(verbose)
    # the keys of dr.world.WORLDS_META and dr.cli.DEFAULT_RUNTIME_META (not imported:
    # every command would then load the drill plane)
    ctx.meta["tricenter.worlds"] = DRILL_WORLDS
    ctx.meta["tricenter.default_runtime"] = lab_runtime_file


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def version(as_json: bool) -> None:
    """tricenter's version and commit, and the versions of the lab's programs."""
    from support.about import about
    info = about()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"tricenter {info['tricenter']} (commit {info['commit'] or 'unknown'})")
    for name, found in info["components"].items():
        click.echo(f"  {name:<11} {found or 'not installed'}")


if __name__ == "__main__":
    main()
