"""`tricenter deploy` / `tricenter destroy`: the real stack through Pulumi's Automation API.

Nothing here pretends. Before touching anything, `preflight` lists every missing
prerequisite (the `pulumi` CLI, OpenStack credentials, a usable state backend, a secrets
passphrase, the OpenStack plugin) with the command that fixes it. Every run refreshes
the state from the cloud first, previews, and changes the cloud only once confirmed.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from inventory.names import path_under
from stacks import secrets

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BACKEND_ENV = "TRICENTER_PULUMI_BACKEND"  # e.g. s3://tricenter-state?endpoint=…&s3ForcePathStyle=true
PASSPHRASE_ENVS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
OPENSTACK_PLUGIN_VERSION = "v5.5.3"  # matches the pulumi-openstack SDK pinned in the venv
# A plugin tarball brought from a connected machine: hosts without internet install it.
PLUGIN_FILE_ENV = "TRICENTER_OPENSTACK_PLUGIN"
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
        example = s3_backend_url("tricenter-state", "SWIFT_HOST:PORT", "RegionOne", tls=False)
        missing.append(Missing(
            "no state backend configured",
            f"export {BACKEND_ENV}='{example}' "
            "with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for that S3 API (the lab's Swift "
            "works), or a file:// URL for a trial"))
    else:
        missing += backend_problems(backend_url(env))
    if not any(env.get(name) for name in PASSPHRASE_ENVS):
        missing.append(Missing(
            "no secrets passphrase (state and config secrets are encrypted with it)",
            "export PULUMI_CONFIG_PASSPHRASE_FILE=/path/readable/only/by/you"))
    if not plugin_available(env):
        missing.append(Missing(
            f"the OpenStack plugin {OPENSTACK_PLUGIN_VERSION} is not installed and "
            f"{PLUGIN_FILE_ENV} names no plugin file (this host may have no internet)",
            f"on a connected machine download pulumi-resource-openstack-{OPENSTACK_PLUGIN_VERSION}"
            f"-linux-amd64.tar.gz from github.com/pulumi/pulumi-openstack/releases, copy it "
            f"here and export {PLUGIN_FILE_ENV}=/path/to/it (or run `pulumi plugin install "
            f"resource openstack {OPENSTACK_PLUGIN_VERSION}` where the internet is reachable)"))
    return missing


def s3_backend_url(bucket: str, endpoint: str, region: str, tls: bool = True) -> str:
    """A Pulumi state URL for an S3 API that is not AWS (Swift's s3api, Ceph RGW).

    The endpoint is `host:port`; such stores serve buckets by path, and a plain-HTTP one
    needs TLS turned off explicitly or the client speaks HTTPS to it."""
    url = f"s3://{bucket}?endpoint={endpoint}&s3ForcePathStyle=true&region={region}"
    return url if tls else url + "&disableSSL=true"


def backend_problems(url: str) -> list[Missing]:
    """What an S3 backend URL lacks for a store that is not AWS."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        return []
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    endpoint = query.get("endpoint")
    if not endpoint:
        return []
    problems = []
    if endpoint.startswith(("http://", "https://")):
        problems.append(Missing(f"backend endpoint '{endpoint}' has a scheme",
                                "give host:port only, and add disableSSL=true for plain HTTP"))
    if query.get("s3ForcePathStyle") != "true":
        problems.append(Missing(f"backend {url} lacks s3ForcePathStyle=true",
                                "add &s3ForcePathStyle=true (Swift and Ceph serve buckets "
                                "by path)"))
    if "region" not in query:
        problems.append(Missing(f"backend {url} names no region",
                                "add &region=<the store's region, e.g. RegionOne>"))
    return problems


def plugin_available(env: dict[str, str]) -> bool:
    if env.get(PLUGIN_FILE_ENV):
        return Path(env[PLUGIN_FILE_ENV]).is_file()
    home = Path(env.get("PULUMI_HOME") or Path(env.get("HOME") or Path.home()) / ".pulumi")
    return (home / "plugins" / f"resource-openstack-{OPENSTACK_PLUGIN_VERSION}").is_dir()


def backend_url(env: dict[str, str]) -> str:
    return env.get(BACKEND_ENV) or env["PULUMI_BACKEND_URL"]


def open_stack(stack: str, env: dict[str, str] | None = None,
               which: Callable[[str], str | None] = shutil.which) -> Any:
    """The Automation API's handle on `stack`, driven by the CLI `preflight` found
    (also when it is not on PATH), with the OpenStack plugin in place."""
    from pulumi import automation as auto

    env = dict(os.environ if env is None else env)
    env["PULUMI_BACKEND_URL"] = backend_url(env)
    cli = find_pulumi_cli(which)
    command = auto.PulumiCommand(root=str(Path(cli).parent.parent)) if cli else None
    workspace_opts = auto.LocalWorkspaceOptions(work_dir=str(PROJECT_ROOT), env_vars=env,
                                                secrets_provider="passphrase",
                                                pulumi_command=command)
    target = auto.create_or_select_stack(stack_name=stack, work_dir=str(PROJECT_ROOT),
                                         opts=workspace_opts)
    install_plugin(target, env)
    return target


def install_plugin(target: Any, env: dict[str, str]) -> None:
    if plugin_available({k: v for k, v in env.items() if k != PLUGIN_FILE_ENV}):
        return
    if env.get(PLUGIN_FILE_ENV):
        import subprocess

        command = target.workspace.pulumi_command.command
        subprocess.run([command, "plugin", "install", "resource", "openstack",
                        OPENSTACK_PLUGIN_VERSION, "--file", env[PLUGIN_FILE_ENV]],
                       check=True, env={**os.environ, **env}, capture_output=True)
        return
    target.workspace.install_plugin("openstack", OPENSTACK_PLUGIN_VERSION)


def ensure_seed(target: Any, owns_identity: bool) -> bool:
    """Give the cloud's identity stack its password seed the first time it is deployed
    (the other stacks hold no passwords). True when a seed was created."""
    if not owns_identity:
        return False
    key = f"tricenter:{secrets.SEED_KEY}"
    if key in target.get_all_config():
        return False
    from pulumi import automation as auto

    target.set_config(key, auto.ConfigValue(secrets.new_seed(), secret=True))
    return True


def preview(target: Any, refresh: bool, on_output: Callable[[str], None],
            destroy: bool = False) -> dict[str, int]:
    """Refresh the state from the cloud (unless told not to), then preview: change counts."""
    log.info("preview of %s (refresh: %s, destroy: %s)", getattr(target, "name", "stack"), refresh, destroy)
    if refresh:
        target.refresh(on_output=on_output)
    if destroy:
        return dict(target.preview_destroy(on_output=on_output).change_summary)
    return dict(target.preview(on_output=on_output).change_summary)


def apply(target: Any, on_output: Callable[[str], None]) -> dict[str, Any]:
    """Update the stack; its outputs with secrets masked."""
    log.info("update of %s", getattr(target, "name", "stack"))
    result = target.up(on_output=on_output)
    return {name: ("[secret]" if out.secret else out.value) for name, out in result.outputs.items()}


def destroy(target: Any, on_output: Callable[[str], None]) -> dict[str, int]:
    """Delete what the stack created. Protected resources (projects, database volumes,
    buckets) stop it: unprotect them on purpose first (`pulumi state unprotect`)."""
    log.info("destroy of %s", getattr(target, "name", "stack"))
    return dict(target.destroy(on_output=on_output).summary.resource_changes or {})


def outputs_file(stack: str, directory: Path) -> Path:
    return path_under(directory / "outputs", f"{stack}.json")


def save_outputs(stack: str, outputs: dict[str, Any], directory: Path) -> Path:
    file = outputs_file(stack, directory)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(outputs, indent=2, sort_keys=True))
    return file
