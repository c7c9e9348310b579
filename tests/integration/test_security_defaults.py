"""Security defaults of the running lab, checked from outside as a client would meet them:
Patroni's REST API speaks TLS and refuses unsafe calls without its account, PostgreSQL
refuses a connection without TLS, no secret value reaches a log, and every file holding a
secret or a private key is readable by its owner alone."""
from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest
import requests

from dr.workload import resolve_secret
from inventory.runtime import DatabaseCluster, RuntimeInventory

# Every endpoint that changes something; Patroni asks credentials for each of them.
UNSAFE = [("POST", "/restart"), ("POST", "/reload"), ("POST", "/reinitialize"),
          ("POST", "/switchover"), ("POST", "/failover"), ("PATCH", "/config"),
          ("PUT", "/config"), ("DELETE", "/restart"), ("DELETE", "/switchover")]


@pytest.fixture(scope="module")
def runtime(lab) -> RuntimeInventory:
    return RuntimeInventory.load(lab.ctx.runtime_inventory_file)


# Every lab system's cluster (the registry's and the charity's): each has its own members.
@pytest.fixture(scope="module", params=["registry", "charity"])
def db(runtime: RuntimeInventory, request) -> DatabaseCluster:
    return runtime.systems[request.param].database


def test_every_member_api_is_https_and_refuses_unsafe_calls_without_credentials(runtime, db) -> None:
    assert runtime.tls_ca_file
    for member in db.members:
        assert member.api_url.startswith("https://"), member.api_url
        for method, path in UNSAFE:
            reply = requests.request(method, member.api_url + path, json={}, timeout=10,
                                     verify=runtime.tls_ca_file)
            assert reply.status_code == 401, f"{method} {path} on {member.name}: {reply.status_code}"
        wrong = requests.post(member.api_url + "/restart", auth=(db.api_user, "not-the-password"),
                              timeout=10, verify=runtime.tls_ca_file)
        assert wrong.status_code == 401


def test_the_api_account_from_the_inventory_is_accepted(runtime, db) -> None:
    """The refusals above are the account missing, not the endpoint being unusable."""
    member = db.members[0]
    reply = requests.post(member.api_url + "/reload", timeout=10, verify=runtime.tls_ca_file,
                          auth=(db.api_user, resolve_secret(db.api_password)))
    assert reply.status_code in (200, 202), reply.text


def test_the_api_presents_a_certificate_only_the_lab_ca_vouches_for(db) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(db.members[0].api_url + "/health", timeout=10)  # the system's trust store


def _connect(runtime: RuntimeInventory, db: DatabaseCluster, host: str, port: int, **tls) -> psycopg.Connection:
    return psycopg.connect(host=host, port=port, dbname=db.dbname, user=db.user,
                           password=resolve_secret(db.password), connect_timeout=5, **tls)


def test_postgresql_refuses_a_connection_without_tls(runtime, db) -> None:
    servers = [(m.host, m.port) for m in db.members] + [(db.read_write.host, db.read_write.port)]
    for host, port in servers:
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            _connect(runtime, db, host, port, sslmode="disable")


def test_postgresql_serves_tls_verified_against_the_inventory_ca(runtime, db) -> None:
    """A member by its own address (verify-full) and the read-write entry, which passes
    TLS through to the leader (verify-ca)."""
    member = db.members[0]
    query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    with _connect(runtime, db, member.host, member.port, sslmode="verify-full",
                  sslrootcert=runtime.tls_ca_file) as conn:
        assert conn.execute(query).fetchone()[0] is True
    with _connect(runtime, db, db.read_write.host, db.read_write.port, sslmode="verify-ca",
                  sslrootcert=runtime.tls_ca_file) as conn:
        assert conn.execute(query).fetchone()[0] is True


def _secret_values(lab) -> list[str]:
    """Every single-line secret the lab holds. An S3 access key is the account's name,
    which servers log as they should (as AWS logs an access key id): not a secret."""
    values = []
    for file in lab.ctx.secrets_dir.iterdir():
        if not file.is_file() or file.name.endswith((".pub", "access-key")):
            continue
        text = file.read_text(errors="replace").strip()
        if "PRIVATE KEY" not in text and len(text) >= 8:
            values.append(text)
    return values


def test_no_secret_value_appears_in_any_lab_log(lab) -> None:
    secrets = _secret_values(lab)
    assert secrets, "the lab has no secrets to look for"
    logs = [f for f in lab.ctx.root.rglob("*.log") if f.is_file()]
    logs += [f for f in lab.ctx.logs_dir.rglob("*") if f.is_file()]
    assert logs
    for log in set(logs):
        text = log.read_text(errors="replace")
        leaked = [s[:4] + "…" for s in secrets if s in text]
        assert not leaked, f"{log} holds secret values starting {leaked}"
        assert "PRIVATE KEY-----" not in text, f"{log} holds a private key"


def _private_files(lab) -> list[Path]:
    root = lab.ctx.root
    files = [f for f in lab.ctx.secrets_dir.iterdir() if f.is_file() and not f.name.endswith(".pub")]
    files += list(root.rglob("*.key")) + list(root.rglob("*.pgpass")) + list(root.rglob(".pgpass*"))
    files += list(root.glob("hosts/*/etc/patroni/patroni.yml"))
    return files


def test_every_secret_and_private_key_file_is_0600(lab) -> None:
    files = _private_files(lab)
    assert any(f.name == "patroni.yml" for f in files) and any(f.suffix == ".key" for f in files)
    loose = {str(f): oct(stat.S_IMODE(f.stat().st_mode)) for f in files
             if stat.S_IMODE(f.stat().st_mode) & 0o077}
    assert not loose, f"readable by others than their owner: {loose}"
