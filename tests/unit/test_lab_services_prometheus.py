"""Prometheus configs generated from the runtime inventory pass `promtool check config`:
one Prometheus per center scraping its center and alerting to every member of the
clustered Alertmanager, and a global view federating them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember,
                               HostPort, RuntimeInventory, SecretRef, SystemRuntime,
                               prometheus_targets)
from lab.components import alertmanager, exporter, monitoring_host, prometheus
from lab.context import CENTERS, LabContext


def _runtime() -> RuntimeInventory:
    centers = {c: CenterRuntime(name=c, role=c, addresses=[f"127.0.{n}.1"])
               for c, n in (("main", 1), ("samecity", 2), ("remote", 3))}
    members = [DbMember(name=f"pg-{c}", center=c, host=f"127.0.{n}.1",
                        api_url=f"https://127.0.{n}.1:8008", intended_role=role)
               for c, n, role in (("main", 1, DbIntendedRole.leader),
                                  ("samecity", 2, DbIntendedRole.sync),
                                  ("remote", 3, DbIntendedRole.async_))]
    db = DatabaseCluster(cluster="registry", dbname="registry", user="registry",
                         password=SecretRef(env="PW"), members=members,
                         read_write=HostPort(host="127.0.10.6", port=5000),
                         read_only=HostPort(host="127.0.10.6", port=5001))
    return RuntimeInventory(
        source="lab", cloud="lab", centers=centers,
        systems={"registry": SystemRuntime(name="registry", department="d", tier="critical",
                                           database=db)},
        etcd=[f"http://127.0.{n}.1:2379" for n in (1, 2, 3)])


@pytest.fixture
def lab(tmp_path: Path) -> LabContext:
    ctx = LabContext(root=tmp_path / "lab")
    ctx.prepare_root()
    runtime = _runtime()
    prometheus.Prometheus().add_to_runtime(ctx, runtime)
    alertmanager.Alertmanager().add_to_runtime(ctx, runtime)  # as `lab up` lists every component
    runtime.save(ctx.runtime_inventory_file)
    prometheus.Prometheus().prepare(ctx)
    return ctx


def _config(lab: LabContext, site: str) -> dict:
    return yaml.safe_load(prometheus.config_file(lab, site).read_text())


def _jobs(lab: LabContext, site: str) -> dict[str, dict]:
    return {j["job_name"]: j for j in _config(lab, site)["scrape_configs"]}


def _static_targets(job: dict) -> list[str]:
    return sorted(t for group in job["static_configs"] for t in group["targets"])


@pytest.mark.parametrize("site", prometheus.SITES)
def test_every_generated_config_passes_promtool_with_the_rules(lab, site):
    installed = exporter.install_rules(lab)
    assert any(f.parent == prometheus.rules_dir(lab, site) for f in installed)
    checked = prometheus.check_config(prometheus.config_file(lab, site))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rule" in checked.stdout + checked.stderr


def test_one_prometheus_per_center_plus_the_global_view(lab):
    programs = prometheus.Prometheus().programs(lab)
    assert sorted(p.center for p in programs) == sorted(["main", "samecity", "remote", "global"])
    for program in programs:
        # Each dies with its own center: a center's loss leaves the others running.
        assert f"--web.listen-address={lab.address(program.center, 'monitoring')}:9090" in program.command
    runtime = _runtime()
    prometheus.Prometheus().add_to_runtime(lab, runtime)
    assert runtime.monitoring.prometheus_url == prometheus.url(lab, "global")
    assert runtime.monitoring.prometheus == {c: prometheus.url(lab, c) for c in CENTERS}


@pytest.mark.parametrize("center", CENTERS)
def test_patroni_members_are_scraped_over_https_verified_against_the_lab_ca(lab, center):
    patroni = _jobs(lab, center)["patroni"]
    assert patroni["scheme"] == "https"
    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    assert patroni["tls_config"]["ca_file"] == runtime.tls_ca_file


@pytest.mark.parametrize("center", CENTERS)
def test_a_center_scrapes_its_own_patroni_and_etcd_in_jobs_of_their_own(lab, center):
    jobs = _jobs(lab, center)
    number = {"main": 1, "samecity": 2, "remote": 3}[center]
    assert _static_targets(jobs["patroni"]) == [f"127.0.{number}.1:8008"]
    assert jobs["patroni"]["static_configs"][0]["labels"] == {
        "system": "registry", "center": center, "member": f"pg-{center}"}
    assert _static_targets(jobs["etcd"]) == [f"127.0.{number}.1:2379"]
    assert jobs["etcd"]["static_configs"][0]["labels"] == {"center": center}
    assert "federate" not in jobs


@pytest.mark.parametrize("center", CENTERS)
def test_a_center_notifies_every_alertmanager_member_as_one_alert(lab, center):
    alerting = _config(lab, center)["alerting"]
    targets = alerting["alertmanagers"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(alertmanager.listen_address(lab, c) for c in CENTERS)
    # The label telling the centers' Prometheus apart must not reach Alertmanager, or the
    # same alert from three centers would be three alerts, notified three times.
    assert _config(lab, center)["global"]["external_labels"]["prometheus_site"] == center
    assert {"action": "labeldrop", "regex": "prometheus_site"} in alerting["alert_relabel_configs"]


def test_the_global_view_federates_the_centers_and_sends_no_alerts(lab):
    config = _config(lab, "global")
    jobs = _jobs(lab, "global")
    federate = jobs["federate"]
    assert federate["honor_labels"] is True and federate["metrics_path"] == "/federate"
    assert _static_targets(federate) == sorted(prometheus.listen_address(lab, c) for c in CENTERS)
    assert federate["params"]["match[]"] == ['{job=~"prometheus|patroni|etcd"}']
    assert "patroni" not in jobs and "etcd" not in jobs
    assert "alerting" not in config


def test_every_prometheus_scrapes_the_exporters_from_the_inventory_targets_file(lab):
    from inventory.runtime import RuntimeInventory

    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    exporter.component().add_to_runtime(lab, runtime)
    assert {"targets": [exporter.listen_address(lab)],
            "labels": {"job": "tricenter", "exporter": exporter.NAME}} in prometheus_targets(runtime)
    for site in prometheus.SITES:
        files = _jobs(lab, site)["inventory"]["file_sd_configs"][0]["files"]
        assert files == [str(prometheus.targets_file(lab, site))]
        assert prometheus.drop_in_dir(lab, site).is_dir()
        assert _config(lab, site)["rule_files"] == [str(prometheus.rules_dir(lab, site) / "*.yml")]


def test_etcd_members_are_labelled_with_their_center():
    assert prometheus.etcd_targets(_runtime()) == {
        "127.0.1.1:2379": "main", "127.0.2.1:2379": "samecity", "127.0.3.1:2379": "remote"}


def test_a_broken_config_is_caught_by_promtool(lab, tmp_path):
    bad = tmp_path / "bad.yml"
    config = _config(lab, "main")
    config["global"]["scrape_interval"] = "five seconds"
    bad.write_text(yaml.safe_dump(config))
    assert prometheus.check_config(bad).returncode != 0


@pytest.mark.parametrize("center", CENTERS)
def test_alertmanager_runs_on_the_config_the_role_writes_and_amtool_accepts_it(lab, center):
    """One truth: the lab's alertmanager.yml is the alertmanager role's template, rendered
    for the center's monitoring host, at the path the role writes it."""
    from playbooks.render import renderer

    alertmanager.Alertmanager().prepare(lab)
    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    role = renderer(runtime, monitoring_host.host_name(center), "alertmanager")
    file = alertmanager.config_file(lab, center)
    assert role.var("alertmanager_config_file") == str(file)
    assert role.var("alertmanager_data_dir") == str(alertmanager.data_dir(lab, center))
    assert file.read_text() == role.template("alertmanager.yml.j2")
    # Notifications go to the receiver the inventory names: the lab's recorder.
    (hook,) = yaml.safe_load(file.read_text())["receivers"][0]["webhook_configs"]
    assert hook == {"url": alertmanager.receiver_url(lab) + "/", "send_resolved": True}
    checked = alertmanager.check_config(file)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alertmanager_is_clustered_one_member_per_center(lab):
    programs = {p.name: p for p in alertmanager.Alertmanager().programs(lab)}
    for center in CENTERS:
        member = programs[alertmanager.program(center)]
        assert member.center == center
        own = f"{lab.address(center, 'monitoring')}:9094"
        assert f"--cluster.listen-address={own}" in member.command
        assert f"--config.file={alertmanager.config_file(lab, center)}" in member.command
        assert f"--web.listen-address={alertmanager.listen_address(lab, center)}" in member.command
        peers = sorted(a.split("=", 1)[1] for a in member.command if a.startswith("--cluster.peer="))
        assert peers == sorted(f"{lab.address(c, 'monitoring')}:9094" for c in CENTERS if c != center)
    # The pager's stand-in sits outside every center.
    assert programs[alertmanager.RECEIVER_PROGRAM].center == "global"
    runtime = _runtime()
    alertmanager.Alertmanager().add_to_runtime(lab, runtime)
    assert runtime.monitoring.alertmanagers == {c: alertmanager.url(lab, c) for c in CENTERS}


@pytest.mark.parametrize("site", prometheus.SITES)
def test_the_lab_runs_on_the_files_the_role_writes(lab, site):
    """One truth: the paths the lab's Prometheus reads are the prometheus role's defaults."""
    from inventory.runtime import RuntimeInventory
    from playbooks.render import renderer

    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    role = renderer(runtime, monitoring_host.host_name(site), "prometheus")
    assert role.var("prometheus_config_file") == str(prometheus.config_file(lab, site))
    assert role.var("prometheus_targets_file") == str(prometheus.targets_file(lab, site))
    assert role.var("prometheus_data_dir") == str(prometheus.data_dir(lab, site))
    assert role.var("prometheus_drop_in_dir") == str(prometheus.drop_in_dir(lab, site))
    assert role.var("prometheus_listen") == prometheus.listen_address(lab, site)


def test_a_monitoring_entry_for_an_unknown_center_is_refused_naming_the_field():
    data = json.loads(_runtime().model_dump_json())
    data["monitoring"]["alertmanagers"] = {"mian": "http://127.0.1.5:9093"}
    with pytest.raises(ValueError, match=r"monitoring.alertmanagers: mian not in centers"):
        RuntimeInventory.model_validate(data)
