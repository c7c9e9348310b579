"""Waves, source prechecks, verification and the `tricenter migrate` CLI contract."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inventory.loader import LAB_INVENTORY, load_topology
from inventory.runtime import (DatabaseCluster, Host, HostPort, HostRole, LegacyRuntime,
                               PostgresAccess, RuntimeInventory, SecretRef, SshAccess,
                               SystemRuntime)
from playbooks.migration import plan as planning
from playbooks.migration.cli import migrate
from playbooks.migration.record import RecordStore
from playbooks.migration.source import problems
from playbooks.migration.steps import compare, target_problems

GOOD = {"version": "15.18 (Debian)", "wal_level": "logical", "large_objects": 0,
        "tables": [{"name": "public.person", "primary_key": True, "replica_identity": "d"}]}


def runtime(with_target: bool = True, with_legacy: bool = True) -> RuntimeInventory:
    system = SystemRuntime(name="registry", department="civil-affairs", tier="critical")
    if with_target:
        system.database = DatabaseCluster(
            cluster="registry", dbname="registry", user="registry",
            password=SecretRef(env="X"), members=[],
            read_write=HostPort(host="127.0.0.5", port=5000),
            read_only=HostPort(host="127.0.0.5", port=5001))
    if with_legacy:
        system.legacy = LegacyRuntime(host="legacy-registry", database=PostgresAccess(
            host="127.0.9.1", dbname="registry", user="registry_legacy",
            password=SecretRef(env="Y")))
    host = Host(name="legacy-registry", center="legacy", role=HostRole.legacy,
                address="127.0.9.1", ssh=SshAccess(host="127.0.9.1", port=2222, user="root"))
    return RuntimeInventory(source="lab", cloud="lab", centers={}, hosts=[host],
                            systems={"registry": system})


def test_waves_hold_systems_with_a_legacy_source_in_order():
    topology = load_topology(Path(__file__).parents[2] / "inventory" / "guangdong")
    waves = planning.waves(topology.systems)
    assert list(waves) == sorted(waves)
    listed = [name for names in waves.values() for name in names]
    assert sorted(listed) == sorted(n for n, s in topology.systems.items() if s.legacy)
    assert all(topology.systems[n].wave == w for w, names in waves.items() for n in names)
    first = min(waves)
    assert planning.waves(topology.systems, first) == {first: waves[first]}


def test_plan_says_why_a_system_cannot_start():
    systems = load_topology(LAB_INVENTORY).systems
    ready = planning.plan(systems, runtime(), reachable=lambda h, p: True)
    assert ready[0]["systems"] == ["registry"] and ready[0]["details"][0]["ready"]
    down = planning.plan(systems, runtime(), reachable=lambda h, p: False)
    assert "source unreachable: 127.0.9.1:5432" in down[0]["details"][0]["problems"][0]
    bare = planning.plan(systems, runtime(with_target=False), reachable=lambda h, p: True)
    assert "target not provisioned" in bare[0]["details"][0]["problems"][0]
    assert "no runtime inventory" in planning.plan(systems, None)[0]["details"][0]["problems"][0]


def test_a_good_source_has_no_problems():
    assert problems(GOOD) == []


@pytest.mark.parametrize("change,check", [
    ({"wal_level": "replica"}, "wal_level"),
    ({"version": "9.6.24"}, "version"),
    ({"large_objects": 3}, "large_objects"),
    ({"tables": [{"name": "public.audit_log", "primary_key": False,
                  "replica_identity": "d"}]}, "replica_identity"),
])
def test_precheck_flags_what_logical_replication_cannot_carry(change, check):
    found = problems(GOOD | change)
    assert [p["check"] for p in found] == [check]
    assert found[0]["fix"]


def test_a_table_without_key_but_with_full_identity_passes():
    table = {"name": "public.audit_log", "primary_key": False, "replica_identity": "f"}
    assert problems(GOOD | {"tables": [table]}) == []


def test_target_must_be_a_primary_with_logical_wal():
    assert target_problems({"wal_level": "logical", "in_recovery": False}) == []
    checks = [p["check"] for p in target_problems({"wal_level": "replica", "in_recovery": True})]
    assert checks == ["target_primary", "target_wal_level"]


def test_verify_compares_every_table_on_both_sides():
    same = {"public.person": {"rows": 2, "md5": "a"}}
    assert compare(same, same)["ok"]
    assert not compare(same, {"public.person": {"rows": 2, "md5": "b"}})["ok"]
    missing = compare(same | {"public.x": {"rows": 0, "md5": ""}}, same)
    assert not missing["ok"] and missing["tables"][0] == {
        "table": "public.person", "source_rows": 2, "target_rows": 2, "match": True}
    assert not compare({}, {})["ok"]  # nothing compared is not a pass
    late = compare(same, same, unmigrated=["public.new_table"])
    assert not late["ok"] and "created after precheck" in late["tables"][-1]["problem"]


def test_plan_json_contract_on_the_lab_inventory(tmp_path):
    file = tmp_path / "runtime-inventory.yaml"
    runtime().save(file)
    result = CliRunner().invoke(migrate, ["plan", "--json", "--runtime", str(file)])
    assert result.exit_code == 0, result.output
    waves = json.loads(result.output)["waves"]
    assert [{"wave": w["wave"], "systems": w["systems"]} for w in waves] == [
        {"wave": 1, "systems": ["registry"]}, {"wave": 2, "systems": ["subsidy"]}]
    subsidy = waves[1]["details"][0]
    assert not subsidy["ready"] and "target not provisioned" in subsidy["problems"][0]


def test_a_step_out_of_order_exits_2_and_changes_nothing(tmp_path):
    file = tmp_path / "runtime-inventory.yaml"
    runtime().save(file)
    result = CliRunner().invoke(migrate, ["cutover", "registry", "--runtime", str(file)])
    assert result.exit_code == 2
    assert "cannot run in state not-ready" in result.output
    assert not (tmp_path / "migration" / "registry.yaml").exists()
    result = CliRunner().invoke(migrate, ["replicate", "registry", "--runtime", str(file)])
    assert result.exit_code == 2 and "needs a passed precheck" in result.output


@pytest.mark.parametrize("rt,message", [
    (runtime(with_target=False), "target not provisioned"),
    (runtime(with_legacy=False), "names no legacy database"),
])
def test_a_system_that_cannot_migrate_exits_2(tmp_path, rt, message):
    file = tmp_path / "runtime-inventory.yaml"
    rt.save(file)
    result = CliRunner().invoke(migrate, ["precheck", "registry", "--runtime", str(file)])
    assert result.exit_code == 2 and message in result.output


def test_unknown_system_and_missing_runtime_exit_2(tmp_path):
    result = CliRunner().invoke(migrate, ["precheck", "nope", "--runtime",
                                          str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "no runtime inventory" in result.output
    file = tmp_path / "runtime-inventory.yaml"
    runtime().save(file)
    result = CliRunner().invoke(migrate, ["precheck", "nope", "--runtime", str(file)])
    assert result.exit_code == 2 and "'nope' is not in the runtime inventory" in result.output


def test_status_json_reads_the_record(tmp_path):
    store = RecordStore(tmp_path / "migration")
    record = store.load("registry")
    record.cutover_downtime_seconds = 1.5
    store.save(record)
    result = CliRunner().invoke(migrate, ["status", "registry", "--json", "--runtime",
                                          str(tmp_path / "runtime-inventory.yaml")])
    status = json.loads(result.output)
    assert status["state"] == "not-ready" and status["cutover_downtime_seconds"] == 1.5


def test_a_second_step_for_the_same_system_waits_its_turn(tmp_path):
    file = tmp_path / "runtime-inventory.yaml"
    runtime().save(file)
    with RecordStore(tmp_path / "migration").exclusive("registry"):
        result = CliRunner().invoke(migrate, ["precheck", "registry", "--runtime", str(file)])
    assert result.exit_code == 2 and "another `tricenter migrate` step is running" in result.output


def test_replicate_after_a_rollback_empties_the_stale_target_first(monkeypatch):
    from playbooks.migration import steps
    from playbooks.migration.lifecycle import Step
    from playbooks.migration.record import MigrationRecord

    calls = []
    monkeypatch.setattr(steps, "run_step", lambda rt, name, step, tables, extra=None:
                        calls.append(extra) or {"lag_bytes": 0})
    record = MigrationRecord(system="registry", discovery={"database": {"tables": []}},
                             precheck={"ok": True})
    record.begin(Step.replicate)
    steps.replicate(runtime(), record)
    record.finish(Step.replicate)
    record.state = record.state.__class__("rolled-back")
    record.begin(Step.replicate)
    steps.replicate(runtime(), record)
    assert calls == [{"migration_restart": False}, {"migration_restart": True}]


def test_wave_report_lists_downtime_rows_bytes_verification_and_approver(tmp_path):
    store = RecordStore(tmp_path / "migration")
    record = store.load("registry")
    record.cutover_downtime_seconds, record.verified, record.approved_by = 1.234, True, "Li <ops>"
    record.replication = {"bytes": 8297831}
    record.verification = {"ok": True, "tables": [
        {"table": "public.person", "source_rows": 2000, "target_rows": 2000, "match": True},
        {"table": "public.marriage", "source_rows": 1000, "target_rows": 1000, "match": True}]}
    store.save(record)
    result = CliRunner().invoke(migrate, ["report", "--wave", "1", "--runtime",
                                          str(tmp_path / "runtime-inventory.yaml")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "migration" / "wave-1.md").read_text()
    assert "| registry | not-ready | 1.23 | 3000 | 8297831 | yes | Li <ops> |" in md
    page = (tmp_path / "migration" / "wave-1.html").read_text()
    assert "Li &lt;ops&gt;" in page and "<td>3000</td>" in page
    missing = CliRunner().invoke(migrate, ["report", "--wave", "9", "--runtime",
                                           str(tmp_path / "runtime-inventory.yaml")])
    assert missing.exit_code == 2 and "wave 9 has no system" in missing.output


SUMS = "aaa  ./a.txt\nbbb  ./docs/b.txt\n"


def test_verify_compares_every_file_by_checksum_on_every_target_host():
    from playbooks.migration.steps import compare_files
    same = compare_files([["/srv/x", SUMS]], [[["/srv/x", "main-app"], SUMS],
                                              [["/srv/x", "samecity-app"], SUMS]])
    assert same["ok"] and same["files"] == 2 and len(same["trees"]) == 2
    changed = compare_files([["/srv/x", SUMS]], [
        [["/srv/x", "main-app"], "aaa  ./a.txt\nccc  ./docs/b.txt\nddd  ./new.txt\n"],
        [["/srv/x", "samecity-app"], "aaa  ./a.txt\n"]])
    assert not changed["ok"]
    assert changed["trees"][0]["problem"] == "extra: new.txt; differ: docs/b.txt"
    assert changed["trees"][1]["problem"] == "missing: docs/b.txt"
    nowhere = compare_files([["/srv/x", SUMS]], [])
    assert not nowhere["ok"] and nowhere["trees"][0]["problem"] == "no target host received it"


def test_files_go_to_the_hosts_running_the_systems_app():
    rt = runtime()
    rt.systems["registry"].app_backends = {"main": ["http://127.0.1.22:8080"]}
    rt.hosts.append(Host(name="main-app", center="main", role=HostRole.app, address="127.0.1.22",
                         ssh=SshAccess(host="127.0.1.22", port=2222, user="root")))
    from playbooks.migration import runner
    assert runner.file_hosts(rt, rt.systems["registry"]) == ["main-app"]
    rt.systems["registry"].legacy.paths = ["/srv/registry"]
    assert runner.step_vars(rt, "registry", "replicate", [])["migration_file_hosts"] == ["main-app"]
    rt.systems["registry"].app_backends = {}
    with pytest.raises(runner.NotMigratable, match="no target host runs the system's app"):
        runner.endpoints(rt, "registry")
