"""Patroni + PostgreSQL 15 ×3 for the sample system: primary in main, synchronous standby
in samecity (RPO 0 in the city), asynchronous member in remote that Patroni never promotes
on its own (a regional recovery is a runbook decision, not an automatic one)."""
from __future__ import annotations

import os
import pwd
import shlex
import shutil
from pathlib import Path

import requests
import yaml

from inventory.runtime import (DatabaseCluster, DbIntendedRole, DbMember, Host, HostPort, HostRole,
                               PatroniTiming, RuntimeInventory, SecretRef, SystemRuntime)
from lab import pki, processes, users
from lab import binaries
from lab.binaries import PG_BIN
from lab.component import Program
from lab.context import CENTERS, NETNS_SUPERNET, LabContext, Ports
from lab.pgsql import owner_sql

# Patroni 3.1.2 pinned from PyPI (lab/binaries.py). Debian's 3.0.2 overwrites the etcd3 leader key unconditionally after a freeze: a thawed
# old primary took the lock back from the new one and its acknowledged writes were lost
# (main-center-freeze drill). 3.0.3+ updates the key in a compare-and-swap transaction;
# 3.2+ also forces ttl >= 20 s, which would put main-center-loss RTO near 25 s.
OS_USER = "postgres"
NAMESPACE = "/tricenter/"
LAB_NETWORKS = ("127.0.0.0/8", str(NETNS_SUPERNET))  # loopback mode, netns mode
INTENDED = {"main": DbIntendedRole.leader, "samecity": DbIntendedRole.sync,
            "remote": DbIntendedRole.async_}

# Patroni timing. stock: Patroni's defaults. fast: aimed at the DR team's median RTO of
# 5 s on main-center loss; keeps loop_wait + 2 × retry_timeout ≤ ttl, the bound Patroni
# documents for avoiding false failovers.
PROFILES: dict[str, dict[str, int]] = {
    "stock": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
    "fast": {"ttl": 5, "loop_wait": 1, "retry_timeout": 2},
}


def member_name(center: str) -> str:
    return f"pg-{center}"


def center_of(member: str) -> str:
    return member.removeprefix("pg-")


def scope(lab: LabContext) -> str:
    return lab.system.name


def api_url(lab: LabContext, center: str) -> str:
    return f"http://{lab.address(center)}:{Ports.patroni_api}"


def node_dir(lab: LabContext, center: str) -> Path:
    return lab.path("patroni", center)


def data_dir(lab: LabContext, center: str) -> Path:
    return node_dir(lab, center) / "data"


def socket_dir(lab: LabContext, center: str) -> Path:
    return node_dir(lab, center) / "run"


def app_user(lab: LabContext) -> str:
    return lab.system.name


def app_dbname(lab: LabContext) -> str:
    return lab.system.name


def app_password_secret(lab: LabContext) -> str:
    return f"{lab.system.name}-db-password"


def extra_parameters(lab: LabContext, components: list) -> dict[str, object]:
    """PostgreSQL parameters other components ask for (e.g. pgBackRest's archive_command)."""
    params: dict[str, object] = {}
    for comp in components:
        contribute = getattr(comp, "postgres_parameters", None)
        if contribute is not None:
            params.update(contribute(lab))
    return params


def etcd_client_tls(lab: LabContext, center: str) -> pki.CertFiles:
    """The host's certificate, copied for postgres: Patroni's identity towards etcd."""
    directory = node_dir(lab, center) / "etcd-tls"
    return pki.CertFiles(ca=directory / "ca.crt", cert=directory / "patroni.crt",
                         key=directory / "patroni.key")


def _etcd3(lab: LabContext, center: str) -> dict:
    from lab.components import etcd

    files = etcd_client_tls(lab, center)
    return {"hosts": [f"{lab.address(c)}:{Ports.etcd_client}" for c in CENTERS],
            "protocol": "https", "cacert": str(files.ca), "cert": str(files.cert),
            "key": str(files.key), "username": "patroni",
            "password": lab.secret(etcd.PATRONI_PASSWORD)}


def _install_etcd_client_tls(lab: LabContext, center: str) -> None:
    from lab.components import sshd

    host = next(h for h in sshd.hosts(lab) if h.name == f"{center}-db")
    pki.install(sshd.host_certificate(lab, host), etcd_client_tls(lab, center), OS_USER)


