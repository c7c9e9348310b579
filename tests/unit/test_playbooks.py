"""The configuration plane: the roles' templates, rendered by Ansible's own templating for
a production-shaped runtime inventory, say what production needs; the argument specs
turn a wrong inventory away; `tricenter configure` keeps its exit codes and JSON
contract; ansible-lint's production profile passes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.template import trust_as_template
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from inventory.runtime import RuntimeInventory
from playbooks.cli import configure
from playbooks.render import RoleRenderer, host_variables

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
SAMPLE = REPO / "tests" / "fixtures" / "runtime" / "sample.yaml"
SECRETS = {
    "TRICENTER_SAMPLE_APP_PASSWORD": "app-'pw:1",
    "TRICENTER_SAMPLE_SUPERUSER_PASSWORD": "super-pw-2",
    "TRICENTER_SAMPLE_REPLICATION_PASSWORD": "repl-pw-3",
    "TRICENTER_SAMPLE_REWIND_PASSWORD": "rewind-pw-4",
    "TRICENTER_SAMPLE_API_PASSWORD": "api-pw-6",
    "TRICENTER_SAMPLE_S3_ACCESS_KEY": "AKIA-SAMPLE",
    "TRICENTER_SAMPLE_S3_SECRET_KEY": "s3-secret-5",
    "TRICENTER_SAMPLE_ETCD_ROOT_PASSWORD": "etcd-root-pw-6",
    "TRICENTER_SAMPLE_ETCD_PATRONI_PASSWORD": "etcd-patroni-pw-7",
    "TRICENTER_SAMPLE_ETCD_MONITOR_PASSWORD": "etcd-monitor-pw-3",
    "TRICENTER_SAMPLE_BACKUP_CIPHER_PASSWORD": "backup-cipher-8",
    "TRICENTER_SAMPLE_ETCD_TOKEN_SIGNING_KEY": ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode(),
}
ROLES = ("etcd", "postgresql_patroni", "pgbackrest", "haproxy", "prometheus", "alertmanager", "app")


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


def sample_runtime() -> RuntimeInventory:
    return RuntimeInventory.load(SAMPLE)


def render(role: str, template: str, variables: dict, **extra: object) -> str:
    """A role template through Ansible's templating, with the role's defaults below the
    inventory's variables, as a play would see them (playbooks/render.py, which the lab
    uses for its own files)."""
    return RoleRenderer(role, variables).template(template, **extra)


@pytest.fixture
def hostvars():
    runtime = sample_runtime()

    def get(host: str) -> dict:
        return host_variables(runtime, host)
    return get


def test_etcd_members_form_one_cluster_across_the_centers(hostvars) -> None:
    config = yaml.safe_load(render("etcd", "etcd.conf.yml.j2", hostvars("samecity-db")))
    assert config["name"] == "etcd-samecity"
    assert config["listen-client-urls"] == "https://10.2.0.11:2379"
    assert config["initial-cluster"] == ("etcd-main=https://10.1.0.11:2380,"
                                         "etcd-samecity=https://10.2.0.11:2380,"
                                         "etcd-remote=https://10.3.0.11:2380")
    assert config["data-dir"] == "/var/lib/etcd"


def test_an_isolated_etcd_member_cannot_depose_the_leader_when_it_comes_back(hostvars) -> None:
    # Without pre-vote, the healed member's raised term forced an election: no etcd
    # leader for seconds, and the database primary demoted (CI, main-center-isolation).
    assert yaml.safe_load(render("etcd", "etcd.conf.yml.j2", hostvars("main-db")))["pre-vote"] is True


def test_etcd_demands_a_certificate_from_clients_and_peers(hostvars) -> None:
    config = yaml.safe_load(render("etcd", "etcd.conf.yml.j2", hostvars("main-db")))
    for side in ("client-transport-security", "peer-transport-security"):
        assert config[side] == {"cert-file": "/etc/etcd/tls/etcd.crt", "key-file": "/etc/etcd/tls/etcd.key",
                                "trusted-ca-file": "/etc/etcd/tls/ca.crt", "client-cert-auth": True}


def test_etcd_role_keeps_its_key_private_and_its_passwords_out_of_the_output(hostvars, secrets) -> None:
    tasks = yaml.safe_load((PLAYBOOKS / "roles/etcd/tasks/config.yml").read_text())
    key_copy = next(t for t in tasks if t.get("ansible.builtin.copy", {}).get("dest") == "{{ etcd_tls_key_file }}")
    assert key_copy["ansible.builtin.copy"]["mode"] == "0600" and key_copy["diff"] is False
    auth = yaml.safe_load((PLAYBOOKS / "roles/etcd/tasks/auth.yml").read_text())
    with_secrets = [t for t in auth if "tricenter_secret" in json.dumps(t)
                    or "etcd_etcdctl_root_environment" in json.dumps(t)]
    assert len(with_secrets) == 4 and all(t["no_log"] is True for t in with_secrets)
    # The root password reaches etcdctl in its environment.
    root = RoleRenderer("etcd", hostvars("main-db")).var("etcd_etcdctl_root_environment")
    assert root["ETCDCTL_USER"] == "root"
    assert root["ETCDCTL_PASSWORD"] == secrets["TRICENTER_SAMPLE_ETCD_ROOT_PASSWORD"]
    assert root["ETCDCTL_ENDPOINTS"].startswith("https://")
    # Passwords reach etcdctl on stdin or in its environment, never in its argv.
    setup = next(t for t in auth if "etcd_auth_commands" in t.get("vars", {}))
    monitor = yaml.safe_load((PLAYBOOKS / "roles/etcd/defaults/main.yml").read_text())["etcd_monitor_commands"]
    commands = setup["vars"]["etcd_auth_commands"] + monitor
    assert not any("tricenter_secret" in json.dumps(c["argv"]) for c in commands)
    # The exporter's user may read Patroni's namespace, and nothing else.
    grant = next(c["argv"] for c in monitor if "grant-permission" in c["argv"])
    assert grant[grant.index("--prefix=true") + 1:] == ["read", "{{ tricenter_etcd_auth.patroni_prefix }}"]


def test_etcd_signs_jwt_tokens_with_the_inventorys_key_kept_private(hostvars, secrets) -> None:
    from playbooks.filter_plugins.tricenter_secret import tricenter_public_pem

    config = yaml.safe_load(render("etcd", "etcd.conf.yml.j2", hostvars("main-db")))
    assert config["auth-token"] == ("jwt,pub-key=/etc/etcd/tls/jwt.pub,priv-key=/etc/etcd/tls/jwt.key,"
                                    "sign-method=ES256,ttl=10m")
    private = secrets["TRICENTER_SAMPLE_ETCD_TOKEN_SIGNING_KEY"]
    public = serialization.load_pem_public_key(tricenter_public_pem(private).encode())
    assert public.public_numbers() == serialization.load_pem_private_key(
        private.encode(), None).public_key().public_numbers()
    tasks = yaml.safe_load((PLAYBOOKS / "roles/etcd/tasks/config.yml").read_text())
    key_copy = next(t for t in tasks
                    if t.get("ansible.builtin.copy", {}).get("dest") == "{{ etcd_jwt_private_key_file }}")
    assert key_copy["ansible.builtin.copy"]["mode"] == "0600"
    assert key_copy["no_log"] is True and key_copy["diff"] is False


def test_without_a_signing_key_etcd_keeps_simple_tokens(hostvars) -> None:
    variables = hostvars("main-db")
    del variables["tricenter_etcd_auth"]["token_signing_key"]
    assert "auth-token" not in yaml.safe_load(render("etcd", "etcd.conf.yml.j2", variables))


def test_patroni_logs_in_to_etcd_with_a_certificate_and_its_own_user(hostvars, secrets) -> None:
    etcd3 = yaml.safe_load(render("postgresql_patroni", "patroni.yml.j2", hostvars("main-db")))["etcd3"]
    assert etcd3["protocol"] == "https"
    assert (etcd3["cacert"], etcd3["cert"], etcd3["key"]) == (
        "/etc/patroni/tls/ca.crt", "/etc/patroni/tls/server.crt", "/etc/patroni/tls/server.key")
    assert etcd3["username"] == "patroni"
    assert etcd3["password"] == secrets["TRICENTER_SAMPLE_ETCD_PATRONI_PASSWORD"]


def test_patroni_places_members_by_tier_and_takes_secrets_by_reference(hostvars, secrets) -> None:
    main = yaml.safe_load(render("postgresql_patroni", "patroni.yml.j2", hostvars("main-db")))
    remote = yaml.safe_load(render("postgresql_patroni", "patroni.yml.j2", hostvars("remote-db")))
    assert main["tags"]["nofailover"] is False and main["tags"]["nosync"] is False
    assert remote["tags"]["nofailover"] is True and remote["tags"]["nosync"] is True
    assert main["bootstrap"]["dcs"]["synchronous_mode"] is True
    assert main["bootstrap"]["dcs"]["postgresql"]["use_pg_rewind"] is True
    assert "data-checksums" in main["bootstrap"]["initdb"]
    assert main["bootstrap"]["dcs"]["ttl"] == 30
    assert main["etcd3"]["hosts"] == ["10.1.0.11:2379", "10.2.0.11:2379", "10.3.0.11:2379"]
    auth = main["postgresql"]["authentication"]
    assert auth["superuser"]["password"] == secrets["TRICENTER_SAMPLE_SUPERUSER_PASSWORD"]
    assert auth["replication"]["password"] == secrets["TRICENTER_SAMPLE_REPLICATION_PASSWORD"]
    hba = main["postgresql"]["pg_hba"]
    assert all(line.endswith(("scram-sha-256", "peer")) for line in hba)
    # over the network TLS only: no plain `host` line; every member's and app's address
    # may connect, nothing wider
    assert not [line for line in hba if line.split()[0] == "host"]
    assert "hostssl all all 10.1.0.21/32 scram-sha-256" in hba
    assert not any("0.0.0.0/0" in line for line in hba)
    assert "archive-push" in main["postgresql"]["parameters"]["archive_command"]
    assert main["postgresql"]["data_dir"] == "/var/lib/postgresql/15/registry"


def test_postgresql_and_the_rest_api_serve_tls_and_unsafe_calls_need_the_account(hostvars, secrets) -> None:
    main = yaml.safe_load(render("postgresql_patroni", "patroni.yml.j2", hostvars("main-db")))
    params = main["postgresql"]["parameters"]
    assert params["ssl"] == "on"
    assert params["ssl_cert_file"] == "/etc/patroni/tls/server.crt"
    assert params["ssl_key_file"] == "/etc/patroni/tls/server.key"
    for account in ("replication", "rewind"):  # Patroni's own connections to the leader
        auth = main["postgresql"]["authentication"][account]
        assert auth["sslmode"] == "verify-full" and auth["sslrootcert"] == "/etc/patroni/tls/ca.crt"
    api = main["restapi"]
    assert (api["certfile"], api["keyfile"]) == ("/etc/patroni/tls/server.crt", "/etc/patroni/tls/server.key")
    assert api["authentication"] == {"username": "patroni", "password": secrets["TRICENTER_SAMPLE_API_PASSWORD"]}
    assert main["ctl"]["cacert"] == "/etc/patroni/tls/ca.crt" and main["ctl"]["insecure"] is False


def test_prometheus_scrapes_patroni_over_verified_https(hostvars) -> None:
    config = yaml.safe_load(render("prometheus", "prometheus.yml.j2", hostvars("main-monitoring")))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "patroni"]
    assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": "/etc/tricenter/tls/ca.crt"}
    # main's Prometheus: main's member only (each center scrapes its own)
    assert [t for c in job["static_configs"] for t in c["targets"]] == ["10.1.0.11:8008"]


def test_the_app_verifies_the_database_against_the_ca(hostvars) -> None:
    variables = hostvars("main-app")
    (instance,) = variables["tricenter_app_instances"]
    env = render("app", "app.env.j2", variables, item=instance)
    assert "APP_SSLROOTCERT=/etc/tricenter/tls/ca.crt" in env.splitlines()


def test_post_bootstrap_quotes_the_application_password(hostvars, secrets) -> None:
    script = render("postgresql_patroni", "post_bootstrap.sh.j2", hostvars("main-db"))
    assert "CREATE ROLE \"registry\" LOGIN PASSWORD 'app-''pw:1';" in script


def _fake_patroni(root: Path, postgresql_module: str) -> None:
    """A `patroni` package whose main() prints the stop polling it would run with."""
    (root / "patroni" / "postgresql").mkdir(parents=True)
    (root / "patroni" / "__init__.py").write_text("")
    (root / "patroni" / "version.py").write_text("__version__ = '9.9.9'\n")
    (root / "patroni" / "postgresql" / "__init__.py").write_text(postgresql_module)
    (root / "patroni" / "__main__.py").write_text(
        "import patroni.postgresql as pg, sys\n"
        "def main():\n"
        "    print(getattr(pg, 'STOP_POLLING_INTERVAL', None), sys.argv[1:])\n")


@pytest.mark.parametrize(("postgresql_module", "prints", "warns"), [
    ("STOP_POLLING_INTERVAL = 1\n", "0.1 ['/etc/patroni/patroni.yml']", False),
    ("", "None ['/etc/patroni/patroni.yml']", True),  # a Patroni that renamed it still starts
])
def test_patroni_starts_through_a_launcher_with_short_stop_polling(
        hostvars, tmp_path: Path, postgresql_module: str, prints: str, warns: bool) -> None:
    variables = hostvars("main-db")
    unit = render("postgresql_patroni", "patroni.service.j2", variables)
    assert ("ExecStart=/usr/bin/python3 /etc/patroni/patroni_launcher.py /etc/patroni/patroni.yml"
            in unit.splitlines())
    launcher = tmp_path / "patroni_launcher.py"
    launcher.write_text(render("postgresql_patroni", "patroni_launcher.py.j2", variables))
    _fake_patroni(tmp_path / "site", postgresql_module)
    done = subprocess.run([sys.executable, str(launcher), "/etc/patroni/patroni.yml"],
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
                          capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() == prints
    assert ("Patroni 9.9.9 has no patroni.postgresql.STOP_POLLING_INTERVAL" in done.stderr) is warns


def test_the_pinned_patroni_has_the_stop_polling_the_launcher_shortens(hostvars, tmp_path: Path) -> None:
    """The launcher against the release the lab and the docs pin (scripts/constraints/
    patroni.txt): a release without the constant would start unchanged, so a test says so."""
    from lab import binaries

    launcher = tmp_path / "patroni_launcher.py"
    launcher.write_text(render("postgresql_patroni", "patroni_launcher.py.j2", hostvars("main-db")))
    probe = ("import runpy, sys, patroni.__main__ as m, patroni.postgresql as pg;"
             " m.main = lambda: print(pg.STOP_POLLING_INTERVAL);"
             " runpy.run_path(sys.argv[1], run_name='__main__')")
    done = subprocess.run([str(binaries.path("patroni-python")), "-c", probe, str(launcher)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert (done.stdout.strip(), done.stderr) == ("0.1", "")
    # ...and the precheck's question gets that release's version from it.
    tasks = yaml.safe_load((PLAYBOOKS / "roles/postgresql_patroni/tasks/precheck.yml").read_text())
    question = next(t for t in tasks if t.get("register") == "postgresql_patroni_found_version")
    code = question["ansible.builtin.command"]["argv"][2]
    done = subprocess.run([str(binaries.path("patroni-python")), "-c", code],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "3.1.2"


@pytest.mark.parametrize(("found", "accepted", "says"), [
    ({"rc": 0, "stdout": "3.1.2\n"}, True, "runs Patroni 3.1.2"),
    ({"rc": 0, "stdout": "3.0.2\n"}, False, "runs Patroni 3.0.2"),  # Debian 12's: split brain
    ({"rc": 1, "stdout": ""}, False, "cannot import patroni"),
])
def test_patroni_precheck_refuses_a_release_that_does_not_fence_its_leader_key(
        hostvars, found: dict, accepted: bool, says: str) -> None:
    runtime = sample_runtime()
    next(h for h in runtime.hosts if h.name == "main-db").patroni_python = "/opt/patroni/bin/python"
    variables = {**host_variables(runtime, "main-db"), "postgresql_patroni_found_version": found}
    tasks = yaml.safe_load((PLAYBOOKS / "roles/postgresql_patroni/tasks/precheck.yml").read_text())
    probe = next(t for t in tasks if t.get("register") == "postgresql_patroni_found_version")
    check = next(t for t in tasks if "postgresql_patroni_found_version" in json.dumps(t.get("ansible.builtin.assert")))
    renderer = RoleRenderer("postgresql_patroni", variables)
    assert renderer.var(probe["ansible.builtin.command"]["argv"][0].strip("{} ")) == "/opt/patroni/bin/python"
    assert all(renderer.var(f"({c})") for c in check["ansible.builtin.assert"]["that"]) is accepted
    message = renderer.templar.template(trust_as_template(check["ansible.builtin.assert"]["fail_msg"]))
    assert f"main-db: /opt/patroni/bin/python {says};" in message and "patroni_python" in message


def test_haproxy_routes_by_patronis_rest_api_and_is_valid(hostvars, tmp_path: Path) -> None:
    config = render("haproxy", "haproxy.cfg.j2", hostvars("main-lb"))
    assert "option httpchk GET /primary" in config and "option httpchk GET /replica" in config
    assert ("server pg-remote 10.3.0.11:5432 check port 8008 check-ssl verify required "
            "ca-file /etc/tricenter/tls/ca.crt") in config
    assert "bind 10.1.0.31:5000" in config and "bind 10.1.0.31:8000" in config
    assert "server samecity-app 10.2.0.21:8080 check" in config
    # A refused connection to the write entry reaches the client at once (no 1 s retry on
    # the primary that just stopped); the read-only entry keeps its retries.
    write_entry = config.split("-read-write\n", 1)[1].split("\nlisten ", 1)[0]
    assert "    retries 0\n" in write_entry and "retries 0" not in config.split("-read-only\n", 1)[1]
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if Path(haproxy).exists():
        from lab.pki import CertificateAuthority

        # HAProxy loads the CA file while checking: the host's, made here.
        ca = CertificateAuthority(tmp_path / "pki").ensure().cert_file
        file = tmp_path / "haproxy.cfg"
        file.write_text(config.replace("/etc/tricenter/tls/ca.crt", str(ca)))
        checked = subprocess.run([haproxy, "-c", "-f", str(file)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_pgbackrest_verifies_tls_and_reads_keys_by_reference(hostvars, secrets) -> None:
    config = render("pgbackrest", "pgbackrest.conf.j2", hostvars("samecity-db"))
    assert "repo1-storage-verify-tls=y" in config
    assert "repo1-s3-endpoint=s3.main.example.gov.cn" in config
    assert f"repo1-s3-key-secret={secrets['TRICENTER_SAMPLE_S3_SECRET_KEY']}" in config
    assert "[registry]\npg1-path=/var/lib/postgresql/15/registry" in config
    # The store's certificate is checked against the host's CA; the repository is encrypted.
    assert "repo1-storage-ca-file=/etc/tricenter/tls/ca.crt" in config
    assert "repo1-cipher-type=aes-256-cbc" in config
    assert f"repo1-cipher-pass={secrets['TRICENTER_SAMPLE_BACKUP_CIPHER_PASSWORD']}" in config


def test_pgbackrest_refuses_a_store_without_encryption_or_verification(hostvars) -> None:
    runtime = sample_runtime()
    runtime.object_store.backup_cipher_password = None
    errors = validate("pgbackrest", host_variables(runtime, "main-db"))
    assert any("backup_cipher_password" in e for e in errors), errors
    runtime = sample_runtime()
    runtime.object_store.verify_tls = False
    variables = host_variables(runtime, "main-db")
    assert validate("pgbackrest", variables) == []  # the spec allows it; the precheck does not
    tasks = yaml.safe_load((PLAYBOOKS / "roles/pgbackrest/tasks/precheck.yml").read_text())
    checks = next(t for t in tasks if "backup_cipher_password" in json.dumps(t))["ansible.builtin.assert"]["that"]
    assert [RoleRenderer("pgbackrest", variables).var(f"({c})") for c in checks] == [True, False]
    assert all(RoleRenderer("pgbackrest", hostvars("main-db")).var(f"({c})") for c in checks)


def test_prometheus_config_passes_promtool(hostvars, tmp_path: Path) -> None:
    config = render("prometheus", "prometheus.yml.j2", hostvars("main-monitoring"))
    data = yaml.safe_load(config)
    jobs = {job["job_name"]: job for job in data["scrape_configs"]}
    # main's Prometheus scrapes main's etcd member and Patroni, and alerts.
    assert [g["targets"][0] for g in jobs["etcd"]["static_configs"]] == ["10.1.0.11:2379"]
    assert [g["targets"][0] for g in jobs["patroni"]["static_configs"]] == ["10.1.0.11:8008"]
    assert data["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["10.1.0.41:9093"]
    etcd = jobs["etcd"]
    assert etcd["scheme"] == "https"
    assert etcd["tls_config"] == {"ca_file": "/etc/prometheus/etcd-tls/ca.crt",
                                  "cert_file": "/etc/prometheus/etcd-tls/prometheus.crt",
                                  "key_file": "/etc/prometheus/etcd-tls/prometheus.key"}
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if Path(promtool).exists():
        file = tmp_path / "prometheus.yml"
        file.write_text(config)
        checked = subprocess.run([promtool, "check", "config", "--syntax-only", str(file)],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alertmanager_members_peer_across_the_centers_and_post_to_the_receiver(tmp_path: Path) -> None:
    runtime = sample_runtime()
    runtime.monitoring.alertmanagers.update(samecity="http://10.2.0.41:9093", remote="http://10.3.0.41:9093")
    role = RoleRenderer("alertmanager", host_variables(runtime, "main-monitoring"))
    unit = role.template("alertmanager.service.j2")
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    flags = exec_start.split()[1:]
    assert flags == role.var("alertmanager_flags")  # the lab runs its members with these
    assert "--web.listen-address=10.1.0.41:9093" in flags
    assert "--cluster.listen-address=10.1.0.41:9094" in flags
    # every other center's member, not itself
    assert sorted(f for f in flags if f.startswith("--cluster.peer=")) == [
        "--cluster.peer=10.2.0.41:9094", "--cluster.peer=10.3.0.41:9094"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in flags
    config = role.template("alertmanager.yml.j2")
    (hook,) = yaml.safe_load(config)["receivers"][0]["webhook_configs"]
    assert hook == {"url": "https://pager.example.gov.cn/tricenter/", "send_resolved": True}
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    if Path(amtool).exists():
        file = tmp_path / "alertmanager.yml"
        file.write_text(config)
        checked = subprocess.run([amtool, "check-config", str(file)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alertmanager_needs_a_receiver_and_a_member_on_the_host(hostvars) -> None:
    runtime = sample_runtime()
    runtime.monitoring.alert_receiver_url = None
    errors = validate("alertmanager", host_variables(runtime, "main-monitoring"))
    assert any("tricenter_alert_receiver_url" in e for e in errors), errors
    tasks = yaml.safe_load((PLAYBOOKS / "roles/alertmanager/tasks/precheck.yml").read_text())
    (member,) = [t for t in tasks if "alertmanagers" in json.dumps(t)]
    check = member["ansible.builtin.assert"]["that"][0]
    assert RoleRenderer("alertmanager", hostvars("main-monitoring")).var(f"({check})") is True
    assert RoleRenderer("alertmanager", hostvars("main-db")).var(f"({check})") is False


def test_app_instance_gets_its_database_and_a_pgpass(hostvars, secrets) -> None:
    variables = hostvars("samecity-app")
    item = variables["tricenter_app_instances"][0]
    env = render("app", "app.env.j2", variables, item=item)
    assert "APP_LISTEN=10.2.0.21:8080" in env
    assert "APP_DB_HOSTS=10.1.0.11:5432,10.2.0.11:5432,10.3.0.11:5432" in env
    pgpass = render("app", "app.pgpass.j2", variables, item=item)
    assert pgpass.strip() == "*:*:registry:registry:app-'pw\\:1"


def test_a_host_root_moves_every_path_under_it() -> None:
    runtime = sample_runtime()
    for host in runtime.hosts:
        host.root = "/var/tmp/lab/hosts/" + host.name
    variables = host_variables(runtime, "main-db")
    config = yaml.safe_load(render("etcd", "etcd.conf.yml.j2", variables))
    assert config["data-dir"] == "/var/tmp/lab/hosts/main-db/var/lib/etcd"


# --- argument specs -------------------------------------------------------------------


def validate(role: str, variables: dict) -> list[str]:
    """What the role's validate_argument_spec task would say about these variables."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    specs = yaml.safe_load((PLAYBOOKS / "roles" / role / "meta" / "argument_specs.yml").read_text())
    spec = specs["argument_specs"]["main"]["options"]
    known = {k: v for k, v in variables.items() if k in spec}
    return ArgumentSpecValidator(spec).validate(known).error_messages


