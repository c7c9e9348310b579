"""Run one step of `playbooks/migrate.yml` for one system on its legacy host.

The runtime inventory is the only input. Secrets go in as references (`lookup` kind and
name), never as values, so neither the command line nor the variables file holds one; the
role hands its result back as a JSON file on the controller."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from inventory.runtime import (LegacyApp, RuntimeInventory, SecretRef, SystemRuntime,
                               ansible_inventory)
from playbooks import configure
from playbooks.migration.source import discovery_query

PLAYBOOKS = Path(__file__).resolve().parent.parent
MIGRATE = PLAYBOOKS / "migrate.yml"


class NotMigratable(ValueError):
    """The runtime inventory lacks what a migration needs; the message says what."""


class StepFailed(RuntimeError):
    """Ansible ran the step and it failed; the message carries the failing task."""


@dataclass
class Endpoints:
    system: SystemRuntime
    host: str  # the Ansible host the step runs on


def _lookup(ref: SecretRef | None, what: str) -> dict[str, str]:
    if ref is None:
        raise NotMigratable(f"{what}: no secret reference in the runtime inventory")
    if ref.file:
        return {"kind": "file", "name": ref.file}
    if ref.env:
        return {"kind": "env", "name": ref.env}
    raise NotMigratable(f"{what}: only file and env secret references are supported by "
                        "migration steps (got vault/pulumi)")


def endpoints(runtime: RuntimeInventory, name: str) -> Endpoints:
    system = runtime.systems.get(name)
    if system is None:
        known = ", ".join(sorted(runtime.systems)) or "none"
        raise NotMigratable(f"system {name!r} is not in the runtime inventory (systems: {known})")
    if system.legacy is None or system.legacy.database is None:
        raise NotMigratable(f"{name}: the runtime inventory names no legacy database to migrate")
    if system.database is None:
        raise NotMigratable(f"{name}: target not provisioned (no database in the runtime "
                            "inventory; `tricenter deploy` first)")
    host = next((h for h in runtime.hosts if h.name == system.legacy.host), None)
    if host is None or host.ssh is None:
        raise NotMigratable(f"{name}: legacy host {system.legacy.host!r} has no SSH access in "
                            "the runtime inventory")
    if system.legacy.paths and not file_hosts(runtime, system):
        raise NotMigratable(f"{name}: the legacy host has file trees ({', '.join(system.legacy.paths)}) "
                            "but no target host runs the system's app to receive them "
                            "(app_backends with SSH in the runtime inventory)")
    return Endpoints(system=system, host=host.name)


def file_hosts(runtime: RuntimeInventory, system: SystemRuntime) -> list[str]:
    """The target hosts the system's files go to: those running its app instances."""
    addresses = {url.split("://", 1)[-1].split("/", 1)[0].rpartition(":")[0]
                 for urls in system.app_backends.values() for url in urls}
    return sorted(h.name for h in runtime.hosts if h.address in addresses and h.ssh)


def step_vars(runtime: RuntimeInventory, name: str, step: str, tables: list[str]) -> dict:
    """The extra variables of one step: endpoints and secret references, no secret."""
    found = endpoints(runtime, name)
    legacy, target = found.system.legacy, found.system.database
    assert legacy is not None and legacy.database is not None and target is not None
    source = legacy.database
    host = next(h for h in runtime.hosts if h.name == found.host)
    # psql runs on the legacy host: the CA as that host holds it, else the inventory's.
    ca_file = host.tls.ca if host.tls else runtime.tls_ca_file
    return {
        "migration_step": step, "migration_system": name, "migration_host": found.host,
        "migration_tables": tables, "migration_paths": legacy.paths,
        "migration_file_hosts": file_hosts(runtime, found.system) if legacy.paths else [],
        "migration_app_url": (found.system.app_url or "").rstrip("/"),
        "migration_app": _app(legacy.app, host.service_user),
        "migration_discovery_sql": discovery_query(),
        "migration_source": {
            "host": source.host, "port": source.port, "dbname": source.dbname,
            "user": source.user, "password": _lookup(source.password, "source password"),
            "admin_user": source.admin_user or source.user,
            "admin_password": _lookup(source.admin_password or source.password,
                                      "source admin password")},
        "migration_target": {
            "host": target.read_write.host, "port": target.read_write.port,
            "dbname": target.dbname, "app_user": target.user,
            "admin_user": target.admin_user or target.user,
            "admin_password": _lookup(target.admin_password or target.password,
                                      "target admin password"),
            # What the repointed application logs in with.
            "password": _lookup(target.password, "target application password"),
            "members": [f"{m.host}:{m.port}" for m in target.members],
            "ca_file": ca_file},
    }


def _app(app: LegacyApp | None, owner: str | None) -> dict:
    """The application cutover repoints (empty: the inventory names none)."""
    if app is None:
        return {}
    return {"url": app.url.rstrip("/"), "database_env": app.database_env,
            "reload": app.reload, "owner": owner or "root"}


# The step's result comes back as a file; the default callback's JSON lines name the
# failing task for `_failure`.
_CALLBACK = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
             "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_DISPLAY_OK_HOSTS": "False",
             "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "False", "ANSIBLE_LOCALHOST_WARNING": "False"}


def run_step(runtime: RuntimeInventory, name: str, step: str, tables: list[str],
             extra: dict | None = None) -> dict:
    """Run the step's role; return what it handed back (empty when it hands nothing)."""
    variables = step_vars(runtime, name, step, tables) | (extra or {})
    with configure.state_dir("tricenter-migrate-") as state:
        out = state / "out.json"
        variables["migration_out"] = str(out)
        (state / "inventory.yml").write_text(yaml.safe_dump(ansible_inventory(runtime)))
        (state / "vars.json").write_text(json.dumps(variables))
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                str(state / "inventory.yml"), "-e", f"@{state / 'vars.json'}", str(MIGRATE)]
        done = subprocess.run(argv, capture_output=True, text=True, env=configure.environment(state, **_CALLBACK),
                              cwd=PLAYBOOKS)
        if done.returncode != 0:
            raise StepFailed(_failure(done.stdout, done.stderr))
        return json.loads(out.read_text()) if out.exists() else {}


def _failure(stdout: str, stderr: str) -> str:
    """The failing task and its message, from the default callback's output."""
    task, lines = "", []
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[6:].split("]")[0]
        elif line.startswith(("fatal:", "failed:")):
            detail = line.split("=>", 1)[-1].strip()
            try:
                result = json.loads(detail)
                detail = result.get("stderr") or result.get("msg") or detail
            except ValueError:
                pass
            lines.append(f"{task}: {str(detail).strip()[:600]}")
    return "; ".join(lines) or (stderr or stdout or "ansible-playbook failed").strip()[-800:]
