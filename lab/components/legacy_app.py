"""The legacy registry's application, as the department runs it before migration: the
sample app (lab/sample_app.py) on the system's legacy host, writing its records into the
legacy database.

Its database settings are a file of their own (`<system>.database.env`, read after
`<system>.env`): a migration's cutover rewrites that file to name the target and reloads
the app (SIGHUP by its pid file, as `systemctl reload` would), rollback rewrites it
back (playbooks/roles/migration). The lab writes it only when it is missing, so a lab
restarted after a cutover keeps the app where the migration left it.

Only the lab's sample system has one: it is the only one with a target cluster.
Part of the legacy hosts (see `sshd.py`), not a component of its own."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from lab import pki, users
from lab.component import Program
from lab.components import legacy
from lab.context import Ports

if TYPE_CHECKING:
    from inventory.runtime import LegacyApp
    from lab.context import LabContext

# Its own table: the target database already holds the cloud instances' `records`.
TABLE = "office_record"


def program_name(lab: "LabContext") -> str:
    return f"legacy-{lab.system.name}-app"


def config_dir(lab: "LabContext") -> Path:
    """The app's config directory under its legacy host's root."""
    return lab.path("hosts", legacy.host_name(lab)) / "etc" / "tricenter-app"


def env_file(lab: "LabContext") -> Path:
    return config_dir(lab) / f"{lab.system.name}.env"


def database_env_file(lab: "LabContext") -> Path:
    return config_dir(lab) / f"{lab.system.name}.database.env"


def passfile(lab: "LabContext") -> Path:
    return config_dir(lab) / f"{lab.system.name}.pgpass"


def url(lab: "LabContext") -> str:
    return f"http://{legacy.host_address(lab)}:{Ports.app}"


def source_settings(lab: "LabContext") -> str:
    """The database settings the department started with: the legacy server, no TLS
    (libpq's default, sslmode=prefer, as the migration's own source sessions)."""
    return "".join(f"{k}={v}\n" for k, v in {
        "APP_DB_HOSTS": f"{legacy.address(lab)}:{legacy.PORT}",
        "APP_DBNAME": legacy.dbname(lab), "APP_USER": legacy.db_user(lab),
        "APP_PASSFILE": str(passfile(lab)), "APP_SSLMODE": "prefer",
        "APP_SSLROOTCERT": str(pki.CertificateAuthority(lab.path("pki")).cert_file),
    }.items())


def pidfile(lab: "LabContext") -> Path:
    return lab.path("hosts", legacy.host_name(lab)) / "run" / "tricenter-app" / f"{lab.system.name}.pid"


def reload_command(lab: "LabContext") -> list[str]:
    """What makes the running app re-read its settings: the signal systemd's ExecReload
    would send, by the pid the app wrote (supervisorctl's `signal` would do the same, but
    its own start-up costs seconds on a loaded host, inside the write downtime)."""
    return ["pkill", "--signal", "HUP", "--pidfile", str(pidfile(lab))]


def prepare(lab: "LabContext") -> None:
    directory = config_dir(lab)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    env_file(lab).write_text(
        f"APP_CENTER={legacy.CENTER}\nAPP_LISTEN={legacy.host_address(lab)}:{Ports.app}\n"
        f"APP_TABLE={TABLE}\nAPP_PIDFILE={pidfile(lab)}\n")
    if not database_env_file(lab).exists():
        database_env_file(lab).write_text(source_settings(lab))
    # Holds the password: created 0600 before anything is written to it.
    fd = os.open(passfile(lab), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"*:*:{legacy.dbname(lab)}:{legacy.db_user(lab)}:"
                  f"{lab.secret(legacy.password_secret(lab))}\n")
    users.hand_over(directory, recursive=True)
    pidfile(lab).parent.mkdir(parents=True, exist_ok=True)
    users.hand_over(pidfile(lab).parent)


def program(lab: "LabContext") -> Program:
    # After the legacy server (priority 150): the app connects at its first request.
    return Program(name=program_name(lab), center=legacy.CENTER, component="app",
                   command=[users.python(), "-m", "lab.sample_app",
                            "--env-file", str(env_file(lab)),
                            "--env-file", str(database_env_file(lab))],
                   user=users.SERVICE_USER, directory=users.code_dir(lab), priority=300,
                   environment={"PYTHONPATH": str(users.code_dir(lab))})


def runtime(lab: "LabContext") -> "LegacyApp":
    from inventory.runtime import LegacyApp

    return LegacyApp(url=url(lab), database_env=str(database_env_file(lab)),
                     reload=reload_command(lab))


def point_at_source(lab: "LabContext") -> None:
    """Undo a lab migration's repointing: the department's settings again, reloaded."""
    database_env_file(lab).write_text(source_settings(lab))
    users.hand_over(database_env_file(lab))
    subprocess.run(reload_command(lab), check=True, capture_output=True, timeout=60)
