"""The sample department application: one instance in each center its tier places it
active (main and samecity in the lab inventory), all serving behind the entry, each
reaching the database by a libpq multi-host string."""
from __future__ import annotations

import os
from pathlib import Path

import requests

from inventory.runtime import Host, HostRole, RuntimeInventory, SystemRuntime
from lab import users
from lab.component import Program
from lab.components import sshd
from lab.context import LabContext, Ports

def instance_url(lab: LabContext, center: str) -> str:
    return f"http://{lab.address(center, 'app')}:{Ports.app}"


def host_name(center: str) -> str:
    return f"{center}-app"


def config_dir(lab: LabContext, center: str) -> Path:
    """The app role's config directory under the app host's root."""
    return sshd.host_root(lab, host_name(center)) / "etc" / "tricenter-app"


def env_file(lab: LabContext, center: str) -> Path:
    return config_dir(lab, center) / f"{lab.system.name}.env"


def passfile(lab: LabContext, center: str) -> Path:
    return config_dir(lab, center) / f"{lab.system.name}.pgpass"


def render_config(lab: LabContext, runtime: RuntimeInventory, center: str) -> tuple[str, str]:
    """(<system>.env, <system>.pgpass) as the app role writes them on the center's app host."""
    from playbooks.render import renderer

    role = renderer(runtime, host_name(center), "app")
    (instance,) = [i for i in role.var("app_instances") if i["system"] == lab.system.name]
    return (role.template("app.env.j2", item=instance),
            role.template("app.pgpass.j2", item=instance))


def command(lab: LabContext, center: str) -> list[str]:
    # The role's environment file is the whole configuration, as for systemd's unit.
    return [users.python(), "-m", "lab.sample_app", "--env-file", str(env_file(lab, center))]


class SampleApp:
    name = "app"

    def prepare(self, lab: LabContext) -> None:
        runtime = RuntimeInventory.load(lab.runtime_inventory_file)
        for center in lab.placement.app_centers:
            env, pgpass = render_config(lab, runtime, center)
            directory = config_dir(lab, center)
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
            env_file(lab, center).write_text(env)
            # Holds the password: created 0600 before anything is written to it.
            fd = os.open(passfile(lab, center), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(pgpass)
            users.hand_over(directory, recursive=True)

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name=f"{center}-app", center=center, component="app",
                        command=command(lab, center), user=users.SERVICE_USER,
                        directory=users.code_dir(lab), priority=300,
                        environment={"PYTHONPATH": str(users.code_dir(lab))})
                for center in lab.placement.app_centers]

    def health(self, lab: LabContext) -> dict[str, dict]:
        result = {}
        for center in lab.placement.app_centers:
            try:
                body = requests.get(f"{instance_url(lab, center)}/health", timeout=1).json()
                db = body.get("db", {})
                result[center] = {"healthy": bool(db.get("reachable")),
                                  "detail": "serving, database reachable" if db.get("reachable")
                                  else f"serving, database unreachable: {db.get('error')}"}
            except (requests.RequestException, ValueError) as exc:
                result[center] = {"healthy": False, "detail": f"not answering: {type(exc).__name__}"}
        return result

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        system = runtime.systems.setdefault(lab.system.name, SystemRuntime(
            name=lab.system.name, department=lab.system.department, tier=lab.system.tier))
        system.app_url = f"http://{lab.entry_address}:{Ports.app_entry}"
        system.app_backends = {c: [instance_url(lab, c)] for c in lab.placement.app_centers}
        for center in lab.placement.app_centers:
            if any(h.name == host_name(center) for h in runtime.hosts):
                continue
            runtime.hosts.append(Host(name=host_name(center), center=center, role=HostRole.app,
                                      address=lab.address(center, "app"),
                                      root=str(sshd.host_root(lab, host_name(center))),
                                      service_manager="supervisor",
                                      service_user=users.SERVICE_USER))
        for center in lab.placement.app_centers:
            sshd.give_tls(lab, runtime, host_name(center), lab.address(center, "app"))


def component() -> SampleApp:
    return SampleApp()
