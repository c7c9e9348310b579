"""Patroni + PostgreSQL 15 for every lab system with a database, placed by its tier. The
sample system (the registry): primary in main, synchronous standby in samecity (RPO 0 in
the city), asynchronous member in remote that Patroni never promotes on its own (a
regional recovery is a runbook decision, not an automatic one). Each system's members run
on database hosts of their own (lab.context.DB_HOSTS), one Patroni cluster per system.

Functions taking `system` act on that system's cluster; None means the sample system's."""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
from pathlib import Path

import requests

from inventory.runtime import (DatabaseCluster, DbMember, Host, HostPort, HostRole,
                               PatroniTiming, RuntimeInventory, SecretRef, SystemRuntime)
from lab import processes, users
from lab import binaries
from lab.component import Program
from lab.components import sshd
from lab.context import CENTERS, NETNS_SUPERNET, LabContext, Ports
from support.patroni import (RUNNING_STATES, ApiAccess, ClusterState, PatroniCluster, PatroniRefused,
                             PatroniUnavailable)

# Patroni 3.1.2 pinned from PyPI (lab/binaries.py). Debian's 3.0.2 overwrites the etcd3 leader key unconditionally after a freeze: a thawed
# old primary took the lock back from the new one and its acknowledged writes were lost
# (main-center-freeze drill). 3.0.3+ updates the key in a compare-and-swap transaction;
# 3.2+ also forces ttl >= 20 s, which would put main-center-loss RTO near 25 s.
OS_USER = "postgres"
NAMESPACE = "/tricenter/"
LAB_NETWORKS = ("127.0.0.0/8", str(NETNS_SUPERNET))  # loopback mode, netns mode

# Patroni timing. stock: Patroni's defaults. fast: aimed at the DR team's median RTO of
# 5 s on main-center loss; keeps loop_wait + 2 × retry_timeout ≤ ttl, the bound Patroni
# documents for avoiding false failovers.
PROFILES: dict[str, dict[str, int]] = {
    "stock": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
    "fast": {"ttl": 5, "loop_wait": 1, "retry_timeout": 2},
}


ROLE = "postgresql_patroni"


def member_name(center: str) -> str:
    return f"pg-{center}"


def center_of(member: str) -> str:
    return member.removeprefix("pg-")


def scope(lab: LabContext, system: str | None = None) -> str:
    return system or lab.system.name


def host_name(center: str, kind: str = "db") -> str:
    """A database host, e.g. main-db (the sample system's, where etcd runs too), main-db2."""
    return f"{center}-{kind}"


def db_host(lab: LabContext, center: str, system: str | None = None) -> str:
    return host_name(center, lab.db_host_kind(scope(lab, system)))


def address(lab: LabContext, center: str, system: str | None = None) -> str:
    return lab.address(center, lab.db_host_kind(scope(lab, system)))


def api_url(lab: LabContext, center: str, system: str | None = None) -> str:
    return f"https://{address(lab, center, system)}:{Ports.patroni_api}"


def members(lab: LabContext, system: str | None = None) -> tuple[str, ...]:
    """The centers with a member of the system's cluster, as its tier places them."""
    return lab.placements[scope(lab, system)].members


def program_name(center: str, lab: LabContext, system: str | None = None) -> str:
    name = scope(lab, system)
    return f"{center}-patroni" if name == lab.system.name else f"{center}-patroni-{name}"


# Where the postgresql_patroni role puts things under the host's root (its defaults).
def config_dir(lab: LabContext, center: str, system: str | None = None) -> Path:
    return sshd.host_root(lab, db_host(lab, center, system)) / "etc/patroni"


def config_file(lab: LabContext, center: str, system: str | None = None) -> Path:
    return config_dir(lab, center, system) / "patroni.yml"


def launcher_file(lab: LabContext, center: str, system: str | None = None) -> Path:
    return config_dir(lab, center, system) / "patroni_launcher.py"


def tls_dir(lab: LabContext, center: str, system: str | None = None) -> Path:
    return config_dir(lab, center, system) / "tls"


