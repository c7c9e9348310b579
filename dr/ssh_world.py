"""Drills on real hosts (`dr.world.World` over SSH): every fault is a command run on the
hosts of a center, as the runtime inventory names it per host (`hosts[].control`), with
systemd units by default; a center is cut off with nftables.

Safety: host keys are verified against the runtime inventory (never accepted on first
sight); every fault is armed to undo itself on the host after UNDO_DEADLINE_SECONDS, even
if tricenter dies (a systemd timer, or what `hosts[].control.arm` names); `plan` lists
every command on every host before anything runs, the CLI runs it only with
`--confirm <cloud>`, and `preflight` refuses hosts, a Patroni cluster or members that are
not the ones the runtime inventory names.

A fault hits the hosts of a center at once (one thread per host) over connections opened
by `preflight`, so no SSH handshake is in the measured RTO. Nor is the arming: each host
prints FAULT_BEGINS just before its fault command runs (`inventory/fault_line.py`), and
the fault began when the first host's line arrived, on the drill's clock.
"""
from __future__ import annotations

import base64
import logging
import shlex
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko

from dr.scenario import Action, Scenario
from inventory.fault_line import FAULT_BEGINS
from inventory.runtime import Host, HostRole, RuntimeInventory, SystemRuntime
from support.patroni import ApiAccess, PatroniCluster, PatroniUnavailable

log = logging.getLogger(__name__)

# The services a center-level fault acts on, by host role, when the host names none.
ROLE_UNITS = {HostRole.db: ["patroni", "etcd"], HostRole.lb: ["haproxy"],
              HostRole.app: ["tricenter-app"], HostRole.monitoring: ["prometheus"],
              HostRole.legacy: []}
COMPONENT_UNITS = {"etcd": "etcd", "patroni": "patroni", "haproxy": "haproxy",
                   "app": "tricenter-app", "prometheus": "prometheus", "sshd": None}
UNDO_DEADLINE_SECONDS = 600
NFT_TABLE = "tricenter_drill"
FAULTS = (Action.kill_center, Action.start_center, Action.freeze_center, Action.thaw_center,
          Action.isolate_center, Action.heal_center, Action.kill_component, Action.start_component)
UNDO = {"kill_center": "start_center", "freeze_center": "thaw_center",
        "isolate_center": "heal_center", "kill_component": "start_component"}
DISARMS = {undo: fault for fault, undo in UNDO.items()}
DEFAULT_ARM = "systemd-run --quiet --on-active={seconds} --unit={name} /bin/sh -c {undo}"
DEFAULT_DISARM = "systemctl stop {name}.timer 2>/dev/null || true"
SSH_TIMEOUT_SECONDS = 15
COMMAND_TIMEOUT_SECONDS = 120


class SshWorldError(RuntimeError):
    """The SSH world cannot act as asked; the message names the host, field and fix."""


@dataclass(frozen=True)
class HostCommand:
    host: str
    command: str


@dataclass(frozen=True)
class HostOutput:
    text: str  # stdout, FAULT_BEGINS lines left out
    fault_began: float | None = None  # when the host's last FAULT_BEGINS line arrived (time.time())


def _units(host: Host) -> list[str]:
    return host.control.units or ROLE_UNITS.get(host.role, [])


def _other_addresses(runtime: RuntimeInventory, center: str) -> list[str]:
    return sorted({a for name, c in runtime.centers.items() if name != center for a in c.addresses}
                  | {h.address for h in runtime.hosts if h.center != center})


def default_command(runtime: RuntimeInventory, host: Host, action: str,
                    component: str | None = None) -> str | None:
    """The systemd/nftables command for an action on a host; None when the host has nothing
    the action acts on."""
    units = _units(host)
    if component is not None:
        unit = COMPONENT_UNITS.get(component)
        units = [unit] if unit and unit in units else []
    joined = " ".join(shlex.quote(u) for u in units)
    if action in ("kill_center", "kill_component"):
        return f"systemctl kill --signal=SIGKILL {joined}" if units else None
    if action in ("start_center", "start_component"):
        return f"systemctl start {joined}" if units else None
    if action == "freeze_center":
        return f"systemctl kill --signal=SIGSTOP {joined}" if units else None
    if action == "thaw_center":
        return f"systemctl kill --signal=SIGCONT {joined}" if units else None
    if action == "isolate_center":
        others = ", ".join(_other_addresses(runtime, host.center))
        if not others:
            return None
        return (f"nft add table inet {NFT_TABLE} && "
                f"nft add chain inet {NFT_TABLE} cut '{{ type filter hook input priority -10 ; }}' && "
                f"nft add chain inet {NFT_TABLE} cutout '{{ type filter hook output priority -10 ; }}' && "
                f"nft add rule inet {NFT_TABLE} cut ip saddr '{{ {others} }}' drop && "
                f"nft add rule inet {NFT_TABLE} cutout ip daddr '{{ {others} }}' drop")
    if action == "heal_center":
        return f"nft delete table inet {NFT_TABLE} 2>/dev/null || true"
    return None


