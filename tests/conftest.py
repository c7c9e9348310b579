"""Shared fixtures: a small valid inventory that tests copy and break one rule at a time."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures"
MINIMAL = FIXTURES / "minimal"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # execnet hands its workers COLUMNS=80 and LINES=24 as if they ran on a terminal: the
    # CLI's piped output would wrap in tests as it never does for a user.
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


@pytest.fixture
def inventory_copy(tmp_path: Path) -> Path:
    target = tmp_path / "inv"
    shutil.copytree(MINIMAL, target)
    return target


def edit_yaml(file: Path, change: Callable[[object], object | None]) -> None:
    """Load a YAML file, let `change` mutate (or replace) the data, write it back."""
    data = yaml.safe_load(file.read_text())
    result = change(data)
    file.write_text(yaml.safe_dump(data if result is None else result, sort_keys=False,
                                   allow_unicode=True))


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" file: ~500 bytes that expand to width**levels values (387 M)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# --- a run that tells the truth ------------------------------------------------------------
# The partition drills need the lab in network-namespace mode, their loopback stand-ins the
# other mode: the mode not in use deselects them (reported as deselected, never as skipped).
def _lab_runs_in_netns() -> bool:
    if os.environ.get("TRICENTER_LAB_NETNS"):
        return True
    from lab.context import LabContext  # the lab's own choice, kept from its last `up`
    return LabContext().settings.netns


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("lab") for item in items):
        return
    unwanted = "loopback_only" if _lab_runs_in_netns() else "netns_only"
    deselected = [item for item in items if item.get_closest_marker(unwanted)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(unwanted)]


_outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A test counts once: skipped or failed in any phase, passed only by its call."""
    if report.outcome != "passed" or report.when == "call":
        _outcomes[report.outcome].append(report.nodeid)


def _lab_tests(nodeids: list[str]) -> int:
    return len({n for n in nodeids if n.startswith("tests/integration/")})


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(
        f"integration tests against the lab: {_lab_tests(_outcomes['passed'])} passed, "
        f"{_lab_tests(_outcomes['failed'])} failed, {_lab_tests(_outcomes['skipped'])} skipped")
    if os.environ.get("CI") and _outcomes["skipped"]:
        terminalreporter.write_line(
            f"CI: {len(_outcomes['skipped'])} skipped test(s) fail the run (a skipped test is "
            f"not a passed one): {', '.join(_outcomes['skipped'][:5])}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _outcomes["skipped"] and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
