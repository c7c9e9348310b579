"""A lab host's control commands: the runtime inventory names, per lab host, commands that
act on that host's programs only, and a fault armed on a host undoes itself at its
deadline unless its undo disarms it first (lab hosts have no systemd timers)."""
from __future__ import annotations

import shlex
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


def test_an_armed_fault_undoes_itself_at_its_deadline(host, tmp_path: Path) -> None:
    undone = tmp_path / "undone"
    host.arm("tricenter-drill-undo-kill_center-main", 0.5, f"touch {shlex.quote(str(undone))}")
    wait_until("the armed undo ran", undone.exists, 30, 0.05)
    wait_until("the armed process is gone", lambda: not host_control.armed(tmp_path), 30, 0.05)


def test_a_disarmed_fault_is_never_undone_by_its_host(host, tmp_path: Path) -> None:
    undone = tmp_path / "undone"
    host.arm("tricenter-drill-undo-freeze_center-main", 30, f"touch {shlex.quote(str(undone))}")
    assert host_control.armed(tmp_path) == ["main-app/tricenter-drill-undo-freeze_center-main"]
    pid = host._armer("tricenter-drill-undo-freeze_center-main")
    assert host.disarm("tricenter-drill-undo-freeze_center-main").endswith("disarmed")
    assert not processes.alive(pid) and host_control.armed(tmp_path) == []
    assert host.disarm("tricenter-drill-undo-freeze_center-main").endswith("was not armed")
    assert not undone.exists()


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
    assert app.arm.endswith(" arm {name} {seconds} {undo}") and app.disarm.endswith(" disarm {name}")
