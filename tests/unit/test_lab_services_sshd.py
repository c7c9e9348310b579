"""OpenSSH hosts: configs sshd itself accepts, host keys pinned in known_hosts, hosts in
the runtime and Ansible inventories; the legacy database's settings and seed."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from inventory.runtime import (CenterRuntime, Host, HostRole, RuntimeInventory,
                               ansible_inventory)
from lab.components import legacy, sshd
from lab.context import LabContext


@pytest.fixture
def lab(tmp_path: Path) -> LabContext:
    ctx = LabContext(root=tmp_path / "lab")
    for host in sshd.hosts(ctx):
        sshd._keygen(sshd.host_key(ctx, host), host.name)
    sshd._keygen(sshd.client_key(ctx), "test")
    return ctx


def test_every_lab_host_has_ssh_and_its_own_root(lab):
    hosts = {h.name: h for h in sshd.hosts(lab)}
    assert {(h.center, h.role) for h in hosts.values()} == {
        ("main", "db"), ("samecity", "db"), ("remote", "db"),
        ("main", "app"), ("samecity", "app"), ("global", "lb"), ("global", "monitoring"),
        ("main", "monitoring"), ("samecity", "monitoring"), ("remote", "monitoring"),
        ("legacy", "legacy")}
    assert {n for n, h in hosts.items() if h.role == "legacy"} == {"legacy-registry",
                                                                    "legacy-subsidy"}
    assert hosts["main-app"].address == lab.address("main", "app")
    assert hosts["remote-db"].address == lab.address("remote", "db")
    assert hosts["global-lb"].address == lab.entry_address
    roots = {sshd.host_root(lab, h.name) for h in hosts.values()}
    assert len(roots) == len(hosts) and all(r.is_relative_to(lab.root) for r in roots)
    legacy_host = hosts[legacy.host_name(lab)]
    assert legacy_host.address == legacy.address(lab) == lab.address("legacy", "db")


def test_sshd_accepts_each_generated_config(lab):
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for host in sshd.hosts(lab):
        config = sshd.host_dir(lab, host) / "sshd_config"
        config.write_text(sshd.render_sshd_config(lab, host))
        text = config.read_text()
        for line in (f"Port {sshd.PORT}", f"ListenAddress {host.address}", "UsePAM no",
                     "StrictModes no", "PasswordAuthentication no"):
            assert line in text.splitlines()
        checked = subprocess.run([sshd.SSHD, "-t", "-f", str(config)], capture_output=True,
                                 text=True)
        assert checked.returncode == 0, checked.stderr


def test_known_hosts_pins_each_hosts_own_key_at_its_port(lab):
    lines = sshd.known_hosts_lines(lab)
    hosts = sshd.hosts(lab)
    assert len(lines) == len(hosts) == len({line.split()[2] for line in lines})
    for host, line in zip(hosts, lines):
        assert line.startswith(f"[{host.address}]:{sshd.PORT} ssh-ed25519 ")
        assert line.split()[2] == Path(f"{sshd.host_key(lab, host)}.pub").read_text().split()[1]


def test_runtime_inventory_gives_ansible_verified_ssh_to_every_host(lab):
    runtime = RuntimeInventory(source="lab", cloud="lab", centers={
        c: CenterRuntime(name=c, role=c) for c in ("main", "samecity", "remote", "legacy")})
    # The app component lists its hosts first; sshd must add SSH to them, not duplicate.
    runtime.hosts.append(Host(name="main-app", center="main", role=HostRole.app,
                              address=lab.address("main", "app")))
    sshd.SshHosts().add_to_runtime(lab, runtime)
    assert sorted(h.name for h in runtime.hosts) == sorted(h.name for h in sshd.hosts(lab))
    inventory = ansible_inventory(runtime)
    groups = inventory["all"]["children"]
    assert set(groups["legacy"]["hosts"]) == {"legacy-registry", "legacy-subsidy"}
    assert set(groups["db"]["hosts"]) == {"main-db", "samecity-db", "remote-db", "main-db2", "remote-db2"}
    assert set(groups["lb"]["hosts"]) == {"global-lb"}
    # A Prometheus (and an Alertmanager member) per center, the global view at the entry.
    assert set(groups["monitoring"]["hosts"]) == {
        "global-monitoring", "main-monitoring", "samecity-monitoring", "remote-monitoring"}
    for group in ("app", "legacy", "db", "lb", "monitoring"):
        for name, hostvars in groups[group]["hosts"].items():
            assert hostvars["ansible_port"] == sshd.PORT
            assert hostvars["ansible_ssh_private_key_file"] == str(sshd.client_key(lab))
            assert "StrictHostKeyChecking=yes" in hostvars["ansible_ssh_common_args"]
            assert str(sshd.known_hosts(lab)) in hostvars["ansible_ssh_common_args"]
            assert hostvars["tricenter_root"] == str(lab.path("hosts", name))
            assert hostvars["tricenter_service_manager"] == "supervisor"
            _assert_host_certificate(hostvars["tricenter_tls"], name, runtime.tls_ca_file)


def _assert_host_certificate(tls: dict, host: str, ca_file: str) -> None:
    """Each host has its own certificate from the lab CA, the one clients verify with."""
    import ssl

    assert tls["ca"] == ca_file
    assert Path(tls["cert"]).name == f"{host}.crt"
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(tls["cert"], tls["key"])


def test_programs_make_each_host_part_of_its_center(lab):
    programs = {p.name: p for p in sshd.SshHosts().programs(lab)}
    legacy_app_program_name = f"legacy-{lab.system.name}-app"
    assert set(programs) == {f"{h.name}-sshd" for h in sshd.hosts(lab)} | {"legacy-postgres", legacy_app_program_name}
    assert {programs[f"{h.name}-sshd"].center for h in sshd.hosts(lab)} == {
        "main", "samecity", "remote", "global", "legacy"}
    assert programs["legacy-postgres"].user == "postgres"
    assert programs["legacy-postgres"].component == "postgres"
    assert programs[legacy_app_program_name].component == "app"  # the legacy system's own app
    # foreground under supervisord
    assert all("-D" in p.command for name, p in programs.items() if name != legacy_app_program_name)


def test_legacy_database_is_ready_for_logical_replication(lab):
    settings = legacy.server_settings(lab)
    assert settings["wal_level"] == "logical"
    assert settings["listen_addresses"] == f"'{legacy.address(lab)}'"
    owner = legacy.owner_statements(lab, "pw'quote", "admin'pw")
    assert "PASSWORD 'pw''quote'" in owner  # quoted, not injected
    assert "ALTER ROLE \"postgres\" PASSWORD 'admin''pw'" in owner
    assert 'CREATE ROLE "registry_legacy" LOGIN REPLICATION' in owner
    assert 'CREATE DATABASE "registry" OWNER "registry_legacy"' in owner
    assert legacy.source(lab)["database"]["password"] == {
        "file": str(lab.secret_file(legacy.password_secret(lab)))}


def test_every_legacy_system_of_the_lab_is_named_in_the_runtime_inventory(lab):
    """Two legacy systems, one database server: each system has its own legacy host (where
    migration steps run), database, login and file share; only the sample system has a
    target in the lab."""
    runtime = RuntimeInventory(source="lab", cloud="lab", centers={})
    sshd.SshHosts().add_to_runtime(lab, runtime)
    registry, subsidy = runtime.systems["registry"].legacy, runtime.systems["subsidy"].legacy
    assert (registry.host, subsidy.host) == ("legacy-registry", "legacy-subsidy")
    assert registry.database.host == subsidy.database.host == legacy.address(lab)
    assert (registry.database.dbname, subsidy.database.dbname) == ("registry", "subsidy")
    assert subsidy.database.user == "subsidy_legacy"
    assert subsidy.database.password.file != registry.database.password.file
    assert subsidy.database.admin_password == registry.database.admin_password
    assert subsidy.paths == [str(lab.root / "legacy" / "files" / "subsidy")]
    addresses = {h.name: h.address for h in runtime.hosts}
    assert addresses["legacy-subsidy"] == lab.address("legacy", "app")
    assert runtime.systems["subsidy"].database is None


def test_the_second_legacy_system_has_what_precheck_must_catch():
    schema = legacy.subsidy_schema_sql("subsidy_legacy")
    assert schema.startswith('SET ROLE "subsidy_legacy";')
    assert "bigserial PRIMARY KEY" in schema  # sequences to carry over
    audit = schema.split("CREATE TABLE audit_log")[1].split(");")[0]
    assert "PRIMARY KEY" not in audit and "UNIQUE" not in audit
