"""On the lab: the tricenter exporter says what Patroni's REST API and `pgbackrest info`
say at the same moment; each center's Prometheus scrapes it with the rules loaded and
notifies every member of the Alertmanager cluster, which still delivers, once, with
main's Prometheus and Alertmanager gone."""
from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from inventory.runtime import RuntimeInventory
from dr import alerts
from lab.components import alertmanager, exporter, pgbackrest, prometheus
from lab.context import CENTERS, LabContext
from monitoring import probes

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
            cluster = requests.get(member.api_url.rstrip("/") + "/cluster", timeout=2,
                                   verify=runtime.tls_ca_file).json()
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


def _get(url: str, **params) -> dict:
    reply = requests.get(url, params=params, timeout=5)
    reply.raise_for_status()
    return reply.json()["data"]


@pytest.mark.parametrize("center", CENTERS)
def test_each_center_scrapes_the_exporter_evaluates_the_rules_and_notifies_every_member(ctx, center):
    base = prometheus.url(ctx, center)

    def exporter_up():
        targets = _get(f"{base}/api/v1/targets", state="active")["activeTargets"]
        tricenter = [t for t in targets if t["labels"].get("job") == "tricenter"]
        return tricenter and all(t["health"] == "up" for t in tricenter)

    _until(exporter_up, 30, f"{center}'s Prometheus scraping the exporter")
    names = {r["name"] for g in _get(f"{base}/api/v1/rules")["groups"] for r in g["rules"]}
    assert {"TricenterPrimaryLost", "TricenterEtcdNoQuorum", "tricenter:backup_age_seconds"} <= names
    managers = _get(f"{base}/api/v1/alertmanagers")["activeAlertmanagers"]
    assert sorted(m["url"] for m in managers) == sorted(
        f"{alertmanager.url(ctx, c)}/api/v2/alerts" for c in CENTERS)
    assert requests.get(f"{alertmanager.receiver_url(ctx)}/alerts?since=0", timeout=5).ok


def test_the_global_view_federates_every_centers_patroni(ctx):
    def centers_seen():
        series = _get(f"{prometheus.url(ctx)}/api/v1/query", query='up{job="patroni"}')["result"]
        return {s["metric"]["center"] for s in series} == set(CENTERS)

    _until(centers_seen, 60, "Patroni of every center in the global view")


def test_alertmanager_members_form_one_cluster(ctx):
    _until(lambda: all(alertmanager.cluster_peers(ctx, c) == len(CENTERS) for c in CENTERS),
           60, "every Alertmanager member seeing all three")


def _records(ctx: LabContext, since: float, alert: str, center: str) -> list[dict]:
    return [r for r in alerts.fetch(alertmanager.receiver_url(ctx), since)
            if r["name"] == alert and r["labels"].get("center") == center]


def test_with_mains_prometheus_and_alertmanager_gone_an_alert_is_still_delivered_once(lab, ctx):
    """As main-center-loss leaves it: main's Prometheus and Alertmanager member stopped,
    then an etcd member fails. The other centers' Prometheus still evaluate the rules,
    the two surviving members still deliver — and only once, though both were told by
    both Prometheus servers."""
    _until(lambda: all(alertmanager.cluster_peers(ctx, c) == len(CENTERS) for c in CENTERS),
           60, "every Alertmanager member seeing all three")
    monitoring = [prometheus.program("main"), alertmanager.program("main")]
    victim, alert = "main-etcd", "TricenterEtcdMemberDown"
    since = time.time()
    lab.supervisor.stop_programs(monitoring)
    try:
        lab.supervisor.stop_programs([victim])
        fired = _until(lambda: [r for r in _records(ctx, since, alert, "main")
                                if r["status"] == "firing"], 180, f"{alert} delivered")
        assert len(fired) == 1, fired
        lab.supervisor.start_programs([victim])
        # Resolution bounds the window: a duplicate would have followed the first
        # notification within the members' peer timeouts, long before this.
        records = _until(lambda: (got := _records(ctx, since, alert, "main"))
                         and got[-1]["status"] == "resolved" and got, 180, f"{alert} resolved")
        assert [r["status"] for r in records] == ["firing", "resolved"], records
    finally:
        lab.supervisor.start_programs([victim, *monitoring])
    _until(lambda: all(alertmanager.cluster_peers(ctx, c) == len(CENTERS) for c in CENTERS),
           60, "main's Alertmanager member back in the cluster")


def test_etcd_gives_the_clusters_as_patroni_does_and_the_exporter_reads_them_there(ctx, runtime):
    from pathlib import Path

    from monitoring.cli import _patroni_dcs
    from monitoring.secrets import Secrets
    from support.patroni import ApiAccess, PatroniCluster

    def roles(state):
        return {m.name: (m.role, m.state, m.timeline) for m in state.members.values()}

    read = _patroni_dcs(runtime, Secrets(Path(ctx.runtime_inventory_file).parent))
    assert read is not None, "the lab's runtime inventory names no read-only etcd user"
    assert read.args[0]._http is probes.pool(runtime.client_tls), "a second pool to the same members"

    def agreeing_snapshot():
        rest = {name: roles(PatroniCluster(s.database, ApiAccess(ca_file=runtime.tls_ca_file)).state())
                for name, s in runtime.systems.items() if s.database}
        etcd = {name: roles(read()[s.database.cluster]) for name, s in runtime.systems.items()
                if s.database}
        return (rest, etcd) if rest == etcd else None

    rest, etcd = _until(agreeing_snapshot, 30, "etcd and Patroni's REST API agreeing")
    assert all(any(role == "leader" for role, _, _ in members.values()) for members in etcd.values())
    assert scrape(ctx)[("tricenter_probe_success", (("probe", "patroni_dcs"), ("system", "")))] == 1


def test_one_quick_question_confirms_each_primary_and_no_standby(runtime):
    from dr.workload import resolve_secret
    from monitoring import probes
    from support.patroni import ApiAccess, PatroniCluster

    leaders, standbys = {}, {}
    for name, system in runtime.systems.items():
        db = system.database
        if db is None:
            continue
        state = PatroniCluster(db, ApiAccess(ca_file=runtime.tls_ca_file)).state()
        password = resolve_secret(db.password)
        standby = next(m for m in state.members if m != state.leader)
        leaders[name] = (db, db.member(state.leader), password)
        standbys[name] = (db, db.member(standby), password)
    # The exporter keeps one connection per cluster, opened by its pg_stat_replication read.
    for asks, expected in ((standbys, set()), (leaders, set(leaders))):
        for db, member, password in asks.values():
            probes.replication(db, member, password, runtime.tls_ca_file)
        assert probes.confirm_primaries(asks, runtime.tls_ca_file, timeout=2) == expected
        # Asked again over the same connections: an answer, either way, keeps them.
        assert probes.confirm_primaries(asks, runtime.tls_ca_file, timeout=2) == expected
