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

from inventory.model import GbtEdition, Tier


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


class TlsFiles(_Model):
    """A host's certificate, as paths on that host: the operator's own files in
    production, the lab CA's in the lab. The key is readable by root only; each role
    copies what its service needs, owned by that service's account."""

    ca: str = Field(pattern=r"^/")
    cert: str = Field(pattern=r"^/")
    key: str = Field(pattern=r"^/")


class HostControl(_Model):
    """How a drill acts on a host's services over SSH. `units`: the systemd units a
    center-level fault stops, freezes or starts (empty: the role's default units);
    `commands`: an action's command replacing the default (keys: kill_center,
    start_center, freeze_center, thaw_center, isolate_center, heal_center,
    kill_component:<component>, start_component:<component>; an empty command: the host
    has nothing that action acts on). `arm`/`disarm`: how a fault is armed to undo itself
    on the host after a deadline, even if tricenter dies, and disarmed by its undo —
    templates with {name}, {seconds} and {undo} (the undo command, shell-quoted); None:
    a systemd timer (`systemd-run --on-active`). A fault command may print the line
    `inventory.fault_line.FAULT_BEGINS` when it really acts: the drill times the fault
    from there (otherwise from the line the SSH world prints just before the command)."""

    units: list[str] = Field(default_factory=list)
    commands: dict[str, str] = Field(default_factory=dict)
    arm: str | None = None
    disarm: str | None = None


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
    # Under which directory the host's config and data live: "/" on a real host; in the
    # lab each host gets its own directory, so one machine holds many hosts.
    root: str = Field(default="/", pattern=r"^/")
    # Who runs the services: systemd on a real host; in the lab the lab's supervisord runs
    # them and the roles only write their config.
    service_manager: Literal["systemd", "supervisor"] = "systemd"
    # One account for every non-PostgreSQL service on the host (the lab's); None: each
    # role's own account (etcd, haproxy, prometheus, …).
    service_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]*$")
    tls: TlsFiles | None = None
    control: HostControl = HostControl()
    # On a database host: the interpreter Patroni (3.0.3 or later) is installed for. Debian
    # 12's python3-patroni is 3.0.2, which the postgresql_patroni role refuses.
    patroni_python: str = Field(default=DEFAULT_PYTHON_INTERPRETER, pattern=r"^/\S+$")



class DbMember(_Model):
    name: str  # Patroni member name
    center: str
    host: str  # address PostgreSQL listens on
    port: int = 5432
    api_url: str  # Patroni REST API, e.g. https://127.0.1.10:8008
    intended_role: DbIntendedRole


class HostPort(_Model):
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class PatroniTiming(_Model):
    """Patroni's DCS timing; keep loop_wait + 2 × retry_timeout ≤ ttl."""

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10


class DatabaseCluster(_Model):
    cluster: str  # Patroni scope
    dbname: str
    user: str
    password: SecretRef
    # PostgreSQL's own accounts; the configuration plane needs them, drills do not.
    superuser_password: SecretRef | None = None
    replication_password: SecretRef | None = None
    rewind_password: SecretRef | None = None
    timing: PatroniTiming = PatroniTiming()
    # Networks whose clients may connect (pg_hba); empty: every host of the inventory.
    client_networks: list[str] = Field(default_factory=list)
    members: list[DbMember]
    read_write: HostPort  # endpoint routed to the current primary
    read_only: HostPort  # endpoint routed to replicas
    admin_user: str | None = None  # a superuser, for steps that need one (subscriptions)
    admin_password: SecretRef | None = None
    # The account Patroni's REST API asks for on its unsafe endpoints (restart,
    # switchover, config, ...); reads (/cluster, /primary, /health) need none.
    api_user: str = "patroni"
    api_password: SecretRef | None = None

    def member(self, name: str) -> DbMember:
        found = next((m for m in self.members if m.name == name), None)
        if found is None:  # a StopIteration here once surfaced as "unexpected StopIteration"
            raise KeyError(f"cluster {self.cluster} has no member {name!r} in the runtime inventory "
                           f"(members: {', '.join(m.name for m in self.members)})")
        return found


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