@pytest.mark.parametrize("role,host", [("etcd", "main-db"), ("postgresql_patroni", "main-db"),
                                       ("pgbackrest", "main-db"), ("haproxy", "main-lb"),
                                       ("prometheus", "main-monitoring"),
                                       ("alertmanager", "main-monitoring"), ("app", "main-app")])
def test_argument_specs_accept_the_sample_inventory(role: str, host: str, hostvars) -> None:
    assert validate(role, hostvars(host)) == []


def test_argument_specs_reject_a_wrong_inventory(hostvars) -> None:
    variables = hostvars("main-db")
    variables["tricenter_db_members"][0]["intended_role"] = "primary"
    variables["tricenter_databases"][0]["password"] = {"file": "/a", "env": "B"}
    variables["tricenter_service_manager"] = "runit"
    errors = " | ".join(validate("postgresql_patroni", variables))
    assert "intended_role" in errors and "primary" in errors
    assert "mutually exclusive" in errors and "password" in errors
    assert "tricenter_service_manager" in errors
    del variables["tricenter_db_members"]
    assert any("tricenter_db_members" in e for e in validate("postgresql_patroni", variables))


def test_every_role_has_the_same_shape() -> None:
    for role in ROLES:
        base = PLAYBOOKS / "roles" / role
        for part in ("defaults/main.yml", "meta/argument_specs.yml", "handlers/main.yml",
                     *(f"tasks/{t}.yml" for t in ("main", "precheck", "config", "deploy", "check"))):
            assert (base / part).is_file(), f"{role}: {part} is missing"
        assert list((base / "templates").glob("*.j2")), f"{role}: no templates"