def ca_file(lab: LabContext) -> str:
    """The lab CA's certificate, as clients verify PostgreSQL and the REST API with it."""
    return str(sshd.certificate_authority(lab).cert_file)


def home_dir(lab: LabContext, center: str, system: str | None = None) -> Path:
    return sshd.host_root(lab, db_host(lab, center, system)) / "var/lib/postgresql"


def data_dir(lab: LabContext, center: str, system: str | None = None) -> Path:
    return home_dir(lab, center, system) / "15" / scope(lab, system)


def socket_dir(lab: LabContext, center: str, system: str | None = None) -> Path:
    return sshd.host_root(lab, db_host(lab, center, system)) / "var/run/postgresql"


def legacy_node_dir(lab: LabContext, center: str) -> Path:
    """Where labs before the role kept a member's config and data."""
    return lab.path("patroni", center)


def app_user(lab: LabContext, system: str | None = None) -> str:
    return scope(lab, system)


def app_dbname(lab: LabContext, system: str | None = None) -> str:
    return scope(lab, system)


def app_password_secret(lab: LabContext, system: str | None = None) -> str:
    return f"{scope(lab, system)}-db-password"


API_PASSWORD_SECRET = "patroni-api-password"
API_USER = "patroni"


def role(runtime: RuntimeInventory, host: str):
    """The postgresql_patroni role for a member's host (`db_host`)."""
    from playbooks.render import RoleRenderer, host_variables

    return RoleRenderer(ROLE, host_variables(runtime, host))


def render_config(runtime: RuntimeInventory, host: str) -> str:
    """patroni.yml as the postgresql_patroni role writes it on the member's host (its
    archive_command included: each member pushes WAL with its own host's pgbackrest.conf)."""
    return role(runtime, host).template("patroni.yml.j2")


def client(lab: LabContext, timeout: float = 1.0, system: str | None = None) -> PatroniCluster:
    """The REST API client (support/patroni.py) with the lab's CA and API account."""
    access = ApiAccess(ca_file=ca_file(lab),
                       auth=(API_USER, lab.secret(API_PASSWORD_SECRET)))
    return PatroniCluster(database_cluster(lab, system), access, timeout=timeout)


def cluster_view(lab: LabContext, system: str | None = None) -> ClusterState | None:
    """The cluster as the first member that answers sees it."""
    try:
        return client(lab, system=system).state()
    except PatroniUnavailable:
        return None


def database_summary(lab: LabContext, system: str | None = None) -> dict:
    """Leader, sync standby and each member's role and streaming state, by center."""
    api = client(lab, system=system)
    view = cluster_view(lab, system)
    members_of = members(lab, system)
    found = {center_of(m.name): m for m in (view.members.values() if view else [])}
    leader = center_of(view.leader) if view and view.leader else None
    sync = center_of(view.sync_standby) if view and view.sync_standby else None
    streaming = {center_of(name): state for name, state in
                 (api.streaming(member_name(leader)).items() if leader else [])}
    replicas = {}
    for center in members_of:
        member = found.get(center)
        if member is None:
            replicas[center] = {"role": None, "state": "absent", "streaming": False}
            continue
        replicas[center] = {
            "role": str(member.role), "state": member.state,
            "timeline": member.timeline, "lag": member.lag,
            "streaming": center == leader or streaming.get(center) == "streaming",
        }
    timing = {}
    if leader:
        config = api.member_json(member_name(leader), "/config") or {}
        timing = {k: config.get(k) for k in ("ttl", "loop_wait", "retry_timeout")}
    return {"leader": leader, "sync_standby": sync, "replicas": replicas, "timing": timing}


def apply_profile(lab: LabContext, profile: str, system: str | None = None) -> bool:
    """Patch Patroni's dynamic config to the profile's timings; True when it changed."""
    leader = database_summary(lab, system)["leader"]
    if leader is None:
        return False
    api = client(lab, timeout=5, system=system)
    current = api.member_json(member_name(leader), "/config") or {}
    wanted = PROFILES[profile]
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    api.patch_config(member_name(leader), wanted)
    return True


