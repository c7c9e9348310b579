"""The legacy IDC's source system: a plain PostgreSQL 15 (no Patroni) and a directory of
files, on the legacy host, seeded with sample data for the migration plane to move.

Part of the legacy host (see `sshd.py`), not a component of its own."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from inventory.names import path_under
from lab.binaries import PG_BIN
from lab.component import Program
from lab.pgsql import owner_sql, set_role_sql

if TYPE_CHECKING:
    from inventory.runtime import LegacyRuntime
    from lab.context import LabContext

OS_USER = "postgres"
CENTER = "legacy"
PORT = 5432
SAMPLE_PEOPLE = 2000
SAMPLE_FILES = 60


def home(lab: "LabContext") -> Path:
    return lab.path("legacy")


def data_dir(lab: "LabContext") -> Path:
    return home(lab) / "pgdata"


def socket_dir(lab: "LabContext") -> Path:
    return home(lab) / "run"


def files_dir(lab: "LabContext") -> Path:
    """The legacy system's file share (a department's scanned documents)."""
    return path_under(home(lab), "files", lab.system.name)


def address(lab: "LabContext") -> str:
    return lab.address(CENTER, "db")


def dbname(lab: "LabContext") -> str:
    legacy = lab.system.legacy
    return (legacy.database if legacy and legacy.database else lab.system.name)


def db_user(lab: "LabContext") -> str:
    return f"{lab.system.name}_legacy"


def password_secret(lab: "LabContext") -> str:
    return f"{lab.system.name}-legacy-db-password"


def host_name(lab: "LabContext") -> str:
    legacy = lab.system.legacy
    return legacy.host if legacy else f"{lab.system.name}-legacy"


def server_settings(lab: "LabContext") -> dict[str, str]:
    """postgresql.auto.conf of the legacy server. wal_level=logical: migration replicates
    by logical replication so cutover downtime does not grow with the data."""
    return {
        "listen_addresses": f"'{address(lab)}'",
        "port": str(PORT),
        "unix_socket_directories": f"'{socket_dir(lab)}'",
        "wal_level": "logical",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "shared_buffers": "32MB",
        "logging_collector": "off",
        "log_line_prefix": "'%m [%p] legacy '",
    }


HBA = """# legacy IDC: local superuser by peer, everything else by password
local all postgres peer
local all all scram-sha-256
host all all 127.0.0.0/8 scram-sha-256
host replication all 127.0.0.0/8 scram-sha-256
# netns mode (lab/netns.py): the sites use 172.31.0.0/16
host all all 172.31.0.0/16 scram-sha-256
host replication all 172.31.0.0/16 scram-sha-256
"""


def admin_password_secret(lab: "LabContext") -> str:
    return f"{lab.system.name}-legacy-admin-password"


def owner_statements(lab: "LabContext", password: str, admin_password: str) -> str:
    """The application's role, which logical replication will log in as, and its database;
    a password for the superuser, which a migration's rollback needs to subscribe the source
    to the target (CREATE SUBSCRIPTION is superuser-only in PostgreSQL 15)."""
    admin = sql.SQL("ALTER ROLE {user} PASSWORD {password};\n").format(
        user=sql.Identifier(OS_USER), password=sql.Literal(admin_password)).as_string(None)
    return owner_sql(db_user(lab), dbname(lab), password, replication=True) + admin


def schema_sql(user: str) -> str:
    """A small marriage registry: people and marriages, with primary keys (logical
    replication needs them) and deterministic rows so checksums can be compared. Run in the
    system's database (psql -d), owned by `user`."""
    return set_role_sql(user) + f"""
CREATE TABLE person (
    id          bigint PRIMARY KEY,
    full_name   text NOT NULL,
    id_number   char(18) NOT NULL UNIQUE,
    birth_date  date NOT NULL
);
CREATE TABLE marriage (
    id            bigint PRIMARY KEY,
    person_a      bigint NOT NULL REFERENCES person(id),
    person_b      bigint NOT NULL REFERENCES person(id),
    registered_on date NOT NULL,
    office        text NOT NULL
);
CREATE TABLE certificate_file (
    marriage_id bigint PRIMARY KEY REFERENCES marriage(id),
    path        text NOT NULL
);
INSERT INTO person
SELECT n, 'Citizen ' || n, lpad((440100000000000000 + n)::text, 18, '0'),
       date '1960-01-01' + (n * 7 % 15000)
FROM generate_series(1, {SAMPLE_PEOPLE}) AS n;
INSERT INTO marriage
SELECT n, 2 * n - 1, 2 * n, date '2000-01-01' + (n * 3 % 9000),
       (ARRAY['Yuexiu', 'Tianhe', 'Haizhu', 'Baiyun'])[1 + n % 4]
FROM generate_series(1, {SAMPLE_PEOPLE // 2}) AS n;
INSERT INTO certificate_file
SELECT n, 'certificates/' || lpad(n::text, 5, '0') || '.txt'
FROM generate_series(1, {SAMPLE_FILES}) AS n;
"""


