"""The runtime inventory from a deployment carries what the other planes need to reach
the VMs safely: each host's SSH host key (from its console log) and, for database hosts,
their system, cluster and intended role."""
from __future__ import annotations

import json
from types import SimpleNamespace

import yaml
from click.testing import CliRunner

from inventory.runtime import DbIntendedRole, RuntimeInventory, ansible_inventory
from stacks import hostkeys
from stacks.cli import runtime
from stacks.outputs import runtime_inventory
from stacks_helpers import runs

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7xMkPq0f3yZ8kqXn1t0u5m4w2rQ0YxV9c8dE6fG7hJ"
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEx="
CONSOLE = f"""[    0.000000] Linux version 5.10
ci-info: no authorized SSH keys fingerprints found for user cloud-user.
-----BEGIN SSH HOST KEY KEYS-----
ssh-ed25519 AAAAOLDKEYFROMAFIRSTBOOTTHATWASREBUILT root@old
-----END SSH HOST KEY KEYS-----
[   42.1] reboot: Restarting system
-----BEGIN SSH HOST KEY KEYS-----
{ECDSA} root@e-licence-db-main
{ED} root@e-licence-db-main
-----END SSH HOST KEY KEYS-----
Cloud-init v. 23.1 finished
"""


def test_the_last_boots_host_keys_are_read_from_the_console():
    assert hostkeys.keys_in_console(CONSOLE) == sorted([ED, ECDSA])
    assert hostkeys.keys_in_console("no keys printed yet") == []


def test_collect_reads_each_servers_console_and_lists_those_without_keys():
    consoles = {"a": CONSOLE, "b": "booting…"}
    compute = SimpleNamespace(
        find_server=lambda name, ignore_missing: name if name in consoles else None,
        get_server_console_output=lambda server: {"output": consoles[server]})
    found, missing = hostkeys.collect(SimpleNamespace(compute=compute), ["a", "b", "gone"])
    assert found == {"a": sorted([ED, ECDSA])} and missing == ["b", "gone"]


def _outputs():
    return {stack: run.outputs for stack, run in runs("sample").items()}


def test_database_hosts_say_their_system_cluster_and_intended_role():
    inventory = runtime_inventory(_outputs(), "plan:guangdong")
    host = next(h for h in inventory.hosts if h.name == "e-licence-db-remote")
    assert host.database is not None
    assert (host.database.system, host.database.cluster, host.database.intended_role) == \
        ("e-licence", "e-licence", DbIntendedRole.async_)
    hostvars = ansible_inventory(inventory)["all"]["children"]["db"]["hosts"][host.name]
    assert hostvars["tricenter_intended_role"] == "async"
    assert all(h.database is None for h in inventory.hosts if h.role.value == "app")


def test_passwords_are_referenced_from_the_clouds_identity_stack():
    inventory = runtime_inventory(_outputs(), "plan:guangdong")
    refs = {s.database.password.pulumi for s in inventory.systems.values() if s.database}
    assert refs and all(r.startswith("guangdong-main:database_passwords.") for r in refs)


def test_runtime_with_host_keys_writes_known_hosts_and_checks_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TRICENTER_PLANS_DIR", str(tmp_path / "plans"))
    files = []
    for stack, outputs in _outputs().items():
        file = tmp_path / f"{stack}.json"
        file.write_text(json.dumps(outputs))
        files += ["--stack", stack, "--outputs", str(file)]
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"e-licence-db-main": [ED]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(runtime, [*files, "--host-keys", str(keys), "--out", str(out)])
    assert result.exit_code == 0, result.output
    address = next(h for h in RuntimeInventory.load(out / "runtime.yaml").hosts
                   if h.name == "e-licence-db-main").address
    assert (out / "known_hosts").read_text() == f"{address} {ED}\n"
    ansible = yaml.safe_load((out / "ansible-inventory.yml").read_text())
    hostvars = ansible["all"]["children"]["db"]["hosts"]["e-licence-db-main"]
    assert "StrictHostKeyChecking=yes" in hostvars["ansible_ssh_common_args"]
    assert "no host key for" in result.output  # the others: refused until collected
