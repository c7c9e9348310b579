"""`tricenter`: the one CLI. Each plane contributes its own subcommands from its folder.

Exit codes scripts can trust: 0 success, 1 ran but failed (or internal error),
2 user mistake (invalid inventory, bad arguments).
"""
from __future__ import annotations

import importlib

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
    "runtime": ("stacks.cli", "runtime"),
    "configure": ("playbooks.cli", "configure"),
    "lab": ("lab.cli", "lab"),
    "exporter": ("monitoring.cli", "exporter"),
    "drill": ("dr.cli", "drill"),
}


class PlaneGroup(click.Group):
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
def main() -> None:
    """Infrastructure as code and operations for a two-sites-three-centers cloud."""


if __name__ == "__main__":
    main()
