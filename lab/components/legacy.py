"""The legacy IDC's source systems: one plain PostgreSQL 15 server (no Patroni) holding a
database per legacy system of the lab inventory, and a directory of files per system,
seeded with sample data for the migration plane to move.

Every system with a `legacy` source in the lab inventory gets its own legacy host (an SSH
host, where migration steps run) on the legacy site; their databases share the one server,
as departments' databases often share an IDC's database server. The lab's sample system
(registry) comes first and keeps the server's own address.

Part of the legacy hosts (see `sshd.py`), not a component of its own."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from inventory.names import path_under
from lab.binaries import PG_BIN
from lab.component import Program
from lab.pgsql import owner_sql, set_role_sql

if TYPE_CHECKING:
    from inventory.model import System
    from inventory.runtime import LegacyRuntime
    from lab.context import LabContext

OS_USER = "postgres"
CENTER = "legacy"
PORT = 5432
SAMPLE_PEOPLE = 2000
SAMPLE_FILES = 60
SUBSIDY_APPLICANTS = 500
# Host slots on the legacy site, in the order of `systems()`: the first is the server's.
HOST_SLOTS = ("db", "app", "ops", "storage", "monitoring", "lb")


def systems(lab: "LabContext") -> list["System"]:
    """The lab's legacy systems: the sample system first, then the others by name."""
    found = [s for s in lab.topology.systems.values() if s.legacy is not None]
    found.sort(key=lambda s: (s.name != lab.system.name, s.name))
    if len(found) > len(HOST_SLOTS):
        raise ValueError(f"the lab has room for {len(HOST_SLOTS)} legacy systems, its "
                         f"inventory names {len(found)}")
    return found


def _system(lab: "LabContext", system: "System | None") -> "System":
    return system or lab.system


def home(lab: "LabContext") -> Path:
    return lab.path("legacy")


def data_dir(lab: "LabContext") -> Path:
    return home(lab) / "pgdata"


def socket_dir(lab: "LabContext") -> Path:
    return home(lab) / "run"


def files_dir(lab: "LabContext", system: "System | None" = None) -> Path:
    """The legacy system's file share (a department's scanned documents)."""
    return path_under(home(lab), "files", _system(lab, system).name)


def address(lab: "LabContext") -> str:
    """The legacy database server's address."""
    return lab.address(CENTER, "db")


def host_address(lab: "LabContext", system: "System | None" = None) -> str:
    """The address of the system's legacy host (SSH)."""
    names = [s.name for s in systems(lab)]
    name = _system(lab, system).name
    return lab.address(CENTER, HOST_SLOTS[names.index(name)] if name in names else "db")


def dbname(lab: "LabContext", system: "System | None" = None) -> str:
    system = _system(lab, system)
    legacy = system.legacy
    return (legacy.database if legacy and legacy.database else system.name)


def db_user(lab: "LabContext", system: "System | None" = None) -> str:
    return f"{_system(lab, system).name}_legacy"


def password_secret(lab: "LabContext", system: "System | None" = None) -> str:
    return f"{_system(lab, system).name}-legacy-db-password"


def host_name(lab: "LabContext", system: "System | None" = None) -> str:
    system = _system(lab, system)
    return system.legacy.host if system.legacy else f"{system.name}-legacy"


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
    """The server's superuser password (one server: named after the sample system)."""
    return f"{lab.system.name}-legacy-admin-password"


def owner_statements(lab: "LabContext", password: str, admin_password: str,
                     system: "System | None" = None) -> str:
    """The application's role, which logical replication will log in as, and its database;
    a password for the superuser, which a migration's rollback needs to subscribe the source
    to the target (CREATE SUBSCRIPTION is superuser-only in PostgreSQL 15)."""
    admin = sql.SQL("ALTER ROLE {user} PASSWORD {password};\n").format(
        user=sql.Identifier(OS_USER), password=sql.Literal(admin_password)).as_string(None)
    return owner_sql(db_user(lab, system), dbname(lab, system), password,
                     replication=True) + admin


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