def _timer(action: str, center: str, component: str | None) -> str:
    return "tricenter-drill-undo-" + "-".join(x for x in (action, center, component) if x)


def _fill(template: str, **values: str) -> str:
    # replace, not str.format: a template may hold braces of its own (nft, shell)
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _armed(runtime: RuntimeInventory, host: Host, action: str, center: str,
           component: str | None, command: str, deadline: float) -> str:
    """The fault, preceded by arming its undo on the host (by itself after `deadline`
    seconds) and by the line saying the fault begins; an undo first disarms the fault it
    undoes."""
    if action in UNDO:
        undo = host_command(runtime, host, UNDO[action], component)
        if undo is None:
            raise SshWorldError(f"host {host.name}: nothing undoes {action}; set "
                                f"hosts[{host.name}].control.commands['{UNDO[action]}']")
        arm = _fill(host.control.arm or DEFAULT_ARM, name=_timer(action, center, component),
                    seconds=f"{deadline:g}", undo=shlex.quote(undo))
        return f"{arm} && echo {FAULT_BEGINS} && {command}"
    if action in DISARMS:
        disarm = _fill(host.control.disarm or DEFAULT_DISARM, name=_timer(DISARMS[action], center, component))
        return f"{{ {disarm} || true; }} && {command}"
    return command


def host_command(runtime: RuntimeInventory, host: Host, action: str,
                 component: str | None = None) -> str | None:
    key = f"{action}:{component}" if component else action
    if key in host.control.commands:  # empty: the host has nothing this action acts on
        return host.control.commands[key] or None
    return default_command(runtime, host, action, component)


def commands_for(runtime: RuntimeInventory, center: str, action: str,
                 component: str | None = None,
                 deadline: float = UNDO_DEADLINE_SECONDS) -> list[HostCommand]:
    """What runs on which host of `center` for one fault or its undo."""
    hosts = [h for h in runtime.hosts_in(center)]
    if not hosts:
        raise SshWorldError(f"the runtime inventory has no host in center {center}")
    out = []
    for host in hosts:
        command = host_command(runtime, host, action, component)
        if command is not None:
            out.append(HostCommand(host.name, _armed(runtime, host, action, center, component,
                                                     command, deadline)))
    if not out:
        key = f"{action}:{component}" if component else action
        raise SshWorldError(f"no host of center {center} has a command for {key}: set "
                            f"hosts[].control.commands['{key}'] (or control.units) in the runtime inventory")
    return out


def _center_of(runtime: RuntimeInventory, role: str) -> str:
    for name, center in runtime.centers.items():
        if center.role == role:
            return name
    raise SshWorldError(f"the runtime inventory has no center with role '{role}'")


def plan(runtime: RuntimeInventory, scenario: Scenario,
         deadline: float = UNDO_DEADLINE_SECONDS) -> list[str]:
    """Every command the scenario runs, on every host, in order (undo on abort included)."""
    lines = []
    steps = [("fault", s) for s in scenario.fault] + [("recover", s) for s in scenario.recovery.steps] \
        + [("restore", s) for s in scenario.restore]
    for phase, step in steps:
        if step.action not in FAULTS:
            if step.action in (Action.promote_remote, Action.reprotect_from_remote, Action.backup,
                               Action.restore_copy, Action.drop_copy):
                raise SshWorldError(f"scenario {scenario.name} needs the runbook action "
                                    f"{step.action.value}, which the SSH world does not offer yet")
            what = ("asks Patroni's REST API for a planned switchover" if step.action == Action.switchover
                    else "observes the cluster; changes nothing")
            lines.append(f"{phase:8} {step.action.value} ({what})")
            continue
        center = _center_of(runtime, step.center)
        for c in commands_for(runtime, center, step.action.value, step.component, deadline):
            lines.append(f"{phase:8} {step.action.value} {center}"
                         f"{' ' + step.component if step.component else ''} on {c.host}: {c.command}")
    return lines


