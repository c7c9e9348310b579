"""Lab daemons run as an unprivileged account, open no lifecycle endpoint, and read only
the secrets handed over to them; the Ansible inventory names each host's interpreter."""
from __future__ import annotations

import configparser
import os
import pwd
import signal
import stat
from pathlib import Path

import pydantic
import pytest

from inventory.runtime import (CenterRuntime, Host, HostRole, RuntimeInventory, SshAccess,
                               ansible_inventory)
from lab import netns, users
from lab.lab import Lab
from lab.components import app, etcd, haproxy, prometheus, sshd, swift
from lab.context import LabContext
from lab.supervisor import render_conf

DAEMONS = {"etcd": etcd.component(), "haproxy": haproxy.component(),
           "prometheus": prometheus.component(), "swift": swift.component(),
           "app": app.component()}
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership needs root to hand over")


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabContext:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    lab = LabContext(root=tmp_path / "lab")
    lab.prepare_root()
    return lab


def _sections(ctx: LabContext, programs) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(render_conf(ctx, programs))
    return parser


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_each_daemon_runs_as_the_unprivileged_service_user(ctx, name) -> None:
    programs = DAEMONS[name].programs(ctx)
    assert programs
    parser = _sections(ctx, programs)
    for program in programs:
        assert parser[f"program:{program.name}"]["user"] == users.SERVICE_USER != "root"


def test_sshd_stays_root_because_it_switches_users(ctx) -> None:
    parser = _sections(ctx, sshd.SshHosts().programs(ctx))
    assert "user" not in parser["program:main-db-sshd"]


def test_in_netns_mode_a_daemon_enters_its_namespace_as_root_then_drops(ctx) -> None:
    # supervisord's own `user=` would run `ip netns exec` unprivileged, which fails.
    (program,) = [p for p in etcd.component().programs(ctx) if p.center == "main"]
    wrapped = netns.wrap(program, 3)
    assert wrapped.user is None
    assert wrapped.command[:8] == ["ip", "netns", "exec", "tc3-main", "setpriv",
                                   f"--reuid={users.SERVICE_USER}",
                                   f"--regid={users.SERVICE_USER}", "--init-groups"]
    assert "user" not in _sections(ctx, [wrapped])[f"program:{program.name}"]


def test_python_daemons_import_the_lab_code_from_the_copy_under_the_lab_dir(ctx) -> None:
    for program in [*app.component().programs(ctx), *swift.component().programs(ctx)]:
        assert program.command[0] == users.python_bin(Path(program.command[0]).name)
        assert program.directory == users.code_dir(ctx)
        if "PYTHONPATH" in program.environment:
            assert program.environment["PYTHONPATH"] == str(users.code_dir(ctx))


def test_prometheus_opens_no_lifecycle_endpoint(ctx) -> None:
    programs = prometheus.component().programs(ctx)
    assert len(programs) == 4  # one per center and the global view
    for program in programs:
        assert not [arg for arg in program.command if "lifecycle" in arg or "admin-api" in arg]


