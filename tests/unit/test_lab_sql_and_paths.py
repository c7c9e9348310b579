"""SQL and paths the lab builds from inventory names: names go into SQL as quoted
identifiers (a name that got past the model still cannot end a statement), psql gets no
meta-command built from a name, and a path built from a name stays inside the lab."""
from __future__ import annotations

from pathlib import Path

import pytest

from inventory.names import UnsafePath
from lab.components import legacy, patroni, sshd
from lab.context import LabContext
from lab.pgsql import owner_sql, set_role_sql

HOSTILE = 'x"; DROP DATABASE postgres; --'


@pytest.fixture
def lab(tmp_path: Path) -> LabContext:
    return LabContext(root=tmp_path / "lab")


def test_names_and_password_are_quoted_not_pasted():
    statements = owner_sql(HOSTILE, "db\"name", "pw'; DROP ROLE postgres; --")
    assert statements == (
        'CREATE ROLE "x""; DROP DATABASE postgres; --" LOGIN PASSWORD '
        "'pw''; DROP ROLE postgres; --';\n"
        'CREATE DATABASE "db""name" OWNER "x""; DROP DATABASE postgres; --";\n')
    assert set_role_sql(HOSTILE) == 'SET ROLE "x""; DROP DATABASE postgres; --";\n'


def test_the_legacy_owner_may_replicate_and_the_app_owner_may_not():
    assert " LOGIN REPLICATION PASSWORD " in owner_sql("u", "d", "p", replication=True)
    assert "REPLICATION" not in owner_sql("u", "d", "p")


def test_post_bootstrap_feeds_psql_the_composed_statements_in_a_quoted_here_document(lab):
    from lab.lab import Lab

    script = patroni.role(Lab(lab, components=[patroni.component()]).runtime_inventory(),
                          "main-db").template("post_bootstrap.sh.j2")
    password = lab.secret(patroni.app_password_secret(lab))
    body = script.split("<<'SQL'\n", 1)[1]
    assert body == owner_sql("registry", "registry", password) + "SQL\n"


def test_legacy_schema_runs_in_its_own_session_without_psql_meta_commands(lab):
    schema = legacy.schema_sql(legacy.db_user(lab))
    assert schema.startswith('SET ROLE "registry_legacy";\n')
    assert not any(line.lstrip().startswith("\\") for line in schema.splitlines())
    assert schema.count("PRIMARY KEY") == 3  # logical replication needs a key per table


def test_a_host_name_cannot_place_its_directory_outside_the_lab(lab):
    outside = sshd.SshHost("../../etc", "legacy", "legacy", "127.0.9.1")
    with pytest.raises(UnsafePath):
        sshd.host_dir(lab, outside)
    with pytest.raises(UnsafePath):
        lab.path("files", "..", "..", "etc")
    with pytest.raises(UnsafePath):
        lab.secret_file("../stolen")
    assert legacy.files_dir(lab) == lab.root / "legacy" / "files" / "registry"