def _client(host: Host) -> paramiko.SSHClient:
    """A client that trusts only the host keys the runtime inventory knows."""
    if host.ssh is None:
        raise SshWorldError(f"host {host.name}: no `ssh` entry in the runtime inventory")
    client = paramiko.SSHClient()
    name = host.ssh.host if host.ssh.port == 22 else f"[{host.ssh.host}]:{host.ssh.port}"
    for line in host.host_keys:
        kind, data = line.split()[:2]
        client.get_host_keys().add(name, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(data)))
    if host.ssh.known_hosts_file:
        client.load_host_keys(host.ssh.known_hosts_file)
    if not client.get_host_keys().lookup(name):
        raise SshWorldError(f"host {host.name}: the runtime inventory knows no host key for {name} "
                            "(hosts[].host_keys or ssh.known_hosts_file): refusing to trust "
                            "whatever answers")
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def connect(host: Host) -> paramiko.SSHClient:
    """Log in as the inventory's SSH user; SshWorldError unless the host proves the key the
    runtime inventory holds for it."""
    client = _client(host)
    key = host.ssh.private_key.file if host.ssh.private_key and host.ssh.private_key.file else None
    try:
        client.connect(host.ssh.host, port=host.ssh.port, username=host.ssh.user, key_filename=key,
                       allow_agent=key is None, look_for_keys=key is None, timeout=SSH_TIMEOUT_SECONDS)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise SshWorldError(f"host {host.name}: its host key ({exc.key.get_name()} "
                            f"{exc.key.get_base64()[:16]}…) is not the one the runtime inventory "
                            "holds: refusing (a different machine answers, or the inventory is stale)") from None
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise SshWorldError(f"{host.name}: {type(exc).__name__}: {exc}") from exc
    return client


def _exec(host: Host, client: paramiko.SSHClient, command: str) -> HostOutput:
    """Run the command, reading its output line by line as it comes: a FAULT_BEGINS line
    is timed when it arrives."""
    log.info("%s: %s", host.name, command)
    lines, began = [], None
    transport = client.get_transport()
    if transport is None:
        raise SshWorldError(f"{host.name}: not connected")
    try:
        with transport.open_session(timeout=SSH_TIMEOUT_SECONDS) as channel:
            channel.settimeout(COMMAND_TIMEOUT_SECONDS)
            channel.exec_command(command)
            for line in channel.makefile("rb"):  # bytes: a host may print anything
                if line.rstrip(b"\r\n") == FAULT_BEGINS.encode():
                    began = time.time()
                else:
                    lines.append(line)
            status = channel.recv_exit_status()
            errors = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
        if status != 0:
            raise SshWorldError(f"{host.name}: `{command}` exited {status}: {errors[:500]}")
        return HostOutput(b"".join(lines).decode(errors="replace"), began)
    except (paramiko.SSHException, OSError) as exc:
        raise SshWorldError(f"{host.name}: {type(exc).__name__}: {exc}") from exc


def run_on(host: Host, command: str) -> HostOutput:
    """Run one command over a connection of its own; SshWorldError with its stderr on failure."""
    client = connect(host)
    try:
        return _exec(host, client, command)
    finally:
        client.close()


class Connections:
    """One verified connection per host, opened once and reused: a fault's commands then
    start without a handshake."""

    def __init__(self) -> None:
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._lock = threading.Lock()

    def open(self, host: Host) -> paramiko.SSHClient:
        with self._lock:
            client = self._clients.get(host.name)
        transport = client.get_transport() if client else None
        if transport is not None and transport.is_active():
            return client
        client = connect(host)
        with self._lock:
            self._clients[host.name] = client
        return client

    def run(self, host: Host, command: str) -> HostOutput:
        return _exec(host, self.open(host), command)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def _netloc(url: str | None) -> str:
    return (url or "").split("://", 1)[-1].split("/", 1)[0]


def patroni_mismatches(runtime: RuntimeInventory, system: SystemRuntime) -> list[str]:
    """How the Patroni cluster that answers differs from the runtime inventory's: each
    member's REST API must serve the inventory's cluster (its `scope`), the cluster must list
    exactly the inventory's members, and each under the API address the inventory gives it."""
    db = system.database
    cluster = PatroniCluster(db, ApiAccess.of(runtime, db), timeout=5)
    problems = []
    for member in db.members:
        body = cluster.member_json(member.name, "/patroni")
        if body is None:
            problems.append(f"member {member.name}: its REST API {member.api_url} does not answer")
        elif body.get("patroni", {}).get("scope") != db.cluster:
            problems.append(f"member {member.name} ({member.api_url}) belongs to cluster "
                            f"{body.get('patroni', {}).get('scope')!r}, not {db.cluster!r}")
    try:
        listed = {name: _netloc(m.api_url) for name, m in cluster.state().members.items()}
    except PatroniUnavailable as exc:
        return [*problems, str(exc)]
    if not listed:  # Patroni answers but cannot read its DCS: nothing to compare yet
        return [*problems, (f"cluster {db.cluster} lists no member (Patroni cannot read etcd?): "
                            "nothing to check the inventory's member names against")]
    for member in db.members:
        answers = [name for name, netloc in listed.items() if netloc == _netloc(member.api_url)]
        if answers != [member.name]:
            problems.append(f"{member.api_url} answers as member {', '.join(map(repr, answers)) or 'nobody'}, "
                            f"not {member.name!r}")
    if set(listed) != {m.name for m in db.members}:
        problems.append(f"cluster {db.cluster} lists members {sorted(listed)}, the runtime "
                        f"inventory {sorted(m.name for m in db.members)}")
    return problems


