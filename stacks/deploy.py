"""`tricenter deploy`: the real stack through Pulumi's Automation API.

Nothing here pretends. Before touching anything, `preflight` lists every missing
prerequisite (the `pulumi` CLI, OpenStack credentials, a state backend, a secrets
passphrase, the stack's secret seed) with the command that fixes it.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inventory.names import path_under

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BACKEND_ENV = "TRICENTER_PULUMI_BACKEND"  # e.g. s3://tricenter-state?endpoint=…&s3ForcePathStyle=true
PASSPHRASE_ENVS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
OPENSTACK_PLUGIN_VERSION = "v5.5.3"  # matches the pulumi-openstack SDK pinned in the venv
CLOUDS_YAML_PLACES = (Path("clouds.yaml"), Path.home() / ".config/openstack/clouds.yaml",
                      Path("/etc/openstack/clouds.yaml"))


@dataclass(frozen=True)
class Missing:
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}\n    fix: {self.fix}"


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    return path_under(root, f"Pulumi.{stack}.yaml")


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    file = stack_file(stack, root)
    if not file.exists():
        return {}
    return (yaml.safe_load(file.read_text()) or {}).get("config", {}) or {}


def find_pulumi_cli(which: Callable[[str], str | None] = shutil.which) -> str | None:
    found = which("pulumi")
    if found:
        return found
    default = Path.home() / ".pulumi" / "bin" / "pulumi"
    return str(default) if default.exists() else None


def find_clouds_yaml(env: dict[str, str]) -> Path | None:
    configured = env.get("OS_CLIENT_CONFIG_FILE")
    places = ([Path(configured)] if configured else []) + list(CLOUDS_YAML_PLACES)
    return next((p for p in places if p.is_file()), None)


def preflight(stack: str, env: dict[str, str] | None = None, root: Path = PROJECT_ROOT,
              which: Callable[[str], str | None] = shutil.which) -> list[Missing]:
    """Every prerequisite of a real deployment of `stack` that is not met."""
    env = dict(os.environ if env is None else env)
    missing: list[Missing] = []
    config = stack_config(stack, root)
    if not stack_file(stack, root).exists():
        missing.append(Missing(f"no stack file {stack_file(stack, root).name}",
                               f"create it like Pulumi.guangdong-main.yaml with tricenter:cloud "
                               f"and tricenter:center for {stack}"))
    if find_pulumi_cli(which) is None:
        missing.append(Missing(
            "the `pulumi` CLI is not installed (the Automation API drives it; the Python SDK "
            "alone cannot deploy)",
            "install it on a machine with internet access: `curl -fsSL https://get.pulumi.com | sh` "
            "(or your package mirror), then put ~/.pulumi/bin on PATH; check with `pulumi version`"))
    os_cloud = config.get("tricenter:osCloud") or config.get("tricenter:cloud") or "<cloud>"
    clouds_yaml = find_clouds_yaml(env)
    if clouds_yaml is None and not env.get("OS_AUTH_URL"):
        missing.append(Missing(
            "no OpenStack credentials: no clouds.yaml (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, "
            "~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml) and no OS_AUTH_URL",
            f"write ~/.config/openstack/clouds.yaml with an entry `{os_cloud}:` (auth_url, "
            "project, user or application credential, region) or source the center's openrc"))
    elif clouds_yaml is not None:
        clouds = (yaml.safe_load(clouds_yaml.read_text()) or {}).get("clouds", {}) or {}
        if os_cloud not in clouds:
            missing.append(Missing(
                f"{clouds_yaml} has no cloud named '{os_cloud}' (tricenter:osCloud of {stack})",
                f"add `{os_cloud}:` under `clouds:` in {clouds_yaml}, or "
                f"`pulumi config set tricenter:osCloud <name> -s {stack}`"))
    if not env.get(BACKEND_ENV) and not env.get("PULUMI_BACKEND_URL"):
        missing.append(Missing(
            "no state backend configured",
            f"export {BACKEND_ENV}='s3://tricenter-state?endpoint=SWIFT_HOST:PORT"
            "&s3ForcePathStyle=true&region=RegionOne' with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "for that S3 API (the lab's Swift works), or a file:// URL for a trial"))
    if not any(env.get(name) for name in PASSPHRASE_ENVS):
        missing.append(Missing(
            "no secrets passphrase (state and config secrets are encrypted with it)",
            "export PULUMI_CONFIG_PASSPHRASE_FILE=/path/readable/only/by/you"))
    if config and "tricenter:secretSeed" not in config:
        missing.append(Missing(
            f"stack {stack} has no tricenter:secretSeed (database passwords derive from it)",
            f"pulumi config set --secret tricenter:secretSeed \"$(openssl rand -hex 32)\" -s {stack} "
            "— use the same value in every stack of the cloud"))
    return missing


def backend_url(env: dict[str, str]) -> str:
    return env.get(BACKEND_ENV) or env["PULUMI_BACKEND_URL"]


def deploy(stack: str, preview: bool, on_output: Callable[[str], None]) -> dict[str, Any]:
    """Preview or update `stack`; return its outputs with secrets masked."""
    from pulumi import automation as auto

    env = dict(os.environ)
    env["PULUMI_BACKEND_URL"] = backend_url(env)
    workspace_opts = auto.LocalWorkspaceOptions(work_dir=str(PROJECT_ROOT), env_vars=env,
                                                secrets_provider="passphrase")
    target = auto.create_or_select_stack(stack_name=stack, work_dir=str(PROJECT_ROOT),
                                         opts=workspace_opts)
    target.workspace.install_plugin("openstack", OPENSTACK_PLUGIN_VERSION)
    if preview:
        result = target.preview(on_output=on_output)
        return {"preview": result.change_summary}
    result = target.up(on_output=on_output)
    return {name: ("[secret]" if out.secret else out.value) for name, out in result.outputs.items()}


def outputs_file(stack: str, directory: Path) -> Path:
    return path_under(directory / "outputs", f"{stack}.json")


def save_outputs(stack: str, outputs: dict[str, Any], directory: Path) -> Path:
    file = outputs_file(stack, directory)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(outputs, indent=2, sort_keys=True))
    return file
