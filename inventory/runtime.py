"""The runtime inventory: what exists, where — the seam between provisioning and the
other planes.

Pulumi stack outputs (`stacks/`) and `tricenter lab up` (`lab/`) both produce this
format; playbooks, exporters and drills read only this, so they run unchanged against
the lab and against a real cloud. Secrets never appear here: only references to them.
"""
from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRef(_Model):
    """Where a secret can be read, never the secret itself: exactly one of the fields."""

    env: str | None = None  # name of an environment variable
    file: str | None = None  # path of a file readable only by its owner
    vault: str | None = None  # e.g. "kv/tricenter/guangdong/identity#password"
    pulumi: str | None = None  # stack output holding a Pulumi secret

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        set_fields = [f for f in ("env", "file", "vault", "pulumi") if getattr(self, f)]
        if len(set_fields) != 1:
            raise ValueError("a secret reference names exactly one of env, file, vault, pulumi")
        return self


class HostRole(str, enum.Enum):
    app = "app"
    db = "db"
    legacy = "legacy"
    lb = "lb"
    monitoring = "monitoring"


class SshAccess(_Model):
    host: str
    port: int = 22
    user: str
    private_key: SecretRef | None = None
    known_hosts_file: str | None = None  # host keys are verified, never auto-accepted


# Named, never discovered: Ansible's discovery can pick a version manager's shim that
# fails on the target. The system python is what a Debian/RHEL image has.
DEFAULT_PYTHON_INTERPRETER = "/usr/bin/python3"


class DbIntendedRole(str, enum.Enum):
    leader = "leader"
    sync = "sync"
    async_ = "async"


class HostDatabase(_Model):
    """What a database host is for: the planes pick members by this, not by name."""

    system: str
    cluster: str  # Patroni scope
    intended_role: DbIntendedRole


class Host(_Model):
    name: str
    center: str
    role: HostRole
    address: str
    ssh: SshAccess | None = None
    python_interpreter: str = Field(default=DEFAULT_PYTHON_INTERPRETER, pattern=r"^/\S+$")
    # Public host keys ("ssh-ed25519 AAAA…"), as the VM printed them at first boot.
    host_keys: list[str] = Field(default_factory=list)
    database: HostDatabase | None = None


class DbMember(_Model):
    name: str  # Patroni member name
    center: str
    host: str  # address PostgreSQL listens on
    port: int = 5432
    api_url: str  # Patroni REST API, e.g. http://127.0.1.10:8008
    intended_role: DbIntendedRole


class HostPort(_Model):
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class DatabaseCluster(_Model):
    cluster: str  # Patroni scope
    dbname: str
    user: str
    password: SecretRef
    members: list[DbMember]
    read_write: HostPort  # endpoint routed to the current primary
    read_only: HostPort  # endpoint routed to replicas
    admin_user: str | None = None  # a superuser, for steps that need one (subscriptions)
    admin_password: SecretRef | None = None

    def member(self, name: str) -> DbMember:
        return next(m for m in self.members if m.name == name)


class PostgresAccess(_Model):
    """A PostgreSQL server as a migration reaches it: an application login and, where a
    step needs one (subscribing the source back to the target on rollback), a superuser."""

    host: str
    port: int = 5432
    dbname: str
    user: str
    password: SecretRef
    admin_user: str | None = None
    admin_password: SecretRef | None = None


class LegacyRuntime(_Model):
    """Where a system runs before migration: the legacy host (a name in `hosts`), its
    database and its file trees."""

    host: str
    database: PostgresAccess | None = None
    paths: list[str] = Field(default_factory=list)


class SystemRuntime(_Model):
    name: str
    department: str
    tier: str
    app_url: str | None = None  # the active-active application entry
    app_backends: dict[str, list[str]] = Field(default_factory=dict)  # center → instance URLs
    database: DatabaseCluster | None = None
    bucket: str | None = None
    legacy: LegacyRuntime | None = None  # the source of the system's migration


