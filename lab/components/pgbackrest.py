"""pgBackRest: WAL archive and backups of the lab's Patroni clusters in the Swift S3 repo,
one stanza per cluster in one repository. Functions taking `system` act on that system's
stanza; None means the sample system's.

Not a daemon: PostgreSQL calls it as archive_command/restore_command, and the drills call
`stanza_create`, `backup`, `info` and `restore_to` here. It always runs as the postgres
user, whose files it reads and writes.
"""
from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab import binaries
from lab.binaries import PG_BIN
from lab.component import Program
from lab.components import sshd, swift

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

BIN = binaries.path("pgbackrest")
OS_USER = "postgres"
REPO_PATH = "/pgbackrest"  # prefix inside the bucket
RESTORE_PORT = 5433  # a restored copy must not collide with the member on 5432
CIPHER = "aes-256-cbc"  # the pgbackrest role's repo1-cipher-type
CIPHER_PASSWORD = "pgbackrest-cipher"  # secret file (LabContext.secret_file)


class PgBackRestError(RuntimeError):
    """A pgBackRest command failed; the message carries its output."""


def stanza(lab: "LabContext", system: str | None = None) -> str:
    """One stanza per Patroni cluster, named after its scope."""
    from lab.components import patroni
    return patroni.scope(lab, system)


def home(lab: "LabContext") -> Path:
    """The lab's own state about the repository (the stanza marker); commands run here."""
    return lab.path("pgbackrest")


def _role(lab: "LabContext", center: str, system: str | None = None):
    from inventory.runtime import RuntimeInventory
    from lab.components import patroni
    from playbooks.render import renderer

    return renderer(RuntimeInventory.load(lab.runtime_inventory_file),
                    patroni.db_host(lab, center, system), "pgbackrest")


def host_config_file(lab: "LabContext", center: str, system: str | None = None) -> Path:
    """Where the pgbackrest role puts a database host's pgbackrest.conf (its defaults)."""
    from lab.components import patroni
    return sshd.host_root(lab, patroni.db_host(lab, center, system)) / "etc/pgbackrest/pgbackrest.conf"


def config_file(lab: "LabContext", system: str | None = None) -> Path:
    """The config the lab's commands use: the system's intended leader's host's (main's).
    Every host's names the same repository; the members differ only in pg1, which commands
    that need the primary name on their command line (see `_leader_options`)."""
    from lab.components import patroni
    return host_config_file(lab, lab.placements[patroni.scope(lab, system)].leader, system)


def render_config(lab: "LabContext", center: str, system: str | None = None) -> str:
    """pgbackrest.conf as the pgbackrest role writes it on the member's host."""
    return _role(lab, center, system).template("pgbackrest.conf.j2")


def urlsplit_host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 443


# ---------------------------------------------------------------- running commands


def _as_postgres() -> dict[str, Any]:
    pw = pwd.getpwnam(OS_USER)
    env = {"HOME": pw.pw_dir, "USER": OS_USER, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "env": env}


