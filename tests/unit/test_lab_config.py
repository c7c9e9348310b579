"""The lab's generated configs say what the lab promises, before any process runs."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from inventory.runtime import DbIntendedRole
from lab import binaries
from lab.components import app, etcd, haproxy, patroni
from lab.context import CENTERS, LabContext
from lab.lab import Lab
from lab.supervisor import render_conf

CORE = [etcd.component(), patroni.component(), app.component(), haproxy.component()]


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabContext:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    return LabContext(root=tmp_path / "lab")


def programs(ctx: LabContext):
    return [p for c in CORE for p in c.programs(ctx)]


# --- addresses and secrets ------------------------------------------------------------

def test_the_runtime_inventory_carries_every_tier_and_names_the_lab_world(ctx, tmp_path) -> None:
    runtime = Lab(ctx, components=CORE).runtime_inventory()
    runtime.save(tmp_path / "runtime.yaml")
    loaded = type(runtime).load(tmp_path / "runtime.yaml")
    assert loaded.world == "lab" and set(loaded.tiers) == set(ctx.topology.tiers)
    system = loaded.systems[ctx.system.name]
    tier = ctx.topology.tiers[system.tier]
    assert loaded.tier_of(system).rto_seconds == tier.rto_seconds
    assert loaded.tier_of(system).gbt20988_edition == tier.gbt20988_edition


def test_each_center_has_its_own_addresses_and_the_same_ports(ctx: LabContext) -> None:
    assert [ctx.address(c) for c in (*CENTERS, "legacy")] == [
        "127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.9.1"]
    assert ctx.address("main", "app") == "127.0.1.2"
    assert ctx.entry_address == "127.0.10.6"


def test_a_second_lab_slot_shifts_every_address(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRICENTER_LAB_SLOT", "1")
    assert LabContext(root=tmp_path).address("samecity") == "127.0.2.21"


def test_secrets_are_generated_once_and_readable_only_by_their_owner(ctx: LabContext) -> None:
    file = ctx.secret_file("postgres-superuser")
    first = ctx.secret("postgres-superuser")
    assert file.stat().st_mode & 0o777 == 0o600
    assert ctx.secrets_dir.stat().st_mode & 0o777 == 0o700
    assert ctx.secret("postgres-superuser") == first and len(first) >= 24


# --- supervisord ------------------------------------------------------------------------

def test_supervisord_never_restarts_a_killed_program_and_logs_per_program(ctx) -> None:
    parser = configparser.RawConfigParser()
    parser.read_string(render_conf(ctx, programs(ctx)))
    sections = [s for s in parser.sections() if s.startswith("program:")]
    # etcd, the registry's Patroni, the charity's (main and remote only), app, haproxy
    assert len(sections) == 3 + 3 + 2 + 2 + 1
    for section in sections:
        name = section.split(":", 1)[1]
        assert parser[section]["autorestart"] == "false"
        assert parser[section]["stopasgroup"] == parser[section]["killasgroup"] == "true"
        assert parser[section]["stdout_logfile"] == str(ctx.logs_dir / f"{name}.log")
    assert not [s for s in parser.sections() if s.startswith("group:")]


def test_postgres_and_patroni_run_as_the_postgres_user(ctx) -> None:
    parser = configparser.RawConfigParser()
    parser.read_string(render_conf(ctx, programs(ctx)))
    for center in CENTERS:
        section = parser[f"program:{center}-patroni"]
        assert section["user"] == "postgres"
        assert 'HOME="' in section["environment"]
    assert parser["program:main-etcd"]["user"] == "tricenter-lab"


def test_etcd_members_form_one_quorum_across_the_three_centers(ctx) -> None:
    config = yaml.safe_load(etcd.render_config(Lab(ctx).runtime_inventory(), "samecity"))
    cluster = config["initial-cluster"].split(",")
    assert sorted(cluster) == sorted(f"etcd-{c}=https://{ctx.address(c)}:2380" for c in CENTERS)
    assert config["listen-client-urls"] == "https://127.0.2.1:2379"
    # Patroni and the lab's health checks use the v3 JSON gateway, off by default in a file.
    assert config["enable-grpc-gateway"] is True


def test_etcd_runs_the_roles_config_and_keeps_data_under_its_hosts_root(ctx) -> None:
    from playbooks.render import renderer

    runtime = Lab(ctx).runtime_inventory()
    role = renderer(runtime, etcd.host_name("remote"), "etcd")
    assert role.var("etcd_config_file") == str(etcd.config_file(ctx, "remote"))
    assert role.var("etcd_data_dir") == str(etcd.data_dir(ctx, "remote"))
    assert yaml.safe_load(etcd.render_config(runtime, "remote"))["data-dir"] == str(
        etcd.data_dir(ctx, "remote"))
    assert etcd.command(ctx, "remote")[1:] == ["--config-file", str(etcd.config_file(ctx, "remote"))]


def test_etcd_db_hosts_have_their_own_root_without_the_ssh_component(ctx) -> None:
    # Only the core components: the db hosts come from Patroni and must still not be "/".
    runtime = Lab(ctx, components=CORE).runtime_inventory()
    roots = {h.name: h.root for h in runtime.hosts if h.role.value == "db"}
    # the charity's members run where its general tier places them: main and remote
    hosts = [f"{c}-db" for c in CENTERS] + ["main-db2", "remote-db2"]
    assert roots == {h: str(ctx.path("hosts", h)) for h in hosts}


def test_etcd_data_made_with_plain_http_peers_starts_afresh_once(ctx) -> None:
    # A member keeps its peers' URLs in its data: one made before peer TLS would dial
    # http:// peers that now speak https forever. An older lab's data goes, once.
    Lab(ctx).write_runtime_files()
    for old in (etcd.data_dir(ctx, "main") / "member", ctx.path("etcd", "main", "data", "member")):
        old.mkdir(parents=True)
        (old / "wal").write_text("x")
    etcd.component().prepare(ctx)
    assert not (etcd.data_dir(ctx, "main") / "member").exists() and not ctx.path("etcd").exists()
    (etcd.data_dir(ctx, "main") / "member").mkdir()
    (etcd.data_dir(ctx, "main") / "member" / "wal").write_text("https")
    etcd.component().prepare(ctx)
    assert (etcd.data_dir(ctx, "main") / "member" / "wal").read_text() == "https"


# --- Patroni ------------------------------------------------------------------------------

def _patroni_config(ctx: LabContext, center: str, profile: str = "fast") -> dict:
    """The member's patroni.yml: the postgresql_patroni role's template for its host."""
    ctx.settings.patroni_profile = profile
    return yaml.safe_load(patroni.render_config(Lab(ctx, components=CORE).runtime_inventory(), patroni.host_name(center)))


def test_patroni_uses_etcd3_synchronous_mode_and_rewind(ctx) -> None:
    config = _patroni_config(ctx, "main", "stock")
    assert config["etcd3"]["hosts"] == [f"{ctx.address(c)}:2379" for c in CENTERS]
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert "data-checksums" in config["bootstrap"]["initdb"]
    assert config["postgresql"]["authentication"]["rewind"]["username"]
    assert config["postgresql"]["listen"] == "127.0.1.1:5432"


def test_only_the_remote_member_is_never_promoted_nor_synchronous(ctx) -> None:
    tags = {c: _patroni_config(ctx, c)["tags"] for c in CENTERS}
    assert tags["remote"]["nofailover"] is True and tags["remote"]["nosync"] is True
    for center in ("main", "samecity"):
        assert tags[center]["nofailover"] is False and tags[center]["nosync"] is False


def test_every_member_has_its_own_unix_socket_directory(ctx) -> None:
    sockets = {_patroni_config(ctx, c)["postgresql"]["parameters"]
               ["unix_socket_directories"] for c in CENTERS}
    assert len(sockets) == 3


@pytest.mark.parametrize("profile", ["fast", "stock"])
def test_timing_profiles_keep_patronis_safety_bound(ctx, profile: str) -> None:
    dcs = _patroni_config(ctx, "main", profile)["bootstrap"]["dcs"]
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert all(isinstance(dcs[k], int) for k in ("ttl", "loop_wait", "retry_timeout"))


def test_the_profiles_are_patronis_defaults_and_a_fast_one(ctx) -> None:
    assert patroni.PROFILES["stock"] == {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
    assert patroni.PROFILES["fast"]["ttl"] <= 6 and patroni.PROFILES["fast"]["loop_wait"] == 1


def test_members_run_the_pinned_patroni_with_the_fenced_leader_update(ctx) -> None:
    for program in patroni.Patroni().programs(ctx):
        assert program.command[0] == binaries.path("patroni-python")
        assert program.command[1].endswith("/etc/patroni/patroni_launcher.py")
    # ... the interpreter the role checks and its unit would run (host.patroni_python)
    db_hosts = [h for h in Lab(ctx, components=CORE).runtime_inventory().hosts if h.role.value == "db"]
    assert db_hosts and {h.patroni_python for h in db_hosts} == {str(binaries.path("patroni-python"))}


def test_the_app_role_and_database_are_created_once_after_bootstrap(ctx) -> None:
    script = patroni.role(Lab(ctx, components=CORE).runtime_inventory(), "main-db").template(
        "post_bootstrap.sh.j2")
    assert 'CREATE ROLE "registry" LOGIN' in script
    assert 'CREATE DATABASE "registry" OWNER "registry"' in script


# --- HAProxy ------------------------------------------------------------------------------

def _haproxy_config(ctx: LabContext) -> str:
    """The lab's haproxy.cfg: the haproxy role's template for the lab's entry host."""
    return haproxy.render_config(ctx, Lab(ctx).runtime_inventory())


