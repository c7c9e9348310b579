"""The source-database generator: sizes read as people write them, COPY text that
PostgreSQL's COPY accepts (tabs and newlines only where they separate), a serial key."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from lab import datagen
from lab.cli import lab


@pytest.mark.parametrize("text, expected", [
    ("100MB", 100 * 10**6), ("1GB", 10**9), ("1gb", 10**9), ("512MiB", 512 * 2**20),
    ("1.5GB", 1_500_000_000), ("2000000", 2_000_000)])
def test_sizes_in_decimal_and_binary_units(text, expected):
    assert datagen.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "100 parsecs", "-1GB", "1e9"])
def test_a_size_without_number_and_unit_is_refused_with_the_forms(text):
    with pytest.raises(datagen.BadSize, match="e.g. 100MB, 1GB"):
        datagen.parse_size(text)


def test_a_block_is_copy_text_with_three_columns_per_row():
    rows = datagen.block(50).decode().splitlines()
    assert len(rows) == 50
    assert all(len(r.split("\t")) == 3 for r in rows)
    assert all(len(r.split("\t")[2]) == datagen.ROW_BODY for r in rows)
    assert "bigserial PRIMARY KEY" in datagen.create_sql().as_string(None)


def test_the_cli_refuses_a_bad_size_or_system_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("TRICENTER_LAB_DIR", str(tmp_path / "lab"))
    bad_size = CliRunner().invoke(lab, ["legacy-data", "subsidy", "--size", "lots", "--json"])
    assert bad_size.exit_code == 2 and "--size" in bad_size.output
    unknown = CliRunner().invoke(lab, ["legacy-data", "payroll", "--size", "1MB", "--json"])
    assert unknown.exit_code == 2
    assert "legacy systems: registry, subsidy" in unknown.output
    assert not (tmp_path / "lab").exists() or not any((tmp_path / "lab").iterdir())
