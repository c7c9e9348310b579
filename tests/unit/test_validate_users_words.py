"""Validation messages a department can act on: which department, which system, which line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inventory.errors import InvalidInventory
from inventory.validate import load_valid_topology

SAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "guangdong"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    target = tmp_path / "guangdong"
    shutil.copytree(SAMPLE, target)
    return target


def problems(root: Path) -> list:
    with pytest.raises(InvalidInventory) as error:
        load_valid_topology(root)
    return error.value.problems


def test_a_system_in_another_departments_folder_is_refused(sample: Path) -> None:
    (sample / "systems" / "gd-zsj" / "e-licence.yaml").rename(sample / "systems" / "gd-rst" / "e-licence.yaml")
    [problem] = problems(sample)
    assert problem.file.endswith("systems/gd-rst/e-licence.yaml") and problem.path == "department"
    assert "gd-zsj" in problem.message and "systems/gd-zsj/" in problem.message


def test_quota_overflow_names_department_system_and_its_own_line(sample: Path) -> None:
    file = sample / "systems" / "gd-rst" / "employment-service.yaml"
    file.write_text(file.read_text().replace("    main: 5", "    main: 95", 1))
    found = [p for p in problems(sample) if "quota" in p.message]
    assert found, problems(sample)
    problem = found[0]
    lines = (sample / "departments.yaml").read_text().splitlines()
    assert problem.line is not None and lines[problem.line - 1].strip() == "quotas: *id001"
    assert "department 'gd-rst'" in problem.message and "employment-service" in problem.message


def test_a_bad_value_shared_through_an_anchor_is_one_problem_naming_every_department(sample: Path) -> None:
    file = sample / "departments.yaml"
    lines = file.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "ram_gib: 1024")
    lines[at] = lines[at].replace("1024", "-5")
    file.write_text("\n".join(lines) + "\n")
    [problem] = problems(sample)
    assert problem.line == at + 1 and problem.path.endswith("quotas.main.ram_gib")
    assert problem.message.startswith("must be 0 or more, got -5")
    assert "gd-zsj, gd-gat, gd-rst" in problem.message