def render_config(lab: LabContext, center: str, profile: str,
                  extra: dict[str, object] | None = None) -> dict:
    """The patroni.yml of the member in `center`."""
    address = lab.address(center)
    auth = {
        "superuser": {"username": "postgres", "password": lab.secret("postgres-superuser")},
        "replication": {"username": "replicator", "password": lab.secret("postgres-replication")},
        "rewind": {"username": "rewinder", "password": lab.secret("postgres-rewind")},
    }
    config: dict = {
        "scope": scope(lab),
        "namespace": NAMESPACE,
        "name": member_name(center),
        "log": {"level": "INFO"},
        "restapi": {"listen": f"{address}:{Ports.patroni_api}",
                    "connect_address": f"{address}:{Ports.patroni_api}"},
        "etcd3": _etcd3(lab, center),
        "bootstrap": {
            "dcs": {
                **PROFILES[profile],
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": True,
                "synchronous_mode_strict": False,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        # logical: a migration's rollback replicates from this cluster back
                        # to the legacy source (publication on the target).
                        "wal_level": "logical", "hot_standby": "on", "wal_log_hints": "on",
                        "max_connections": 100, "max_wal_senders": 10,
                        "max_replication_slots": 10, "wal_keep_size": "256MB",
                        "shared_buffers": "64MB",
                    },
                },
            },
            "initdb": ["data-checksums", {"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
            "post_bootstrap": str(node_dir(lab, center) / "post_bootstrap.sh"),
        },
        "postgresql": {
            "listen": f"{address}:{Ports.postgres}",
            "connect_address": f"{address}:{Ports.postgres}",
            "data_dir": str(data_dir(lab, center)),
            "bin_dir": str(PG_BIN),
            "pgpass": str(node_dir(lab, center) / "pgpass"),
            "use_unix_socket": True,
            # A spread checkpoint would hold every new replica for minutes.
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": auth,
            "parameters": {
                "unix_socket_directories": str(socket_dir(lab, center)),
                # A hung (frozen) synchronous standby keeps its TCP session open; until the
                # walsender gives up on it, Patroni still sees it streaming and commits wait.
                # 5 s instead of 60 s lets Patroni drop it from synchronous_standby_names.
                "wal_sender_timeout": "5s",
                "logging_collector": "off",
                "log_line_prefix": f"%m [%p] {center} ",
                **(extra or {}),
            },
            "pg_hba": [
                "local all postgres peer",
                "local all all scram-sha-256",
                *(f"host replication replicator {net} scram-sha-256" for net in LAB_NETWORKS),
                *(f"host all all {net} scram-sha-256" for net in LAB_NETWORKS),
            ],
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                 "nosync": False},
    }
    if center == "remote":
        config["tags"].update({"nofailover": True, "nosync": True})
    return config


def post_bootstrap_script(lab: LabContext) -> str:
    """Runs once on the first primary: the application's role and database."""
    statements = owner_sql(app_user(lab), app_dbname(lab), lab.secret(app_password_secret(lab)))
    # A quoted here-document: the shell expands nothing in it.
    return (
        "#!/bin/sh\n# Called by Patroni once, after initdb, with a superuser connection string.\n"
        "set -e\n"
        f"{shlex.quote(str(PG_BIN / 'psql'))} -v ON_ERROR_STOP=1 \"$1\" <<'SQL'\n"
        f"{statements}"
        "SQL\n"
    )


def _write_owned(file: Path, text: str, mode: int) -> None:
    file.write_text(text)
    os.chmod(file, mode)
    shutil.chown(file, OS_USER, OS_USER)


def get_json(url: str, timeout: float = 1.0) -> dict | None:
    try:
        return requests.get(url, timeout=timeout).json()
    except (requests.RequestException, ValueError):
        return None


def cluster_view(lab: LabContext) -> dict | None:
    """Patroni's /cluster as seen by the first member that answers."""
    for center in CENTERS:
        view = get_json(f"{api_url(lab, center)}/cluster")
        if view and view.get("members"):
            return view
    return None


# /cluster calls a healthy replica "streaming" from Patroni 3.0.4 on, "running" before.
RUNNING_STATES = ("running", "streaming")


def database_summary(lab: LabContext) -> dict:
    """Leader, sync standby and each member's role and streaming state, by center."""
    view = cluster_view(lab) or {"members": []}
    members = {center_of(m["name"]): m for m in view["members"]}
    leader = next((c for c, m in members.items() if m.get("role") == "leader"), None)
    sync = next((c for c, m in members.items() if m.get("role") == "sync_standby"), None)
    streaming: dict[str, str] = {}
    if leader:
        status = get_json(f"{api_url(lab, leader)}/patroni") or {}
        for row in status.get("replication", []):
            streaming[center_of(row.get("application_name", ""))] = row.get("state", "")
    replicas = {}
    for center in CENTERS:
        member = members.get(center)
        if member is None:
            replicas[center] = {"role": None, "state": "absent", "streaming": False}
            continue
        replicas[center] = {
            "role": member.get("role"), "state": member.get("state"),
            "timeline": member.get("timeline"), "lag": member.get("lag"),
            "streaming": center == leader or streaming.get(center) == "streaming",
        }
    timing = {}
    if leader:
        config = get_json(f"{api_url(lab, leader)}/config") or {}
        timing = {k: config.get(k) for k in ("ttl", "loop_wait", "retry_timeout")}
    return {"leader": leader, "sync_standby": sync, "replicas": replicas, "timing": timing}


def apply_profile(lab: LabContext, profile: str) -> bool:
    """Patch Patroni's dynamic config to the profile's timings; True when it changed."""
    summary_leader = database_summary(lab)["leader"]
    if summary_leader is None:
        return False
    url = f"{api_url(lab, summary_leader)}/config"
    current = get_json(url) or {}
    wanted = PROFILES[profile]
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    requests.patch(url, json=wanted, timeout=5).raise_for_status()
    return True


