"""Prometheus config generated from the runtime inventory passes `promtool check config`
and scrapes what the inventory lists."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember,
                               HostPort, RuntimeInventory, SecretRef, SystemRuntime,
                               prometheus_targets)
from lab.components import prometheus
from lab.context import LabContext


def _runtime() -> RuntimeInventory:
    centers = {c: CenterRuntime(name=c, role=c, addresses=[f"127.0.{n}.1"])
               for c, n in (("main", 1), ("samecity", 2), ("remote", 3))}
    members = [DbMember(name=f"pg-{c}", center=c, host=f"127.0.{n}.1",
                        api_url=f"http://127.0.{n}.1:8008", intended_role=role)
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
    runtime.save(ctx.runtime_inventory_file)
    prometheus.Prometheus().prepare(ctx)
    return ctx


def test_generated_config_passes_promtool(lab):
    checked = prometheus.check_config(prometheus.config_file(lab))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_patroni_members_are_scraped_over_https_verified_against_the_lab_ca(lab):
    config = yaml.safe_load(prometheus.config_file(lab).read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["inventory"]["file_sd_configs"][0]["files"] == [str(prometheus.targets_file(lab))]
    patroni = jobs["patroni"]
    assert patroni["scheme"] == "https"
    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    assert patroni["tls_config"]["ca_file"] == runtime.tls_ca_file
    assert sorted(t for c in patroni["static_configs"] for t in c["targets"]) == [
        "127.0.1.1:8008", "127.0.2.1:8008", "127.0.3.1:8008"]
    # not also by the plain-HTTP file_sd job, which still lists them (the inventory's view)
    assert {"source_labels": ["job"], "regex": "patroni", "action": "drop"} in \
        jobs["inventory"]["relabel_configs"]


def test_exporters_have_a_drop_in_directory_and_rules_a_directory(lab):
    config = yaml.safe_load(prometheus.config_file(lab).read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert str(prometheus.drop_in_dir(lab) / "*.json") in jobs["drop-in"]["file_sd_configs"][0]["files"]
    assert config["rule_files"] == [str(prometheus.rules_dir(lab) / "*.yml")]
    assert prometheus.drop_in_dir(lab).is_dir()


def test_etcd_members_are_labelled_with_their_center(lab):
    assert prometheus.etcd_targets(_runtime()) == {
        "127.0.1.1:2379": "main", "127.0.2.1:2379": "samecity", "127.0.3.1:2379": "remote"}
    config = yaml.safe_load(prometheus.config_file(lab).read_text())
    etcd = next(j for j in config["scrape_configs"] if j["job_name"] == "etcd")
    assert {g["labels"]["center"] for g in etcd["static_configs"]} == {"main", "samecity", "remote"}


def test_a_broken_config_is_caught_by_promtool(lab, tmp_path):
    bad = tmp_path / "bad.yml"
    config = yaml.safe_load(prometheus.config_file(lab).read_text())
    config["global"]["scrape_interval"] = "five seconds"
    bad.write_text(yaml.safe_dump(config))
    assert prometheus.check_config(bad).returncode != 0


def test_prometheus_runs_outside_every_center_and_lands_in_the_runtime_inventory(lab):
    (program,) = prometheus.Prometheus().programs(lab)
    assert program.center == "global"
    assert f"--web.listen-address={lab.address('global', 'monitoring')}:9090" in program.command
    runtime = _runtime()
    prometheus.Prometheus().add_to_runtime(lab, runtime)
    assert runtime.monitoring.prometheus_url == prometheus.url(lab)


def test_prometheus_notifies_the_lab_alertmanager_and_loads_the_rules(lab):
    from inventory.runtime import RuntimeInventory
    from lab.components import alertmanager, exporter

    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    alertmanager.component().add_to_runtime(lab, runtime)  # as `lab up` lists every component
    runtime.save(lab.runtime_inventory_file)
    prometheus.Prometheus().prepare(lab)
    config = yaml.safe_load(prometheus.config_file(lab).read_text())
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == [alertmanager.listen_address(lab)]
    installed = exporter.install_rules(lab)
    assert installed and all(f.parent == prometheus.rules_dir(lab) for f in installed)
    checked = prometheus.check_config(prometheus.config_file(lab))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr and "rule" in checked.stdout + checked.stderr


def test_alertmanager_config_passes_amtool(tmp_path):
    from lab.components import alertmanager

    file = tmp_path / "alertmanager.yml"
    file.write_text(yaml.safe_dump(alertmanager.render_config("http://127.0.10.5:9649")))
    checked = alertmanager.check_config(file)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_exporter_is_listed_in_the_runtime_inventory_and_scraped(lab):
    from lab.components import exporter

    runtime = _runtime()
    exporter.component().add_to_runtime(lab, runtime)
    groups = prometheus_targets(runtime)
    assert {"targets": [exporter.listen_address(lab)],
            "labels": {"job": "tricenter", "exporter": exporter.NAME}} in groups


def test_the_lab_runs_on_the_files_the_role_writes(lab):
    """One truth: the paths the lab's Prometheus reads are the prometheus role's defaults."""
    from playbooks.render import renderer

    runtime = _runtime()
    prometheus.Prometheus().add_to_runtime(lab, runtime)
    role = renderer(runtime, prometheus.HOST_NAME, "prometheus")
    assert role.var("prometheus_config_file") == str(prometheus.config_file(lab))
    assert role.var("prometheus_targets_file") == str(prometheus.targets_file(lab))
    assert role.var("prometheus_data_dir") == str(prometheus.data_dir(lab))
    assert role.var("prometheus_drop_in_dir") == str(prometheus.drop_in_dir(lab))
