"""Drills on real hosts (`dr.world.World` over SSH): every fault is a command run on the
hosts of a center, as the runtime inventory names it per host (`hosts[].control`), with
systemd units by default; a center is cut off with nftables.

Safety: host keys are verified against the runtime inventory (never accepted on first
sight); every fault is armed with a systemd timer that undoes it on the host by itself
after UNDO_DEADLINE_SECONDS, even if tricenter dies; `plan` lists every command on every
host before anything runs, and the CLI runs it only with `--confirm <cloud>`.
"""
from __future__ import annotations

import base64
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from dr.scenario import Action, Scenario
from inventory.runtime import Host, HostRole, RuntimeInventory, SystemRuntime

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
SSH_TIMEOUT_SECONDS = 15
COMMAND_TIMEOUT_SECONDS = 120


class SshWorldError(RuntimeError):
    """The SSH world cannot act as asked; the message names the host, field and fix."""


@dataclass(frozen=True)
class HostCommand:
    host: str
    command: str


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


def _armed(runtime: RuntimeInventory, host: Host, action: str, center: str,
           component: str | None, command: str) -> str:
    """The fault, preceded by a systemd timer that undoes it after the deadline; an undo
    first disarms the timer of the fault it undoes."""
    if action in UNDO:
        undo = host_command(runtime, host, UNDO[action], component)
        if undo is None:
            raise SshWorldError(f"host {host.name}: nothing undoes {action}; set "
                                f"hosts[{host.name}].control.commands['{UNDO[action]}']")
        arm = (f"systemd-run --quiet --on-active={UNDO_DEADLINE_SECONDS} "
               f"--unit={_timer(action, center, component)} /bin/sh -c {shlex.quote(undo)}")
        return f"{arm} && {command}"
    if action in DISARMS:
        disarm = f"systemctl stop {_timer(DISARMS[action], center, component)}.timer 2>/dev/null"
        return f"{{ {disarm} || true; }} && {command}"
    return command


def host_command(runtime: RuntimeInventory, host: Host, action: str,
                 component: str | None = None) -> str | None:
    key = f"{action}:{component}" if component else action
    return host.control.commands.get(key) or default_command(runtime, host, action, component)


def commands_for(runtime: RuntimeInventory, center: str, action: str,
                 component: str | None = None) -> list[HostCommand]:
    """What runs on which host of `center` for one fault or its undo."""
    hosts = [h for h in runtime.hosts_in(center)]
    if not hosts:
        raise SshWorldError(f"the runtime inventory has no host in center {center}")
    out = []
    for host in hosts:
        command = host_command(runtime, host, action, component)
        if command is not None:
            out.append(HostCommand(host.name, _armed(runtime, host, action, center, component, command)))
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


def plan(runtime: RuntimeInventory, scenario: Scenario) -> list[str]:
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
            lines.append(f"{phase:8} {step.action.value} (observes the cluster; changes nothing)")
            continue
        center = _center_of(runtime, step.center)
        for c in commands_for(runtime, center, step.action.value, step.component):
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


def run_on(host: Host, command: str) -> str:
    """Run one command as the inventory's SSH user; SshWorldError with its stderr on failure."""
    client = _client(host)
    key = host.ssh.private_key.file if host.ssh.private_key and host.ssh.private_key.file else None
    try:
        client.connect(host.ssh.host, port=host.ssh.port, username=host.ssh.user, key_filename=key,
                       allow_agent=key is None, look_for_keys=key is None, timeout=SSH_TIMEOUT_SECONDS)
        log.info("%s: %s", host.name, command)
        _, stdout, stderr = client.exec_command(command, timeout=COMMAND_TIMEOUT_SECONDS)
        status = stdout.channel.recv_exit_status()
        if status != 0:
            raise SshWorldError(f"{host.name}: `{command}` exited {status}: "
                                f"{stderr.read().decode(errors='replace').strip()[:500]}")
        return stdout.read().decode(errors="replace")
    except (paramiko.SSHException, OSError) as exc:
        raise SshWorldError(f"{host.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        client.close()


class SshWorld:
    """Faults on the hosts of the runtime inventory over SSH. Runbook actions that need
    more than a command per host (remote promotion, backups) are not offered yet: `plan`
    refuses scenarios that need them before anything runs."""

    name = "ssh"
    confirmation_needed = True

    def __init__(self, runtime: RuntimeInventory, run: Callable[[Host, str], str] | None = None) -> None:
        self.runtime = runtime
        self._run = run or run_on
        self._hosts = {h.name: h for h in runtime.hosts}

    def plan(self, scenario: Scenario, system: SystemRuntime) -> list[str]:
        return plan(self.runtime, scenario)

    def _act(self, center: str, action: str, component: str | None = None) -> None:
        for c in commands_for(self.runtime, center, action, component):
            self._run(self._hosts[c.host], c.command)

    # --- FaultInjector ----------------------------------------------------------------
    def kill_center(self, center: str) -> None:
        self._act(center, "kill_center")

    def start_center(self, center: str) -> None:
        self._act(center, "start_center")

    def freeze_center(self, center: str) -> None:
        self._act(center, "freeze_center")

    def thaw_center(self, center: str) -> None:
        self._act(center, "thaw_center")

    def isolate_center(self, center: str) -> None:
        self._act(center, "isolate_center")

    def heal_center(self, center: str) -> None:
        self._act(center, "heal_center")

    def kill_component(self, center: str, component: str) -> None:
        self._act(center, "kill_component", component)

    def start_component(self, center: str, component: str) -> None:
        self._act(center, "start_component", component)

    # --- Runbook ----------------------------------------------------------------------
    def recovery_command(self) -> str:
        return "tricenter configure"

    def netns_enabled(self) -> bool:
        return True  # isolate_center is a real cut (nftables) on real hosts

    def backups_available(self, system: SystemRuntime) -> str | None:
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