class CenterRuntime(_Model):
    name: str
    role: Literal["main", "samecity", "remote", "legacy"]
    addresses: list[str] = Field(default_factory=list)  # the center's network identity
    netns: str | None = None  # network namespace when the lab runs in netns mode


class ObjectStore(_Model):
    endpoint: str  # S3 API URL
    regions: dict[str, str] = Field(default_factory=dict)  # center → region name
    access_key: SecretRef
    secret_key: SecretRef
    verify_tls: bool = True
    backup_bucket: str | None = None


class Monitoring(_Model):
    prometheus_url: str | None = None
    exporters: dict[str, str] = Field(default_factory=dict)  # name → /metrics URL


class RuntimeInventory(_Model):
    source: str  # "lab" or "pulumi:<stack>"
    cloud: str
    centers: dict[str, CenterRuntime]
    hosts: list[Host] = Field(default_factory=list)
    systems: dict[str, SystemRuntime] = Field(default_factory=dict)
    etcd: list[str] = Field(default_factory=list)  # client URLs, one member per center
    object_store: ObjectStore | None = None
    monitoring: Monitoring = Monitoring()

    def hosts_in(self, center: str) -> list[Host]:
        return [h for h in self.hosts if h.center == center]

    def save(self, file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(yaml.safe_dump(json.loads(self.model_dump_json()), sort_keys=False))

    @classmethod
    def load(cls, file: Path) -> "RuntimeInventory":
        return cls.model_validate(yaml.safe_load(file.read_text()))


def ansible_inventory(runtime: RuntimeInventory) -> dict:
    """Ansible YAML inventory: groups per role and per center, host vars for SSH."""
    groups: dict[str, dict] = {}
    hostvars: dict[str, dict] = {}
    for host in runtime.hosts:
        if host.ssh is None:
            continue
        vars_ = {"ansible_host": host.ssh.host, "ansible_port": host.ssh.port,
                 "ansible_user": host.ssh.user,
                 "ansible_python_interpreter": host.python_interpreter,
                 "tricenter_center": host.center, "tricenter_address": host.address}
        if host.ssh.private_key and host.ssh.private_key.file:
            vars_["ansible_ssh_private_key_file"] = host.ssh.private_key.file
        if host.ssh.known_hosts_file:
            vars_["ansible_ssh_common_args"] = (
                f"-o UserKnownHostsFile={host.ssh.known_hosts_file} -o StrictHostKeyChecking=yes")
        if host.database is not None:
            vars_.update({"tricenter_system": host.database.system,
                          "tricenter_cluster": host.database.cluster,
                          "tricenter_intended_role": host.database.intended_role.value})
        hostvars[host.name] = vars_
        for group in (host.role.value, f"center_{host.center}"):
            groups.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    for name in groups:
        for host in groups[name]["hosts"]:
            groups[name]["hosts"][host] = hostvars[host]
    return {"all": {"children": groups, "vars": {"tricenter_cloud": runtime.cloud}}}


def prometheus_targets(runtime: RuntimeInventory) -> list[dict]:
    """file_sd target groups: one per exporter and per Patroni member."""
    targets: list[dict] = []
    for name, url in sorted(runtime.monitoring.exporters.items()):
        hostport = url.split("://", 1)[-1].split("/", 1)[0]
        targets.append({"targets": [hostport], "labels": {"job": "tricenter", "exporter": name}})
    for system in runtime.systems.values():
        if system.database is None:
            continue
        for member in system.database.members:
            hostport = member.api_url.split("://", 1)[-1].rstrip("/")
            targets.append({"targets": [hostport], "labels": {
                "job": "patroni", "system": system.name, "center": member.center,
                "member": member.name}})
    return targets


def known_hosts(runtime: RuntimeInventory) -> str:
    """OpenSSH known_hosts lines for every host whose keys are known."""
    lines = []
    for host in runtime.hosts:
        if host.ssh is None:
            continue
        name = host.ssh.host if host.ssh.port == 22 else f"[{host.ssh.host}]:{host.ssh.port}"
        lines += [f"{name} {key}" for key in host.host_keys]
    return "".join(f"{line}\n" for line in lines)