def test_haproxy_routes_writes_to_the_primary_and_reads_to_replicas(ctx) -> None:
    config = _haproxy_config(ctx)
    read_write = config.split(f"listen {haproxy.proxy(ctx, 'read-write')}")[1].split("listen ")[0]
    read_only = config.split(f"listen {haproxy.proxy(ctx, 'read-only')}")[1].split("listen ")[0]
    assert "option httpchk GET /primary" in read_write
    assert "option httpchk GET /replica" in read_only
    for block in (read_write, read_only):
        assert "inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions" in block
        assert block.count("check port 8008") == 3
    # a stopped primary's refused connection fails at once (switchover write gap)
    assert "observe layer4 error-limit 1 on-error mark-down" in read_write
    assert "observe" not in read_only


def test_the_app_entry_spreads_over_both_active_centers(ctx) -> None:
    block = _haproxy_config(ctx).split(f"listen {haproxy.proxy(ctx, 'app')}")[1].split("listen ")[0]
    assert "balance roundrobin" in block
    assert f"server main-app {ctx.address('main', 'app')}:8080 check" in block
    assert f"server samecity-app {ctx.address('samecity', 'app')}:8080 check" in block
    assert "remote" not in block
    assert f"bind {ctx.entry_address}:8000" in block


def test_the_lab_config_paths_are_the_roles_defaults(ctx) -> None:
    """The lab runs HAProxy on the files the role writes: same paths, one truth."""
    from playbooks.render import renderer

    role = renderer(Lab(ctx).runtime_inventory(), haproxy.HOST, "haproxy")
    assert role.var("haproxy_config_file") == str(haproxy.config_file(ctx))
    assert role.var("haproxy_admin_socket") == str(haproxy.admin_socket(ctx))


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_generated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    # A short lab root: HAProxy refuses an admin socket path over 97 characters, which
    # pytest's own tmp_path nearly is.
    root = Path(tempfile.mkdtemp(prefix="tc-", dir="/tmp"))
    try:
        ctx = LabContext(root=root / "lab")
        file = tmp_path / "haproxy.cfg"
        file.write_text(_haproxy_config(ctx))
        # HAProxy loads the CA its Patroni checks verify with: check while it exists.
        done = subprocess.run(["haproxy", "-c", "-f", str(file)], capture_output=True, text=True)
    finally:
        shutil.rmtree(root)
    assert done.returncode == 0, done.stdout + done.stderr


