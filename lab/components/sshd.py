"""OpenSSH hosts for Ansible: every host of the lab — the database host of each center
(etcd, Patroni, pgBackRest), an app host in each active center, the entry (HAProxy) and
the monitoring hosts (Prometheus, Alertmanager) of each center and of the global site,
and the legacy IDC host.

Each host is a private `sshd -D -f CONFIG` on port 2222 of its own address, with its own
host key. The runtime inventory points Ansible at a known_hosts file holding exactly those
keys, so host keys are verified and never accepted on first sight. Each host has its own
root directory, under which the configuration plane writes its config and data, as it
writes under / on a real host. The legacy host also runs the legacy database (see
`legacy.py`)."""
from __future__ import annotations

import os
import pwd
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from inventory.names import path_under
from lab import binaries, pki, users
from lab.component import Program
from lab.components import legacy, legacy_app, monitoring_host
from lab.context import GLOBAL

if TYPE_CHECKING:
    from inventory.runtime import HostControl, RuntimeInventory, TlsFiles
    from playbooks.render import RoleRenderer
    from lab.context import LabContext

SSHD = binaries.path("sshd")
PORT = 2222
LOGIN_USER = "root"  # key only; Ansible needs root to act as postgres and own files


@dataclass(frozen=True)
class SshHost:
    name: str  # matches the host the runtime inventory lists (the app's `<center>-app`)
    center: str
    role: str  # db | app | lb | monitoring | legacy
    address: str


def hosts(lab: "LabContext") -> list[SshHost]:
    from lab.components import patroni

    # The sample system's database hosts are main-db, samecity-db, remote-db (etcd's too);
    # another system's have their own slot: main-db2, remote-db2 …
    db_hosts = [SshHost(patroni.db_host(lab, c, system), c, "db", patroni.address(lab, c, system))
                for system, c in patroni.nodes(lab)]
    app_hosts = [SshHost(f"{c}-app", c, "app", lab.address(c, "app"))
                 for c in lab.placement.app_centers]
    monitoring_hosts = [SshHost(monitoring_host.host_name(site), site, "monitoring",
                                monitoring_host.address(lab, site))
                        for site in monitoring_host.SITES]
    global_hosts = [SshHost(f"{GLOBAL}-lb", GLOBAL, "lb", lab.entry_address)]
    return db_hosts + app_hosts + global_hosts + monitoring_hosts + [
        SshHost(legacy.host_name(lab, s), legacy.CENTER, "legacy", legacy.host_address(lab, s))
        for s in legacy.systems(lab)]


def host_root(lab: "LabContext", name: str) -> Path:
    """Where the configuration plane puts the host `name`'s /etc and /var (the `root` the
    runtime inventory gives it; every role's paths are under it)."""
    return lab.path("hosts", name)


def certificate_authority(lab: "LabContext") -> pki.CertificateAuthority:
    """The lab's CA (lab/pki.py); its certificate is public, its key root's alone."""
    return pki.CertificateAuthority(lab.path("pki"))


def host_certificate(lab: "LabContext", host: SshHost) -> pki.CertFiles:
    """The host's certificate, for its address and its name, made on first use."""
    files = host_tls(lab, host.name, host.address)
    return pki.CertFiles(ca=Path(files.ca), cert=Path(files.cert), key=Path(files.key))


def certificate_addresses(lab: "LabContext", address: str) -> list[str]:
    """A host's address, and on loopback also 127.0.0.1: every connection between lab
    hosts then comes from there, and etcd checks a client's address against its
    certificate (in netns mode each host has a real source address)."""
    return [address] if lab.settings.netns else [address, "127.0.0.1"]


TOOLS_CLIENT = "tricenter-tools"


def tools_certificate(lab: "LabContext") -> pki.CertFiles:
    """The client certificate tricenter's own tools (exporter, lab, drills) present to etcd,
    which accepts no client without one. Its key is root's: the tools run as root here."""
    return certificate_authority(lab).ensure().issue_client(lab.path("pki", "clients"), TOOLS_CLIENT)


def host_tls(lab: "LabContext", name: str, address: str) -> "TlsFiles":
    """A lab host's TLS files as the runtime inventory names them. Every component that
    lists a host gives it these, so TLS holds whichever components run (the sshd one
    included or not); it also names the CA for clients."""
    from inventory.runtime import TlsFiles

    files = certificate_authority(lab).ensure().issue(lab.path("pki", "hosts"), name,
                                                      certificate_addresses(lab, address))
    return TlsFiles(**{k: str(v) for k, v in asdict(files).items()})


def give_tls(lab: "LabContext", runtime: "RuntimeInventory", name: str, address: str) -> None:
    """Give the listed host `name` its TLS files, and the inventory the CA clients trust."""
    host = next(h for h in runtime.hosts if h.name == name)
    host.tls = host.tls or host_tls(lab, name, address)
    runtime.tls_ca_file = runtime.tls_ca_file or host.tls.ca


