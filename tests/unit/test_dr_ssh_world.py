"""The SSH world on real hosts: it shows every command on every host before it runs any,
runs only when the operator names the cloud, arms each fault to undo itself on the host,
and trusts no host key the runtime inventory does not know."""
from __future__ import annotations

import io
import time
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

import dr.ssh_world as ssh_world
from dr.cli import drill
from dr.scenario import get_scenario
from dr.ssh_world import HostOutput, SshWorld, SshWorldError, plan
from inventory.fault_line import FAULT_BEGINS
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
    def run(host, command: str) -> HostOutput:
        calls.append((host.name, command))
        return HostOutput("")
    monkeypatch.setattr(ssh_world, "run_on", run)
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
    world = SshWorld(RuntimeInventory.load(SAMPLE), run=ssh_world.run_on)
    world.freeze_center("samecity")
    world.thaw_center("samecity")
    # the hosts of a center are hit at once, each by its own thread: order within a step is free
    freeze, thaw = dict(ran[:2]), dict(ran[2:])
    assert sorted(freeze) == sorted(thaw) == ["samecity-app", "samecity-db"]
    assert "systemctl kill --signal=SIGSTOP patroni etcd" in freeze["samecity-db"]
    assert "tricenter-drill-undo-freeze_center-samecity.timer" in thaw["samecity-db"]


def test_a_host_whose_key_the_inventory_does_not_know_is_never_trusted() -> None:
    host = RuntimeInventory.load(SAMPLE).hosts[0]
    with pytest.raises(SshWorldError, match=r"host main-db: .*knows no host key for 10.1.0.11 .*refusing to trust"):
        ssh_world.run_on(host, "true")


def _sample_with(change) -> RuntimeInventory:
    data = yaml.safe_load(SAMPLE.read_text())
    change(data)
    return RuntimeInventory.model_validate(data)


def test_the_control_section_names_how_a_host_arms_and_disarms_a_fault() -> None:
    def arm_by_hand(data: dict) -> None:
        data["hosts"][0]["control"] = {"arm": "/opt/dr/arm {name} {seconds} {undo}",
                                       "disarm": "/opt/dr/disarm {name}"}
    lines = plan(_sample_with(arm_by_hand), get_scenario("main-center-loss"), deadline=90)
    kill = next(line for line in lines if line.startswith("fault") and " on main-db:" in line)
    assert kill.endswith(": /opt/dr/arm tricenter-drill-undo-kill_center-main 90 "
                         f"'systemctl start patroni etcd' && echo {FAULT_BEGINS} && "
                         "systemctl kill --signal=SIGKILL patroni etcd")
    start = next(line for line in lines if line.startswith("restore") and " on main-db:" in line)
    assert "{ /opt/dr/disarm tricenter-drill-undo-kill_center-main || true; } && systemctl start" in start


def test_an_empty_command_says_the_host_has_nothing_that_action_acts_on() -> None:
    def no_isolation(data: dict) -> None:
        for host in data["hosts"]:
            host["control"] = {"commands": {"isolate_center": "", "heal_center": ""}}
    with pytest.raises(SshWorldError, match=r"no host of center main has a command for isolate_center"):
        plan(_sample_with(no_isolation), get_scenario("main-center-isolation"))


def test_a_host_that_fails_does_not_keep_the_fault_from_the_others() -> None:
    calls: list[str] = []

    def run(host, command: str) -> str:
        calls.append(host.name)
        if host.name == "main-db":
            raise SshWorldError("main-db: `systemctl kill` exited 1: no such unit")
        return HostOutput("")
    with pytest.raises(SshWorldError, match="main-db: `systemctl kill` exited 1"):
        SshWorld(RuntimeInventory.load(SAMPLE), run=run).kill_center("main")
    assert sorted(calls) == ["main-app", "main-db", "main-lb", "main-monitoring"]


def test_a_fault_began_when_the_first_host_said_so_and_an_undo_times_nothing() -> None:
    said = {"main-db": 105.0, "main-app": 103.5, "main-lb": None, "main-monitoring": 104.0}
    world = SshWorld(RuntimeInventory.load(SAMPLE), run=lambda host, command: HostOutput("", said[host.name]))
    assert world.kill_center("main") == 103.5
    world = SshWorld(RuntimeInventory.load(SAMPLE), run=lambda host, command: HostOutput(""))
    assert world.kill_center("main") is None  # hosts that say nothing: the drill keeps its own stamp
    assert world.start_center("main") is None