def _as_postgres(**extra: object) -> dict:
    pw = pwd.getpwnam(OS_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
            "env": {"HOME": pw.pw_dir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, **extra}


def _run_pg(*args: str, stdin: str | None = None, cwd: Path | None = None) -> None:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                          timeout=120, **_as_postgres(cwd=cwd or "/"))
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")


def prepare_database(lab: "LabContext") -> None:
    """initdb and seed once (a marker records it); rewrite the settings every time."""
    pw = pwd.getpwnam(OS_USER)
    for directory in (home(lab), socket_dir(lab)):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, pw.pw_uid, pw.pw_gid)
    home(lab).chmod(0o755)
    data = data_dir(lab)
    seeded = home(lab) / "seeded"
    if not seeded.exists():
        shutil.rmtree(data, ignore_errors=True)
        _run_pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", OS_USER, "--data-checksums",
                "--encoding=UTF8", "--locale=C.UTF-8", cwd=home(lab))
    (data / "pg_hba.conf").write_text(HBA)
    (data / "postgresql.auto.conf").write_text(
        "".join(f"{k} = {v}\n" for k, v in server_settings(lab).items()))
    for file in ("pg_hba.conf", "postgresql.auto.conf"):
        os.chown(data / file, pw.pw_uid, pw.pw_gid)
    if seeded.exists():
        return
    # Seed on a socket-only server so nothing can reach it half-built.
    pg_ctl = str(PG_BIN / "pg_ctl")
    _run_pg(pg_ctl, "-D", str(data), "-w", "-o", "-c listen_addresses=''", "-l",
            str(socket_dir(lab) / "seed.log"), "start", cwd=home(lab))
    # Two sessions instead of psql's \connect, whose argument psql itself would interpret.
    psql = [str(PG_BIN / "psql"), "-h", str(socket_dir(lab)), "-p", str(PORT), "-X",
            "-v", "ON_ERROR_STOP=1", "-q", "-d"]
    try:
        _run_pg(*psql, "postgres", stdin=owner_statements(lab, lab.secret(password_secret(lab)),
                                                      lab.secret(admin_password_secret(lab))),
                cwd=home(lab))
        _run_pg(*psql, dbname(lab), stdin=schema_sql(db_user(lab)), cwd=home(lab))
    finally:
        _run_pg(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop", cwd=home(lab))
    seeded.touch()


def prepare_files(lab: "LabContext") -> None:
    """Sample documents the migration copies by rsync; deterministic content."""
    root = files_dir(lab)
    if (root / "README.txt").exists():
        return
    (root / "certificates").mkdir(parents=True, exist_ok=True)
    (root / "README.txt").write_text("Marriage registry document share (legacy IDC)\n")
    for n in range(1, SAMPLE_FILES + 1):
        (root / "certificates" / f"{n:05d}.txt").write_text(
            f"Marriage certificate {n}\nregistered by office {n % 4}\n" + "x" * (n * 37 % 4000))


def program(lab: "LabContext") -> Program:
    return Program(name="legacy-postgres", center=CENTER, component="postgres",
                   command=[str(PG_BIN / "postgres"), "-D", str(data_dir(lab))],
                   user=OS_USER, directory=home(lab), priority=150, stopsignal="INT")


def health(lab: "LabContext") -> tuple[bool, str]:
    """Connect as the application user over TCP, as a migration would."""
    import psycopg

    try:
        with psycopg.connect(host=address(lab), port=PORT, dbname=dbname(lab),
                             user=db_user(lab), password=lab.secret(password_secret(lab)),
                             connect_timeout=2) as conn:
            count = conn.execute("SELECT count(*) FROM person").fetchone()[0]
    except psycopg.Error as exc:
        return False, f"database: {type(exc).__name__}"
    return True, f"database {dbname(lab)} up ({count} people)"


def source(lab: "LabContext") -> dict:
    """Where the legacy system lives, for the migration plane: database and file share.
    Secrets are references only."""
    return {
        "host": host_name(lab),
        "address": address(lab),
        "database": {"host": address(lab), "port": PORT, "dbname": dbname(lab),
                     "user": db_user(lab),
                     "password": {"file": str(lab.secret_file(password_secret(lab)))}},
        "paths": [str(files_dir(lab))],
    }


def runtime(lab: "LabContext") -> "LegacyRuntime":
    """The runtime inventory's view of the source, as the migration plane reads it."""
    from inventory.runtime import LegacyRuntime, PostgresAccess, SecretRef

    return LegacyRuntime(host=host_name(lab), paths=[str(files_dir(lab))], database=PostgresAccess(
        host=address(lab), port=PORT, dbname=dbname(lab), user=db_user(lab),
        password=SecretRef(file=str(lab.secret_file(password_secret(lab)))),
        admin_user=OS_USER,
        admin_password=SecretRef(file=str(lab.secret_file(admin_password_secret(lab))))))