def run(lab: "LabContext", *args: str, timeout: float = 600, system: str | None = None) -> str:
    """Run one pgbackrest command as postgres; its stdout, or PgBackRestError."""
    command = [BIN, f"--config={config_file(lab, system)}", f"--stanza={stanza(lab, system)}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=home(lab), **_as_postgres())
    if done.returncode != 0:
        raise PgBackRestError(f"{shlex.join(command)} exited {done.returncode}: "
                              f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def _leader_options(lab: "LabContext", system: str | None = None) -> list[str]:
    """Point pg1 at the current Patroni leader, wherever a failover has put it."""
    from lab.components import patroni

    leader = patroni.database_summary(lab, system)["leader"]
    if leader is None:
        raise PgBackRestError(f"no Patroni leader of {patroni.scope(lab, system)}: nothing to back up from")
    return [f"--pg1-path={patroni.data_dir(lab, leader, system)}",
            f"--pg1-socket-path={patroni.socket_dir(lab, leader, system)}"]


def stanza_create(lab: "LabContext", system: str | None = None) -> None:
    """Create the stanza in the repo (idempotent); the bucket must exist."""
    swift.ensure_bucket(lab)
    run(lab, *_leader_options(lab, system), "stanza-create", timeout=120, system=system)


def check(lab: "LabContext", system: str | None = None) -> None:
    """pgBackRest's own end-to-end check: config, repo, and that WAL archiving works."""
    run(lab, *_leader_options(lab, system), "check", timeout=120, system=system)


def archive_current_wal(lab: "LabContext", system: str | None = None) -> None:
    """Close the current WAL segment and wait until it is in the repo: a restore made
    after this call holds every write committed before it. Without it, writes still in
    the open segment (16 MB, minutes at a low write rate) are not in any copy."""
    check(lab, system)


@dataclass(frozen=True)
class BackupResult:
    kind: str
    label: str
    seconds: float


def backup(lab: "LabContext", kind: str = "full", system: str | None = None) -> BackupResult:
    """Take a backup (full | diff | incr) from the current primary."""
    if kind not in ("full", "diff", "incr"):
        raise ValueError(f"backup kind must be full, diff or incr, not {kind!r}")
    started = time.monotonic()
    run(lab, *_leader_options(lab, system), "backup", f"--type={kind}", timeout=1800, system=system)
    seconds = time.monotonic() - started
    latest = (backups(info(lab, system=system)) or [{}])[-1]
    return BackupResult(kind=kind, label=latest.get("label", ""), seconds=round(seconds, 2))


def info(lab: "LabContext", via: str = "main", io_timeout: int = 5, system: str | None = None) -> dict:
    """The stanza's entry of `pgbackrest info --output=json`: status, backups, archive.
    `via`: the center whose Swift proxy to ask (see `restore_to`). With the proxy down it
    fails after about 8 x io_timeout seconds."""
    parsed = json.loads(run(lab, *repo_via(lab, via), f"--io-timeout={io_timeout}",
                            "--output=json", "info", timeout=120, system=system))
    return next((s for s in parsed if s.get("name") == stanza(lab, system)), {})


def backups(stanza_info: dict) -> list[dict]:
    """The backups of an `info` result, oldest first."""
    return sorted(stanza_info.get("backup", []), key=lambda b: b["timestamp"]["stop"])


def latest_backup_age_seconds(stanza_info: dict, now: float | None = None) -> float | None:
    """Seconds since the newest backup finished; None when there is none."""
    done = backups(stanza_info)
    if not done:
        return None
    return (now or time.time()) - done[-1]["timestamp"]["stop"]


# ---------------------------------------------------------------- restore


@dataclass
class RestoredCluster:
    """A PostgreSQL restored from the repo, outside Patroni; the caller starts and stops it."""

    data_dir: Path
    host: str
    port: int

    @property
    def socket_dir(self) -> Path:
        """Beside the data directory, owned by postgres: the socket and the server log."""
        return self.data_dir.parent / f"{self.data_dir.name}.run"

    @property
    def log_file(self) -> Path:
        return self.socket_dir / "postgresql.log"

    def _pg(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              cwd=self.data_dir.parent, **_as_postgres())

    def start(self, timeout: float = 300) -> None:
        """Start it and wait until recovery has finished and it accepts writes."""
        done = self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l",
                        str(self.log_file), "-w", "-t", str(int(timeout)), "start",
                        timeout=timeout + 10)
        if done.returncode != 0:
            raise PgBackRestError(f"restored cluster did not start: {done.stdout}{done.stderr}"
                                  f" (log: {self.log_file})")
        deadline = time.monotonic() + timeout
        while self.query("SELECT pg_is_in_recovery()") != "f":
            if time.monotonic() > deadline:
                raise PgBackRestError(f"restored cluster still in recovery after {timeout}s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop it (fast shutdown); a no-op when it is not running."""
        if (self.data_dir / "postmaster.pid").exists():
            self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def query(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the local socket; unaligned, tuples only."""
        done = self._pg(str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p", str(self.port),
                        "-d", dbname, "-AtX", "-v", "ON_ERROR_STOP=1", "-c", sql, timeout=60)
        if done.returncode != 0:
            raise PgBackRestError(f"query on restored cluster failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def remove(self) -> None:
        """Stop and delete the restored copy."""
        self.stop()
        for path in (self.data_dir, self.socket_dir):
            shutil.rmtree(path, ignore_errors=True)


def repo_via(lab: "LabContext", center: str) -> list[str]:
    """Options that reach the repo through `center`'s Swift proxy instead of main's."""
    host, port = urlsplit_host_port(swift.endpoint(lab, center))
    return [f"--repo1-s3-endpoint={host}", f"--repo1-storage-port={port}"]


def restore_to(lab: "LabContext", target_dir: Path, *, backup_set: str | None = None,
               target_time: str | None = None, host: str | None = None,
               port: int = RESTORE_PORT, via: str = "remote", system: str | None = None) -> RestoredCluster:
    """Restore the stanza into `target_dir` (must not exist or be empty) as a standalone
    PostgreSQL on `host:port` (default: the remote center's ops host), not started.

    `backup_set` picks a backup label (default: the latest); `target_time`
    ("2026-11-27 12:00:00+00") recovers to that moment instead of the end of the archive.
    `via` is the center whose Swift proxy serves the restore: the remote one by default,
    so a restore works with the whole city lost. The restored copy's restore_command goes
    the same way."""
    target_dir = Path(target_dir)
    if target_dir.exists() and any(target_dir.iterdir()):
        raise PgBackRestError(f"{target_dir} is not empty: restore needs an empty directory")
    restored = RestoredCluster(data_dir=target_dir, host=host or lab.address("remote", "ops"),
                               port=port)
    pw = pwd.getpwnam(OS_USER)
    for directory in (target_dir, restored.socket_dir):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, pw.pw_uid, pw.pw_gid)
        directory.chmod(0o700)
    reachable = subprocess.run(["test", "-w", str(target_dir)], **_as_postgres())
    if reachable.returncode != 0:
        raise PgBackRestError(f"the postgres user cannot reach {target_dir}: restore under a "
                              f"directory it can traverse, e.g. {lab.path('restores')}")
    args = [f"--pg1-path={target_dir}", "--archive-mode=off",  # the copy must not archive
            *repo_via(lab, via)]
    if backup_set:
        args.append(f"--set={backup_set}")
    if target_time:
        args += ["--type=time", f"--target={target_time}", "--target-action=promote"]
    run(lab, *args, "restore", timeout=1800, system=system)
    _override_settings(restored)
    return restored


def _override_settings(restored: RestoredCluster) -> None:
    """The restored files carry the Patroni member's settings: give the copy its own
    address, socket and HBA file, and no synchronous standby to wait for."""
    overrides = {
        "port": str(restored.port),
        "listen_addresses": f"'{restored.host}'",
        "unix_socket_directories": f"'{restored.socket_dir}'",
        "hba_file": f"'{restored.data_dir / 'pg_hba.conf'}'",
        "ident_file": f"'{restored.data_dir / 'pg_ident.conf'}'",
        "synchronous_standby_names": "''",
        "cluster_name": "'restored'",
    }
    auto_conf = restored.data_dir / "postgresql.auto.conf"
    with auto_conf.open("a") as out:
        out.write("\n# tricenter restore drill: this copy stands alone\n")
        out.writelines(f"{k} = {v}\n" for k, v in overrides.items())
    hba = restored.data_dir / "pg_hba.conf"
    if not hba.exists():  # Patroni may keep pg_hba.conf elsewhere; the copy needs one
        hba.write_text("local all postgres peer\nhost all all 127.0.0.0/8 scram-sha-256\n")
    for path in (auto_conf, hba):
        shutil.chown(path, OS_USER, OS_USER)
    (restored.data_dir / "standby.signal").unlink(missing_ok=True)


# ---------------------------------------------------------------- component


def _directory(path: Path, pw: pwd.struct_passwd) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(0o700)


def _stanza_marker(lab: "LabContext", system: str | None = None) -> Path:
    name = stanza(lab, system)
    return home(lab) / ("stanza-created" if name == lab.system.name else f"{name}.stanza-created")


def _forget_unencrypted_repository(lab: "LabContext") -> None:
    """A repository made before encryption cannot take encrypted backups, and pgBackRest
    cannot encrypt it in place: its objects go and the stanza is made anew (the marker
    records the cipher it was made with)."""
    marker = _stanza_marker(lab)
    if not marker.exists() or marker.read_text().strip() == CIPHER:
        return
    try:
        client = swift.s3_client(lab)
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=swift.BACKUP_BUCKET, Prefix=REPO_PATH.lstrip("/") + "/")
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=swift.BACKUP_BUCKET, Delete={"Objects": keys})
    except Exception:  # the store is not up yet: health() tries again once it answers
        return
    for system in lab.systems:  # every stanza's objects went
        _stanza_marker(lab, system.name).unlink(missing_ok=True)


class PgBackRest:
    name = "pgbackrest"

    def prepare(self, lab: "LabContext") -> None:
        pw = pwd.getpwnam(OS_USER)
        _directory(home(lab), pw)
        from lab.components import patroni

        for system, center in patroni.nodes(lab):
            role = _role(lab, center, system)
            for var in ("pgbackrest_home", "pgbackrest_log_dir"):
                _directory(Path(str(role.var(var))), pw)
            file = host_config_file(lab, center, system)
            _directory(file.parent, pw)
            # It holds the S3 secret and the repository's passphrase: created 0600 and
            # owned by postgres before either is written into it.
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(role.template("pgbackrest.conf.j2"))
            os.chown(file, pw.pw_uid, pw.pw_gid)
            file.chmod(0o600)
        _forget_unencrypted_repository(lab)

    def programs(self, lab: "LabContext") -> list[Program]:
        return []  # invoked by PostgreSQL and by drills, never resident

    def health(self, lab: "LabContext") -> dict[str, dict]:
        """Healthy once every system's stanza exists in the repo and its WAL archive works;
        a stanza is created here the first time its primary and the bucket are both up."""
        # pgBackRest would retry an unreachable S3 for minutes: ask the proxy first.
        reachable, detail = swift.proxy_reachable(lab)
        if not reachable:
            return {"global": {"healthy": False, "detail": f"S3 repo unreachable: {detail}"}}
        # prepare() runs before the store is up: an older lab's unencrypted repository
        # is forgotten here, the first time the store answers.
        _forget_unencrypted_repository(lab)
        healthy, details = True, []
        for system in lab.systems:
            marker = _stanza_marker(lab, system.name)
            try:
                if not marker.exists():
                    stanza_create(lab, system.name)
                    marker.write_text(CIPHER)
                status = info(lab, system=system.name).get("status", {})
            except Exception as exc:  # not ready yet (no leader, no S3): unhealthy, no crash
                return {"global": {"healthy": False,
                                   "detail": f"{system.name}: {type(exc).__name__}: {exc}"[:300]}}
            healthy = healthy and status.get("code") in (0, 2)  # 2: stanza exists, no backup yet
            details.append(f"{system.name}: {status.get('message', '')}")
        return {"global": {"healthy": healthy, "detail": "; ".join(details)}}

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        """Backups land in the object store's backup bucket, which Swift already declares,
        encrypted with a passphrase the lab generates."""
        from inventory.runtime import SecretRef

        if runtime.object_store is not None:
            runtime.object_store.backup_cipher_password = SecretRef(
                file=str(lab.secret_file(CIPHER_PASSWORD)))


def component() -> PgBackRest:
    return PgBackRest()