class SshWorld:
    """Faults on the hosts of the runtime inventory over SSH. Runbook actions that need
    more than a command per host (remote promotion, backups) are not offered yet: `plan`
    refuses scenarios that need them before anything runs."""

    name = "ssh"
    confirmation_needed = True

    def __init__(self, runtime: RuntimeInventory, run: Callable[[Host, str], HostOutput] | None = None,
                 undo_deadline_seconds: float = UNDO_DEADLINE_SECONDS) -> None:
        self.runtime = runtime
        self.connections = Connections()
        self._run = run or self.connections.run
        self._hosts = {h.name: h for h in runtime.hosts}
        self.undo_deadline_seconds = undo_deadline_seconds

    def plan(self, scenario: Scenario, system: SystemRuntime) -> list[str]:
        return plan(self.runtime, scenario, self.undo_deadline_seconds)

    def _hosts_of(self, scenario: Scenario) -> list[Host]:
        centers = {_center_of(self.runtime, s.center) for s in
                   [*scenario.fault, *scenario.recovery.steps, *scenario.restore] if s.action in FAULTS}
        return [h for h in self.runtime.hosts if h.center in centers]

    def preflight(self, scenario: Scenario, system: SystemRuntime) -> None:
        """Before anything changes: log in to every host the scenario acts on (each must
        prove the host key the runtime inventory holds) and ask Patroni whether its cluster
        and members are the inventory's. SshWorldError lists every mismatch."""
        hosts = self._hosts_of(scenario)
        problems = []
        if hosts:
            with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
                opened = [pool.submit(self.connections.open, h) for h in hosts]
            problems += [str(f.exception()) for f in opened if f.exception()]
        problems += patroni_mismatches(self.runtime, system)
        if problems:
            raise SshWorldError("what answers is not what the runtime inventory names: "
                                + "; ".join(problems))

    def _act(self, center: str, action: str, component: str | None = None) -> float | None:
        """Run the action on every host of the center at once (a center fails as one);
        returns when the fault began on the first host to say so."""
        commands = commands_for(self.runtime, center, action, component, self.undo_deadline_seconds)
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            done = [pool.submit(self._run, self._hosts[c.host], c.command) for c in commands]
        failed = [str(f.exception()) for f in done if f.exception()]
        if failed:
            raise SshWorldError("; ".join(failed))
        return min((f.result().fault_began for f in done if f.result().fault_began is not None), default=None)

    # --- FaultInjector ----------------------------------------------------------------
    def kill_center(self, center: str) -> float | None:
        return self._act(center, "kill_center")

    def start_center(self, center: str) -> None:
        self._act(center, "start_center")

    def freeze_center(self, center: str) -> float | None:
        return self._act(center, "freeze_center")

    def thaw_center(self, center: str) -> None:
        self._act(center, "thaw_center")

    def isolate_center(self, center: str) -> float | None:
        return self._act(center, "isolate_center")

    def heal_center(self, center: str) -> None:
        self._act(center, "heal_center")

    def kill_component(self, center: str, component: str) -> float | None:
        return self._act(center, "kill_component", component)

    def start_component(self, center: str, component: str) -> None:
        self._act(center, "start_component", component)

    # --- Runbook ----------------------------------------------------------------------
    def recovery_command(self) -> str:
        # the lab's hosts are the lab's processes: `lab up` converges them
        return "tricenter lab up" if self.runtime.source == "lab" else "tricenter configure"

    def netns_enabled(self) -> bool:
        return True  # isolate_center is a real cut (nftables) on real hosts

    def backups_available(self, system: SystemRuntime, need_backup: bool = False) -> str | None:
        return "backups over SSH are not offered by the SSH world yet"

    def rebalance(self) -> str:
        return "nothing rebalanced: the SSH world leaves the etcd leader where it is"

    def _not_yet(self, action: str):
        raise SshWorldError(f"{action} is not offered by the SSH world yet")

    def promote_remote(self, system: SystemRuntime) -> str:
        self._not_yet("promote_remote")

    def reprotect_from_remote(self, system: SystemRuntime) -> str:
        self._not_yet("reprotect_from_remote")

    def backup(self, system: SystemRuntime):
        self._not_yet("backup")

    def restore_copy(self, system: SystemRuntime, center: str):
        self._not_yet("restore_copy")

    def drop_copy(self, copy) -> None:
        self._not_yet("drop_copy")

    def report_context(self) -> dict:
        return {"network_mode": "hosts over SSH (nftables cuts)"}
