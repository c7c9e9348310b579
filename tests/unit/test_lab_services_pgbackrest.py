"""pgBackRest config generation: the S3 repo on the lab's Swift, the archive and restore
commands every Patroni member runs, and the reading of `info`."""
from __future__ import annotations

import configparser
import pwd
import shlex
import stat
from pathlib import Path

import pytest
from types import SimpleNamespace
import yaml

from inventory.runtime import RuntimeInventory
from lab.components import patroni, pgbackrest, swift
from lab.context import LabContext
from lab.lab import Lab


@pytest.fixture
def lab(tmp_path: Path) -> LabContext:
    ctx = LabContext(root=tmp_path / "lab")
    ctx.prepare_root()
    Lab(ctx).write_runtime_files()
    return ctx


def _config(lab: LabContext, center: str = "main") -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(pgbackrest.render_config(lab, center))
    return parser


def test_repo_is_the_swift_bucket_over_verified_tls_path_style_bundled_and_encrypted(lab):
    conf = _config(lab)["global"]
    host, port = lab.address("main", "storage"), str(swift.PROXY_PORT)
    assert conf["repo1-type"] == "s3"
    assert (conf["repo1-s3-endpoint"], conf["repo1-storage-port"]) == (host, port)
    assert conf["repo1-s3-bucket"] == swift.BACKUP_BUCKET
    assert conf["repo1-s3-uri-style"] == "path"
    assert conf["repo1-storage-verify-tls"] == "y"
    assert conf["repo1-storage-ca-file"] == str(swift.ca_file(lab))
    assert conf["repo1-cipher-type"] == "aes-256-cbc"
    assert conf["repo1-cipher-pass"] == lab.secret(pgbackrest.CIPHER_PASSWORD)
    assert conf["repo1-bundle"] == "y"
    assert conf["repo1-s3-key"] == swift.credentials(lab).access_key
    assert Path(conf["lock-path"]).is_relative_to(lab.path("hosts", "main-db"))


def test_the_lab_runs_the_roles_config_from_mains_host(lab):
    from playbooks.render import renderer

    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    role = renderer(runtime, "main-db", "pgbackrest")
    assert role.var("pgbackrest_config_file") == str(pgbackrest.config_file(lab))
    for center in ("samecity", "remote"):
        role = renderer(runtime, f"{center}-db", "pgbackrest")
        assert role.var("pgbackrest_config_file") == str(pgbackrest.host_config_file(lab, center))


def test_stanza_is_the_patroni_cluster_and_pg1_the_roles_data_dir(lab):
    from playbooks.render import renderer

    conf = _config(lab, "samecity")
    section = conf[pgbackrest.stanza(lab)]
    assert pgbackrest.stanza(lab) == patroni.scope(lab)
    # One data directory per member, as the postgresql_patroni role lays it out.
    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    role = renderer(runtime, "samecity-db", "postgresql_patroni")
    assert section["pg1-path"] == role.var("postgresql_patroni_data_dir")


@pytest.mark.parametrize("center", ["main", "samecity", "remote"])
def test_every_member_archives_through_its_own_hosts_pgbackrest_config(lab, center):
    """The postgresql_patroni role's archive settings, as `configure` writes them (the lab
    once pushed every member's WAL with main's host's config: configure then changed the
    other members' patroni.yml on a freshly built lab)."""
    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    params = yaml.safe_load(patroni.render_config(runtime, patroni.host_name(center)))["postgresql"]["parameters"]
    assert params["archive_mode"] == "on"
    # streaming members never fetch from the archive: a promotion must not wait on it
    assert "restore_command" not in params
    command = params["archive_command"]
    # PostgreSQL runs it in the member's data dir, so $PWD names the member
    words = shlex.split(command.replace('"$PWD"', "PWD"))
    assert words[0] == pgbackrest.BIN
    assert words[1] == f"--config={pgbackrest.host_config_file(lab, center)}"
    assert words[2] == f"--stanza={pgbackrest.stanza(lab)}"
    assert "--pg1-path=PWD" in words and words[-2:] == ["archive-push", "%p"]


