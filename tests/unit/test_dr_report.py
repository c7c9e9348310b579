"""Reports and history from a synthetic drill outcome; the CLI's user-error exits."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr import checker, history
from dr.cli import drill, repeat_summary
from dr.engine import DrillOutcome, Event
from dr.levels import combine, level_reached
from dr.ledger import Observation, Write
from dr.report import find_report, write_report
from dr.scenario import get_scenario
from dr.verdict import evaluate, passed
from tests.unit.test_support_patroni import cluster as patroni_answering
from inventory.loader import load_gbt_table
from inventory.runtime import SystemRuntime


def outcome() -> DrillOutcome:
    sc = get_scenario("main-center-loss")
    out = DrillOutcome(sc, SystemRuntime(name="sample", department="d", tier="critical"), "abc123", 1000.0)
    t, i = 1000.0, 0
    while t < 1020:
        i += 1
        ok = not (1010 <= t < 1014)
        node, tl = ("pg-main", 1) if t < 1010 else ("pg-samecity", 2)
        out.ledger.add_write(Write(i, "db", i % 3, t, t + 0.01, ok, node=node if ok else None,
                                   timeline=tl if ok else None, system_id="7", server_time=t if ok else None,
                                   error=None if ok else "connection refused"))
        t = round(t + 0.05, 3)
    for k in range(80):
        at = 1000 + k * 0.25
        leader = "pg-main" if at < 1010 else (None if at < 1013 else "pg-samecity")
        out.ledger.add_observation(Observation(at, leader, 1 if at < 1010 else 2, {}))
    out.markers = {"fault": 1010.0, "recovered": 1018.0, "restore_start": 1018.5, "restore_end": 1019.5}
    writes = out.ledger.writes
    present = Counter({w.id: 1 for w in writes if w.acked})
    out.findings = checker.check(writes, [], out.ledger.observations, present, 1010.0, 1018.0, 1020.0)
    out.rpo_verified = True
    out.targets = combine(120, 0, None, 0, None, "critical", 6)
    out.criteria = evaluate(out.findings, out.targets, {"restored_original_layout": True},
                            out.findings.rto_seconds)
    out.gbt_level = level_reached(load_gbt_table(), out.findings.rto_seconds, 0.0, 0).level
    out.status = "passed" if passed(out.criteria) else "failed"
    out.finished_at = 1021.0
    return out


def test_report_has_the_contract_fields_and_files(tmp_path: Path) -> None:
    directory, data = write_report(outcome(), tmp_path)
    for key in ("scenario", "rto_seconds", "rpo_lost_writes", "rpo_seconds", "acknowledged_writes",
                "split_brain", "gbt20988_level", "passed", "report_dir"):
        assert key in data
    # zero loss in minutes, but recovered in the same city: level 6 needs a remote cluster
    assert data["passed"] is True and data["split_brain"] is False and data["gbt20988_level"] == 5
    assert 3.9 < data["rto_seconds"] < 4.1
    for name in ("report.json", "report.md", "report.html", "timeline.png", "ledger.jsonl"):
        assert (directory / name).stat().st_size > 0
    assert "detect" in json.loads((directory / "report.json").read_text())["markers"]
    assert "PASSED" in (directory / "report.md").read_text()
    assert find_report("abc123", tmp_path) == directory
    assert find_report("latest", tmp_path) == directory


SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(2)>'


def test_html_report_escapes_step_details_and_text_from_patroni(tmp_path: Path) -> None:
    out = outcome()
    refusing = patroni_answering(503, f"switchover refused {BREAKOUT}{SCRIPT}")  # hostile markup
    with pytest.raises(RuntimeError) as refused:
        refusing.switchover("pg-main", "pg-samecity")
    out.status, out.reason = "error", str(refused.value)
    out.events.append(Event(1019.0, "failback", "switchover", f"step detail {SCRIPT} {BREAKOUT}",
                            ok=False))
    out.left_to_do.append(f"check {BREAKOUT}")
    directory, _ = write_report(out, tmp_path)
    html = (directory / "report.html").read_text()
    assert "<script" not in html and BREAKOUT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert html.count("<img ") == 1 and '<img src="timeline.png"' in html  # the plot still shows
    markdown = (directory / "report.md").read_text()
    assert SCRIPT in markdown  # Markdown is text for people and tools, not escaped HTML


def test_history_trend_per_scenario_and_system(tmp_path: Path) -> None:
    file = tmp_path / "h.jsonl"
    for rto in (4.0, 6.0, 5.0):
        history.append({"scenario": "main-center-loss", "system": "s", "status": "passed", "passed": True,
                        "rto_seconds": rto, "rpo_lost_writes": 0, "split_brain": False,
                        "acknowledged_writes": 100}, file)
    with file.open("a") as out:
        out.write('{"scenario": "trunc')  # a drill killed mid-write
    [row] = history.trend(history.load(file))
    assert row["runs"] == 3 and row["rto_seconds"] == {"min": 4.0, "median": 5.0, "max": 6.0}


def test_repeat_summary_min_median_max() -> None:
    results = [{"passed": True, "status": "passed", "rto_seconds": r, "rpo_lost_writes": 0, "rpo_seconds": 0.0,
                "acknowledged_writes": 10, "split_brain": False, "gbt20988_level": 6, "report_dir": "x"}
               for r in (3.0, 5.0, 4.0)]
    s = repeat_summary("main-center-loss", results)
    assert s["rto_seconds_spread"] == {"min": 3.0, "median": 4.0, "max": 5.0} and s["passed"]
    # a key a single run also has keeps its type there: a script never meets two shapes
    for key in set(s) & set(results[0]):
        assert type(s[key]) is type(results[0][key]), key


def test_cli_list_and_user_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(drill, ["list", "--json"])
    assert listed.exit_code == 0 and "main-center-loss" in listed.output
    unknown = runner.invoke(drill, ["run", "no-such-drill"])
    assert unknown.exit_code == 2 and "known:" in unknown.output
    no_lab = runner.invoke(drill, ["run", "main-center-loss", "--runtime", str(tmp_path / "none.yaml")])
    assert no_lab.exit_code == 2 and "lab up" in no_lab.output


def test_an_aborted_drill_says_what_was_restored_and_what_is_left(tmp_path: Path, capsys) -> None:
    from dr.cli import _print_result
    out = outcome()
    out.status, out.reason = "error", "restore: reprotect_from_remote failed: patronictl crashed"
    out.restored = ["thaw_center main"]
    out.left_to_do = ["reprotect_from_remote failed: patronictl crashed",
                      "run `tricenter lab up`: it restarts what is stopped, …"]
    directory, data = write_report(out, tmp_path)
    assert data["restored"] == ["thaw_center main"] and data["left_to_do"] == out.left_to_do
    markdown = (directory / "report.md").read_text()
    assert "thaw_center main" in markdown and "run `tricenter lab up`" in markdown
    _print_result(data, as_json=False)
    printed = capsys.readouterr().out
    assert "restored: thaw_center main" in printed
    assert "left to do: reprotect_from_remote failed" in printed
    assert "left to do: run `tricenter lab up`" in printed


def test_the_verdict_names_the_edition_of_the_level_table(tmp_path: Path, capsys) -> None:
    from dr.cli import _print_result
    out = outcome()
    out.gbt = load_gbt_table("2025")
    directory, data = write_report(out, tmp_path)
    assert data["gbt20988_edition"] == "2025"
    markdown = (directory / "report.md").read_text()
    assert "GB/T 20988-2025 level" in markdown and out.gbt.note in markdown
    assert "GB/T 20988-2025 灾难恢复能力等级" in (directory / "report.zh.md").read_text()
    _print_result(data, as_json=False)
    assert "GB/T 20988-2025: " in capsys.readouterr().out
