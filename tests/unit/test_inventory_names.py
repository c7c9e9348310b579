"""Names that reach SQL, command lines and paths: the model refuses every hostile form with
the rule it breaks, the samples keep to the rules, and paths built from names stay put."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from inventory.errors import InvalidInventory
from inventory.loader import DEFAULT_INVENTORY, LAB_INVENTORY, load_topology
from inventory.names import (DnsZone, FlowSource, Hostname, Name, PgIdentifier, RemotePath,
                             UnsafePath, path_under)
from inventory.validate import load_valid_topology
from tests.conftest import MINIMAL, edit_yaml

REPO = Path(__file__).resolve().parents[2]

HOSTILE = {
    "quote": 'x"; DROP DATABASE postgres; --',
    "single quote": "x'y",
    "drop": "a; DROP TABLE person",
    "parent": "../../etc",
    "slash": "a/b",
    "space": "a b",
    "newline": "abc\n",
    "newline inside": "a\nb",
    "nul": "a\x00b",
    "backquote": "a`id`",
    "dollar": "a$(id)",
    "empty": "",
    "too long": "a" * 300,
}


class _Probe(BaseModel):
    name: Name | None = None
    identifier: PgIdentifier | None = None
    host: Hostname | None = None
    zone: DnsZone | None = None
    path: RemotePath | None = None
    source: FlowSource | None = None


@pytest.mark.parametrize("field", ["name", "identifier", "host", "zone", "source"])
@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_every_kind_of_name_refuses_hostile_text(field, value):
    with pytest.raises(ValidationError) as caught:
        _Probe(**{field: value})
    [error] = caught.value.errors()
    assert error["type"] == "name_format" and error["msg"].startswith("not ")


@pytest.mark.parametrize("value", ["relative/path", "/srv/../etc", "/srv/./x", "//srv", "/srv//x",
                                   "/srv/a b", "/srv/x\n", "/", "/srv/$(id)", "/" + "a" * 1100])
def test_legacy_paths_must_be_plain_absolute_paths(value):
    with pytest.raises(ValidationError, match="not an absolute path"):
        _Probe(path=value)


@pytest.mark.parametrize("field,value", [
    ("name", "civil-affairs"), ("name", "a"), ("name", "a" * 63),
    ("identifier", "household_registration"), ("identifier", "a" * 63),
    ("host", "idc-gat-08.dept-idc"), ("host", "legacy-registry"), ("host", "IDC-1"),
    ("zone", "zwy.gd.internal."), ("zone", "lab.tricenter.internal"),
    ("path", "/srv/household-registration/files"), ("path", "/srv/registry"),
    ("source", "external"), ("source", "department:gd-zsj"), ("source", "portal"),
])
def test_the_documented_forms_are_accepted(field, value):
    assert getattr(_Probe(**{field: value}), field) == value


@pytest.mark.parametrize("field,value", [
    ("name", "a" * 64), ("name", "ends-"), ("name", "Upper"), ("name", "9lives"),
    ("identifier", "a" * 64), ("identifier", "has-hyphen"), ("identifier", "_lead"),
    ("host", "-lead.example"), ("host", "a..b"), ("host", ("a" * 63 + ".") * 4 + "a"),
    ("source", "department:"), ("source", "department:../x"),
])
def test_the_limits_of_each_form(field, value):
    with pytest.raises(ValidationError):
        _Probe(**{field: value})


@pytest.mark.parametrize("root", [DEFAULT_INVENTORY, LAB_INVENTORY, MINIMAL])
def test_the_committed_inventories_keep_to_the_naming_rules(root):
    assert load_topology(root).systems


def _hostile_inventory(root: Path) -> None:
    def portal(data):
        data["legacy"] = {"host": "../../etc", "database": 'x"; DROP DATABASE postgres; --',
                          "paths": ["/srv/../etc"]}
        data["flows"][0]["from"] = "department:a b"

    def cloud(data):
        data["centers"]["main\nx"] = data["centers"].pop("main")
        data["dns_zone"] = "zone;rm -rf"

    edit_yaml(root / "systems" / "portal.yaml", portal)
    edit_yaml(root / "systems" / "archive.yaml", lambda d: d.update(name="archive'; DROP"))
    edit_yaml(root / "clouds" / "demo.yaml", cloud)
    edit_yaml(root / "departments.yaml", lambda d: d[0].update(id="dept a"))


def test_validate_names_the_file_field_and_allowed_form_of_each_hostile_name(inventory_copy):
    _hostile_inventory(inventory_copy)
    run = subprocess.run([sys.executable, "-m", "scripts.cli", "validate", "--inventory",
                          str(inventory_copy), "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    errors = {(Path(e["file"]).name, e["path"]): e for e in json.loads(run.stdout)["errors"]}
    expected = {
        ("portal.yaml", "legacy.host"): "must be a host name (RFC 1123)",
        ("portal.yaml", "legacy.database"): "must be a PostgreSQL identifier",
        ("portal.yaml", "legacy.paths[0]"): "must be an absolute path",
        ("portal.yaml", "flows[0].from"): "must be one of 'external', 'department:<id>'",
        ("archive.yaml", "name"): "must be a name: a lower-case letter",
        ("demo.yaml", "centers.'main\\nx'"): "must be a name",
        ("demo.yaml", "dns_zone"): "must be a DNS zone",
        ("departments.yaml", "[0].id"): "must be a name",
    }
    assert set(errors) == set(expected)
    for where, rule in expected.items():
        assert errors[where]["message"].startswith(rule), errors[where]
        assert errors[where]["line"], where


def test_validate_for_people_prints_hostile_names_as_text(inventory_copy):
    edit_yaml(inventory_copy / "systems" / "archive.yaml", lambda d: d.update(name="[/]x[red]"))
    run = subprocess.run([sys.executable, "-m", "scripts.cli", "validate", "--inventory",
                          str(inventory_copy)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert ", got '[/]x[red]'" in run.stderr


def test_a_backup_bucket_name_over_the_s3_limit_is_refused(inventory_copy):
    long_name = "portal-" + "x" * 50
    edit_yaml(inventory_copy / "systems" / "portal.yaml", lambda d: d.update(name=long_name))
    edit_yaml(inventory_copy / "systems" / "archive.yaml",
              lambda d: d["flows"][0].update({"from": long_name}))
    with pytest.raises(InvalidInventory) as caught:
        load_valid_topology(inventory_copy)
    [problem] = caught.value.problems
    assert problem.path == "name" and "S3 limit of 63" in problem.message


@pytest.mark.parametrize("parts", [("..", "x"), ("/etc/passwd",), ("a", "..", "..", "b")])
def test_a_path_from_names_cannot_leave_its_root(tmp_path, parts):
    with pytest.raises(UnsafePath, match="outside"):
        path_under(tmp_path / "root", *parts)


def test_a_path_from_names_cannot_leave_through_a_symlink(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePath):
        path_under(root, "link", "x")
    assert path_under(root, "files", "registry") == root / "files" / "registry"