def switchover(lab: LabContext, to_center: str, system: str | None = None) -> None:
    """A planned switchover to `to_center` through Patroni's REST API."""
    summary = database_summary(lab, system)
    if summary["leader"] in (None, to_center):
        return
    client(lab, system=system).switchover(member_name(summary["leader"]), member_name(to_center), timeout=30)


def reinitialize(lab: LabContext, center: str) -> None:
    """Rebuild a replica from the primary (Patroni's /reinitialize)."""
    client(lab).reinitialize(member_name(center))


def postmaster_pid(lab: LabContext, center: str, system: str | None = None) -> int | None:
    """The postmaster's pid from postmaster.pid, if that process is alive."""
    try:
        pid = int((data_dir(lab, center, system) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # A killed postmaster may linger as a zombie until its new parent reaps it.
    return pid if processes.alive(pid) else None


def adopt_legacy_member(lab: LabContext, center: str) -> None:
    """A lab made before the role keeps its member: its data moves to the role's path
    (only while nothing is there, so a member already there is never replaced)."""
    old, new = legacy_node_dir(lab, center) / "data", data_dir(lab, center)
    if not old.is_dir() or (new.is_dir() and any(new.iterdir())):
        return
    new.parent.mkdir(parents=True, exist_ok=True)
    if new.is_dir():
        new.rmdir()
    shutil.move(str(old), str(new))
    shutil.rmtree(legacy_node_dir(lab, center), ignore_errors=True)
    with contextlib.suppress(OSError):  # the last member moved: nothing left there
        lab.path("patroni").rmdir()


def database_cluster(lab: LabContext, system: str | None = None) -> DatabaseCluster:
    """The cluster as the runtime inventory describes it (secrets by reference).

    Each system's read-write and read-only entry ports follow the sample system's by two
    per system (5000/5001, 5002/5003, …): one HAProxy entry serves them all."""
    name = scope(lab, system)
    shift = 2 * [s.name for s in lab.systems].index(name)
    placed = lab.placements[name]
    return DatabaseCluster(
        cluster=name, dbname=app_dbname(lab, name), user=app_user(lab, name),
        password=SecretRef(file=str(lab.secret_file(app_password_secret(lab, name)))),
        superuser_password=SecretRef(file=str(lab.secret_file("postgres-superuser"))),
        replication_password=SecretRef(file=str(lab.secret_file("postgres-replication"))),
        rewind_password=SecretRef(file=str(lab.secret_file("postgres-rewind"))),
        timing=PatroniTiming(**PROFILES[lab.settings.patroni_profile]),
        client_networks=list(LAB_NETWORKS),
        members=[DbMember(name=member_name(c), center=c, host=address(lab, c, name),
                          port=Ports.postgres, api_url=api_url(lab, c, name),
                          intended_role=placed.intended_role(c)) for c in CENTERS if c in placed.members],
        read_write=HostPort(host=lab.entry_address, port=Ports.db_read_write + shift),
        read_only=HostPort(host=lab.entry_address, port=Ports.db_read_only + shift),
        admin_user="postgres",
        admin_password=SecretRef(file=str(lab.secret_file("postgres-superuser"))),
        api_user=API_USER,
        api_password=SecretRef(file=str(lab.secret_file(API_PASSWORD_SECRET))),
    )


def _write_owned(file: Path, text: str, mode: int) -> None:
    """Write a file for postgres; created with `mode`, so a secret is never readable by others."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, mode)
    shutil.chown(tmp, OS_USER, OS_USER)
    os.replace(tmp, file)


def _own_directory(directory: Path) -> None:
    pw = pwd.getpwnam(OS_USER)
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, pw.pw_uid, pw.pw_gid)
    os.chmod(directory, 0o700)


def nodes(lab: LabContext) -> list[tuple[str, str]]:
    """Every (system, center) the lab runs a member for, sample system first."""
    return [(system.name, center) for system in lab.systems for center in members(lab, system.name)]


class Patroni:
    name = "patroni"

    def prepare(self, lab: LabContext) -> None:
        runtime = RuntimeInventory.load(lab.runtime_inventory_file)
        for system, center in nodes(lab):
            if system == lab.system.name:
                adopt_legacy_member(lab, center)
            host = db_host(lab, center, system)
            renderer = role(runtime, host)
            # What the role's config tasks make: postgres-owned 0700 directories...
            # and postgres's home, which Debian's package makes (Patroni keeps pgpass there).
            for directory in (home_dir(lab, center, system), config_dir(lab, center, system),
                              socket_dir(lab, center, system), data_dir(lab, center, system).parent,
                              tls_dir(lab, center, system)):
                _own_directory(directory)
            # What the role's TLS tasks do: the host's files copied for postgres, key 0600.
            sshd.install_host_tls(runtime, host, renderer, (
                "postgresql_patroni_tls_ca", "postgresql_patroni_tls_cert", "postgresql_patroni_tls_key"),
                str(renderer.var("postgresql_patroni_os_user")))
            _write_owned(config_file(lab, center, system), renderer.template("patroni.yml.j2"), 0o600)
            _write_owned(Path(str(renderer.var("postgresql_patroni_post_bootstrap"))),
                         renderer.template("post_bootstrap.sh.j2"), 0o700)
            _write_owned(launcher_file(lab, center, system), renderer.template("patroni_launcher.py.j2"), 0o644)

    def reload(self, lab: LabContext) -> None:
        """Make running members re-read patroni.yml (a no-op when nothing changed)."""
        for system, center in nodes(lab):
            try:
                client(lab, timeout=2, system=system).reload(member_name(center))
            except (requests.RequestException, PatroniRefused):
                pass  # not running: it reads the file when it starts

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name=program_name(center, lab, system), center=center, component="patroni",
                        command=[binaries.path("patroni-python"), str(launcher_file(lab, center, system)),
                                 str(config_file(lab, center, system))],
                        user=OS_USER, directory=config_dir(lab, center, system), priority=200,
                        host=db_host(lab, center, system))
                for system, center in nodes(lab)]

    def health(self, lab: LabContext) -> dict[str, dict]:
        """Per center, every member there; `role` is the sample system's member's."""
        result: dict[str, dict] = {}
        for system in lab.systems:
            for center, member in database_summary(lab, system.name)["replicas"].items():
                healthy = member["state"] in RUNNING_STATES and member["streaming"]
                detail = (f"{member['role']}, {member['state']}" +
                          (", streaming" if member["streaming"] and member["role"] != "leader" else ""))
                if system.name != lab.system.name:
                    detail = f"{system.name}: {detail}"
                here = result.setdefault(center, {"healthy": True, "role": member["role"], "details": []})
                here["healthy"] = here["healthy"] and healthy
                here["details"].append(detail)
        return {center: {"healthy": h["healthy"], "role": h["role"], "detail": "; ".join(h["details"])}
                for center, h in result.items()}

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        for placed in lab.systems:
            system = runtime.systems.setdefault(placed.name, SystemRuntime(
                name=placed.name, department=placed.department, tier=placed.tier))
            system.database = database_cluster(lab, placed.name)
            for center in members(lab, placed.name):
                host, address_ = db_host(lab, center, placed.name), address(lab, center, placed.name)
                existing = next((h for h in runtime.hosts if h.name == host), None)
                if existing is None:
                    existing = Host(name=host, center=center, role=HostRole.db, address=address_,
                                    root=str(sshd.host_root(lab, host)), service_manager="supervisor",
                                    service_user=users.SERVICE_USER)
                    runtime.hosts.append(existing)
                # The role's Patroni: the pinned virtualenv the lab's programs run.
                existing.patroni_python = str(binaries.path("patroni-python"))
                sshd.give_tls(lab, runtime, host, address_)


def component() -> Patroni:
    return Patroni()
