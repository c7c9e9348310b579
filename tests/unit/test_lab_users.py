"""Handing the lab's data over to its service account while its daemons run."""
import os

import pytest

from lab import users


@pytest.fixture
def as_root_for_ourselves(monkeypatch):
    # Owner stays the test's own account: chown to oneself needs no root.
    monkeypatch.setattr(users, "service_account", lambda: users.Account("me", os.getuid(), os.getgid()))


def test_a_file_deleted_while_the_walk_passes_is_skipped(tmp_path, monkeypatch, as_root_for_ourselves):
    """CI saw this: Swift removed a SQLite journal between the walk and its chown, and
    `lab up` died with FileNotFoundError."""
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "kept.db").write_text("")
    real_walk = os.walk

    def walk_with_a_vanished_journal(path):
        for d, dirs, files in real_walk(path):
            yield d, dirs, [*files, "gone.db-journal"]

    monkeypatch.setattr(users.os, "walk", walk_with_a_vanished_journal)
    users.hand_over(tmp_path, recursive=True)


def test_a_missing_path_asked_for_is_still_an_error(tmp_path, as_root_for_ourselves):
    with pytest.raises(FileNotFoundError):
        users.hand_over(tmp_path / "absent")