class LegacyApp(_Model):
    """The system's application as it runs before migration, on the legacy host: cutover
    repoints it at the target, rollback back at the source."""

    url: str  # where it answers (the sample app's contract: /health, POST /records)
    # The file of its database settings (APP_DB_HOSTS, APP_DBNAME, APP_USER, APP_PASSFILE,
    # APP_SSLMODE, APP_SSLROOTCERT lines) on the legacy host; the migration rewrites it.
    database_env: str
    # Run on the legacy host after the file changed: makes the app re-read it (systemd:
    # `systemctl reload UNIT`).
    reload: list[str]


class LegacyRuntime(_Model):
    """Where a system runs before migration: the legacy host (a name in `hosts`), its
    database, its file trees and its application."""

    host: str
    database: PostgresAccess | None = None
    paths: list[str] = Field(default_factory=list)
    app: LegacyApp | None = None


class SystemRuntime(_Model):
    name: str
    department: str
    tier: str
    app_url: str | None = None  # the active-active application entry
    app_backends: dict[str, list[str]] = Field(default_factory=dict)  # center → instance URLs
    database: DatabaseCluster | None = None
    bucket: str | None = None
    legacy: LegacyRuntime | None = None  # the source of the system's migration


class TierTargets(_Model):
    """What a tier promises, carried with the runtime inventory so drills and exporters
    judge a system without the topology it was built from."""

    name: str
    rto_seconds: float = Field(gt=0)
    rpo_seconds: float = Field(ge=0)
    gbt20988_level: int = Field(ge=1, le=6)
    gbt20988_edition: GbtEdition = "2007"  # the level table the level refers to (inventory/standards/)

    @classmethod
    def of(cls, tier: Tier) -> "TierTargets":
        return cls(name=tier.name, rto_seconds=tier.rto_seconds, rpo_seconds=tier.rpo_seconds,
                   gbt20988_level=tier.gbt20988_level, gbt20988_edition=tier.gbt20988_edition)


class MissingTierTargets(LookupError):
    """A system's tier has no targets in the runtime inventory (written by an older version)."""


class CenterRuntime(_Model):
    name: str
    role: Literal["main", "samecity", "remote", "legacy"]
    addresses: list[str] = Field(default_factory=list)  # the center's network identity
    netns: str | None = None  # network namespace when the lab runs in netns mode


class ObjectStore(_Model):
    endpoint: str  # S3 API URL
    regions: dict[str, str] = Field(default_factory=dict)  # center → region name
    # The region S3 requests are signed for (Swift s3api's `location`): one per endpoint,
    # whichever center the client is in.
    s3_region: str = "us-east-1"
    access_key: SecretRef
    secret_key: SecretRef
    verify_tls: bool = True
    backup_bucket: str | None = None
    # Encrypts the backup repository (pgBackRest repo cipher): a copy of the bucket alone
    # restores nothing.
    backup_cipher_password: SecretRef | None = None


class EtcdAuth(_Model):
    """etcd's RBAC: `root` administers; Patroni's user may read and write only under its
    namespace, so a leaked Patroni password cannot touch another tenant's keys."""

    root_password: SecretRef
    patroni_user: str = Field(default="patroni", pattern=r"^[a-z_][a-z0-9_-]*$")
    patroni_password: SecretRef
    patroni_prefix: str = Field(default="/tricenter/", pattern=r"^/.*/$")  # Patroni's namespace
    # The PEM private key (ECDSA P-256) every member signs its auth tokens with (JWT): a
    # token stays good on every member and across restarts, so a client that moves to
    # another member does not log in again in the middle of a failover. None: etcd's
    # simple tokens, which live in one member's memory (fine for a trial, not production).
    token_signing_key: SecretRef | None = None
    # A read-only user on Patroni's namespace: the exporter reads every cluster's keys in
    # one request over a kept connection, where Patroni's REST API costs a TLS handshake per
    # cluster and scrape (it closes every connection). None: the exporter asks the REST API.
    monitor_user: str = Field(default="tricenter-monitor", pattern=r"^[a-z_][a-z0-9_-]*$")
    monitor_password: SecretRef | None = None


