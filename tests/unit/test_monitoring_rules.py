"""The alert rules: promtool accepts them, every alert has a `promtool test rules` case that
makes it fire, and they only read metrics the tricenter exporter really exposes."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring.collector import exported_metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "monitoring" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "monitoring" / "rules" / "tests").glob("*.yml"))
PROMTOOL = Path("/usr/bin/promtool")


def promtool(*args: str) -> subprocess.CompletedProcess:
    if not PROMTOOL.exists():
        message = "promtool not installed: run scripts/bootstrap.sh (Debian package prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must check the rules, never pass without them
        pytest.skip(message)
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def rules() -> list[dict]:
    return [rule for file in RULES for group in yaml.safe_load(file.read_text())["groups"]
            for rule in group["rules"]]


def test_there_are_rules_and_tests() -> None:
    assert RULES and RULE_TESTS


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules() -> None:
    done = promtool("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_test_case_where_it_fires() -> None:
    alerts = {r["alert"] for r in rules() if "alert" in r}
    fired = {case["alertname"] for file in RULE_TESTS
             for test in yaml.safe_load(file.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts - fired == set(), "alerts without a promtool test in which they fire"
    assert fired - alerts == set(), "tests of alerts that no rule defines"


def test_rules_read_only_metrics_the_exporter_exposes() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    exposed = exported_metric_names()
    for rule in rules():
        for name in re.findall(r"\btricenter[_:][a-zA-Z0-9_:]*", str(rule["expr"])):
            assert name in exposed | recorded, f"{rule.get('alert') or rule['record']} reads {name}"
