"""etcd's security defaults on the running lab, as the etcd role sets them.

- Every member refuses a client that presents no certificate; one from the lab CA gets in.
- Authentication is on: a client with a certificate but no login reads no key.
- Patroni's user reads and writes under Patroni's namespace and nowhere else.
- Tokens are JWTs signed with the inventory's key: one member's token holds on the others.
- Secret files are 0600, the copied TLS keys too, and no secret value is in a lab log.
"""
from __future__ import annotations

import base64
import stat

import pytest
import requests

from inventory.runtime import RuntimeInventory
from lab.components import etcd
from lab.context import CENTERS
from lab.lab import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def runtime(lab: Lab) -> RuntimeInventory:
    return RuntimeInventory.load(lab.ctx.runtime_inventory_file)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _tls(runtime: RuntimeInventory) -> dict:
    files = runtime.client_tls
    assert files is not None, "the runtime inventory names no client certificate for tricenter's tools"
    return {"verify": files.ca, "cert": (files.cert, files.key), "timeout": 10}


def _login(url: str, runtime: RuntimeInventory, user: str, password: str) -> str:
    reply = requests.post(f"{url}/v3/auth/authenticate", json={"name": user, "password": password},
                          **_tls(runtime))
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


def _range(url: str, runtime: RuntimeInventory, prefix: str, token: str | None) -> requests.Response:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    headers = {"Authorization": token} if token else {}
    return requests.post(f"{url}/v3/kv/range", json={"key": _b64(prefix), "range_end": _b64(end),
                                                    "keys_only": True},
                         headers=headers, **_tls(runtime))


@pytest.mark.parametrize("center", CENTERS)
def test_etcd_refuses_a_client_without_a_certificate(runtime: RuntimeInventory, center: str) -> None:
    url = next(u for u in runtime.etcd if f"//{runtime.hosts_in(center)[0].address}:" in u)
    assert url.startswith("https://")
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(f"{url}/v3/maintenance/status", json={}, verify=runtime.tls_ca_file, timeout=10)
    # The same request with the lab CA's client certificate is answered.
    assert requests.post(f"{url}/v3/maintenance/status", json={}, **_tls(runtime)).status_code == 200


def test_etcd_reads_no_key_for_a_client_that_did_not_log_in(runtime: RuntimeInventory) -> None:
    reply = _range(runtime.etcd[0], runtime, "/", None)
    assert reply.status_code != 200 and "user name is empty" in reply.text, reply.text


def test_patronis_user_reaches_only_patronis_namespace(lab: Lab, runtime: RuntimeInventory) -> None:
    auth = runtime.etcd_auth
    assert auth is not None and auth.patroni_prefix == "/tricenter/"
    url = runtime.etcd[0]
    token = _login(url, runtime, auth.patroni_user, lab.ctx.secret(etcd.PATRONI_PASSWORD))
    inside = _range(url, runtime, auth.patroni_prefix, token)
    assert inside.status_code == 200 and int(inside.json().get("count", 0)) > 0, inside.text
    for outside in ("/", "/other/", "/tricenter0"):
        reply = _range(url, runtime, outside, token)
        assert reply.status_code != 200 and "permission denied" in reply.text, (outside, reply.text)
    put = requests.post(f"{url}/v3/kv/put", json={"key": _b64("/elsewhere/x"), "value": _b64("1")},
                        headers={"Authorization": token}, **_tls(runtime))
    assert "permission denied" in put.text, put.text


def test_the_exporters_user_only_reads_patronis_namespace(lab: Lab, runtime: RuntimeInventory) -> None:
    auth = runtime.etcd_auth
    assert auth is not None and auth.monitor_password is not None
    url = runtime.etcd[1]
    token = _login(url, runtime, auth.monitor_user, lab.ctx.secret(etcd.MONITOR_PASSWORD))
    inside = _range(url, runtime, auth.patroni_prefix, token)
    assert inside.status_code == 200 and int(inside.json().get("count", 0)) > 0, inside.text
    assert "permission denied" in _range(url, runtime, "/", token).text
    put = requests.post(f"{url}/v3/kv/put", json={"key": _b64(auth.patroni_prefix + "registry/leader"),
                                                 "value": _b64("intruder")},
                        headers={"Authorization": token}, **_tls(runtime))
    assert "permission denied" in put.text, put.text


def test_a_token_one_member_issued_is_honoured_by_the_others(lab: Lab, runtime: RuntimeInventory) -> None:
    # Simple tokens live in the issuing member's memory: Patroni, moving to another member
    # mid-failover, had to log in again ("invalid auth token" in etcd's log).
    auth = runtime.etcd_auth
    assert auth is not None and auth.token_signing_key is not None
    token = _login(runtime.etcd[0], runtime, auth.patroni_user, lab.ctx.secret(etcd.PATRONI_PASSWORD))
    assert token.count(".") == 2 and token.startswith("eyJ"), "not a JWT"
    for url in runtime.etcd[1:]:
        reply = _range(url, runtime, auth.patroni_prefix, token)
        assert reply.status_code == 200 and int(reply.json().get("count", 0)) > 0, (url, reply.text)


def test_secret_files_and_copied_keys_are_their_owners_alone(lab: Lab) -> None:
    ctx = lab.ctx
    secrets = [f for f in ctx.secrets_dir.iterdir() if f.is_file() and f.suffix != ".pub"]
    assert {etcd.ROOT_PASSWORD, etcd.PATRONI_PASSWORD, etcd.MONITOR_PASSWORD,
            etcd.TOKEN_SIGNING_KEY} <= {f.name for f in secrets}
    keys = [etcd.data_dir(ctx, c).parent.parent.parent / f"etc/etcd/tls/{name}"
            for c in CENTERS for name in ("etcd.key", "jwt.key")]
    for file in secrets + keys:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_no_secret_value_is_in_a_lab_log(lab: Lab) -> None:
    ctx = lab.ctx
    # An S3 access key names the account (the object store logs it, as AWS logs key ids);
    # the secret key beside it is what must stay hidden.
    texts = [f.read_text().strip() for f in ctx.secrets_dir.iterdir()
             if f.is_file() and f.suffix != ".pub" and not f.name.endswith("access-key")]
    values = [t for t in texts if 8 <= len(t) < 200 and "\n" not in t]  # passwords, not PEM keys
    assert len(values) >= 2
    for log in ctx.logs_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        leaked = [name for name in values if name in text]
        assert not leaked, f"{log} holds a secret value"
