"""Every validation rule, each with one broken fixture: the inventory is rejected with a
problem that names the file, the field path and the fix — and nothing else is flagged."""
from __future__ import annotations

from pathlib import Path

import pytest

from inventory.errors import InvalidInventory
from inventory.loader import DEFAULT_INVENTORY, LAB_INVENTORY, load_topology
from inventory.validate import load_valid_topology
from tests.conftest import MINIMAL, edit_yaml


def problems_of(root: Path):
    with pytest.raises(InvalidInventory) as caught:
        load_valid_topology(root)
    return caught.value.problems


def test_minimal_fixture_is_valid():
    topo = load_valid_topology(MINIMAL)
    assert set(topo.systems) == {"portal", "archive"}


def test_sample_inventory_is_valid_with_25_systems():
    topo = load_valid_topology()
    assert len(topo.systems) == 25


def _set(path, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _delete(path):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


# (file, mutation, expected file suffix, expected field path, words in the message)
BROKEN = {
    "unknown-department": ("systems/portal.yaml", _set(["department"], "nobody"),
                           "portal.yaml", "department", "unknown department 'nobody'"),
    "unknown-tier": ("systems/portal.yaml", _set(["tier"], "platinum"),
                     "portal.yaml", "tier", "unknown tier 'platinum'"),
    "unknown-app-flavor": ("systems/portal.yaml", _set(["app", "flavor"], "huge"),
                           "portal.yaml", "app.flavor", "unknown flavor 'huge'"),
    "unknown-db-flavor": ("systems/portal.yaml", _set(["database", "flavor"], "nope"),
                          "portal.yaml", "database.flavor", "unknown flavor 'nope'"),
    "unknown-image": ("systems/portal.yaml", _set(["app", "image"], "windows"),
                      "portal.yaml", "app.image", "unknown image 'windows'"),
    "unknown-cloud": ("departments.yaml", _set([0, "cloud"], "mars"),
                      "departments.yaml", "[0].cloud", "unknown cloud 'mars'"),
    "duplicate-system": ("systems/archive.yaml", _set(["name"], "portal"),
                         "portal.yaml", "name", "duplicate system 'portal'"),
    "duplicate-tier": ("tiers.yaml", _set([1, "name"], "gold"),
                       "tiers.yaml", "[1].name", "duplicate tier 'gold'"),
    "quota-exceeded": ("departments.yaml", _set([0, "quotas", "main", "instances"], 2),
                       "departments.yaml", "[0].quotas.main", "quota exceeded in main: instances 5 > 2"),
    "quota-missing-role": ("departments.yaml", _delete([0, "quotas", "remote"]),
                           "departments.yaml", "[0].quotas.remote", "quota exceeded in remote"),
    "placement-impossible": ("clouds/demo.yaml", _delete(["centers", "samecity"]),
                             "portal.yaml", "tier", "places the system in a samecity center"),
    "instances-where-tier-has-none": ("systems/archive.yaml", _set(["app", "instances", "samecity"], 2),
                                      "archive.yaml", "app.instances.samecity", "runs no app instances in samecity"),
    "no-instances-where-tier-is-active": ("systems/portal.yaml", _set(["app", "instances", "samecity"], 0),
                                          "portal.yaml", "app.instances.samecity", "at least 1 instance"),
    "address-space-exhausted": ("clouds/demo.yaml", _set(["centers", "main", "address_space"], "10.1.0.0/21"),
                                "ipam.lock.yaml", "blocks.demo/main/dept-a", "address space exhausted"),
    "center-spaces-overlap": ("clouds/demo.yaml", _set(["centers", "remote", "address_space"], "10.1.128.0/17"),
                              "demo.yaml", "centers.remote.address_space", "overlaps center 'main'"),
    "two-centers-same-role": ("clouds/demo.yaml", _set(["centers", "remote", "role"], "samecity"),
                              "demo.yaml", "centers.remote.role", "at most one center per role"),
    "flow-unknown-system": ("systems/archive.yaml", _set(["flows", 0, "from"], "ghost"),
                            "archive.yaml", "flows[0].from", "unknown system 'ghost'"),
    "flow-unknown-department": ("systems/archive.yaml", _set(["flows", 0, "from"], "department:zzz"),
                                "archive.yaml", "flows[0].from", "unknown department"),
    "flow-bad-port": ("systems/archive.yaml", _set(["flows", 0, "ports"], [70000]),
                      "archive.yaml", "flows[0].ports[0]", "must be 65535 or less, got 70000"),
    "wrong-type": ("systems/portal.yaml", _set(["app", "instances", "main"], "two"),
                   "portal.yaml", "app.instances.main", "must be a whole number, got 'two'"),
    "unknown-key": ("systems/portal.yaml", _set(["colour"], "blue"),
                    "portal.yaml", "colour", "unknown key"),
    "missing-field": ("systems/portal.yaml", _delete(["tier"]),
                      "portal.yaml", "tier", "required field is missing"),
    "bad-name": ("systems/portal.yaml", _set(["name"], "Portal_1"),
                 "portal.yaml", "name", "lower-case"),
    "tier-beyond-its-level": ("tiers.yaml", _set([0, "rpo_seconds"], 60),
                              "tiers.yaml", "[0].rpo_seconds", "above GB/T 20988-2007 level 6"),
    "tier-two-primaries": ("tiers.yaml", _set([0, "placement", "database", "samecity"], "primary"),
                           "tiers.yaml", "[0].placement.database", "exactly one center role"),
    "ipam-prefixes-shrink": ("clouds/demo.yaml", _set(["ipam", "system_prefix"], 19),
                             "demo.yaml", "ipam", "prefixes must grow"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_rejects_its_broken_fixture(inventory_copy: Path, case: str):
    file, mutate, where, path, words = BROKEN[case]
    edit_yaml(inventory_copy / file, mutate)
    problems = problems_of(inventory_copy)
    matching = [p for p in problems if p.file.endswith(where) and p.path == path and words in p.message]
    assert matching, f"expected {where}:{path} '{words}', got:\n" + "\n".join(map(str, problems))
    for problem in problems:
        assert problem.file and problem.message


def test_yaml_syntax_error_names_file_and_line(inventory_copy: Path):
    (inventory_copy / "systems" / "portal.yaml").write_text("name: portal\napp: [unclosed\n")
    problems = problems_of(inventory_copy)
    assert len(problems) == 1
    assert problems[0].file.endswith("portal.yaml")
    # libyaml marks the end of the file on line 3, a line no editor shows; point at the last
    assert problems[0].line == 2 and "YAML syntax error" in problems[0].message


def test_key_written_twice_is_an_error(inventory_copy: Path):
    file = inventory_copy / "systems" / "archive.yaml"
    file.write_text(file.read_text() + "tier: gold\n")
    problems = problems_of(inventory_copy)
    assert "appears twice" in problems[0].message and problems[0].line is not None


def test_line_numbers_point_at_the_field(inventory_copy: Path):
    edit_yaml(inventory_copy / "systems" / "portal.yaml", _set(["tier"], "platinum"))
    text = (inventory_copy / "systems" / "portal.yaml").read_text().splitlines()
    (problem,) = [p for p in problems_of(inventory_copy) if p.path == "tier"]
    assert text[problem.line - 1].startswith("tier:")


def test_all_errors_are_reported_at_once(inventory_copy: Path):
    edit_yaml(inventory_copy / "systems" / "portal.yaml", _set(["tier"], "platinum"))
    edit_yaml(inventory_copy / "systems" / "archive.yaml", _set(["app", "flavor"], "huge"))
    edit_yaml(inventory_copy / "departments.yaml", _set([0, "name_en"], 5))
    problems = problems_of(inventory_copy)
    # a schema error no longer hides the cross-checks: one run, every mistake (issue 14)
    assert sorted(p.path for p in problems) == ["[0].name_en", "app.flavor", "tier"]


def test_schema_and_cross_check_errors_of_one_system_come_together(inventory_copy: Path):
    edit_yaml(inventory_copy / "systems" / "portal.yaml", _set(["tier"], "platinum"))
    edit_yaml(inventory_copy / "systems" / "portal.yaml", _set(["app", "instances", "main"], -2))
    edit_yaml(inventory_copy / "systems" / "portal.yaml", _set(["database", "flavor"], "nope"))
    found = {p.path: p for p in problems_of(inventory_copy)}
    assert set(found) == {"tier", "app.instances.main", "database.flavor"}, found
    assert found["app.instances.main"].message == "must be 0 or more, got -2"
    text = (inventory_copy / "systems" / "portal.yaml").read_text().splitlines()
    assert text[found["app.instances.main"].line - 1].strip() == "main: -2"
    assert {(p.system, p.department) for p in found.values()} == {("portal", "dept-a")}


def test_a_schema_error_in_a_quota_is_not_also_a_quota_overflow(inventory_copy: Path):
    edit_yaml(inventory_copy / "departments.yaml", _set([0, "quotas", "main", "vcpus"], -2))
    edit_yaml(inventory_copy / "systems" / "archive.yaml", _set(["tier"], "platinum"))
    problems = problems_of(inventory_copy)
    assert sorted(p.path for p in problems) == ["[0].quotas.main.vcpus", "tier"], problems
    quota = next(p for p in problems if p.path.endswith("vcpus"))
    assert quota.message == "must be 0 or more, got -2" and quota.department == "dept-a"
    line = (inventory_copy / "departments.yaml").read_text().splitlines()[quota.line - 1]
    assert line.strip() == "vcpus: -2"
    assert "Input should" not in str(problems)


def test_an_unreadable_file_does_not_make_its_names_unknown(inventory_copy: Path):
    """archive's flow from portal and every system's tier stay quiet: the only mistakes
    are the two files that cannot be read."""
    (inventory_copy / "systems" / "portal.yaml").write_text("name: portal\napp: [unclosed\n")
    (inventory_copy / "tiers.yaml").write_text("- name: gold\n  rto_seconds: [\n")
    problems = problems_of(inventory_copy)
    assert sorted(p.file.removeprefix("inv/") for p in problems) == ["systems/portal.yaml",
                                                                      "tiers.yaml"], problems


def test_missing_directory_is_a_user_error(tmp_path: Path):
    problems = problems_of(tmp_path / "nowhere")
    assert "not found" in problems[0].message


def test_yaml_files_the_loader_does_not_read_are_errors(inventory_copy: Path):
    (inventory_copy / "tiers-copy.yaml").write_text((inventory_copy / "tiers.yaml").read_text())
    (inventory_copy / "system").mkdir()  # typo of systems/
    (inventory_copy / "system" / "mail.yaml").write_text("name: mail\n")
    (inventory_copy / "systems" / "mail.yml").write_text("name: mail\n")
    (inventory_copy / "clouds" / "old").mkdir()
    (inventory_copy / "clouds" / "old" / "demo.YAML").write_text("name: demo\n")
    problems = {p.file.removeprefix("inv/"): p.message for p in problems_of(inventory_copy)}
    assert set(problems) == {"tiers-copy.yaml", "system/mail.yaml", "systems/mail.yml",
                             "clouds/old/demo.YAML"}
    assert all("file is not read" in m and ".disabled" in m for m in problems.values())
    assert "rename it to mail.yaml" in problems["systems/mail.yml"]
    assert "systems/<dept>/<system>.yaml" in problems["system/mail.yaml"]


def test_files_kept_unread_on_purpose_are_not_reported(inventory_copy: Path):
    (inventory_copy / "tiers.yaml.disabled").write_text("- name: [broken\n")
    (inventory_copy / "README.md").write_text("notes\n")
    (inventory_copy / ".draft.yaml").write_text("name: [broken\n")
    (inventory_copy / ".git").mkdir()
    (inventory_copy / ".git" / "ci.yml").write_text("x: 1\n")
    (inventory_copy / "systems" / ".#portal.yaml").symlink_to("root@host.1234")  # emacs lock
    assert len(load_valid_topology(inventory_copy).systems) == 2


@pytest.mark.parametrize("inventory", [DEFAULT_INVENTORY, LAB_INVENTORY], ids=["sample", "lab"])
def test_shipped_inventories_hold_only_files_the_loader_reads(inventory: Path):
    load_topology(inventory)  # raises InvalidInventory on an unread file


# (file, mutation, field path, the message in the user's words)
IN_USERS_WORDS = {
    "role typo as a key": ("departments.yaml", _set([0, "quotas", "mian"], {
        "vcpus": 1, "ram_gib": 1, "storage_gib": 1, "instances": 1}),
        "[0].quotas.mian", "must be one of main, samecity or remote, got 'mian'"),
    "quota given as a number": ("departments.yaml", _set([0, "quotas", "main"], -2),
                                "[0].quotas.main", "must be a mapping (indented 'key: value' lines), got -2"),
    "text for a boolean": ("tiers.yaml", _set([0, "placement", "recover_in_remote"], "maybe"),
                           "[0].placement.recover_in_remote", "must be true or false, got 'maybe'"),
    "host bits in a network": ("clouds/demo.yaml", _set(["centers", "main", "address_space"], "10.1.0.1/16"),
                               "centers.main.address_space", "must be an IPv4 network with its prefix"),
    "level out of range": ("tiers.yaml", _set([0, "gbt20988_level"], 7),
                           "[0].gbt20988_level", "must be 6 or less, got 7"),
}


@pytest.mark.parametrize("case", sorted(IN_USERS_WORDS))
def test_schema_errors_are_in_the_users_words(inventory_copy: Path, case: str):
    file, mutate, path, words = IN_USERS_WORDS[case]
    edit_yaml(inventory_copy / file, mutate)
    found = [p for p in problems_of(inventory_copy) if p.path == path]
    assert found and found[0].message.startswith(words), problems_of(inventory_copy)
    assert "Input should" not in found[0].message
