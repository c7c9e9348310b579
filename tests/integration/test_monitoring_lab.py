"""On the lab: the tricenter exporter says what Patroni's REST API and `pgbackrest info`
say at the same moment, Prometheus scrapes it with the rules loaded, and Alertmanager
is wired to the receiver drills read."""
from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from inventory.runtime import RuntimeInventory
from lab.components import alertmanager, exporter, pgbackrest, prometheus
from lab.context import LabContext

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ctx(lab) -> LabContext:
    for candidate in (lab, getattr(lab, "ctx", None)):
        if isinstance(candidate, LabContext):
            return candidate
    return LabContext()


@pytest.fixture(scope="module")
def runtime(ctx) -> RuntimeInventory:
    return RuntimeInventory.load(ctx.runtime_inventory_file)


def scrape(ctx: LabContext) -> dict[tuple, float]:
    text = requests.get(f"http://{exporter.listen_address(ctx)}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def patroni_view(runtime: RuntimeInventory, system: str) -> dict[str, tuple[str, int | None]]:
    """center → (role, timeline) from the first member's /cluster that answers."""
    db = runtime.systems[system].database
    centers = {m.name: m.center for m in db.members}
    for member in db.members:
        try:
            cluster = requests.get(member.api_url.rstrip("/") + "/cluster", timeout=2).json()
        except requests.RequestException:
            continue
        roles = {"leader": "leader", "master": "leader", "primary": "leader",
                 "sync_standby": "sync_standby", "replica": "replica"}
        return {centers[m["name"]]: (roles.get(m["role"], "other"), m.get("timeline"))
                for m in cluster["members"]}
    raise AssertionError("no Patroni REST API answered")


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f} s")
        time.sleep(1)
    return result


def test_roles_and_timelines_match_patroni_at_the_same_moment(ctx, runtime):
    system = next(name for name, s in runtime.systems.items() if s.database)

    def agreeing_snapshot():
        before = patroni_view(runtime, system)
        metrics = scrape(ctx)
        # Compare only when Patroni did not change under the scrape.
        return (before, metrics) if patroni_view(runtime, system) == before else None

    patroni, metrics = _until(agreeing_snapshot, 30, "a stable Patroni view")
    for center, (role, timeline) in patroni.items():
        labels = {"system": system, "center": center}
        assert metrics[("tricenter_db_member_role", tuple(sorted({**labels, "role": role}.items())))] == 1
        assert metrics[("tricenter_db_member_timeline", tuple(sorted(labels.items())))] == timeline
    leader_center = next(c for c, (role, _) in patroni.items() if role == "leader")
    assert metrics[("tricenter_db_leader_center",
                    tuple(sorted({"system": system, "center": leader_center}.items())))] == 1
    assert metrics[("tricenter_db_leader_present", (("system", system),))] == 1


def test_backups_match_pgbackrest_info(ctx, runtime):
    system = next(name for name, s in runtime.systems.items() if s.database)

    def exported_equals_info():
        info = pgbackrest.info(ctx)
        newest: dict[str, float] = {}
        for backup in info.get("backup", []):
            newest[backup["type"]] = max(newest.get(backup["type"], 0), backup["timestamp"]["stop"])
        metrics = scrape(ctx)
        exported = {dict(labels)["type"]: value for (name, labels), value in metrics.items()
                    if name == "tricenter_backup_last_completion_timestamp_seconds"
                    and dict(labels)["system"] == system}
        ok = metrics.get(("tricenter_backup_repository_ok", (("system", system),)))
        return exported == newest and ok == (1 if info["status"]["code"] == 0 else 0)

    # The exporter refreshes pgbackrest info in the background, at most a minute old.
    _until(exported_equals_info, 90, "exporter agreeing with pgbackrest info")


def test_prometheus_scrapes_the_exporter_with_the_rules_and_alertmanager(ctx):
    base = prometheus.url(ctx)
    targets = requests.get(f"{base}/api/v1/targets?state=active", timeout=5).json()["data"]
    tricenter = [t for t in targets["activeTargets"] if t["labels"].get("job") == "tricenter"]
    assert tricenter and all(t["health"] == "up" for t in tricenter)
    rules = requests.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {r["name"] for g in rules for r in g["rules"]}
    assert {"TricenterPrimaryLost", "TricenterEtcdNoQuorum", "tricenter:backup_age_seconds"} <= names
    managers = requests.get(f"{base}/api/v1/alertmanagers", timeout=5).json()["data"]
    assert [m["url"] for m in managers["activeAlertmanagers"]] == [
        f"http://{alertmanager.listen_address(ctx)}/api/v2/alerts"]
    assert requests.get(f"{alertmanager.receiver_url(ctx)}/alerts?since=0", timeout=5).ok