def test_archive_command_quotes_what_the_shell_would_split_or_expand(tmp_path):
    ctx = LabContext(root=tmp_path / "lab dir's $HOME")
    ctx.prepare_root()
    Lab(ctx).write_runtime_files()
    runtime = RuntimeInventory.load(ctx.runtime_inventory_file)
    command = yaml.safe_load(patroni.render_config(runtime, "samecity-db"))["postgresql"]["parameters"][
        "archive_command"]
    words = shlex.split(command.replace('"$PWD"', "PWD"))
    assert words[1] == f"--config={pgbackrest.host_config_file(ctx, 'samecity')}"


def test_config_holding_the_s3_secret_belongs_to_postgres_alone(lab):
    pgbackrest.PgBackRest().prepare(lab)
    for center in ("main", "samecity", "remote"):
        info = pgbackrest.host_config_file(lab, center).stat()
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert pwd.getpwuid(info.st_uid).pw_name == "postgres"
    assert swift.credentials(lab).secret_key in pgbackrest.config_file(lab).read_text()
    assert stat.S_IMODE(lab.secret_file(pgbackrest.CIPHER_PASSWORD).stat().st_mode) == 0o600
    assert pgbackrest.PgBackRest().programs(lab) == []


INFO = {
    "name": "registry",
    "status": {"code": 0, "message": "ok"},
    "backup": [
        {"label": "20261127-120000F_20261127-130000I", "type": "incr",
         "timestamp": {"start": 1795784390, "stop": 1795784400}},
        {"label": "20261127-120000F", "type": "full",
         "timestamp": {"start": 1795780790, "stop": 1795780800}},
    ],
}


def test_backups_are_listed_oldest_first_and_age_counts_from_the_newest():
    assert [b["type"] for b in pgbackrest.backups(INFO)] == ["full", "incr"]
    assert pgbackrest.latest_backup_age_seconds(INFO, now=1795784460) == 60
    assert pgbackrest.latest_backup_age_seconds({"backup": []}) is None


def test_restore_refuses_a_directory_that_holds_anything(lab, tmp_path):
    target = tmp_path / "restore"
    target.mkdir()
    (target / "PG_VERSION").write_text("15\n")
    with pytest.raises(pgbackrest.PgBackRestError, match="not empty"):
        pgbackrest.restore_to(lab, target)


def test_backup_kind_is_checked_before_anything_runs(lab):
    with pytest.raises(ValueError, match="full, diff or incr"):
        pgbackrest.backup(lab, kind="weekly")


@pytest.mark.parametrize("info, need_backup, refused", [
    ({"status": {"code": 2, "message": "no valid backups"}, "backup": []}, False, False),
    ({"status": {"code": 2, "message": "no valid backups"}, "backup": []}, True, True),
    ({"status": {"code": 0, "message": "ok"}, "backup": [{"type": "full"}]}, True, False),
    ({"status": {"code": 99, "message": "other"}}, False, True),
])
def test_a_drill_that_restores_needs_a_backup_before_it_starts(
        lab: LabContext, monkeypatch: pytest.MonkeyPatch, info: dict, need_backup: bool, refused: bool) -> None:
    # test-failover restores the latest backup: without one, its precheck refuses (before
    # any workload or fault), instead of an error in the middle of the drill.
    from lab.runbook import LabRunbook

    asked = []
    monkeypatch.setattr(pgbackrest, "info", lambda ctx, system: asked.append(system) or info)
    why = LabRunbook(lab).backups_available(SimpleNamespace(name="charity"), need_backup=need_backup)
    assert asked == ["charity"]  # the drilled system's stanza, not the sample system's
    assert (why is not None) is refused, why
    if need_backup and refused:
        assert "backup-restore drill" in why