def test_secret_tasks_never_log() -> None:
    """A task that writes a file holding a secret carries no_log (its diff would show it)."""
    for role in ROLES:
        for file in (PLAYBOOKS / "roles" / role / "tasks").glob("*.yml"):
            for task in yaml.safe_load(file.read_text()) or []:
                template = (task.get("ansible.builtin.template") or {}).get("src", "")
                text = (PLAYBOOKS / "roles" / role / "templates" / template).read_text() \
                    if template else ""
                if "tricenter_secret" in text:
                    assert task.get("no_log") is True, f"{role}/{file.name}: {task['name']}"


# --- tricenter configure ----------------------------------------------------------------


def test_configure_refuses_a_missing_or_invalid_runtime_inventory(tmp_path: Path) -> None:
    result = CliRunner().invoke(configure, ["--runtime", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "no such runtime inventory" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SAMPLE.read_text().replace("intended_role: async", "intended_role: primary"))
    result = CliRunner().invoke(configure, ["--runtime", str(bad)])
    assert result.exit_code == 2 and "intended_role" in result.output


def _unreachable_runtime(tmp_path: Path) -> Path:
    """The sample, with every host's SSH pointed at a port nothing listens on."""
    data = yaml.safe_load(SAMPLE.read_text())
    for host in data["hosts"]:
        host["ssh"] = {"host": "127.0.0.1", "port": 9, "user": "root"}
    file = tmp_path / "runtime.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def test_configure_json_recap_reports_unreachable_hosts_and_exits_1(tmp_path: Path, secrets) -> None:
    file = _unreachable_runtime(tmp_path)
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "configure", "--runtime", str(file),
                           "--json", "--limit", "main-lb", "--tags", "haproxy"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    recap = json.loads(done.stdout)  # stdout holds the recap alone; progress is on stderr
    assert set(recap) == {"ok", "hosts"} and recap["ok"] is False
    assert list(recap["hosts"]) == ["main-lb"]
    counts = recap["hosts"]["main-lb"]
    assert set(counts) == {"ok", "changed", "failed", "unreachable"}
    assert counts["unreachable"] == 1 and counts["changed"] == 0
    assert "TASK haproxy : HAProxy directories" in done.stderr


def test_configure_exits_2_when_a_role_rejects_the_inventory(tmp_path: Path, secrets) -> None:
    """A db host whose address carries no member: the argument spec stops the run on the
    controller, before any connection, and the exit code says bad input."""
    data = yaml.safe_load(_unreachable_runtime(tmp_path).read_text())
    data["systems"]["registry"]["database"]["members"][2]["host"] = "10.3.0.99"
    file = tmp_path / "runtime.yaml"
    file.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "configure", "--runtime", str(file),
                           "--limit", "remote-db", "--tags", "patroni"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "tricenter_db_members" in done.stderr


def test_ansible_lint_production_profile_passes() -> None:
    lint = Path(sys.executable).parent / "ansible-lint"
    done = subprocess.run([str(lint), "--profile", "production", "--offline", "playbooks/"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
