"""One lookup for the lab's programs, shared by the lab and by the tests that decide whether
a lab can run: a program bootstrap installs off PATH (Patroni's virtualenv) is found by both."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lab import binaries
from lab.context import LabContext
from lab.lab import Lab
from tests.integration.conftest import why_no_lab


def test_every_lab_program_starts_from_the_shared_lookup(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    known = {str(b.path) for b in binaries.BINARIES.values()} | {sys.executable}
    lab = Lab(LabContext(root=tmp_path / "lab"))
    lab.ctx.prepare_root()
    lab.write_runtime_files()  # as `up` does first: Alertmanager's flags come from the role
    programs = lab.programs()
    assert programs
    for program in programs:
        assert program.command[0] in known, (program.name, program.command[0])


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                    reason="bootstrap installs the lab's programs only as root")
def test_the_lab_is_found_runnable_without_anything_on_path(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert binaries.missing() == []
    assert why_no_lab() is None


def test_a_missing_program_is_named_with_what_provides_it(monkeypatch) -> None:
    monkeypatch.setitem(binaries.BINARIES, "patroni",
                        binaries.Binary("patroni", Path("/nonexistent/patroni"), "the Patroni venv"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "/nonexistent/patroni (from the Patroni venv)" in why_no_lab()
