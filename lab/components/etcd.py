"""etcd ×3: one member per center, one quorum, so losing any one center leaves a majority
that still knows who the database primary is."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import requests

from inventory.runtime import EtcdAuth, RuntimeInventory, SecretRef
from lab import binaries, pki
from lab import users
from lab.component import Program
from lab.components import sshd
from lab.context import CENTERS, LabContext, Ports

HOST_FORMAT = "{center}-db"  # the lab host (lab/components/sshd.py) each member runs on
ROOT_PASSWORD = "etcd-root"  # secret files (LabContext.secret_file)
PATRONI_PASSWORD = "etcd-patroni"
MONITOR_PASSWORD = "etcd-monitor"
TOKEN_SIGNING_KEY = "etcd-token-signing-key"  # PEM, made by lab/pki.py
# Members whose data was made with these peer URLs' scheme: etcd keeps its peers' URLs in
# its data, so a member made with http peers would never reach an https quorum.
PEER_SCHEME = "https"


def member_name(center: str) -> str:
    return f"etcd-{center}"


def client_url(lab: LabContext, center: str) -> str:
    return f"https://{lab.address(center)}:{Ports.etcd_client}"


def host_name(center: str) -> str:
    return HOST_FORMAT.format(center=center)


def config_file(lab: LabContext, center: str) -> Path:
    """Where the etcd role puts a member's config under its host's root (its defaults)."""
    return sshd.host_root(lab, host_name(center)) / "etc/etcd/etcd.conf.yml"


def data_dir(lab: LabContext, center: str) -> Path:
    """The etcd role's data directory under the host's root (its defaults)."""
    return sshd.host_root(lab, host_name(center)) / "var/lib/etcd"


def _role(runtime: RuntimeInventory, center: str):
    from playbooks.render import renderer

    return renderer(runtime, host_name(center), "etcd")


def render_config(runtime: RuntimeInventory, center: str) -> str:
    """etcd.conf.yml as the etcd role writes it on the member's host."""
    return _role(runtime, center).template("etcd.conf.yml.j2")


def install_tls(runtime: RuntimeInventory, center: str) -> pki.CertFiles:
    """The host's certificate where the etcd role copies it, for the etcd account."""
    role = _role(runtime, center)
    return sshd.install_host_tls(runtime, host_name(center), role,
                                 ("etcd_tls_ca_file", "etcd_tls_cert_file", "etcd_tls_key_file"),
                                 str(role.var("etcd_user")))


def token_signing_key(lab: LabContext) -> Path:
    lab.secret_file(ROOT_PASSWORD)  # the secrets directory, made as secrets are
    return pki.signing_key(lab.secrets_dir / TOKEN_SIGNING_KEY)


def install_token_keys(runtime: RuntimeInventory, center: str) -> None:
    """What the etcd role's token key tasks write on the member's host: the signing key
    0600 for the etcd account, and its public half."""
    from playbooks.filter_plugins.tricenter_secret import tricenter_public_pem, tricenter_secret

    role = _role(runtime, center)
    if not role.var("etcd_jwt_enabled"):
        return
    owner = str(role.var("etcd_user"))
    private = tricenter_secret(runtime.etcd_auth.token_signing_key.model_dump(exclude_none=True))
    pki.install_file(Path(str(role.var("etcd_jwt_private_key_file"))), (private + "\n").encode(),
                     owner, private=True)
    pki.install_file(Path(str(role.var("etcd_jwt_public_key_file"))),
                     tricenter_public_pem(private).encode(), owner)


def client_tls(lab: LabContext) -> pki.CertFiles:
    """What the lab's own etcd clients present and verify with (the tools' certificate)."""
    return sshd.tools_certificate(lab)


def _requests_tls(lab: LabContext) -> dict:
    files = client_tls(lab)
    return {"verify": str(files.ca), "cert": (str(files.cert), str(files.key))}


def etcdctl_environment(lab: LabContext, endpoints: list[str]) -> dict[str, str]:
    """etcdctl's settings as root: certificate and password in its environment, never on
    its command line (which every user can read in ps)."""
    files = client_tls(lab)
    return {**os.environ, "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": ",".join(endpoints),
            "ETCDCTL_CACERT": str(files.ca), "ETCDCTL_CERT": str(files.cert),
            "ETCDCTL_KEY": str(files.key), "ETCDCTL_USER": "root",
            "ETCDCTL_PASSWORD": lab.secret(ROOT_PASSWORD)}


def command(lab: LabContext, center: str) -> list[str]:
    return [binaries.path("etcd"), "--config-file", str(config_file(lab, center))]


def _peer_scheme_file(lab: LabContext) -> Path:
    return lab.path("etcd-peer-scheme")


def forget_data(lab: LabContext) -> None:
    """Every member starts afresh (its peer URLs, kept in its data, are about to change)."""
    for center in CENTERS:
        shutil.rmtree(data_dir(lab, center), ignore_errors=True)
    shutil.rmtree(lab.path("etcd"), ignore_errors=True)


