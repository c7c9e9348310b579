"""The sample app's settings: command line over environment files, a later file over an
earlier one (as the migration's database settings file overrides the app's own), and a
reload that moves new sessions to the database the files now name."""
from __future__ import annotations

import argparse

import pytest

from lab import sample_app


def _options(*env_files: str, **given: str) -> argparse.Namespace:
    values = {attr: None for attr in sample_app.ENV_KEYS} | given
    return argparse.Namespace(env_file=list(env_files), **values)


def test_a_later_env_file_wins_and_defaults_fill_the_rest(tmp_path):
    app = tmp_path / "app.env"
    app.write_text("APP_CENTER=legacy\nAPP_LISTEN=127.0.0.1:8080\nAPP_DB_HOSTS=a:1\n"
                   "APP_DBNAME=x\nAPP_USER=u\nAPP_PASSFILE=/p\nAPP_SSLROOTCERT=/ca\n")
    database = tmp_path / "database.env"
    database.write_text("# the migration's\nAPP_DB_HOSTS=b:2,c:2\nAPP_SSLMODE=prefer\n")
    found = sample_app.settings(_options(str(app), str(database), user="cli"))
    assert found["db_hosts"] == "b:2,c:2" and found["sslmode"] == "prefer"
    assert found["user"] == "cli" and found["table"] == "records"


def test_missing_and_unsafe_settings_are_named(tmp_path):
    with pytest.raises(KeyError, match="APP_DBNAME"):
        sample_app.settings(_options(center="c", listen="l:1", db_hosts="h:1"))
    with pytest.raises(KeyError, match="not a plain lower-case table name"):
        sample_app.settings(_options(center="c", listen="l:1", db_hosts="h:1", dbname="d",
                                     user="u", passfile="p", sslrootcert="r",
                                     table="x; DROP TABLE y"))


def test_a_reload_moves_the_next_statement_to_the_new_database():
    settings = {"db_hosts": "a:1", "dbname": "d", "user": "u", "passfile": "p",
                "sslrootcert": "r", "sslmode": "prefer", "table": "office_record"}
    db = sample_app.Database(settings)
    before = db.generation
    db.configure(settings | {"db_hosts": "b:2,c:3", "table": "records"})
    assert db.generation == before + 1 and db.hosts == ["b:2", "c:3"] and db.primary == "b:2"
    assert db.statement(sample_app.INSERT).startswith("\nINSERT INTO records ")
    assert "sslmode=prefer" in sample_app.conninfo(db.hosts, *db.params)
