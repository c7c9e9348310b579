"""Grafana dashboards generated in code (grafanalib): three-center overview, one system,
drills. `tricenter exporter dashboards --out DIR` writes them as JSON for Grafana's file
provisioning; every query reads only what the exporter and the rules produce (a unit
test checks that and has promtool parse every query).
"""
from __future__ import annotations

import json
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (Dashboard, GridPos, Stat, Table, Target, Template, Templating,
                             TimeSeries)

DATASOURCE = "${datasource}"
WIDTH = 24


def _datasource_variable() -> Template:
    return Template(name="datasource", query="prometheus", type="datasource", label="Prometheus")


def _system_variable(multi: bool) -> Template:
    return Template(name="system", label="System", dataSource=DATASOURCE, multi=multi,
                    includeAll=multi, query="label_values(tricenter_db_leader_present, system)")


def _targets(*exprs_and_legends: tuple[str, str]) -> list[Target]:
    return [Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i), datasource=DATASOURCE)
            for i, (expr, legend) in enumerate(exprs_and_legends)]


class _Layout:
    """Places panels left to right, wrapping at Grafana's 24 columns."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0

    def __call__(self, w: int, h: int) -> GridPos:
        if self.x + w > WIDTH:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos


def _stat(pos: GridPos, title: str, expr: str, legend: str, unit: str = "none",
          description: str = "") -> Stat:
    return Stat(title=title, description=description, dataSource=DATASOURCE, gridPos=pos,
                targets=_targets((expr, legend)), format=unit, reduceCalc="lastNotNull",
                graphMode="none")


def _series(pos: GridPos, title: str, unit: str, *exprs_and_legends: tuple[str, str],
            description: str = "") -> TimeSeries:
    return TimeSeries(title=title, description=description, dataSource=DATASOURCE, gridPos=pos,
                      targets=_targets(*exprs_and_legends), unit=unit)


def overview() -> Dashboard:
    """Three centers at a glance: who leads, is the layout intended, RPO, balance, etcd."""
    at = _Layout()
    panels = [
        _stat(at(6, 4), "Systems without a primary", "count(tricenter_db_leader_present == 0) or vector(0)",
              "systems", description="TricenterPrimaryLost fires for each"),
        _stat(at(6, 4), "Systems not in their intended layout",
              "count(tricenter_db_layout_as_intended == 0) or vector(0)", "systems"),
        _stat(at(6, 4), "Healthy etcd members", "sum(tricenter_etcd_member_healthy)", "members",
              description="Quorum needs a majority of the members"),
        _stat(at(6, 4), "Firing tricenter alerts",
              'count(ALERTS{alertstate="firing", alertname=~"Tricenter.*"}) or vector(0)', "alerts"),
        _series(at(12, 8), "Primary per center", "none",
                ("sum by (center) (tricenter_db_leader_center)", "{{center}}"),
                description="How many systems' primaries each center holds"),
        _series(at(12, 8), "etcd leader center", "none",
                ("tricenter_etcd_member_is_leader", "{{center}}")),
        _series(at(12, 8), "RPO estimate if the primary's center is lost", "s",
                ('tricenter_rpo_estimate_seconds{loss="center"}', "{{system}}")),
        _series(at(12, 8), "RPO estimate if the primary's city is lost", "s",
                ('tricenter_rpo_estimate_seconds{loss="region"}', "{{system}}")),
        _series(at(12, 8), "Active-active balance: share of application sessions", "percentunit",
                ("tricenter:app_sessions:share1m", "{{system}} {{center}}")),
        _series(at(12, 8), "Object-store replication lag", "s",
                ("tricenter_object_store_replication_lag_seconds", "{{center}}")),
        Table(title="Firing alerts", dataSource=DATASOURCE, gridPos=at(24, 8),
              targets=[Target(expr='ALERTS{alertstate="firing", alertname=~"Tricenter.*"}',
                              format="table", instant=True, refId="A", datasource=DATASOURCE)]),
    ]
    return Dashboard(title="tricenter: three centers", uid="tricenter-overview",
                     tags=["tricenter"], refresh="5s", panels=panels,
                     templating=Templating(list=[_datasource_variable()]))


def system() -> Dashboard:
    """One system: roles and timeline per center, sync, lag, RPO, HAProxy, backups."""
    at = _Layout()
    s = 'system="$system"'
    panels = [
        _stat(at(6, 4), "Primary confirmed", f"tricenter_db_leader_present{{{s}}}", "primary"),
        _stat(at(6, 4), "Layout as intended", f"tricenter_db_layout_as_intended{{{s}}}", "layout"),
        _stat(at(6, 4), "Synchronous standbys", f"tricenter_db_sync_standbys{{{s}}}", "sync"),
        _stat(at(6, 4), "RPO target", f"tricenter_system_rpo_target_seconds{{{s}}}", "{{tier}}", "s"),
        _series(at(12, 8), "Role per center", "none",
                (f"tricenter_db_member_role{{{s}}} == 1", "{{center}} {{role}}")),
        _series(at(12, 8), "Timeline per center", "none",
                (f"tricenter_db_member_timeline{{{s}}}", "{{center}}")),
        _series(at(12, 8), "Replication lag", "bytes",
                (f"tricenter_db_replication_lag_bytes{{{s}}}", "{{center}} replay"),
                (f"tricenter_db_replication_unacknowledged_bytes{{{s}}}", "{{center}} not flushed")),
        _series(at(12, 8), "Replication lag (time)", "s",
                (f"tricenter_db_replication_lag_seconds{{{s}}}", "{{center}}")),
        _series(at(12, 8), "RPO estimate", "s",
                (f"tricenter_rpo_estimate_seconds{{{s}}}", "lose the {{loss}}"),
                (f"tricenter_system_rpo_target_seconds{{{s}}}", "target ({{tier}})")),
        _series(at(12, 8), "Sessions per center (HAProxy)", "ops",
                (f"sum by (kind, center) (rate(tricenter_haproxy_server_sessions_total{{{s}}}[1m]))",
                 "{{kind}} {{center}}")),
        _series(at(12, 8), "HAProxy server up", "none",
                (f"tricenter_haproxy_server_up{{{s}}}", "{{proxy}} {{center}}")),
        _series(at(12, 8), "Backup age per type", "s",
                (f"tricenter:backup_age_seconds{{{s}}}", "{{type}}"),
                (f"tricenter:restore_verified_age_seconds{{{s}}}", "verified restore")),
    ]
    return Dashboard(title="tricenter: one system", uid="tricenter-system", tags=["tricenter"],
                     refresh="5s", panels=panels,
                     templating=Templating(list=[_datasource_variable(), _system_variable(False)]))


def drills() -> Dashboard:
    """The last drill per scenario and system: RTO, RPO, lost writes, level, when."""
    at = _Layout()
    panels = [
        Table(title="Last drill per scenario", dataSource=DATASOURCE, gridPos=at(24, 10),
              targets=[Target(expr=expr, format="table", instant=True, refId=ref, datasource=DATASOURCE)
                       for ref, expr in (("A", "tricenter_drill_passed"),
                                         ("B", "tricenter_drill_rto_seconds"),
                                         ("C", "tricenter_drill_rpo_seconds"),
                                         ("D", "tricenter_drill_lost_writes"),
                                         ("E", "tricenter_drill_gbt20988_level"),
                                         ("F", "tricenter_drill_last_run_timestamp_seconds * 1000"))]),
        _series(at(12, 8), "RTO measured vs target", "s",
                ("tricenter_drill_rto_seconds", "{{scenario}} {{system}}"),
                ("max by (system) (tricenter_system_rto_target_seconds)", "target {{system}}")),
        _series(at(12, 8), "Split brain seen", "none",
                ("tricenter_drill_split_brain", "{{scenario}} {{system}}")),
    ]
    return Dashboard(title="tricenter: drills", uid="tricenter-drills", tags=["tricenter"],
                     refresh="30s", panels=panels, templating=Templating(list=[_datasource_variable()]))


DASHBOARDS = {"overview": overview, "system": system, "drills": drills}


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard.auto_panel_ids().to_json_data(), cls=DashboardEncoder, indent=2,
                      sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        file = directory / f"tricenter-{name}.json"
        file.write_text(render(build()))
        written.append(file)
    return written


def queries(model: dict) -> list[str]:
    """Every PromQL expression in a dashboard's JSON: panels and template variables."""
    exprs = [t["expr"] for p in model.get("panels", []) for t in p.get("targets", []) if t.get("expr")]
    for variable in model.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            exprs.append(query)
    return exprs
