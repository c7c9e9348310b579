"""A lab host's control commands: the runtime inventory names, per lab host, commands that
act on that host's programs only, and a fault armed on a host undoes itself at its
deadline unless its undo disarms it first (lab hosts have no systemd timers)."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from lab import host_control, processes
from lab.components import sshd
from lab.context import LabContext
from support.waiting import wait_until


@pytest.fixture
def host(tmp_path: Path) -> host_control.LabHost:
    (tmp_path / "logs").mkdir()
    return host_control.LabHost(tmp_path, "main-app", "main", "app")


def _run(template: str, **values: str) -> None:
    """Run a control template as the SSH world fills it (plain words, {undo} shell-quoted)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    subprocess.run(["/bin/sh", "-c", template], check=True, timeout=30)


def arm(root: Path, name: str, seconds: float, undo: str) -> None:
    _run(host_control.arm_command(root, "main-app"), name=name, seconds=f"{seconds:g}", undo=shlex.quote(undo))


def disarm(root: Path, name: str) -> None:
    _run(host_control.disarm_command(root, "main-app"), name=name)


def group_gone(pid: int) -> bool:
    """No live process is left in the process group `pid` leads (the shell and its sleep)."""
    table = processes.table()
    return not [p for p, (_, group) in table.items() if group == pid and processes.alive(p)]


def test_an_armed_fault_undoes_itself_at_its_deadline(tmp_path: Path) -> None:
    undone = tmp_path / "undone"
    arm(tmp_path, "tricenter-drill-undo-kill_center-main", 0.5, f"touch {shlex.quote(str(undone))}")
    wait_until("the armed undo ran", undone.exists, 30, 0.05)
    wait_until("the armed process is gone", lambda: not host_control.armed(tmp_path), 30, 0.05)


def test_a_disarmed_fault_is_never_undone_by_its_host(tmp_path: Path) -> None:
    name, undone = "tricenter-drill-undo-freeze_center-main", tmp_path / "undone"
    arm(tmp_path, name, 30, f"touch {shlex.quote(str(undone))}")
    # the background shell records its pid before it has exec'd the undo shell (on a
    # loaded machine, a moment later): armed() knows it by the undo shell's arguments
    wait_until("the undo shell is armed", lambda: host_control.armed(tmp_path) == [f"main-app/{name}"], 30, 0.05)
    pid = host_control.armer(tmp_path / host_control.UNDO_DIR / "main-app" / f"{name}.pid")
    assert os.getpgid(pid) == pid  # it leads its group: the disarm kills the sleep with it
    disarm(tmp_path, name)
    wait_until("the armed shell and its sleep are gone", lambda: group_gone(pid), 30, 0.05)
    assert host_control.armed(tmp_path) == []
    disarm(tmp_path, name)  # nothing armed: a disarm still succeeds
    assert not undone.exists()


def test_arming_again_replaces_the_armed_undo(tmp_path: Path) -> None:
    name = "tricenter-drill-undo-kill_component-main-app"
    record = tmp_path / host_control.UNDO_DIR / "main-app" / f"{name}.pid"
    arm(tmp_path, name, 30, "true")
    first = host_control.armer(record)
    arm(tmp_path, name, 30, "true")
    wait_until("the first armed shell is gone", lambda: group_gone(first), 30, 0.05)
    assert host_control.armer(record) not in (None, first)
    assert host_control.armed(tmp_path) == [f"main-app/{name}"]
    disarm(tmp_path, name)


def test_a_fault_command_says_when_it_begins_to_act_right_before_it_signals(host, monkeypatch) -> None:
    happened = []
    monkeypatch.setattr(host_control.processes, "signal_all", lambda pids, sig: happened.append(sig.name))
    host.pids = lambda component=None: {4242}
    host.fault_begins = lambda: happened.append("fault begins")
    host.freeze()
    assert happened == ["fault begins", "SIGSTOP"]


def test_a_host_refuses_a_component_it_does_not_run(host) -> None:
    with pytest.raises(host_control.HostControlError, match="host main-app \\(app\\) runs no postgres"):
        host.kill("postgres")


def test_each_lab_host_names_commands_for_its_own_programs(tmp_path: Path) -> None:
    lab = LabContext(root=tmp_path / "lab")
    hosts = {h.name: h for h in sshd.hosts(lab)}
    db = sshd.host_control(lab, hosts["main-db"])
    kill = shlex.split(db.commands["kill_center"])
    assert kill[kill.index("--host") + 1] == "main-db" and kill[-1] == "kill"
    assert kill[kill.index("--role") + 1] == "db" and "--postmaster-pid" in kill
    assert set(db.commands) >= {"kill_component:postgres", "start_component:patroni", "freeze_center"}
    app = sshd.host_control(lab, hosts["main-app"])
    assert "kill_component:postgres" not in app.commands
    # a cut needs the lab's netns mode: over SSH the lab offers none, and says so in the plan
    assert app.commands["isolate_center"] == ""
    # arming is plain shell: no Python starts before the fault
    assert "python" not in app.arm and "{name}" in app.arm and "{seconds} {undo}" in app.arm
    assert "python" not in app.disarm and "{name}" in app.disarm