# --- runtime inventory --------------------------------------------------------------------

def test_runtime_inventory_holds_members_endpoints_and_only_secret_references(ctx) -> None:
    runtime = Lab(ctx, components=CORE).runtime_inventory()
    assert runtime.source == "lab" and runtime.cloud == "lab"
    system = runtime.systems["registry"]
    roles = {m.center: m.intended_role for m in system.database.members}
    assert roles == {"main": DbIntendedRole.leader, "samecity": DbIntendedRole.sync,
                     "remote": DbIntendedRole.async_}
    assert system.database.read_write.address == f"{ctx.entry_address}:5000"
    assert system.database.read_only.address == f"{ctx.entry_address}:5001"
    assert system.app_backends == {"main": ["http://127.0.1.2:8080"],
                                   "samecity": ["http://127.0.2.2:8080"]}
    assert system.database.password.file.startswith(str(ctx.secrets_dir))
    dumped = yaml.safe_dump(runtime.model_dump(mode="json"))
    assert ctx.secret(patroni.app_password_secret(ctx)) not in dumped
    assert {h.name for h in runtime.hosts} >= {"main-app", "samecity-app", "main-db"}


# --- the app, configured by the app role ---------------------------------------------------

def test_the_app_runs_on_the_files_the_app_role_writes(ctx) -> None:
    from lab.sample_app import read_env_file

    ctx.prepare_root()
    Lab(ctx).runtime_inventory().save(ctx.runtime_inventory_file)
    app.component().prepare(ctx)
    for center in ctx.placement.app_centers:
        env = read_env_file(str(app.env_file(ctx, center)))
        assert env["APP_LISTEN"] == f"{ctx.address(center, 'app')}:8080"
        assert env["APP_DB_HOSTS"].split(",") == [f"{ctx.address(c)}:5432" for c in CENTERS]
        assert env["APP_PASSFILE"] == str(app.passfile(ctx, center))
        password = ctx.secret(patroni.app_password_secret(ctx))
        assert app.passfile(ctx, center).read_text().strip().endswith(f":{password}")
        assert app.passfile(ctx, center).stat().st_mode & 0o777 == 0o600
    (program, _) = app.component().programs(ctx)
    assert program.command[-2:] == ["--env-file", str(app.env_file(ctx, program.center))]