def install_host_tls(runtime: "RuntimeInventory", name: str, role: "RoleRenderer",
                     variables: tuple[str, str, str], owner: str) -> pki.CertFiles:
    """What a role's TLS copy tasks do on host `name`: the host's certificate files (as the
    runtime inventory names them) copied to the role's paths for the service's account
    `owner`, given as the role variables (CA, certificate, key); the key 0600 in a 0700
    directory of that account."""
    host = next(h for h in runtime.hosts if h.name == name)
    if host.tls is None:
        raise RuntimeError(f"host {name} has no tls files in the runtime inventory")
    source = pki.CertFiles(ca=Path(host.tls.ca), cert=Path(host.tls.cert), key=Path(host.tls.key))
    ca, cert, key = (Path(str(role.var(variable))) for variable in variables)
    target = pki.CertFiles(ca=ca, cert=cert, key=key)
    target.key.parent.mkdir(parents=True, exist_ok=True)
    target.key.parent.chmod(0o700)
    if os.geteuid() == 0:
        account = pwd.getpwnam(owner)
        os.chown(target.key.parent, account.pw_uid, account.pw_gid)
    return pki.install(source, target, owner)


def home(lab: "LabContext") -> Path:
    return lab.path("sshd")


def host_dir(lab: "LabContext", host: SshHost) -> Path:
    return path_under(home(lab), host.name)


def client_key(lab: "LabContext") -> Path:
    return lab.secrets_dir / "ssh-client-ed25519"


def known_hosts(lab: "LabContext") -> Path:
    return home(lab) / "known_hosts"


def authorized_keys(lab: "LabContext") -> Path:
    return home(lab) / "authorized_keys"


def host_key(lab: "LabContext", host: SshHost) -> Path:
    return host_dir(lab, host) / "ssh_host_ed25519_key"


# Written here, not by a role: it stands in for the sshd a cloud image brings (no role configures it).
def render_sshd_config(lab: "LabContext", host: SshHost) -> str:
    options = [
        ("Port", PORT),
        ("ListenAddress", host.address),
        ("HostKey", host_key(lab, host)),
        ("PidFile", host_dir(lab, host) / "sshd.pid"),
        ("AuthorizedKeysFile", authorized_keys(lab)),
        ("PubkeyAuthentication", "yes"),
        ("PasswordAuthentication", "no"),
        ("KbdInteractiveAuthentication", "no"),
        ("PermitRootLogin", "prohibit-password"),
        ("AllowUsers", LOGIN_USER),
        ("UsePAM", "no"),  # no PAM stack for a private daemon; keys are the only way in
        ("StrictModes", "no"),  # the keys live in a repo checkout, not a 0700 home
        ("Subsystem", "sftp internal-sftp"),
        ("LogLevel", "INFO"),
        ("MaxStartups", "50:30:100"),  # Ansible opens many connections at once
    ]
    return "".join(f"{k} {v}\n" for k, v in options)


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    path.chmod(0o600)


def known_hosts_lines(lab: "LabContext") -> list[str]:
    """`[address]:port key` per host: what ssh looks up for a non-default port."""
    lines = []
    for host in hosts(lab):
        kind, key = Path(f"{host_key(lab, host)}.pub").read_text().split()[:2]
        lines.append(f"[{host.address}]:{PORT} {kind} {key}")
    return lines


def host_control(lab: "LabContext", host: SshHost) -> "HostControl":
    """The host's drill commands (lab/host_control.py): run over SSH on this host, they act
    on this host's lab programs, and arm each fault with a detached undo shell (lab hosts
    have no systemd timers)."""
    from inventory.runtime import HostControl
    from lab import host_control
    from lab.components import patroni

    base = ["env", f"PYTHONPATH={lab.repo}", lab.python, "-m", "lab.host_control", "--root", str(lab.root),
            "--host", host.name, "--center", host.center, "--role", host.role]
    components = list(host_control.ROLE_COMPONENTS[host.role])
    if host.role == "db":
        (system,) = [s.name for s in lab.systems if patroni.db_host(lab, host.center, s.name) == host.name]
        base += ["--postmaster-pid", str(patroni.data_dir(lab, host.center, system) / "postmaster.pid")]
        if system != lab.system.name:
            components.remove("etcd")  # etcd runs on the sample system's database hosts
        components.append("postgres")
    run = lambda *args: shlex.join(base + list(args))
    commands = {"kill_center": run("kill"), "start_center": run("start"),
                "freeze_center": run("freeze"), "thaw_center": run("thaw"),
                # a cut needs the lab's netns mode, which the lab world drives
                "isolate_center": "", "heal_center": ""}
    for component in components:
        commands[f"kill_component:{component}"] = run("kill", component)
        commands[f"start_component:{component}"] = run("start", component)
    # arming is plain shell: no Python start-up before the fault
    return HostControl(commands=commands, arm=host_control.arm_command(lab.root, host.name),
                       disarm=host_control.disarm_command(lab.root, host.name))


