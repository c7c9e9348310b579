"""A CI run tells the truth: under CI a skipped test fails the run, and the summary says
how many integration tests really ran against the lab."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent


def _run_suite(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "def test_runs():\n    assert True\n\n"
        "def test_needs_something_missing():\n    pytest.skip('missing patroni')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=TESTS.parent, timeout=120)


@pytest.mark.parametrize("ci", [False, True])
def test_a_skip_fails_the_run_only_under_ci(tmp_path: Path, ci: bool) -> None:
    done = _run_suite(tmp_path, ci)
    assert "integration tests against the lab: 0 passed, 0 failed, 0 skipped" in done.stdout
    if ci:
        assert done.returncode == 1, done.stdout
        assert "skipped test(s) fail the run" in done.stdout
        assert "test_needs_something_missing" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
