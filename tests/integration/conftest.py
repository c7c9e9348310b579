"""The lab, once per test session, for every integration test that asks for `lab`.

TRICENTER_LAB_NETNS=1 brings it up in network-namespace mode (a stopped lab only).
Without what the lab needs (root, the programs bootstrap installs) the tests are skipped,
and under CI they fail: a CI that never started the lab must not pass.
If a healthy lab is already running (an operator's, or a previous session's kept with
TRICENTER_KEEP_LAB=1), it is reused and left running. Otherwise the fixture brings it up
and always takes it down at the end, whatever the tests did.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab import binaries
from lab.lab import Lab, LabError


def why_no_lab() -> str | None:
    if os.geteuid() != 0:
        return "the lab runs PostgreSQL as user postgres: run the integration tests as root"
    missing = binaries.missing()
    if missing:
        return "missing " + "; ".join(f"{b.path} (from {b.provided_by})" for b in missing) + \
            ": run scripts/bootstrap.sh as root"
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A healthy lab in its intended layout (primary main, sync samecity, async remote)."""
    reason = why_no_lab()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the lab: {reason}")
        pytest.skip(reason)
    the_lab = Lab()
    was_running = the_lab.supervisor.running()
    if was_running and the_lab.status()["healthy"]:
        yield the_lab  # someone else's lab: use it, leave it as found
        return
    try:
        try:
            the_lab.up(netns=True if os.environ.get("TRICENTER_LAB_NETNS") else None,
                       deadline_seconds=240)
        except LabError as exc:
            pytest.fail(f"the lab did not come up: {exc}")
        yield the_lab
    finally:
        if not was_running and not os.environ.get("TRICENTER_KEEP_LAB"):
            the_lab.down()
