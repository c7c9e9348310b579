"""`tricenter configure` against the running lab, over SSH to every lab host: the lab the
roles' templates built is already converged (the run changes nothing), check mode with
diff changes nothing on a host of each role, and no secret value reaches Ansible's output."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from inventory.runtime import RuntimeInventory
from lab.context import LabContext

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
CHECKED_HOSTS = "main-*,global-lb"  # a host of every role: etcd, db, app, lb, monitoring


@pytest.fixture(scope="module")
def ctx(lab) -> LabContext:
    return lab.ctx


def configure(ctx: LabContext, *args: str) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "configure", "--runtime",
         str(ctx.runtime_inventory_file), "--json", *args],
        capture_output=True, text=True, cwd=REPO, timeout=900,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    return json.loads(done.stdout), done.stderr


def _secret_values(ctx: LabContext) -> list[str]:
    values = []
    for file in ctx.secrets_dir.iterdir():
        if file.is_file():
            text = file.read_text(errors="replace").strip()
            if 8 <= len(text) < 200 and "\n" not in text:  # passwords and keys, not PEM files
                values.append(text)
    return values


def test_every_lab_host_has_an_ssh_entry(ctx):
    runtime = RuntimeInventory.load(ctx.runtime_inventory_file)
    assert all(h.ssh is not None for h in runtime.hosts), [h.name for h in runtime.hosts if not h.ssh]
    assert {h.role.value for h in runtime.hosts} >= {"db", "app", "lb", "monitoring", "legacy"}


def test_configure_converges_then_changes_nothing(ctx):
    # The lab was built from these roles' templates (playbooks/render.py), so the playbook
    # finds it converged: this first run is already the "second run" of an idempotence
    # test, and any change it reports is a place where the lab and the roles disagree.
    first, out1 = configure(ctx)
    runtime = RuntimeInventory.load(ctx.runtime_inventory_file)
    configured = {h.name for h in runtime.hosts if h.role.value != "legacy"}
    assert first["ok"] is True and set(first["hosts"]) == configured
    assert {h: c["changed"] for h, c in first["hosts"].items()} == {h: 0 for h in configured}, out1[-4000:]
    # Check mode runs every module as the real run does, at the same cost (Ansible is
    # CPU-bound here: ~110 s for all hosts on two cores), so it is proven on one host of
    # each role, main's and the global entry's, not on all of them again.
    checked, out2 = configure(ctx, "--check", "--diff", "--limit", CHECKED_HOSTS)
    sample = {h for h in configured if any(fnmatch(h, p) for p in CHECKED_HOSTS.split(","))}
    assert checked["ok"] is True and set(checked["hosts"]) == sample
    assert {h: c["changed"] for h, c in checked["hosts"].items()} == {h: 0 for h in sample}
    for value in _secret_values(ctx):
        for output in (out1, out2):
            assert value not in output, "a secret value appeared in Ansible's output"
    # Files the roles wrote that hold a secret are the service account's alone.
    for host in ("main-db", "samecity-db", "remote-db"):
        root = ctx.path("hosts", host)
        for file in (root / "etc/patroni/patroni.yml", root / "etc/pgbackrest/pgbackrest.conf",
                     root / "etc/etcd/tls/etcd.key", root / "etc/patroni/tls/server.key"):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
