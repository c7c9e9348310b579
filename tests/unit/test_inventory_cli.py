"""The CLI contract: exit codes and JSON shapes that scripts rely on."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, alias_bomb, edit_yaml

REPO = Path(__file__).resolve().parents[2]


def tricenter(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_validate_sample_json_contract():
    run = tricenter("validate", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["valid"] is True and out["systems"] == 25 and out["instances"] == 288
    assert out["warnings"] == []  # the committed IPAM lock covers the sample


def test_validate_broken_inventory_exits_2_with_every_error(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "minimal", broken)
    edit_yaml(broken / "systems" / "portal.yaml", lambda s: s.update(tier="platinum"))
    edit_yaml(broken / "systems" / "archive.yaml", lambda s: s["app"].update(flavor="huge"))
    run = tricenter("validate", "--inventory", str(broken), "--json")
    assert run.returncode == 2
    out = json.loads(run.stdout)
    assert out["valid"] is False
    assert {(Path(e["file"]).name, e["path"]) for e in out["errors"]} == {
        ("portal.yaml", "tier"), ("archive.yaml", "app.flavor")}
    assert all(e["message"] and e["line"] for e in out["errors"])


def test_validate_for_people_has_no_traceback(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "minimal", broken)
    (broken / "tiers.yaml").write_text("- name: [oops\n")
    run = tricenter("validate", "--inventory", str(broken))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "tiers.yaml" in run.stderr


def test_capacity_json_has_centers_and_failover():
    run = tricenter("capacity", "--json")
    assert run.returncode == 1, run.stderr  # the important tier's city-loss promise is broken
    out = json.loads(run.stdout)
    assert set(out["centers"]) == {"guangdong/main", "guangdong/samecity", "guangdong/remote"}
    main_lost = out["failover"]["guangdong/main-lost"]
    city_lost = out["failover"]["guangdong/city-lost"]
    assert main_lost["fits"] is True and main_lost["not_fitting"] == []
    # the sample's remote center is sized for platform and critical systems only
    assert city_lost["fits"] is False and "real-estate-registration" in city_lost["not_fitting"]
    assert city_lost["shortfall"] == {"vcpus": 144, "ram_gib": 56} and out["promises_kept"] is False


def test_capacity_names_broken_promises_and_exits_0_when_all_fit(tmp_path):
    run = tricenter("capacity")
    assert run.returncode == 1
    assert "recovery promise broken for 5 system(s)" in run.stdout
    assert "real-estate-registration (important)" in run.stdout and "short by vcpus 144" in run.stdout
    inventory = tmp_path / "inv"
    shutil.copytree(FIXTURES / "minimal", inventory)
    assert tricenter("capacity", "--inventory", str(inventory)).returncode == 0


def test_ipam_write_records_new_blocks_and_is_idempotent(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(FIXTURES / "minimal", inv)
    first = json.loads(tricenter("ipam", "--inventory", str(inv), "--write", "--json").stdout)
    second = json.loads(tricenter("ipam", "--inventory", str(inv), "--json").stdout)
    assert first["new"] and second["new"] == [] and first["blocks"] == second["blocks"]


def test_generate_writes_a_valid_inventory_with_exact_totals(tmp_path):
    out = tmp_path / "gen"
    run = tricenter("generate", "--out", str(out), "--systems", "60", "--vms", "700", "--clouds", "3")
    assert run.returncode == 0, run.stderr
    check = json.loads(tricenter("validate", "--inventory", str(out), "--json").stdout)
    assert check["valid"] and check["systems"] == 60 and check["instances"] == 700
    assert check["clouds"] == 3


# name: (file in the minimal inventory, its content, what follows "inv/<file>" in the message)
MALFORMED = {
    "alias bomb": ("tiers.yaml", alias_bomb(), ":5:"),
    "anchor inside itself": ("systems/portal.yaml", "name: portal\napp: &a {x: [*a]}\n", ":2:"),
    "list as a key": ("departments.yaml", "- id: x\n  ? [a, b]\n  : 1\n", ":2:"),
    "control character": ("clouds/demo.yaml", "name: demo\nkind: \x1b[31m\n", ":2:"),
    "not UTF-8": ("tiers.yaml", b"- name: gold\n- name: caf\xe9\n", ":2:"),
    "alias bomb in the IPAM lock": ("ipam.lock.yaml", alias_bomb(), ":5:"),
    "oversized file": ("tiers.yaml", "# padding\n" * 110_000, ": 1,100,000 bytes"),
    "file the loader does not read": ("tiers-copy.yaml", "- name: gold\n", ": file is not read"),
    # a real request broken the usual ways: the line is the mistake's, as an editor shows it
    "unclosed bracket": ("systems/portal.yaml", "name: portal\nflows: [a, b\nwave: 1\n", ":2:"),
    "bad indent": ("systems/portal.yaml", "name: portal\napp:\n  flavor: a\n image: b\n", ":4:"),
    "tab indent": ("systems/portal.yaml", "name: portal\napp:\n\tflavor: a\n", ":3:"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_exits_2_naming_file_and_line(tmp_path, case):
    name, content, after = MALFORMED[case]
    inv = tmp_path / "inv"
    shutil.copytree(FIXTURES / "minimal", inv)
    file = inv / name
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    run = tricenter("validate", "--inventory", str(inv))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert f"inv/{name}{after}" in run.stderr


@pytest.mark.parametrize("command", [["validate"], ["capacity"], ["ipam"], ["plan", "--no-save"]],
                         ids=["validate", "capacity", "ipam", "plan"])
def test_every_inventory_command_refuses_an_alias_bomb_the_same_way(tmp_path, command):
    inv = tmp_path / "inv"
    shutil.copytree(FIXTURES / "minimal", inv)
    (inv / "systems" / "portal.yaml").write_text(alias_bomb())
    run = tricenter(*command, "--inventory", str(inv), "--json")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    (error,) = json.loads(run.stdout)["errors"]
    assert (error["file"], error["line"]) == ("inv/systems/portal.yaml", 5)
    assert "aliases" in error["message"]


def test_validate_request_shows_what_it_adds_per_center_and_the_quota_left(tmp_path):
    """The figures a department reviews (issue 14): portal (gold: 2+2+1 small app VMs and
    three database members, a 10 GiB bucket) beside archive in dept-a's quota."""
    inv = tmp_path / "inv"
    shutil.copytree(FIXTURES / "minimal", inv)
    run = tricenter("validate", "--inventory", str(inv), "--request",
                    str(inv / "systems" / "portal.yaml"), "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    [request] = out["requests"]
    assert (request["system"], request["department"], request["tier"]) == ("portal", "dept-a", "gold")
    assert request["adds"]["demo/main"] == {"center": "demo/main", "role": "main", "app_vms": 2,
                                            "db_vms": 1, "vcpus": 8, "ram_gib": 24,
                                            "storage_gib": 190, "instances": 3}
    # the remote center also holds the backup bucket
    assert request["adds"]["demo/remote"]["storage_gib"] == 20 + 150 + 10
    assert request["adds_total"]["app_vms"] == 5 and request["adds_total"]["db_vms"] == 3
    # quota 40/160/4000/15 in main, less portal and archive (1 app VM + the primary)
    assert request["quota_left_after"]["main"]["left"] == {"vcpus": 26, "ram_gib": 116,
                                                          "storage_gib": 3690, "instances": 10}
    assert out["quota_left"]["dept-a"]["remote"]["left"] == {"vcpus": 10, "ram_gib": 44,
                                                             "storage_gib": 3720, "instances": 3}
    text = " ".join(tricenter("validate", "--inventory", str(inv), "--request", "portal")
                    .stdout.split())  # COLUMNS, when the test runner sets it, wraps lines
    assert ("demo/main (main): 2 app + 1 database VM(s); +8 vCPUs, +24 GiB RAM, "
            "+190 GiB storage") in text
    assert "main: 26 of 40 vCPUs, 116 of 160 GiB RAM, 3,690 of 4,000 GiB storage, 10 of 15 VMs" in text


def test_validate_request_outside_the_inventory_is_a_usage_error(tmp_path):
    stray = tmp_path / "new.yaml"
    stray.write_text("name: new\n")
    run = tricenter("validate", "--inventory", str(FIXTURES / "minimal"), "--request", str(stray),
                    "--json")
    assert run.returncode == 2
    assert "systems/<your-dept>/" in json.loads(run.stdout)["error"]


def test_department_guide_shows_what_validate_request_prints():
    """docs/department.md promises a request's delta and the quota left; its example is
    the sample's real output, line for line."""
    guide = (REPO / "docs" / "department.md").read_text()
    command = "tricenter validate --request inventory/guangdong/systems/gd-rst/employment-service.yaml"
    assert f"`{command}`" in guide
    example = guide.split("   ```\n")[1]
    shown = [line.strip() for line in example.splitlines() if line.strip() not in ("", "…")]
    run = tricenter(*command.split()[1:])
    assert run.returncode == 0, run.stderr
    printed = " ".join(run.stdout.split())
    for line in shown:
        assert line in printed, line


def test_validate_prints_schema_and_reference_errors_together_for_people(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(FIXTURES / "minimal", inv)
    edit_yaml(inv / "systems" / "portal.yaml", lambda d: d["app"]["instances"].update(main=-2))
    edit_yaml(inv / "systems" / "archive.yaml", lambda d: d.update(tier="platinum"))
    run = tricenter("validate", "--inventory", str(inv))
    assert run.returncode == 2
    err = " ".join(run.stderr.split())
    line = (inv / "systems" / "portal.yaml").read_text().splitlines().index("    main: -2") + 1
    assert (f"inv/systems/portal.yaml:{line}: app.instances.main: must be 0 or more, got -2 "
            "[system portal, department dept-a]") in err
    assert "inv/systems/archive.yaml:3: tier: unknown tier 'platinum'" in err
    assert "Input should" not in err and "2 problem(s)" in err