class Monitoring(_Model):
    """Monitoring that survives what it watches: each center has a Prometheus that scrapes
    that center's targets and evaluates the rules, and an Alertmanager member clustered
    with the other centers'; every Prometheus notifies every member, the cluster delivers
    each alert once."""

    prometheus_url: str | None = None  # the global view: federates the per-center ones
    prometheus: dict[str, str] = Field(default_factory=dict)  # center → its Prometheus URL
    exporters: dict[str, str] = Field(default_factory=dict)  # name → /metrics URL
    alertmanagers: dict[str, str] = Field(default_factory=dict)  # center → member URL
    alert_receiver_url: str | None = None  # records what Alertmanager delivers (drills read it)


class RuntimeInventory(_Model):
    source: str  # "lab" or "pulumi:<stack>"
    cloud: str
    centers: dict[str, CenterRuntime]
    hosts: list[Host] = Field(default_factory=list)
    systems: dict[str, SystemRuntime] = Field(default_factory=dict)
    etcd: list[str] = Field(default_factory=list)  # client URLs, one member per center
    tiers: dict[str, TierTargets] = Field(default_factory=dict)  # tier name → its targets
    # The drill world that acts on this environment (`tricenter drill run --world`): "lab"
    # drives the lab's own processes, "ssh" real hosts through their control commands.
    # Absent in files written before it existed: the lab's are "lab", every other "ssh".
    world: Literal["lab", "ssh"]
    etcd_auth: EtcdAuth | None = None
    object_store: ObjectStore | None = None
    monitoring: Monitoring = Monitoring()
    # The CA that signed the services' certificates, as a file where tricenter runs:
    # drills, exporters and migrations verify every TLS server against it.
    tls_ca_file: str | None = None
    # The certificate tricenter's own tools (exporter, lab, drills) present where a service
    # demands one: etcd accepts only clients with a certificate from that CA.
    client_tls: TlsFiles | None = None

    @model_validator(mode="after")
    def _monitoring_in_known_centers(self) -> "RuntimeInventory":
        for field_name in ("prometheus", "alertmanagers"):
            unknown = sorted(set(getattr(self.monitoring, field_name)) - set(self.centers))
            if unknown:
                raise ValueError(f"monitoring.{field_name}: {', '.join(unknown)} not in centers "
                                 f"({', '.join(sorted(self.centers))}); key each by its center")
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_world(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("world") is None:
            data = {**data, "world": "lab" if data.get("source") == "lab" else "ssh"}
        return data

    def tier_of(self, system: SystemRuntime) -> TierTargets:
        """The targets of the system's tier; MissingTierTargets says how to get them."""
        targets = self.tiers.get(system.tier)
        if targets is None:
            raise MissingTierTargets(
                f"system {system.name}: its tier '{system.tier}' has no targets under `tiers:` "
                "of the runtime inventory — write it again (`tricenter lab up`, or "
                "`tricenter runtime` for a cloud)")
        return targets

    def hosts_in(self, center: str) -> list[Host]:
        return [h for h in self.hosts if h.center == center]

    def save(self, file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(yaml.safe_dump(json.loads(self.model_dump_json()), sort_keys=False))

    @classmethod
    def load(cls, file: Path) -> "RuntimeInventory":
        return cls.model_validate(yaml.safe_load(file.read_text()))


def _url_host_port(url: str) -> tuple[str, int | None]:
    hostport = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else (hostport, None)


def _ref(ref: SecretRef | None) -> dict | None:
    return None if ref is None else ref.model_dump(exclude_none=True)


def _databases(runtime: RuntimeInventory) -> list[dict]:
    databases = []
    for system in runtime.systems.values():
        db = system.database
        if db is None:
            continue
        databases.append({
            "system": system.name, "tier": system.tier, "cluster": db.cluster,
            "dbname": db.dbname, "user": db.user, "password": _ref(db.password),
            "superuser_password": _ref(db.superuser_password),
            "replication_password": _ref(db.replication_password),
            "rewind_password": _ref(db.rewind_password),
            "api_user": db.api_user, "api_password": _ref(db.api_password),
            "timing": db.timing.model_dump(), "client_networks": db.client_networks,
            "members": [{**m.model_dump(mode="json"), "api_port": _url_host_port(m.api_url)[1]}
                        for m in db.members],
            "read_write": db.read_write.model_dump(), "read_only": db.read_only.model_dump(),
        })
    return databases


def _etcd_members(runtime: RuntimeInventory) -> list[dict]:
    """etcd members by client URL; the peer URL is the same host on etcd's peer port."""
    by_address = {h.address: h for h in runtime.hosts}
    center_of = {a: c.name for c in runtime.centers.values() for a in c.addresses}
    members = []
    for url in runtime.etcd:
        address, port = _url_host_port(url)
        host = by_address.get(address)
        center = host.center if host else center_of.get(address, address)
        scheme = url.split("://", 1)[0] if "://" in url else "http"
        members.append({"name": f"etcd-{center}", "center": center, "address": address,
                        "host": host.name if host else None, "client_url": url,
                        "client_port": port or 2379,
                        "peer_url": f"{scheme}://{address}:2380", "peer_port": 2380})
    return members


def _apps(runtime: RuntimeInventory) -> list[dict]:
    apps = []
    for system in runtime.systems.values():
        if not system.app_backends:
            continue
        backends = [{"center": center, "url": url, "address": _url_host_port(url)[0],
                     "port": _url_host_port(url)[1]}
                    for center, urls in sorted(system.app_backends.items()) for url in urls]
        entry = _url_host_port(system.app_url) if system.app_url else (None, None)
        apps.append({"system": system.name, "url": system.app_url, "entry_address": entry[0],
                     "entry_port": entry[1], "backends": backends})
    return apps


def _host_vars(runtime: RuntimeInventory, host: Host) -> dict:
    vars_: dict = {"ansible_python_interpreter": host.python_interpreter,
                   "tricenter_center": host.center, "tricenter_address": host.address,
                   "tricenter_role": host.role.value, "tricenter_root": host.root,
                   "tricenter_service_manager": host.service_manager}
    if host.service_user:
        vars_["tricenter_service_user"] = host.service_user
    if host.tls is not None:
        vars_["tricenter_tls"] = host.tls.model_dump()
    if host.role == HostRole.db:
        vars_["tricenter_patroni_python"] = host.patroni_python
    if host.database is not None:
        vars_.update({"tricenter_system": host.database.system,
                      "tricenter_cluster": host.database.cluster,
                      "tricenter_intended_role": host.database.intended_role.value})
    vars_.update(_members_and_instances(runtime, host))
    if host.ssh is None:
        return vars_
    vars_.update({"ansible_host": host.ssh.host, "ansible_port": host.ssh.port,
                  "ansible_user": host.ssh.user})
    if host.ssh.user == "root":
        # Already root: `su` needs no password and no sudo on the image.
        vars_["ansible_become_method"] = "su"
    if host.ssh.private_key and host.ssh.private_key.file:
        vars_["ansible_ssh_private_key_file"] = host.ssh.private_key.file
    if host.ssh.known_hosts_file:
        vars_["ansible_ssh_common_args"] = (
            f"-o UserKnownHostsFile={host.ssh.known_hosts_file} -o StrictHostKeyChecking=yes")
    return vars_


def _members_and_instances(runtime: RuntimeInventory, host: Host) -> dict:
    vars_: dict = {}
    members = [{"system": system.name, "cluster": system.database.cluster, **m.model_dump(mode="json")}
               for system in runtime.systems.values() if system.database
               for m in system.database.members if m.host == host.address]
    if members:
        vars_["tricenter_db_members"] = members
    instances = [{"system": app["system"], **backend} for app in _apps(runtime)
                 for backend in app["backends"] if backend["address"] == host.address]
    if instances:
        vars_["tricenter_app_instances"] = instances
    return vars_


def ansible_inventory(runtime: RuntimeInventory, reachable_only: bool = True) -> dict:
    """Ansible YAML inventory of the hosts Ansible can reach (those with an `ssh` entry):
    a group per role and per center, `etcd` for the hosts of the etcd members; host vars
    for SSH, the host's root and service manager, and the database members and app
    instances it carries; the cluster-wide facts the roles share in `all.vars`. Secrets
    appear only as references ({"file": …} or {"env": …})."""
    groups: dict[str, dict] = {}
    etcd_addresses = {m["address"] for m in _etcd_members(runtime)}
    hosts = [h for h in runtime.hosts if h.ssh is not None or not reachable_only]
    for host in hosts:
        names = [host.role.value, f"center_{host.center}"]
        if host.address in etcd_addresses:
            names.append("etcd")
        for group in names:
            groups.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    hostvars = {h.name: _host_vars(runtime, h) for h in hosts}
    for name in groups:
        for host in groups[name]["hosts"]:
            groups[name]["hosts"][host] = hostvars[host]
    all_vars: dict = {
        "tricenter_cloud": runtime.cloud,
        "tricenter_source": runtime.source,
        "tricenter_centers": {name: c.role for name, c in runtime.centers.items()},
        "tricenter_databases": _databases(runtime),
        "tricenter_etcd_members": _etcd_members(runtime),
        "tricenter_apps": _apps(runtime),
        "tricenter_prometheus_servers": _prometheus_servers(runtime),
        "tricenter_alertmanagers": _alertmanagers(runtime),
        "tricenter_prometheus_targets": prometheus_targets(runtime),
    }
    if runtime.monitoring.alert_receiver_url:
        all_vars["tricenter_alert_receiver_url"] = runtime.monitoring.alert_receiver_url
    if runtime.etcd_auth is not None:
        auth = runtime.etcd_auth
        all_vars["tricenter_etcd_auth"] = {
            "root_password": _ref(auth.root_password), "patroni_user": auth.patroni_user,
            "patroni_password": _ref(auth.patroni_password), "patroni_prefix": auth.patroni_prefix}
        if auth.token_signing_key is not None:
            all_vars["tricenter_etcd_auth"]["token_signing_key"] = _ref(auth.token_signing_key)
        if auth.monitor_password is not None:
            all_vars["tricenter_etcd_auth"].update(monitor_user=auth.monitor_user,
                                                   monitor_password=_ref(auth.monitor_password))
    if runtime.object_store is not None:
        store = runtime.object_store
        all_vars["tricenter_object_store"] = {
            "endpoint": store.endpoint, "regions": store.regions, "s3_region": store.s3_region,
            "access_key": _ref(store.access_key), "secret_key": _ref(store.secret_key),
            "verify_tls": store.verify_tls, "backup_bucket": store.backup_bucket,
            "backup_cipher_password": _ref(store.backup_cipher_password)}
    return {"all": {"children": groups, "vars": all_vars}}


def _prometheus_servers(runtime: RuntimeInventory) -> list[dict]:
    """Every Prometheus: `center` scope scrapes its center and alerts; `global` federates."""
    def server(center: str | None, scope: str, url: str) -> dict:
        return {"center": center, "scope": scope, "url": url, "address": _url_host_port(url)[0],
                "netloc": _netloc(url)}

    servers = [server(center, "center", url)
               for center, url in sorted(runtime.monitoring.prometheus.items())]
    if runtime.monitoring.prometheus_url:
        servers.append(server(None, "global", runtime.monitoring.prometheus_url))
    return servers


def _netloc(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _alertmanagers(runtime: RuntimeInventory) -> list[dict]:
    return [{"center": center, "url": url, "netloc": _netloc(url), "address": _url_host_port(url)[0]}
            for center, url in sorted(runtime.monitoring.alertmanagers.items())]


def prometheus_targets(runtime: RuntimeInventory) -> list[dict]:
    """file_sd target groups of the exporters every Prometheus scrapes. Patroni and etcd,
    scraped by their own center's Prometheus, have scrape jobs of their own in the role's
    template (their scheme and TLS settings live there)."""
    targets: list[dict] = []
    for name, url in sorted(runtime.monitoring.exporters.items()):
        hostport = url.split("://", 1)[-1].split("/", 1)[0]
        targets.append({"targets": [hostport], "labels": {"job": "tricenter", "exporter": name}})
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