def switchover(lab: LabContext, to_center: str) -> None:
    """A planned switchover to `to_center` through Patroni's REST API."""
    summary = database_summary(lab)
    if summary["leader"] in (None, to_center):
        return
    response = requests.post(f"{api_url(lab, to_center)}/switchover", timeout=30, json={
        "leader": member_name(summary["leader"]), "candidate": member_name(to_center)})
    if response.status_code != 200:
        raise RuntimeError(f"switchover to {to_center} refused: {response.status_code} "
                           f"{response.text.strip()}")


def reinitialize(lab: LabContext, center: str) -> None:
    """Rebuild a replica from the primary (Patroni's /reinitialize)."""
    response = requests.post(f"{api_url(lab, center)}/reinitialize", json={"force": True},
                             timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"reinitialize of {center} refused: {response.status_code} "
                           f"{response.text.strip()}")


def postmaster_pid(lab: LabContext, center: str) -> int | None:
    """The postmaster's pid from postmaster.pid, if that process is alive."""
    try:
        pid = int((data_dir(lab, center) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # A killed postmaster may linger as a zombie until its new parent reaps it.
    return pid if processes.alive(pid) else None


class Patroni:
    name = "patroni"

    def __init__(self) -> None:
        self.others: list = []  # components that may contribute PostgreSQL parameters

    def prepare(self, lab: LabContext) -> None:
        pw = pwd.getpwnam(OS_USER)
        extra = extra_parameters(lab, self.others)
        for center in CENTERS:
            directory = node_dir(lab, center)
            for sub in (directory, socket_dir(lab, center)):
                sub.mkdir(parents=True, exist_ok=True)
                os.chown(sub, pw.pw_uid, pw.pw_gid)
                os.chmod(sub, 0o700)
            _install_etcd_client_tls(lab, center)
            config = render_config(lab, center, lab.settings.patroni_profile, extra)
            _write_owned(directory / "patroni.yml", yaml.safe_dump(config, sort_keys=False), 0o600)
            _write_owned(directory / "post_bootstrap.sh", post_bootstrap_script(lab), 0o700)
        lab.path("patroni").chmod(0o755)

    def reload(self, lab: LabContext) -> None:
        """Make running members re-read patroni.yml (a no-op when nothing changed)."""
        for center in CENTERS:
            try:
                requests.post(f"{api_url(lab, center)}/reload", timeout=2)
            except requests.RequestException:
                pass  # not running: it reads the file when it starts

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name=f"{center}-patroni", center=center, component="patroni",
                        command=[binaries.path("patroni"), str(node_dir(lab, center) / "patroni.yml")],
                        user=OS_USER, directory=node_dir(lab, center), priority=200)
                for center in CENTERS]

    def health(self, lab: LabContext) -> dict[str, dict]:
        summary = database_summary(lab)
        result = {}
        for center, member in summary["replicas"].items():
            healthy = member["state"] in RUNNING_STATES and member["streaming"]
            detail = (f"{member['role']}, {member['state']}" +
                      (", streaming" if member["streaming"] and member["role"] != "leader" else ""))
            result[center] = {"healthy": healthy, "role": member["role"], "detail": detail}
        return result

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        system = runtime.systems.setdefault(lab.system.name, SystemRuntime(
            name=lab.system.name, department=lab.system.department, tier=lab.system.tier))
        system.database = DatabaseCluster(
            cluster=scope(lab), dbname=app_dbname(lab), user=app_user(lab),
            password=SecretRef(file=str(lab.secret_file(app_password_secret(lab)))),
            superuser_password=SecretRef(file=str(lab.secret_file("postgres-superuser"))),
            replication_password=SecretRef(file=str(lab.secret_file("postgres-replication"))),
            rewind_password=SecretRef(file=str(lab.secret_file("postgres-rewind"))),
            timing=PatroniTiming(**PROFILES[lab.settings.patroni_profile]),
            client_networks=list(LAB_NETWORKS),
            members=[DbMember(name=member_name(c), center=c, host=lab.address(c),
                              port=Ports.postgres, api_url=api_url(lab, c),
                              intended_role=INTENDED[c]) for c in CENTERS],
            read_write=HostPort(host=lab.entry_address, port=Ports.db_read_write),
            read_only=HostPort(host=lab.entry_address, port=Ports.db_read_only),
            admin_user="postgres",
            admin_password=SecretRef(file=str(lab.secret_file("postgres-superuser"))),
        )
        for center in CENTERS:
            if not any(h.name == f"{center}-db" for h in runtime.hosts):
                runtime.hosts.append(Host(name=f"{center}-db", center=center, role=HostRole.db,
                                          address=lab.address(center),
                                          root=str(lab.path("hosts", f"{center}-db")),
                                          service_manager="supervisor",
                                          service_user=users.SERVICE_USER))


def component() -> Patroni:
    return Patroni()
