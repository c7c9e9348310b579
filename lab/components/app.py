"""The sample department application: one instance in main and one in samecity, both
serving (active-active), each reaching the database by a libpq multi-host string."""
from __future__ import annotations

import os
from pathlib import Path

import requests

from inventory.runtime import Host, HostRole, RuntimeInventory, SystemRuntime
from lab import users
from lab.component import Program
from lab.components import patroni
from lab.context import CENTERS, LabContext, Ports

ACTIVE_CENTERS = ("main", "samecity")


def instance_url(lab: LabContext, center: str) -> str:
    return f"http://{lab.address(center, 'app')}:{Ports.app}"


def passfile(lab: LabContext) -> str:
    return str(lab.path("secrets", f"{lab.system.name}-app.pgpass"))


def command(lab: LabContext, center: str) -> list[str]:
    db_hosts = ",".join(f"{lab.address(c)}:{Ports.postgres}" for c in CENTERS)
    return [users.python(), "-m", "lab.sample_app", "--center", center,
            "--listen", f"{lab.address(center, 'app')}:{Ports.app}",
            "--db-hosts", db_hosts, "--dbname", patroni.app_dbname(lab),
            "--user", patroni.app_user(lab), "--passfile", passfile(lab)]


class SampleApp:
    name = "app"

    def prepare(self, lab: LabContext) -> None:
        password = lab.secret(patroni.app_password_secret(lab))
        fd = os.open(passfile(lab), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"*:*:{patroni.app_dbname(lab)}:{patroni.app_user(lab)}:{password}\n")
        users.hand_over(Path(passfile(lab)))

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name=f"{center}-app", center=center, component="app",
                        command=command(lab, center), user=users.SERVICE_USER,
                        directory=users.code_dir(lab), priority=300,
                        environment={"PYTHONPATH": str(users.code_dir(lab))})
                for center in ACTIVE_CENTERS]

    def health(self, lab: LabContext) -> dict[str, dict]:
        result = {}
        for center in ACTIVE_CENTERS:
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
        system.app_backends = {c: [instance_url(lab, c)] for c in ACTIVE_CENTERS}
        for center in ACTIVE_CENTERS:
            if any(h.name == f"{center}-app" for h in runtime.hosts):
                continue
            runtime.hosts.append(Host(name=f"{center}-app", center=center, role=HostRole.app,
                                      address=lab.address(center, "app")))


def component() -> SampleApp:
    return SampleApp()