def test_prometheus_reload_is_a_sighup_to_its_own_pid(ctx, monkeypatch) -> None:
    from lab import supervisor

    from lab.components import monitoring_host

    infos = [{"name": "global-prometheus", "statename": "RUNNING", "pid": 4242},
             {"name": "main-prometheus", "statename": "RUNNING", "pid": 4244},
             {"name": "remote-prometheus", "statename": "STOPPED", "pid": 0},
             {"name": "global-haproxy", "statename": "RUNNING", "pid": 4343}]
    monkeypatch.setattr(supervisor.Supervisor, "processes", lambda self: infos)
    sent = []
    monkeypatch.setattr(monitoring_host.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    prometheus.component().reload(ctx)
    assert sent == [(4242, signal.SIGHUP), (4244, signal.SIGHUP)]


@as_root
def test_swift_reads_its_secrets_by_ownership_and_nobody_else_can(ctx) -> None:
    swift.component().prepare(ctx)
    account = users.service_account()
    etc = swift.swift_dir(ctx)
    for file in (etc / "swift.conf", swift.proxy_conf(ctx, "main"),
                 swift.proxy_conf(ctx, "remote"), swift._key_file(ctx)):
        info = file.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (account.uid, 0o600), file
    # The S3 secret itself stays root's: pgBackRest (root-written config) is its reader.
    assert ctx.secret_file("swift-s3-secret-key").stat().st_uid == 0
    for center in swift.REGIONS:
        assert swift.devices_dir(ctx, center).stat().st_uid == account.uid


@as_root
def test_data_an_older_root_run_lab_wrote_is_handed_over(ctx) -> None:
    ctx.prepare_root()
    Lab(ctx).write_runtime_files()  # the etcd role renders from the runtime inventory
    etcd.component().prepare(ctx)  # a lab whose members already speak https to peers
    old = etcd.data_dir(ctx, "main") / "member" / "wal"
    old.mkdir(parents=True)
    (old / "0.wal").write_text("x")  # written by root, as an older lab ran etcd
    etcd.component().prepare(ctx)
    assert (old / "0.wal").stat().st_uid == users.service_account().uid


@as_root
def test_the_secrets_dir_lets_the_service_group_in_but_not_list_or_others(ctx) -> None:
    ctx.secret_file("postgres-superuser")
    users.share_directory(ctx.secrets_dir)
    info = ctx.secrets_dir.stat()
    assert (info.st_uid, info.st_gid) == (0, users.service_account().gid)
    assert stat.S_IMODE(info.st_mode) == 0o710
    ctx.secret_file("another-secret")  # a later secret must not close it again
    assert stat.S_IMODE(ctx.secrets_dir.stat().st_mode) == 0o710
    assert ctx.secret_file("another-secret").stat().st_uid == 0


def test_the_service_user_is_a_system_account_without_a_login(monkeypatch) -> None:
    if os.geteuid() != 0:
        assert users.service_account() is None
        return
    account = users.service_account()
    entry = pwd.getpwuid(account.uid)
    assert entry.pw_name == users.SERVICE_USER and account.uid != 0
    assert entry.pw_shell.endswith("nologin")
    assert users.service_account() == account  # idempotent


def test_an_interpreter_the_service_user_cannot_run_is_refused_naming_the_fix(
        tmp_path, monkeypatch) -> None:
    closed = tmp_path / "root-home"
    (closed / "bin").mkdir(parents=True)
    (closed / "bin" / "python").write_text("")
    closed.chmod(0o700)
    monkeypatch.setattr(users, "service_account", lambda: users.Account("x", 999, 999))
    monkeypatch.setattr(users, "python", lambda: str(closed / "bin" / "python"))
    with pytest.raises(users.ServiceAccountError) as error:
        users.check_interpreter()
    message = str(error.value)
    assert f"cannot run {closed}/bin/python" in message and "closed to other users" in message
    assert "bootstrap.sh" in message
    monkeypatch.setattr(users, "python", lambda: "/usr/bin/python3")
    users.check_interpreter()


def test_the_code_copy_is_readable_by_others_and_drops_stale_modules(ctx) -> None:
    users.install_code(ctx)
    stale = users.code_dir(ctx) / "lab" / "gone.py"
    stale.write_text("")
    target = users.install_code(ctx)
    copied = target / "lab" / "sample_app.py"
    assert copied.read_text() == (ctx.repo / "lab" / "sample_app.py").read_text()
    assert stat.S_IMODE(copied.stat().st_mode) & 0o004
    assert (target / "lab" / "components" / "swift.py").exists()
    assert not stale.exists() and not list(target.rglob("__pycache__"))


# --- the Ansible inventory -----------------------------------------------------------

def _runtime(**host_fields) -> RuntimeInventory:
    host = Host(name="main-app", center="main", role=HostRole.app, address="127.0.1.2",
                ssh=SshAccess(host="127.0.1.2", port=2222, user="root"), **host_fields)
    return RuntimeInventory(source="lab", cloud="lab",
                            centers={"main": CenterRuntime(name="main", role="main")},
                            hosts=[host])


def _hostvars(runtime: RuntimeInventory) -> dict:
    return ansible_inventory(runtime)["all"]["children"]["app"]["hosts"]["main-app"]


def test_the_ansible_inventory_names_the_system_python_by_default() -> None:
    assert _hostvars(_runtime())["ansible_python_interpreter"] == "/usr/bin/python3"


def test_a_cloud_can_name_its_own_interpreter_and_it_survives_a_round_trip(tmp_path) -> None:
    runtime = _runtime(python_interpreter="/usr/libexec/platform-python")
    runtime.save(tmp_path / "runtime.yaml")
    loaded = RuntimeInventory.load(tmp_path / "runtime.yaml")
    assert _hostvars(loaded)["ansible_python_interpreter"] == "/usr/libexec/platform-python"


@pytest.mark.parametrize("bad", ["python3", "", "/usr/bin/python3 -I"])
def test_an_interpreter_that_is_not_an_absolute_path_is_refused(bad) -> None:
    with pytest.raises(pydantic.ValidationError, match="python_interpreter"):
        _runtime(python_interpreter=bad)