class SlowChannel:
    """A channel whose command prints a line, says the fault begins, then takes its time."""

    def __init__(self, pause: float) -> None:
        self.pause = pause

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def settimeout(self, seconds: float) -> None:
        pass

    def exec_command(self, command: str) -> None:
        self.command = command

    def makefile(self, mode: str):
        yield b"armed\n"
        yield FAULT_BEGINS.encode() + b"\n"
        time.sleep(self.pause)  # the fault command at work
        yield b"killed\n"

    def recv_exit_status(self) -> int:
        return 0

    def makefile_stderr(self, mode: str):
        return io.BytesIO(b"")


def test_the_line_saying_the_fault_begins_is_timed_when_it_arrives_not_when_the_command_ends() -> None:
    channel = SlowChannel(pause=0.5)
    transport = type("Transport", (), {"open_session": lambda self, timeout: channel})()
    client = type("Client", (), {"get_transport": lambda self: transport})()
    before = time.time()
    output = ssh_world._exec(RuntimeInventory.load(SAMPLE).hosts[0], client, "kill")
    after = time.time()
    assert output.text == "armed\nkilled\n"
    assert before <= output.fault_began <= after - 0.4


URLS = {"pg-main": "https://10.1.0.11:8008", "pg-samecity": "https://10.2.0.11:8008",
        "pg-remote": "https://10.3.0.11:8008"}


def _patroni_answers(monkeypatch: pytest.MonkeyPatch, scopes: dict[str, str], listed: dict[str, str]) -> None:
    """Each member's /patroni names its scope; /cluster lists `listed` (name → API URL)."""
    from support.patroni import ClusterState, MemberState, PatroniCluster, Role

    def member_json(self, member: str, path: str, timeout=None):
        assert path == "/patroni"
        return {"patroni": {"scope": scopes[member], "version": "4.0.4"}} if member in scopes else None

    def state(self):
        return ClusterState({n: MemberState(n, Role.replica, "streaming", 1, 0, f"{url}/patroni")
                             for n, url in listed.items()}, "pg-main")
    monkeypatch.setattr(PatroniCluster, "member_json", member_json)
    monkeypatch.setattr(PatroniCluster, "state", state)


def test_a_cluster_or_member_that_is_not_the_inventorys_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = RuntimeInventory.load(SAMPLE)
    system = runtime.systems["registry"]
    _patroni_answers(monkeypatch, dict.fromkeys(URLS, "registry"), URLS)
    assert ssh_world.patroni_mismatches(runtime, system) == []

    _patroni_answers(monkeypatch, {"pg-main": "payroll", "pg-samecity": "registry"}, URLS)
    assert ssh_world.patroni_mismatches(runtime, system) == [
        "member pg-main (https://10.1.0.11:8008) belongs to cluster 'payroll', not 'registry'",
        "member pg-remote: its REST API https://10.3.0.11:8008 does not answer"]

    swapped = {"pg-main": URLS["pg-main"], "pg-a": URLS["pg-samecity"], "pg-remote": URLS["pg-remote"],
               "pg-stray": "https://10.9.0.11:8008"}
    _patroni_answers(monkeypatch, dict.fromkeys(URLS, "registry"), swapped)
    assert ssh_world.patroni_mismatches(runtime, system) == [
        "https://10.2.0.11:8008 answers as member 'pg-a', not 'pg-samecity'",
        ("cluster registry lists members ['pg-a', 'pg-main', 'pg-remote', 'pg-stray'], "
         "the runtime inventory ['pg-main', 'pg-remote', 'pg-samecity']")]


def test_a_confirmed_run_is_refused_when_what_answers_is_not_the_inventorys(
        ran, monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong_key(host):
        raise SshWorldError(f"host {host.name}: its host key (ssh-ed25519 AAAA…) is not the one "
                            "the runtime inventory holds: refusing")
    monkeypatch.setattr(ssh_world, "connect", wrong_key)
    monkeypatch.setattr(ssh_world, "patroni_mismatches",
                        lambda runtime, system: ["member pg-main belongs to cluster 'payroll'"])
    result = CliRunner().invoke(tricenter, ["drill", "run", "main-center-loss", "--world", "ssh",
                                            "--runtime", str(SAMPLE), "--confirm", "guangdong"])
    assert result.exit_code == 2, result.output
    assert "refused, nothing was changed" in result.output
    assert "host main-db: its host key" in result.output and "cluster 'payroll'" in result.output
    assert ran == []
