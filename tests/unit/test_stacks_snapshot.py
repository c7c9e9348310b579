"""A plan checked against a snapshot of the real cloud: the sample's snapshot has every
name the sample uses; broken copies are refused with every missing name listed."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from inventory.loader import DEFAULT_INVENTORY
from stacks.cli import plan
from stacks.plan import plan_stack
from stacks.snapshot import CloudSnapshot, SnapshotError, load_snapshot, take_snapshot
from stacks_helpers import sample

SNAPSHOT = DEFAULT_INVENTORY / "cloud-snapshot.yaml"


@pytest.fixture()
def plans(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TRICENTER_PLANS_DIR", str(tmp_path / "plans"))
    return tmp_path / "plans"


def broken(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(SNAPSHOT.read_text())
    edit(data)
    file = tmp_path / "snapshot.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def drop(data: dict, kind: str, name: str) -> None:
    data[kind] = [item for item in data[kind] if item["name"] != name]


def test_plan_all_against_the_samples_snapshot_passes_with_every_vm(plans):
    result = CliRunner().invoke(plan, ["--all", "--json", "--snapshot", str(SNAPSHOT)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total_instances"] == 288
    assert report["snapshot"] == {"file": str(SNAPSHOT), "ok": True, "missing": []}


def test_plan_names_every_image_flavor_network_and_zone_the_cloud_lacks(plans, tmp_path):
    def edit(data):
        drop(data, "images", "kylin-v10-sp3-patroni")
        drop(data, "flavors", "db.large")
        drop(data, "external_networks", "gov-ext-gz1")
        data["availability_zones"] = [z for z in data["availability_zones"]
                                      if z["name"] != "gz1-az2"]
        drop(data, "dns_zones", "zwy.gd.internal.")
    file = broken(tmp_path, edit)
    result = CliRunner().invoke(plan, ["--stack", "guangdong-main", "--json", "--snapshot",
                                       str(file)])
    assert result.exit_code == 2, result.output
    missing = {(m["kind"], m["name"]) for m in json.loads(result.output)["snapshot"]["missing"]}
    assert missing == {("image", "kylin-v10-sp3-patroni"), ("flavor", "db.large"),
                       ("network", "gov-ext-gz1"), ("zone", "gz1-az2"),
                       ("dns_zone", "zwy.gd.internal.")}


def test_plan_without_json_names_the_missing_image(plans, tmp_path):
    file = broken(tmp_path, lambda d: drop(d, "images", "kylin-v10-sp3"))
    result = CliRunner().invoke(plan, ["--stack", "guangdong-remote", "--snapshot", str(file)])
    assert result.exit_code == 2
    assert "image kylin-v10-sp3: not in region gd-sg-1" in result.output


def test_a_region_without_the_image_is_a_shortfall_even_if_another_has_it(tmp_path):
    def edit(data):
        data["images"] = [i for i in data["images"]
                          if not (i["name"] == "kylin-v10-sp3" and i["region"] == "gd-sg-1")]
    snapshot = load_snapshot(broken(tmp_path, edit))
    assert [f.name for f in plan_stack(sample(), "guangdong-remote", snapshot=snapshot)
            .shortfalls] == ["kylin-v10-sp3"]
    assert plan_stack(sample(), "guangdong-main", snapshot=snapshot).shortfalls == []


def test_quota_the_plan_would_exceed_is_named(tmp_path):
    def edit(data):
        for quota in data["quotas"]:
            if quota["region"] == "gd-gz-1":
                quota["instances"] = 10
    snapshot = load_snapshot(broken(tmp_path, edit))
    found = plan_stack(sample(), "guangdong-main", snapshot=snapshot).shortfalls
    assert [(f.kind, f.name) for f in found] == [("quota", "instances")]
    assert "allows 10" in found[0].detail


def test_an_existing_department_project_must_be_adopted_not_created(tmp_path):
    snapshot = load_snapshot(broken(tmp_path, lambda d: d["projects"].append(
        {"name": "gd-zsj", "id": "e3b0c442"})))
    found = plan_stack(sample(), "guangdong-main", snapshot=snapshot).shortfalls
    assert [(f.kind, f.name) for f in found] == [("project", "gd-zsj")]
    assert "adoptProjects.gd-zsj" in found[0].detail and "e3b0c442" in found[0].detail


def test_a_flavor_of_another_size_is_named(tmp_path):
    def edit(data):
        for flavor in data["flavors"]:
            if flavor["name"] == "app.medium":
                flavor["vcpus"] = 2
    found = plan_stack(sample(), "guangdong-main",
                       snapshot=load_snapshot(broken(tmp_path, edit))).shortfalls
    assert {(f.kind, f.name) for f in found} == {("flavor", "app.medium")}


def test_lookups_are_answered_with_the_snapshots_ids():
    from stacks.plan import run_program

    run = run_program(sample(), "guangdong-remote", snapshot=load_snapshot(SNAPSHOT))
    routers = [r for r in run.registrations if r.type.endswith("router:Router")]
    assert {r.inputs["externalNetworkId"] for r in routers} == {"net-gov-ext-sg1"}


@pytest.mark.parametrize("text, where", [
    ("- just a list\n", "a mapping"),
    ("images: []\n", "flavors"),
    ("images: [{id: x}]\nflavors: []\nexternal_networks: []\navailability_zones: []\n"
     "dns_zones: []\n", "images.0.name"),
])
def test_a_malformed_snapshot_is_refused_with_file_and_field(tmp_path, plans, text, where):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(SnapshotError, match=where):
        load_snapshot(file)
    result = CliRunner().invoke(plan, ["--stack", "guangdong-main", "--json",
                                       "--snapshot", str(file)])
    assert result.exit_code == 2
    error = json.loads(result.output)
    assert error["ok"] is False and str(file) in error["error"]
    assert not plans.exists()


class FakeConnection:
    """Answers only the list and show calls a snapshot makes; any other call fails."""

    def __init__(self, region: str):
        n = SimpleNamespace
        zone = n(name=f"{region}-az1", state={"available": True})
        self.image = n(images=lambda: [n(name="kylin", id="i1", status="active")])
        self.compute = n(
            flavors=lambda: [n(name="app.small", id="f1", vcpus=2, ram=4096, disk=40)],
            availability_zones=lambda: [zone],
            get_limits=lambda: n(absolute=n(total_cores=100, total_cores_used=10,
                                            total_ram=102400, total_ram_used=10240,
                                            instances=50, instances_used=5)))
        self.block_storage = n(
            availability_zones=lambda: [n(name="nova", state=None)],
            get_limits=lambda: n(absolute=n(max_total_volume_gigabytes=-1,
                                            total_gigabytes_used=3)))
        self.network = n(networks=lambda **q: [n(name="ext", id="net1")] if q else [])
        self.load_balancer = n(providers=lambda: [n(name="amphora")])
        self.dns = n(zones=lambda: [n(name="zone.", id="z1")])
        self.identity = n(projects=lambda: [n(name="admin", id="p1")])


def test_a_snapshot_taken_through_openstacksdk_loads_back():
    data = take_snapshot("c", [("c-main", "r1"), ("c-remote", "r2")],
                         connect=lambda cloud, region_name: FakeConnection(region_name))
    snapshot = CloudSnapshot.model_validate(yaml.safe_load(yaml.safe_dump(data)))
    assert snapshot.find("images", "kylin", "r2") is not None
    assert snapshot.find("availability_zones", "r1-az1", "r1", "compute") is not None
    assert snapshot.find("availability_zones", "nova", "r2", "volume") is not None
    assert [q.model_dump() for q in snapshot.quotas][0] == {
        "region": "r1", "vcpus": 90, "ram_gib": 90, "storage_gib": -1, "instances": 45}
    assert [p.name for p in snapshot.projects] == ["admin"]
