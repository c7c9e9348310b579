"""Drills through the SSH world on the lab: the promises of test_drills, with every fault
a command run over SSH on the lab's hosts (host keys verified), armed on the host to undo
itself; afterwards no fault is left armed anywhere. Before anything changes the SSH world
shows its plan, and refuses hosts, a cluster or members the runtime inventory does not
name; Ctrl-C undoes what was done; a fault whose drill died is undone by its host."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dr.ssh_world import SshWorld
from inventory.runtime import RuntimeInventory
from lab import host_control
from lab.faults import LabFaults
from support.waiting import wait_until
from tests.integration.test_drills import assert_lost_nothing_and_restored, lab_layout

pytestmark = pytest.mark.lab

DRILL = [sys.executable, "-m", "scripts.cli", "drill", "run"]


def ssh_drill(scenario: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(DRILL + [scenario, "--world", "ssh", "--json", *options],
                          check=False, capture_output=True, text=True, timeout=900)


def runtime_copy(lab, tmp_path: Path, change) -> Path:
    data = yaml.safe_load(lab.ctx.runtime_inventory_file.read_text())
    change(data)
    file = tmp_path / "runtime-inventory.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


def refusal(done: subprocess.CompletedProcess) -> str:
    """The error of a refused run: exit 2, and under --json the error as JSON on stdout."""
    assert done.returncode == 2, done.stderr[-2000:]
    return json.loads(done.stdout)["error"]


def nothing_armed(lab) -> None:
    assert host_control.armed(lab.ctx.root) == []




@pytest.mark.parametrize("scenario", ["main-center-loss", "db-primary-crash", "main-center-freeze"])
def test_drill_through_ssh_passes_and_leaves_no_fault_armed(lab, scenario: str) -> None:
    done = ssh_drill(scenario, "--confirm", "lab")
    assert done.stdout.strip(), f"no JSON from the drill; stderr:\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout)
    assert_lost_nothing_and_restored(scenario, done.returncode, result)
    assert result["passed"], [c for c in result["criteria"] if not c["ok"]]
    # The alert the scenarios expect fired and resolved (issue 11: the page a DR team gets,
    # timed both ways; how fast is a figure of the report, not asserted: the machine is
    # shared). Other alerts may page as well (a fresh lab has never verified a restore): the
    # report lists them as unexpected. These drills run back to back: each one's precheck
    # waits until the last one's page has ended (db-primary-crash, right after
    # main-center-loss, had missed its page in 2 of 5 CI runs before it did).
    lost = {a["name"]: a for a in result["alerts"]}.get("TricenterPrimaryLost")
    assert lost and lost["fired_after_s"] is not None and lost["resolved_after_s"] is not None, (
        result["alerts"], result.get("alerts_note"), result["check_details"].get("precheck:alerts_quiet"))
    for name in ("report.json", "report.md", "report.html", "timeline.png"):
        assert (Path(result["report_dir"]) / name).exists()
    report = json.loads((Path(result["report_dir"]) / "report.json").read_text())
    assert report["context"]["world"] == "ssh"
    nothing_armed(lab)


def test_without_confirm_the_plan_is_printed_and_nothing_changes(lab) -> None:
    done = ssh_drill("main-center-loss")
    assert "pass --confirm lab to run this plan" in refusal(done)
    assert "kill_center main on main-db: " in done.stderr and "lab.host_control" in done.stderr
    nothing_armed(lab)
    assert lab_layout()["leader"] == "main"


def test_a_host_key_not_the_inventorys_is_refused(lab, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    lines = Path(lab.ctx.path("sshd", "known_hosts")).read_text().splitlines()
    main_db = next(h for h in yaml.safe_load(lab.ctx.runtime_inventory_file.read_text())["hosts"]
                   if h["name"] == "main-db")
    address = f"[{main_db['ssh']['host']}]:{main_db['ssh']['port']}"
    other_key = next(line for line in lines if not line.startswith(address + " ")).split(" ", 1)[1]
    known.write_text("".join(f"{address} {other_key}\n" if line.startswith(address + " ") else f"{line}\n"
                             for line in lines))

    def pin_the_wrong_key(data: dict) -> None:
        for host in data["hosts"]:
            if host.get("ssh"):
                host["ssh"]["known_hosts_file"] = str(known)
    done = ssh_drill("main-center-loss", "--confirm", "lab", "--runtime",
                     str(runtime_copy(lab, tmp_path, pin_the_wrong_key)))
    error = refusal(done)
    assert "refused, nothing was changed" in error and "host main-db: its host key" in error
    nothing_armed(lab)


def test_a_cluster_or_member_name_not_the_inventorys_is_refused(lab, tmp_path: Path) -> None:
    real: dict[str, str] = {}

    def rename(data: dict) -> None:
        database = next(s for s in data["systems"].values() if s.get("database"))["database"]
        real.update(cluster=database["cluster"], member=database["members"][1]["name"])
        database["cluster"] = "someone-else"
        database["members"][1]["name"] = "pg-impostor"
    done = ssh_drill("db-primary-crash", "--confirm", "lab", "--runtime",
                     str(runtime_copy(lab, tmp_path, rename)))
    error = refusal(done)
    assert f"belongs to cluster '{real['cluster']}', not 'someone-else'" in error
    assert f"answers as member '{real['member']}', not 'pg-impostor'" in error
    nothing_armed(lab)


def test_ctrl_c_during_a_drill_undoes_its_faults(lab) -> None:
    # SIGINT as a terminal would deliver it, even where the tests run as a background job
    # (which starts with SIGINT ignored, and the drill would never see it)
    drill = subprocess.Popen(DRILL + ["main-center-freeze", "--world", "ssh", "--confirm", "lab", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    try:
        for line in drill.stderr:
            seen.append(line)
            if "freeze_center: freeze_center main" in line:  # the fault is in place
                drill.send_signal(signal.SIGINT)
                break
        out, err = drill.communicate(timeout=600)
    finally:
        drill.kill()
    assert out.strip(), "".join(seen)[-3000:] + err[-3000:]
    result = json.loads(out)
    assert result["status"] == "aborted" and result["passed"] is False
    assert "thaw_center main" in result["restored"]
    assert not any("thaw_center" in item for item in result["left_to_do"])
    nothing_armed(lab)
    status = lab.up(deadline_seconds=120)  # what the drill's left_to_do says to run
    assert status["healthy"] and status["layout"]["intended"], status["problems"]


def test_a_fault_whose_drill_died_is_undone_by_its_host(lab) -> None:
    runtime = RuntimeInventory.load(lab.ctx.runtime_inventory_file)
    world = SshWorld(runtime, undo_deadline_seconds=2)
    world.kill_component("main", "app")  # and nobody undoes it: only the host's deadline
    faults = LabFaults(lab.ctx)

    def app_running() -> bool:
        return all(i["statename"] == "RUNNING" for i in faults.programs("main", "app"))
    wait_until("main's app started again by its host", app_running, 120, 0.2)
    wait_until("nothing armed on any host", lambda: not host_control.armed(lab.ctx.root), 30, 0.1)
    world.connections.close()
