"""The Grafana dashboards: generated from code, committed as generated, and every query
parses (promtool) and reads only metrics the exporter or the rules produce."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import dashboards
from monitoring.collector import exported_metric_names

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "monitoring" / "dashboards"
PROMTOOL = Path("/usr/bin/promtool")
GRAFANA_VARIABLES = {"$system": "registry", "$__rate_interval": "1m"}
LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*\w+\)$")


def _models() -> dict[str, dict]:
    return {name: json.loads(dashboards.render(build())) for name, build in dashboards.DASHBOARDS.items()}


def _promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    match = LABEL_VALUES.match(expr)
    return match.group(1) if match else expr


def _recorded() -> set[str]:
    return {rule["record"] for file in (ROOT / "monitoring" / "rules").glob("*.yml")
            for group in yaml.safe_load(file.read_text())["groups"] for rule in group["rules"]
            if "record" in rule}


def test_committed_json_is_what_the_code_generates() -> None:
    for name, model in _models().items():
        file = COMMITTED / f"tricenter-{name}.json"
        assert file.exists() and json.loads(file.read_text()) == model, (
            f"{file} is stale: run `tricenter exporter dashboards`")


def test_there_are_the_three_dashboards_with_panels() -> None:
    models = _models()
    assert set(models) == {"overview", "system", "drills"}
    assert all(m["panels"] and dashboards.queries(m) for m in models.values())


def test_every_query_reads_only_metrics_that_exist() -> None:
    known = exported_metric_names() | _recorded() | {"ALERTS"}
    for name, model in _models().items():
        for expr in dashboards.queries(model):
            for metric in re.findall(r"\b(?:tricenter[_:][\w:]*|ALERTS)\b", _promql(expr)):
                assert metric in known, f"dashboard {name}: {expr!r} reads {metric}, which nothing exposes"


def test_every_query_parses(tmp_path: Path) -> None:
    if not PROMTOOL.exists():
        if os.environ.get("CI"):
            pytest.fail("promtool not installed: run scripts/bootstrap.sh")
        pytest.skip("promtool not installed (scripts/bootstrap.sh)")
    exprs = [_promql(e) for m in _models().values() for e in dashboards.queries(m)]
    # promtool has no bare PromQL check; as recording rules the queries get parsed.
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}
    file = tmp_path / "dashboard-queries.yml"
    file.write_text(yaml.safe_dump(rules))
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(file)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
