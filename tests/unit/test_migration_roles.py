"""The migration role: its cutover critical section in the one safe order, and no secret
in anything tricenter hands Ansible (ansible-lint checks it with the rest of playbooks/,
in test_playbooks)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from playbooks import configure
from playbooks.migration import runner
from tests.unit.test_migration_plan import runtime

ROLE = runner.PLAYBOOKS / "roles" / "migration"
SECRET = "s3cret-never-printed"


def _defaults(tables: list[str]) -> dict:
    """The role's defaults rendered with Ansible's filters the script needs (plain Jinja
    plus `quote` and `regex_replace`), so the test needs no Ansible run."""
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    context = {"migration_system": "registry", "migration_tables": tables,
               "migration_source": {"host": "127.0.9.1", "port": 5432, "dbname": "registry",
                                    "user": "registry_legacy", "admin_user": "postgres"},
               "migration_target": {"host": "127.0.0.5", "port": 5000, "dbname": "registry",
                                    "app_user": "registry", "admin_user": "postgres"},
               "migration_wait_retries": 600}
    env = jinja2.Environment()
    env.filters["quote"] = lambda s: "'" + str(s).replace("'", "'\\''") + "'"
    env.filters["regex_replace"] = lambda s, pattern, repl: re.sub(pattern, repl, s)
    env.globals["lookup"] = lambda kind, name: SECRET
    for key in ("migration_psql", "migration_ident", "migration_publication",
                "migration_subscription", "migration_back", "migration_table_list",
                "migration_write_privileges", "migration_src_conninfo",
                "migration_src_admin_conninfo", "migration_dst_server", "migration_dst_conninfo",
                "migration_setval_sql"):
        value = values[key]
        context[key] = value if not isinstance(value, str) else env.from_string(value).render(
            context)
    return context | {"env": env}


def render_cutover() -> str:
    context = _defaults(["public.person", "public.marriage"])
    env = context.pop("env")
    template = env.from_string((ROLE / "templates" / "cutover.sh.j2").read_text())
    return template.render(context)


def test_cutover_fences_drains_sets_up_the_way_back_then_opens():
    script = render_cutover()
    order = [script.index(marker) for marker in (
        "IN ACCESS EXCLUSIVE MODE", "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE "
        "public.person, public.marriage FROM registry_legacy", "confirmed_flush_lsn <",
        "setval", "DROP SUBSCRIPTION IF EXISTS tricenter_registry",
        "CREATE SUBSCRIPTION tricenter_back_registry", "copy_data = false",
        "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON TABLE public.person, public.marriage TO "
        "registry")]
    assert order == sorted(order)
    assert SECRET not in script and "password=$DST_PW" in script


def test_cutover_repoints_the_app_only_once_the_target_is_open():
    """The target's settings, staged before the fence, swapped in by a rename after the
    GRANT, then the app's own reload; nothing of it before the target takes writes."""
    context = _defaults(["public.person"])
    env = context.pop("env")
    context["migration_app"] = {"url": "http://127.0.9.1:8080",
                                "database_env": "/etc/app/registry.database.env",
                                "reload": ["systemctl", "reload", "app registry"], "owner": "app"}
    script = env.from_string((ROLE / "templates" / "cutover.sh.j2").read_text()).render(context)
    grant = script.index("GRANT INSERT")
    swap = script.index("mv -f '/etc/app/registry.database.env.target' "
                        "'/etc/app/registry.database.env'")
    assert grant < swap < script.index("'systemctl' 'reload' 'app registry'") < script.index(
        "repointed_at=$(now)")
    assert '"app_repointed": %s' in script and script.rstrip().endswith("true")
    bare = render_cutover()  # no application in the inventory: nothing to repoint
    assert "mv -f" not in bare and bare.rstrip().endswith("false")


def test_passwords_never_reach_a_command_line():
    """Every account on the host can read a process's arguments (ps): a statement that
    holds a password goes to psql on stdin."""
    script = render_cutover()
    at = script.index("password=$DST_PW")
    printf, pipe = script.rindex("printf", 0, at), script.index("|", at)
    assert "psql" not in script[printf:pipe]  # the statement is printf's, psql reads it
    assert " -c " not in script[pipe:script.index("\n", script.index("psql", pipe))]
    tasks = yaml.safe_load((ROLE / "tasks" / "replicate.yml").read_text())
    subscribe = next(t for t in tasks if "CREATE SUBSCRIPTION" in str(t.get("vars", {})))
    assert "-c" not in subscribe["ansible.builtin.command"]["argv"]
    assert subscribe["ansible.builtin.command"]["stdin"] == "{{ migration_sql }}"