def subsidy_schema_sql(user: str) -> str:
    """A social-assistance payments system, with what the registry lacks: serial keys
    (sequences to carry over at cutover), a payments table that `lab.datagen` grows to any
    size (the large table), and an audit log with no primary key, which logical
    replication cannot carry updates of — precheck refuses it until the department sets
    REPLICA IDENTITY FULL (see docs/department.md)."""
    return set_role_sql(user) + f"""
CREATE TABLE applicant (
    id          bigserial PRIMARY KEY,
    full_name   text NOT NULL,
    id_number   char(18) NOT NULL UNIQUE,
    district    text NOT NULL
);
CREATE TABLE payment (
    id            bigserial PRIMARY KEY,
    applicant_id  bigint NOT NULL REFERENCES applicant(id),
    amount_cents  bigint NOT NULL,
    paid_on       date NOT NULL,
    note          text NOT NULL
);
CREATE TABLE audit_log (
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL
);
INSERT INTO applicant (full_name, id_number, district)
SELECT 'Applicant ' || n, lpad((440300000000000000 + n)::text, 18, '0'),
       (ARRAY['Futian', 'Luohu', 'Nanshan', 'Bao''an'])[1 + n % 4]
FROM generate_series(1, {SUBSIDY_APPLICANTS}) AS n;
INSERT INTO payment (applicant_id, amount_cents, paid_on, note)
SELECT 1 + n % {SUBSIDY_APPLICANTS}, 50000 + n * 37 % 90000, date '2020-01-01' + n % 1500,
       'monthly allowance'
FROM generate_series(1, {SUBSIDY_APPLICANTS * 4}) AS n;
INSERT INTO audit_log (at, actor, action)
SELECT timestamptz '2024-01-01' + n * interval '1 hour', 'clerk' || n % 7, 'approved payment ' || n
FROM generate_series(1, 200) AS n;
"""


# The seed of each known legacy system (by name); another system gets an empty database.
SCHEMAS = {"registry": schema_sql, "subsidy": subsidy_schema_sql}


def _as_postgres(**extra: object) -> dict:
    pw = pwd.getpwnam(OS_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
            "env": {"HOME": pw.pw_dir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, **extra}


def _run_pg(*args: str, stdin: str | None = None, cwd: Path | None = None) -> None:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                          timeout=120, **_as_postgres(cwd=cwd or "/"))
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")


def _seeded_marker(lab: "LabContext", system: "System") -> Path:
    # The sample system keeps the marker name older labs already have.
    name = "seeded" if system.name == lab.system.name else f"seeded-{system.name}"
    return home(lab) / name


def prepare_database(lab: "LabContext") -> None:
    """initdb once; seed each legacy system once (a marker per system records it); rewrite
    the settings every time."""
    pw = pwd.getpwnam(OS_USER)
    for directory in (home(lab), socket_dir(lab)):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, pw.pw_uid, pw.pw_gid)
    home(lab).chmod(0o755)
    data = data_dir(lab)
    if not _seeded_marker(lab, lab.system).exists():
        shutil.rmtree(data, ignore_errors=True)
        for marker in home(lab).glob("seeded-*"):
            marker.unlink()  # a fresh server holds none of the systems
        _run_pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", OS_USER, "--data-checksums",
                "--encoding=UTF8", "--locale=C.UTF-8", cwd=home(lab))
    # Written here, not by a role: the department's existing server, which tricenter never configures.
    (data / "pg_hba.conf").write_text(HBA)
    (data / "postgresql.auto.conf").write_text(
        "".join(f"{k} = {v}\n" for k, v in server_settings(lab).items()))
    for file in ("pg_hba.conf", "postgresql.auto.conf"):
        os.chown(data / file, pw.pw_uid, pw.pw_gid)
    pending = [s for s in systems(lab) if not _seeded_marker(lab, s).exists()]
    if not pending:
        return
    with _server(lab):
        for system in pending:
            _seed(lab, system)
            _seeded_marker(lab, system).touch()


def _psql(lab: "LabContext") -> list[str]:
    return [str(PG_BIN / "psql"), "-h", str(socket_dir(lab)), "-p", str(PORT), "-X",
            "-v", "ON_ERROR_STOP=1", "-q", "-d"]


@contextmanager
def _server(lab: "LabContext") -> Iterator[None]:
    """The running server, or (a fresh or stopped lab) a socket-only one started for the
    seeding, so nothing can reach it half-built."""
    pg_ctl = str(PG_BIN / "pg_ctl")
    running = subprocess.run([pg_ctl, "-D", str(data_dir(lab)), "status"], capture_output=True,
                             **_as_postgres(cwd=home(lab))).returncode == 0
    if running:
        yield
        return
    _run_pg(pg_ctl, "-D", str(data_dir(lab)), "-w", "-o", "-c listen_addresses=''", "-l",
            str(socket_dir(lab) / "seed.log"), "start", cwd=home(lab))
    try:
        yield
    finally:
        _run_pg(pg_ctl, "-D", str(data_dir(lab)), "-m", "fast", "-w", "stop", cwd=home(lab))