def member_status(lab: LabContext, center: str, timeout: float = 1.0) -> dict | None:
    """etcd's own status through its gRPC gateway; None when the member does not answer."""
    try:
        response = requests.post(f"{client_url(lab, center)}/v3/maintenance/status",
                                 json={}, timeout=timeout, **_requests_tls(lab))
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError):
        return None


def leader_center(lab: LabContext) -> str | None:
    """The center whose etcd member is the raft leader, as the members agree."""
    ids = {}
    leader = None
    for center in CENTERS:
        status = member_status(lab, center)
        if status:
            ids[status["header"]["member_id"]] = center
            leader = leader or status.get("leader")
    return ids.get(leader) if leader else None


def move_leader(lab: LabContext, to_center: str) -> None:
    """Move the raft leader to `to_center` with `etcdctl move-leader` (sent to the leader)."""
    current = leader_center(lab)
    if current is None or current == to_center:
        return
    target = member_status(lab, to_center)
    if target is None:
        raise RuntimeError(f"etcd member of {to_center} does not answer; cannot move the leader")
    target_hex = format(int(target["header"]["member_id"]), "x")
    subprocess.run([binaries.path("etcdctl"), "move-leader", target_hex], check=True,
                   capture_output=True, text=True, timeout=15,
                   env=etcdctl_environment(lab, [client_url(lab, current)]))


def auth_enabled(lab: LabContext, center: str, timeout: float = 2.0) -> bool | None:
    """Whether etcd enforces authentication (root's password opens it); None: no answer."""
    try:
        response = requests.post(f"{client_url(lab, center)}/v3/auth/authenticate",
                                 json={"name": "root", "password": lab.secret(ROOT_PASSWORD)},
                                 timeout=timeout, **_requests_tls(lab))
    except requests.RequestException:
        return None
    if response.status_code == 200:
        return True
    # gRPC FailedPrecondition: "authentication is not enabled"
    return False if "not enabled" in response.text else None


def ensure_auth(lab: LabContext) -> bool:
    """Turn RBAC on as the etcd role does (its auth tasks, through Ansible, from the first
    member's host) unless it is on already; True when it is on."""
    from playbooks import configure

    state = auth_enabled(lab, CENTERS[0])
    if state is not False:
        return bool(state)
    recap = configure.run(RuntimeInventory.load(lab.runtime_inventory_file),
                          tags="etcd_auth", limit=host_name(CENTERS[0]))
    if not recap.ok:
        raise RuntimeError(f"the etcd role's auth tasks failed: {recap.errors or recap.as_json()}")
    return auth_enabled(lab, CENTERS[0]) is True


class Etcd:
    name = "etcd"

    def prepare(self, lab: LabContext) -> None:
        runtime = RuntimeInventory.load(lab.runtime_inventory_file)
        if not _peer_scheme_file(lab).exists() or _peer_scheme_file(lab).read_text() != PEER_SCHEME:
            forget_data(lab)  # also the data of labs older than the etcd role (lab/etcd)
        for center in CENTERS:
            install_tls(runtime, center)
            install_token_keys(runtime, center)
            config_file(lab, center).parent.mkdir(parents=True, exist_ok=True)
            config_file(lab, center).write_text(render_config(runtime, center))
            config_file(lab, center).chmod(0o644)
            data = data_dir(lab, center)
            data.mkdir(parents=True, exist_ok=True)
            data.chmod(0o700)
            users.hand_over(data, recursive=True)  # data an older, root-run lab wrote
        _peer_scheme_file(lab).write_text(PEER_SCHEME)

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name=f"{center}-etcd", center=center, component="etcd",
                        command=command(lab, center), user=users.SERVICE_USER,
                        directory=data_dir(lab, center), priority=100, host=host_name(center))
                for center in CENTERS]

    def health(self, lab: LabContext) -> dict[str, dict]:
        ids: dict[str, str] = {}
        statuses = {}
        for center in CENTERS:
            statuses[center] = member_status(lab, center)
            if statuses[center]:
                ids[statuses[center]["header"]["member_id"]] = center
        result = {}
        for center, status in statuses.items():
            if status is None:
                result[center] = {"healthy": False, "detail": "etcd member does not answer"}
                continue
            leader = ids.get(status.get("leader", ""))
            result[center] = {"healthy": leader is not None, "leader": leader,
                              "is_leader": leader == center,
                              "detail": f"member of a quorum led by {leader}" if leader
                              else "no leader known"}
        if len(ids) == len(CENTERS) and auth_enabled(lab, CENTERS[0]) is False:
            # The lab turns RBAC on once Patroni has bootstrapped (Lab._converge).
            result[CENTERS[0]].update(healthy=False, detail="authentication is still off")
        return result

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        runtime.etcd = [client_url(lab, center) for center in CENTERS]
        runtime.etcd_auth = EtcdAuth(
            root_password=SecretRef(file=str(lab.secret_file(ROOT_PASSWORD))),
            patroni_password=SecretRef(file=str(lab.secret_file(PATRONI_PASSWORD))),
            monitor_password=SecretRef(file=str(lab.secret_file(MONITOR_PASSWORD))),
            token_signing_key=SecretRef(file=str(token_signing_key(lab))))


def component() -> Etcd:
    return Etcd()
