"""Network-namespace mode: each center (and the legacy IDC) in its own namespace, joined to
the others by a veth pair on one bridge in the root namespace, where the global entry
(HAProxy) lives. Isolating a center sets its bridge-side link down: a real partition.

Loopback addresses cannot leave a namespace (the kernel treats all of 127/8 as local), so
in this mode the centers use 172.31.<n>.x with the same host numbers and ports.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import replace

from lab.component import Program
from lab.context import CENTERS, GLOBAL, HOSTS, LEGACY, NETNS_SUPERNET, LabContext

SITES = (*CENTERS, LEGACY)


class NetnsError(RuntimeError):
    """Network namespaces cannot be set up here; the message says what is missing."""


def available() -> str | None:
    """None when netns mode can run here, else why not."""
    if os.geteuid() != 0:
        return "netns mode needs root"
    for tool in ("ip", "setpriv"):
        if shutil.which(tool) is None:
            return f"netns mode needs `{tool}`"
    return None


def namespace(slot: int, site: str) -> str:
    return f"tc{slot}-{site}"


def bridge(slot: int) -> str:
    return f"tc{slot}br"


def root_link(slot: int, site: str) -> str:
    """The bridge-side end of a site's veth pair (names are at most 15 characters)."""
    return f"tc{slot}{site[:6]}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _exists_link(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def _namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()}


def setup(ctx: LabContext) -> None:
    """Create the bridge, the namespaces and their links; idempotent."""
    reason = available()
    if reason:
        raise NetnsError(reason)
    slot = ctx.slot
    br = bridge(slot)
    if not _exists_link(br):
        _ip("link", "add", br, "type", "bridge")
    for host in HOSTS:  # the global site (entry, monitoring) lives on the bridge
        _ip("addr", "replace", f"{ctx.address(GLOBAL, host)}/{NETNS_SUPERNET.prefixlen}",
            "dev", br)
    _ip("link", "set", br, "up")
    existing = _namespaces()
    for site in SITES:
        ns, link = namespace(slot, site), root_link(slot, site)
        if ns not in existing:
            _ip("netns", "add", ns)
        if not _exists_link(link):
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", link, "master", br)
        _ip("link", "set", link, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        for host in HOSTS:
            _ip("-n", ns, "addr", "replace",
                f"{ctx.address(site, host)}/{NETNS_SUPERNET.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")


def teardown(slot: int) -> None:
    """Remove the namespaces (their veths go with them) and the bridge."""
    existing = _namespaces()
    for site in SITES:
        if namespace(slot, site) in existing:
            _ip("netns", "del", namespace(slot, site), check=False)
        if _exists_link(root_link(slot, site)):
            _ip("link", "del", root_link(slot, site), check=False)
    if _exists_link(bridge(slot)):
        _ip("link", "del", bridge(slot), check=False)


def set_isolated(slot: int, site: str, isolated: bool) -> None:
    _ip("link", "set", root_link(slot, site), "down" if isolated else "up")


def isolated(slot: int, site: str) -> bool:
    """True when the site's bridge-side link is down (or missing)."""
    try:
        with open(f"/sys/class/net/{root_link(slot, site)}/operstate") as state:
            return state.read().strip() == "down"
    except OSError:
        return True


def wrap(program: Program, slot: int) -> Program:
    """Run the program inside its center's namespace; `ip netns exec` and `setpriv` both
    exec, so supervisord's pid is the program's own and signals reach it directly."""
    if program.center not in SITES:
        return program
    command = ["ip", "netns", "exec", namespace(slot, program.center)]
    if program.user:
        command += ["setpriv", f"--reuid={program.user}", f"--regid={program.user}",
                    "--init-groups"]
    environment = dict(program.environment)
    if program.user:
        environment.setdefault("USER", program.user)
        environment.setdefault("HOME", str(program.directory or pwd.getpwnam(program.user).pw_dir))
    return replace(program, command=command + list(program.command), user=None,
                   environment=environment)
