"""What an auditor reads in a drill report: only measured figures, each with its unit and
definition, a level only when earned, the context of the run, and a Chinese version."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dr.engine import Event
from dr.report import AmbiguousReport, find_report, write_report
from dr.scenario import get_scenario
from inventory.runtime import DatabaseCluster, DbIntendedRole, DbMember, HostPort, SecretRef
from tests.unit.test_dr_report import outcome

TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nRuntimeError: boom | pipe'


def with_database(out, new_primary_center: str = "samecity"):
    members = [DbMember(name=n, center=c, host="127.0.0.1", api_url="http://127.0.0.1:8008",
                        intended_role=DbIntendedRole.leader)
               for n, c in (("pg-main", "main"), ("pg-samecity", new_primary_center))]
    out.system = out.system.model_copy(update={"database": DatabaseCluster(
        cluster="c", dbname="d", user="u", password=SecretRef(env="PW"), members=members,
        read_write=HostPort(host="127.0.0.1", port=5000), read_only=HostPort(host="127.0.0.1", port=5001))})
    return out


def report(tmp_path: Path, out=None, context: dict | None = None) -> tuple[Path, dict]:
    return write_report(out or with_database(outcome()), tmp_path, context)


@pytest.mark.parametrize("status", ["failed", "error", "aborted"])
def test_no_level_for_a_drill_that_did_not_pass(tmp_path: Path, status: str) -> None:
    out = with_database(outcome(), "remote")
    out.status = status
    directory, data = report(tmp_path, out)
    assert data["gbt20988_level"] is None and "did not pass" in data["gbt20988_level_note"]
    assert "reached" not in (directory / "report.md").read_text()


def test_no_level_without_a_fault_instead_of_a_made_up_rto(tmp_path: Path) -> None:
    out = with_database(outcome(), "remote")
    out.markers.pop("fault")
    directory, data = report(tmp_path, out)
    assert data["gbt20988_level"] is None and "no RTO" in data["gbt20988_level_note"]


def test_no_level_when_rpo_was_not_verified(tmp_path: Path) -> None:
    out = with_database(outcome(), "remote")
    out.rpo_verified = False
    _, data = report(tmp_path, out)
    assert data["gbt20988_level"] is None and "RPO was not measured" in data["gbt20988_level_note"]


def test_level_6_needs_recovery_in_the_remote_center(tmp_path: Path) -> None:
    _, same_city = report(tmp_path / "a", with_database(outcome(), "samecity"))
    _, remote = report(tmp_path / "b", with_database(outcome(), "remote"))
    assert same_city["gbt20988_level"] == 5 and "not in a remote cluster" in same_city["gbt20988_level_note"]
    assert remote["gbt20988_level"] == 6 and "30 min" in remote["gbt20988_level_reading"]


def test_every_figure_has_a_unit_and_millisecond_rounding(tmp_path: Path) -> None:
    directory, data = report(tmp_path)
    markdown = (directory / "report.md").read_text()
    assert "None" not in markdown and "n/a" not in markdown
    assert re.search(r"\| 120\.000 s \|", markdown)  # the target has its unit
    assert re.search(r"\| 0 writes \| 0 writes \(RPO 0 s\) \|", markdown)
    assert not re.search(r"\d\.\d{4,}", markdown)  # never more than ms
    assert all(c["unit"] for c in data["criteria"] if not c["name"].startswith("check:"))


def test_one_definition_per_rto_and_the_judged_one_is_marked(tmp_path: Path) -> None:
    out = with_database(outcome(), "remote")
    out.scenario = get_scenario("regional-disaster")
    out.markers["declare"] = 1012.0
    out.rto_from_declaration_seconds = 2.5
    directory, data = report(tmp_path, out)
    assert data["rto_from"] == "declaration" and data["rto_judged_seconds"] == 2.5
    markdown = (directory / "report.md").read_text()
    assert "RTO from the disaster declaration (judged)" in markdown
    assert "human decision" in markdown
    assert markdown.count("RTO from the fault |") == 1


def test_steps_show_when_they_ended_relative_to_the_fault(tmp_path: Path) -> None:
    out = with_database(outcome())
    out.events.append(Event(1010.12, "recover", "recovered", "writes are back", seconds=5.5))
    directory, data = report(tmp_path, out)
    step = data["events"][-1]
    assert step["from_fault_seconds"] == 0.12 and step["ended_from_fault_seconds"] == 5.62
    assert "T+0.120 s → T+5.620 s" in (directory / "report.md").read_text()


def test_failback_gap_is_in_the_figures_and_writers_channel_is_named(tmp_path: Path) -> None:
    out = with_database(outcome())
    out.failback_max_write_gap_seconds = 2.0912
    markdown = (report(tmp_path, out)[0] / "report.md").read_text()
    assert "| longest write gap during failback | 2.091 s |" in markdown
    assert "Who acknowledged writes (database channel only)" in markdown


def test_tracebacks_are_fenced_not_in_table_rows(tmp_path: Path) -> None:
    out = with_database(outcome())
    out.status, out.reason = "error", TRACEBACK
    out.events.append(Event(1011.0, "fault", "kill", TRACEBACK, ok=False))
    directory, _ = report(tmp_path, out)
    markdown = (directory / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert not any("File \"x.py\"" in row for row in rows)
    assert markdown.count("```text\nTraceback (most recent call last):") == 2
    assert "<pre>Traceback" in (directory / "report.html").read_text()


def test_backticks_become_code_in_html(tmp_path: Path) -> None:
    out = with_database(outcome())
    out.left_to_do.append("check `tricenter lab status`")
    html = (report(tmp_path, out)[0] / "report.html").read_text()
    assert "<code>tricenter lab status</code>" in html and "`" not in html


def test_context_block_names_environment_tiers_versions_and_both_clocks(tmp_path: Path) -> None:
    context = {"environment": "lab", "runtime_inventory": "/l/runtime-inventory.yaml",
               "inventory": "inventory/lab", "tiers_file": "inventory/lab/tiers.yaml",
               "patroni_profile": "fast", "network_mode": "loopback", "tricenter": "0.1.0",
               "commit": "abc123def456", "components": {"patroni": "3.1.2"}}
    directory, data = report(tmp_path, context=context)
    assert data["context"]["tiers_file"] == "inventory/lab/tiers.yaml"
    markdown = (directory / "report.md").read_text()
    for text in ("lab (processes on one machine; not production)", "inventory/lab/tiers.yaml",
                 "patroni 3.1.2", "abc123def456", "1970-01-01T00:16:40.000+00:00 (UTC) = "
                 "1970-01-01T08:16:40.000+08:00 (UTC+8)"):
        assert text in markdown


def test_a_chinese_report_beside_the_english_one_with_a_cjk_font_stack(tmp_path: Path) -> None:
    directory, _ = report(tmp_path)
    zh_md = (directory / "report.zh.md").read_text()
    zh_html = (directory / "report.zh.html").read_text()
    assert "结论：通过" in zh_md.replace(": ", "：") and "丢失的已确认写入" in zh_md
    assert '<html lang="zh-CN">' in zh_html
    for html in (zh_html, (directory / "report.html").read_text()):
        assert '"Noto Sans CJK SC"' in html and '"Microsoft YaHei"' in html
    assert 'href="report.zh.html"' in (directory / "report.html").read_text()
    assert "主中心意外整体失效" in zh_md and "Unplanned loss of the main center" not in zh_md
    assert "Unplanned loss of the main center" in (directory / "report.md").read_text()


def test_every_scenario_reads_in_chinese_too() -> None:
    from dr.scenario import load_catalogue

    for scenario in load_catalogue().values():
        for text in (scenario.title_zh, scenario.description_zh):
            assert text and any("\u4e00" <= ch <= "\u9fff" for ch in text), scenario.name


def test_report_accepts_the_path_drill_run_printed_and_names_ambiguity(tmp_path: Path) -> None:
    directory, data = report(tmp_path)
    assert find_report(str(directory / "report.html"), tmp_path) == directory
    assert find_report(str(directory), tmp_path) == directory
    assert find_report(data["run_id"][:6], tmp_path) == directory
    twin = tmp_path / (directory.name + "-copy")
    twin.mkdir()
    (twin / "report.json").write_text(json.dumps({**data, "run_id": "other"}))
    with pytest.raises(AmbiguousReport, match="matches 2 reports"):
        find_report(directory.name[:8], tmp_path)