def _seed(lab: "LabContext", system: "System") -> None:
    # Two sessions instead of psql's \connect, whose argument psql itself would interpret.
    _run_pg(*_psql(lab), "postgres",
            stdin=owner_statements(lab, lab.secret(password_secret(lab, system)),
                                   lab.secret(admin_password_secret(lab)), system),
            cwd=home(lab))
    schema = SCHEMAS.get(system.name)
    if schema is not None:
        _run_pg(*_psql(lab), dbname(lab, system), stdin=schema(db_user(lab, system)),
                cwd=home(lab))


def prepare_files(lab: "LabContext") -> None:
    """Sample documents the migration copies by rsync, per system; deterministic content."""
    for system in systems(lab):
        root = files_dir(lab, system)
        if (root / "README.txt").exists():
            continue
        sample = system.name == lab.system.name
        folder = root / ("certificates" if sample else "documents")
        folder.mkdir(parents=True, exist_ok=True)
        (root / "README.txt").write_text(
            "Marriage registry document share (legacy IDC)\n" if sample
            else f"{system.description or system.name}: document share (legacy IDC)\n")
        for n in range(1, SAMPLE_FILES + 1):
            title = f"Marriage certificate {n}" if sample else f"{system.name} document {n}"
            (folder / f"{n:05d}.txt").write_text(
                f"{title}\nregistered by office {n % 4}\n" + "x" * (n * 37 % 4000))


def program(lab: "LabContext") -> Program:
    return Program(name="legacy-postgres", center=CENTER, component="postgres",
                   command=[str(PG_BIN / "postgres"), "-D", str(data_dir(lab))],
                   user=OS_USER, directory=home(lab), priority=150, stopsignal="INT")


def health(lab: "LabContext") -> tuple[bool, str]:
    """Connect to each system's database as its application user over TCP, as a migration
    would."""
    import psycopg

    found = []
    for system in systems(lab):
        try:
            with psycopg.connect(host=address(lab), port=PORT, dbname=dbname(lab, system),
                                 user=db_user(lab, system),
                                 password=lab.secret(password_secret(lab, system)),
                                 connect_timeout=2) as conn:
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                      "'public'").fetchone()[0]
        except psycopg.Error as exc:
            return False, f"database {dbname(lab, system)}: {type(exc).__name__}"
        found.append(f"{dbname(lab, system)} ({tables} tables)")
    return True, "databases up: " + ", ".join(found)


def app_conninfo(lab: "LabContext", system: "System | None" = None) -> dict:
    """psycopg keywords for the system's application login on the legacy server."""
    return {"host": address(lab), "port": PORT, "dbname": dbname(lab, system),
            "user": db_user(lab, system), "password": lab.secret(password_secret(lab, system)),
            "connect_timeout": 5}


def source(lab: "LabContext", system: "System | None" = None) -> dict:
    """Where a legacy system lives, for the migration plane: database and file share.
    Secrets are references only."""
    return {
        "host": host_name(lab, system),
        "address": host_address(lab, system),
        "database": {"host": address(lab), "port": PORT, "dbname": dbname(lab, system),
                     "user": db_user(lab, system),
                     "password": {"file": str(lab.secret_file(password_secret(lab, system)))}},
        "paths": [str(files_dir(lab, system))],
    }


def runtime(lab: "LabContext", system: "System | None" = None) -> "LegacyRuntime":
    """The runtime inventory's view of a source, as the migration plane reads it."""
    from inventory.runtime import LegacyRuntime, PostgresAccess, SecretRef
    from lab.components import legacy_app

    sample = _system(lab, system).name == lab.system.name
    return LegacyRuntime(
        host=host_name(lab, system), paths=[str(files_dir(lab, system))],
        app=legacy_app.runtime(lab) if sample else None,
        database=PostgresAccess(
            host=address(lab), port=PORT, dbname=dbname(lab, system),
            user=db_user(lab, system),
            password=SecretRef(file=str(lab.secret_file(password_secret(lab, system)))),
            admin_user=OS_USER,
            admin_password=SecretRef(file=str(lab.secret_file(admin_password_secret(lab))))))
