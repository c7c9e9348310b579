"""Stack outputs that form the runtime inventory, and the converter back from them.

A stack exports `runtime` (plain data: hosts, entries, database members of its center)
and `database_passwords` (a Pulumi secret). The runtime inventory only ever holds a
reference to the secret output, never its value.
"""
from __future__ import annotations

from typing import Any

from inventory.model import DbReplication
from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember, Host,
                               HostDatabase, HostPort, HostRole, RuntimeInventory, SecretRef,
                               SshAccess, SystemRuntime, TierTargets)
from stacks.layout import PATRONI_API_PORT, POSTGRES_PORT, StackLayout

RUNTIME_OUTPUT = "runtime"
PASSWORDS_OUTPUT = "database_passwords"
INTENDED = {DbReplication.primary: DbIntendedRole.leader, DbReplication.sync: DbIntendedRole.sync,
            DbReplication.async_: DbIntendedRole.async_}


def runtime_output(layout: StackLayout, ssh_user: str) -> dict[str, Any]:
    """This center's share of the runtime inventory, as plain JSON-able data."""
    hosts: list[dict] = []
    systems: dict[str, dict] = {}
    for s in layout.systems:
        for vm in s.app_instances:
            hosts.append({"name": vm.name, "role": "app", "address": vm.address,
                          "system": s.name})
        entry: dict[str, Any] = {
            "department": s.department, "tier": s.tier.name, "app_placement": s.app_placement.value,
            "tier_targets": TierTargets.of(s.tier).model_dump(mode="json"),
            "app_port": next(iter(s.entry_ports), s.system.app.port),
            "app_backends": [f"http://{vm.address}:{s.system.app.port}" for vm in s.app_instances],
            "lb_vip": s.lb_vip, "dns": sorted(s.dns_records), "backup_container": s.backup_container,
            "db_member": None,
        }
        if s.db_member is not None:
            m = s.db_member
            hosts.append({"name": m.name, "role": "db", "address": m.address, "system": s.name,
                          "cluster": s.name, "intended_role": m.intended_role.value})
            entry["db_member"] = {"name": m.name, "host": m.address, "port": POSTGRES_PORT,
                                  "api_url": f"https://{m.address}:{PATRONI_API_PORT}",  # the role serves TLS only
                                  "intended_role": m.intended_role.value}
        systems[s.name] = entry
    return {"cloud": layout.cloud.name, "center": layout.center_name,
            "role": layout.center.role.value, "ssh_user": ssh_user, "hosts": hosts,
            "systems": systems}


def _merge_system(stack: str, name: str, part: dict, into: dict[str, SystemRuntime],
                  members: dict[str, list[DbMember]], vips: dict[str, list[str]],
                  center: str) -> None:
    system = into.setdefault(name, SystemRuntime(name=name, department=part["department"],
                                                 tier=part["tier"]))
    if part["app_backends"] and part["app_placement"] == "active":
        # Pilot-light instances are hosts, not backends: they serve only after a recovery.
        system.app_backends[center] = part["app_backends"]
    if part["lb_vip"] and part["app_placement"] == "active":
        vips.setdefault(name, []).append(f"http://{part['lb_vip']}:{part['app_port']}")
    if part["dns"]:
        system.app_url = f"http://{part['dns'][0].rstrip('.')}:{part['app_port']}"
    if part["backup_container"]:
        system.bucket = part["backup_container"]
    m = part["db_member"]
    if m:
        members.setdefault(name, []).append(DbMember(
            name=m["name"], center=center, host=m["host"], port=m["port"], api_url=m["api_url"],
            intended_role=INTENDED[DbReplication(m["intended_role"])]))


def _host(h: dict, center: str, ssh_user: str, keys: dict[str, list[str]]) -> Host:
    database = None
    if h["role"] == "db" and "cluster" in h:
        database = HostDatabase(system=h["system"], cluster=h["cluster"],
                                intended_role=INTENDED[DbReplication(h["intended_role"])])
    return Host(name=h["name"], center=center, role=HostRole(h["role"]), address=h["address"],
                ssh=SshAccess(host=h["address"], user=ssh_user),
                host_keys=keys.get(h["name"], []), database=database)


def runtime_inventory(outputs: dict[str, dict[str, Any]], source: str,
                      host_keys: dict[str, list[str]] | None = None) -> RuntimeInventory:
    """Merge the `runtime` outputs of one cloud's stacks (stack name → outputs).

    `host_keys` (host name → public keys, see stacks/hostkeys.py) go with each host, so
    SSH clients check them instead of trusting whatever answers first."""
    parts = {stack: out[RUNTIME_OUTPUT] for stack, out in sorted(outputs.items())}
    clouds = {p["cloud"] for p in parts.values()}
    if len(clouds) != 1:
        raise ValueError(f"stacks of exactly one cloud make one runtime inventory (got {sorted(clouds)})")
    runtime = RuntimeInventory(source=source, cloud=clouds.pop(), centers={})
    members: dict[str, list[DbMember]] = {}
    vips: dict[str, list[str]] = {}
    # The cloud's identity stack (its main center's) exports every system's passwords.
    identity_stack = next((stack for stack, part in parts.items() if part["role"] == "main"),
                          None)
    for stack, part in parts.items():
        center = part["center"]
        runtime.centers[center] = CenterRuntime(name=center, role=part["role"])
        for h in part["hosts"]:
            runtime.hosts.append(_host(h, center, part["ssh_user"], host_keys or {}))
            runtime.centers[center].addresses.append(h["address"])
        for name, sys_part in part["systems"].items():
            if "tier_targets" in sys_part:  # stacks updated before it was exported lack it
                runtime.tiers.setdefault(sys_part["tier"], TierTargets(**sys_part["tier_targets"]))
            _merge_system(stack, name, sys_part, runtime.systems, members, vips, center)

    for name, system in runtime.systems.items():
        if system.app_url is None and vips.get(name):
            system.app_url = vips[name][0]
        cluster = members.get(name)
        if not cluster:
            continue
        leader = next((m for m in cluster if m.intended_role == DbIntendedRole.leader), cluster[0])
        replica = next((m for m in cluster if m.intended_role != DbIntendedRole.leader), leader)
        if identity_stack is None:
            raise ValueError("the outputs of the cloud's main-center stack are needed: it "
                             "holds the database passwords")
        system.database = DatabaseCluster(
            cluster=name, dbname=name.replace("-", "_"), user="app",
            password=SecretRef(pulumi=f"{identity_stack}:{PASSWORDS_OUTPUT}.{name}.app"),
            members=sorted(cluster, key=lambda m: m.name),
            # No database entry (VIP/LB) is provisioned yet: these name the intended
            # leader and a replica; clients should list all members with
            # target_session_attrs=read-write so a failover needs no change here.
            read_write=HostPort(host=leader.host, port=leader.port),
            read_only=HostPort(host=replica.host, port=replica.port))
    return runtime
