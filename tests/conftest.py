"""Shared fixtures: a small valid inventory that tests copy and break one rule at a time."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures"
MINIMAL = FIXTURES / "minimal"


@pytest.fixture
def inventory_copy(tmp_path: Path) -> Path:
    target = tmp_path / "inv"
    shutil.copytree(MINIMAL, target)
    return target


def edit_yaml(file: Path, change: Callable[[object], object | None]) -> None:
    """Load a YAML file, let `change` mutate (or replace) the data, write it back."""
    data = yaml.safe_load(file.read_text())
    result = change(data)
    file.write_text(yaml.safe_dump(data if result is None else result, sort_keys=False,
                                   allow_unicode=True))


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" file: ~500 bytes that expand to width**levels values (387 M)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"