def test_the_legacy_registry_app_writes_to_the_legacy_database_and_can_be_repointed(ctx) -> None:
    """The department's app before migration: its database settings a file of their own,
    which the migration rewrites, named in the runtime inventory with its reload."""
    from lab.components import legacy, legacy_app
    from lab.sample_app import read_env_file

    ctx.prepare_root()
    legacy_app.prepare(ctx)
    settings = read_env_file(str(legacy_app.env_file(ctx))) | read_env_file(
        str(legacy_app.database_env_file(ctx)))
    assert settings["APP_DB_HOSTS"] == f"{legacy.address(ctx)}:{legacy.PORT}"
    assert settings["APP_USER"] == legacy.db_user(ctx)
    assert settings["APP_TABLE"] == legacy_app.TABLE
    assert legacy_app.passfile(ctx).stat().st_mode & 0o777 == 0o600
    # A restarted lab keeps the app where a migration pointed it.
    legacy_app.database_env_file(ctx).write_text("APP_DB_HOSTS=elsewhere:5000\n")
    legacy_app.prepare(ctx)
    assert "elsewhere" in legacy_app.database_env_file(ctx).read_text()
    program = legacy_app.program(ctx)
    assert program.command[-4:] == ["--env-file", str(legacy_app.env_file(ctx)),
                                    "--env-file", str(legacy_app.database_env_file(ctx))]
    found = legacy.runtime(ctx).app
    assert found.database_env == str(legacy_app.database_env_file(ctx))
    assert found.reload == ["pkill", "--signal", "HUP", "--pidfile", str(legacy_app.pidfile(ctx))]
    assert settings["APP_PIDFILE"] == str(legacy_app.pidfile(ctx))