def test_a_rerun_cutover_waits_for_a_killed_one_and_sees_what_it_did():
    script = render_cutover()
    lock = script.index("flock 9")
    assert lock < script.index("LOCK TABLE")
    # what exists is looked up under the lock, and each change is guarded by it
    assert lock < script.index("forward=$(") < script.index('if [ "$forward" = 1 ]')
    assert lock < script.index("reverse=$(") < script.index('if [ "$reverse" = 0 ]') < \
        script.index("CREATE SUBSCRIPTION")
    assert "migration_forward" not in script and "{{" not in script


def test_step_variables_carry_secret_references_only():
    variables = runner.step_vars(runtime(), "registry", "replicate", ["public.person"])
    text = json.dumps(variables)
    assert variables["migration_source"]["password"] == {"kind": "env", "name": "Y"}
    assert variables["migration_target"]["admin_password"] == {"kind": "env", "name": "X"}
    assert "password=" not in text
    assert variables["migration_target"]["password"] == {"kind": "env", "name": "X"}


def test_a_vault_reference_is_refused_by_name():
    rt = runtime()
    rt.systems["registry"].legacy.database.password.env = None
    rt.systems["registry"].legacy.database.password.vault = "kv/x#y"
    with pytest.raises(runner.NotMigratable, match="source password: only file and env"):
        runner.step_vars(rt, "registry", "replicate", [])


def test_failures_name_the_task_and_the_database_error():
    stdout = ('TASK [migration : Publish the tables on the source] ****\n'
              'fatal: [legacy-registry]: FAILED! => {"changed": false, "stderr": '
              '"ERROR:  permission denied for table person"}\n')
    assert runner._failure(stdout, "") == (
        "migration : Publish the tables on the source: ERROR:  permission denied for table person")


def test_steps_run_with_the_configuration_planes_ansible_settings(monkeypatch, tmp_path):
    """One environment builder for every Ansible run: migrate only swaps the callback."""
    seen: dict = {}

    def fake_run(argv, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    runner.run_step(runtime(), "registry", "discover", [])
    expected = configure.environment(tmp_path)
    for key in ("ANSIBLE_FILTER_PLUGINS", "ANSIBLE_ROLES_PATH", "ANSIBLE_HOST_KEY_CHECKING"):
        assert seen[key] == expected[key]
    assert seen["ANSIBLE_STDOUT_CALLBACK"] == "ansible.builtin.default"
    assert Path(seen["ANSIBLE_HOME"]).name == "home"
    assert Path(seen["ANSIBLE_HOME"]).parent.name.startswith("tricenter-migrate-")


def test_the_targets_connection_string_is_built_in_one_place():
    """Switching the target to TLS (sslmode=verify-full) must be one edit: every step, the
    critical section and the throwaway copy derive from `migration_dst_server`."""
    texts = {p.relative_to(ROLE): p.read_text() for p in ROLE.rglob("*") if p.is_file()}
    built = [str(p) for p, text in texts.items() if "migration_target.host" in text]
    assert built == ["defaults/main.yml"]
    defaults = yaml.safe_load(texts[Path("defaults/main.yml")])
    assert "migration_target.host" in defaults["migration_dst_server"]
    for derived in ("migration_dst_conninfo", "migration_test_conninfo"):
        assert defaults[derived].startswith("{{ migration_dst_server }} ")


def _render(key: str, **extra) -> object:
    context = _defaults(["public.person", "public.marriage"]) | extra
    env = context.pop("env")
    env.filters["int"] = int  # Ansible's int filter; Python's raises on a non-number
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    context["migration_table_array"] = "ARRAY['public.person', 'public.marriage']::text[]"
    value = values[key]
    if isinstance(value, list):
        return [env.from_string(v).render(context) for v in value]
    return env.from_string(value).render(context)


def test_the_rehearsal_checks_as_the_app_and_rolls_its_writes_back():
    statements = _render("migration_test_sql")
    assert statements[0] == "SET ROLE registry" and statements[1] == "BEGIN"
    assert "UPDATE %s SET %s = %s" in statements[2] and "public.person" in statements[2]
    assert statements[4] == "ROLLBACK" and statements[5].startswith("SELECT json_build_object(")
    assert "(SELECT count(*) FROM public.marriage)" in statements[5]


def test_lost_writes_are_looked_up_by_integer_ids_only():
    found = _render("migration_lost_sql",
                    migration_acked={"public.person": {"key": "id", "ids": [1, "2"]}})
    assert "'{1,2}'::bigint[]" in found and "FROM public.person AS r WHERE r.id = a.id" in found
    with pytest.raises(ValueError):
        _render("migration_lost_sql",
                migration_acked={"public.person": {"key": "id", "ids": ["1}; DROP"]}})