def _ssh_ok(lab: "LabContext", host: SshHost) -> tuple[bool, str]:
    """Log in with the client key, checking the host key against known_hosts."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts(lab)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(host.address, port=PORT, username=LOGIN_USER,
                       key_filename=str(client_key(lab)), look_for_keys=False,
                       allow_agent=False, timeout=3, banner_timeout=3, auth_timeout=3)
        _, stdout, _ = client.exec_command("true", timeout=3)
        status = stdout.channel.recv_exit_status()
        return status == 0, "ssh login ok" if status == 0 else f"remote command exited {status}"
    except (paramiko.SSHException, OSError) as exc:
        return False, f"ssh: {type(exc).__name__}: {exc}"[:200]
    finally:
        client.close()


class SshHosts:
    name = "sshd"

    def prepare(self, lab: "LabContext") -> None:
        # sshd's privilege separation insists on this directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _keygen(client_key(lab), "tricenter-lab-ansible")
        home(lab).mkdir(parents=True, exist_ok=True)
        authorized_keys(lab).write_text(Path(f"{client_key(lab)}.pub").read_text())
        for host in hosts(lab):
            host_dir(lab, host).mkdir(parents=True, exist_ok=True)
            host_root(lab, host.name).mkdir(parents=True, exist_ok=True)
            _keygen(host_key(lab, host), f"tricenter-lab {host.name}")
            host_certificate(lab, host)
            (host_dir(lab, host) / "sshd_config").write_text(render_sshd_config(lab, host))
        known_hosts(lab).write_text("\n".join(known_hosts_lines(lab)) + "\n")
        legacy.prepare_database(lab)
        legacy.prepare_files(lab)
        legacy_app.prepare(lab)
        (lab.path("legacy-source.yaml")).write_text(
            yaml.safe_dump(legacy.source(lab), sort_keys=False))

    def programs(self, lab: "LabContext") -> list[Program]:
        programs = [Program(
            name=f"{host.name}-sshd",
            center=host.center, component="sshd",
            command=[SSHD, "-D", "-e", "-f", str(host_dir(lab, host) / "sshd_config")],
            priority=100) for host in hosts(lab)]
        return programs + [legacy.program(lab), legacy_app.program(lab)]

    def health(self, lab: "LabContext") -> dict[str, dict]:
        # In parallel: a login costs ~0.5 s and `lab status` polls this.
        with ThreadPoolExecutor(max_workers=8) as pool:
            logins = {host: pool.submit(_ssh_ok, lab, host) for host in hosts(lab)}
            database = pool.submit(legacy.health, lab)
            result: dict[str, dict] = {}
            for host, login in logins.items():
                ok, detail = login.result()
                entry = result.setdefault(host.center, {"healthy": True, "detail": ""})
                entry["healthy"] = entry["healthy"] and ok
                entry["detail"] = "; ".join(filter(None, (entry["detail"], f"{host.name}: {detail}")))
            ok, detail = database.result()
        entry = result[legacy.CENTER]
        entry["healthy"] = entry["healthy"] and ok
        entry["detail"] += f"; {detail}"
        return result

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        from inventory.runtime import Host, HostRole, SecretRef, SshAccess, SystemRuntime

        for host in hosts(lab):
            access = SshAccess(host=host.address, port=PORT, user=LOGIN_USER,
                               private_key=SecretRef(file=str(client_key(lab))),
                               known_hosts_file=str(known_hosts(lab)))
            existing = next((h for h in runtime.hosts if h.name == host.name), None)
            if existing is None:
                existing = Host(name=host.name, center=host.center, role=HostRole(host.role),
                                address=host.address)
                runtime.hosts.append(existing)
            existing.ssh = access
            # The lab's supervisord runs the services: the roles write config, as this
            # account, under the host's own root.
            existing.root = str(host_root(lab, host.name))
            existing.service_manager = "supervisor"
            existing.service_user = users.SERVICE_USER
            existing.tls = host_tls(lab, host.name, host.address)
            existing.control = host_control(lab, host)
        runtime.tls_ca_file = str(certificate_authority(lab).cert_file)
        # Every legacy system is named, so `migrate plan` lists them all; only the sample
        # system has a target cluster in the lab (the others plan as not provisioned).
        for found in legacy.systems(lab):
            system = runtime.systems.setdefault(found.name, SystemRuntime(
                name=found.name, department=found.department, tier=found.tier))
            system.legacy = legacy.runtime(lab, found)


def component() -> SshHosts:
    return SshHosts()
