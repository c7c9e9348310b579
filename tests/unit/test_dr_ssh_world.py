"""The SSH world on real hosts: it shows every command on every host before it runs any,
runs only when the operator names the cloud, arms each fault to undo itself on the host,
and trusts no host key the runtime inventory does not know."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

import dr.ssh_world as ssh_world
from dr.cli import drill
from dr.scenario import get_scenario
from dr.ssh_world import SshWorld, SshWorldError, plan
from dr.world import WORLDS_META
from inventory.runtime import RuntimeInventory

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "runtime" / "sample.yaml"


@click.group()
@click.pass_context
def tricenter(ctx: click.Context) -> None:
    ctx.meta[WORLDS_META] = {"ssh": "dr.ssh_world:SshWorld"}


tricenter.add_command(drill)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every command the SSH world would run, recorded instead of run."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(ssh_world, "run_on", lambda host, command: calls.append((host.name, command)))
    return calls


def test_the_plan_names_every_command_on_every_host_of_the_center() -> None:
    lines = plan(RuntimeInventory.load(SAMPLE), get_scenario("main-center-loss"))
    kills = [line for line in lines if line.startswith("fault") and "kill_center main" in line]
    assert {line.split(" on ")[1].split(":")[0] for line in kills} == {
        "main-db", "main-app", "main-lb", "main-monitoring"}
    db = next(line for line in kills if " on main-db:" in line)
    # armed first: the host restarts what was killed by itself if tricenter never does
    assert db.index("systemd-run --quiet --on-active=600") < db.index(
        "systemctl kill --signal=SIGKILL patroni etcd")
    start = next(line for line in lines if line.startswith("restore") and " on main-db:" in line)
    assert "systemctl stop tricenter-drill-undo-kill_center-main.timer" in start
    assert "systemctl start patroni etcd" in start


def test_a_command_the_inventory_names_for_a_host_replaces_the_default() -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    data["hosts"][0]["control"] = {"commands": {"kill_center": "/opt/dr/power-off-db"}}
    lines = plan(RuntimeInventory.model_validate(data), get_scenario("main-center-loss"))
    assert any(line.endswith("/opt/dr/power-off-db") and " on main-db:" in line for line in lines)


def test_without_confirm_it_prints_the_plan_and_changes_nothing(ran) -> None:
    result = CliRunner().invoke(tricenter, ["drill", "run", "main-center-loss", "--world", "ssh",
                                            "--runtime", str(SAMPLE)])
    assert result.exit_code == 2
    assert "kill_center main on main-db: " in result.output
    assert "pass --confirm guangdong to run this plan" in result.output
    assert ran == []


def test_a_confirm_naming_another_cloud_is_refused(ran) -> None:
    result = CliRunner().invoke(tricenter, ["drill", "run", "main-center-loss", "--world", "ssh",
                                            "--runtime", str(SAMPLE), "--confirm", "lab"])
    assert result.exit_code == 2 and "--confirm lab does not match" in result.output
    assert ran == []


def test_a_scenario_needing_a_runbook_action_it_lacks_is_refused_before_anything_runs(ran) -> None:
    result = CliRunner().invoke(tricenter, ["drill", "run", "regional-disaster", "--world", "ssh",
                                            "--runtime", str(SAMPLE), "--confirm", "guangdong"])
    assert result.exit_code == 2 and "promote_remote" in result.output
    assert ran == []


def test_faults_run_the_planned_commands_on_the_centers_hosts(ran) -> None:
    world = SshWorld(RuntimeInventory.load(SAMPLE))
    world.freeze_center("samecity")
    world.thaw_center("samecity")
    assert [host for host, _ in ran] == ["samecity-db", "samecity-app"] * 2
    assert "systemctl kill --signal=SIGSTOP patroni etcd" in ran[0][1]
    assert "tricenter-drill-undo-freeze_center-samecity.timer" in ran[2][1]


def test_a_host_whose_key_the_inventory_does_not_know_is_never_trusted() -> None:
    host = RuntimeInventory.load(SAMPLE).hosts[0]
    with pytest.raises(SshWorldError, match=r"host main-db: .*knows no host key for 10.1.0.11 .*refusing to trust"):
        ssh_world.run_on(host, "true")
