"""HAProxy: the lab's front door, outside every center (a GSLB/VIP in a real cloud).

Writes go to whichever member Patroni's REST API calls primary, reads to replicas, and
the application entry spreads requests over the app instances of both active centers.
"""
from __future__ import annotations

import socket
from pathlib import Path

from inventory.runtime import Host, HostRole, RuntimeInventory
from lab import binaries
from lab import users
from lab.component import Program
from lab.components import patroni, sshd
from lab.context import GLOBAL, LabContext

HOST = f"{GLOBAL}-lb"  # the lab host (lab/components/sshd.py) the entry runs on


def config_file(lab: LabContext) -> Path:
    """Where the haproxy role puts its config under the host's root (its defaults)."""
    return sshd.host_root(lab, HOST) / "etc/haproxy/haproxy.cfg"


def admin_socket(lab: LabContext) -> Path:
    return sshd.host_root(lab, HOST) / "run/haproxy/admin.sock"


def proxy(lab: LabContext, kind: str, system: str | None = None) -> str:
    """The role's name for a listen section: read-write, read-only (per cluster) or app."""
    return f"{patroni.scope(lab, system)}-{kind}"


def render_config(lab: LabContext, runtime: RuntimeInventory) -> str:
    """haproxy.cfg as the haproxy role writes it on the entry host."""
    from playbooks.render import renderer

    return renderer(runtime, HOST, "haproxy").template("haproxy.cfg.j2")


def admin(lab: LabContext, command: str) -> str:
    """One command on HAProxy's admin socket (e.g. `enable health BACKEND/SERVER`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(admin_socket(lab)))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode().strip()


def server_states(lab: LabContext) -> dict[str, dict[str, str]]:
    """backend → server → UP/DOWN/…, from the admin socket's `show stat`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(admin_socket(lab)))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return {}
    lines = b"".join(chunks).decode().splitlines()
    if not lines:
        return {}
    header = lines[0].lstrip("# ").split(",")
    states: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("svname") in (None, "FRONTEND", "BACKEND"):
            continue
        states.setdefault(row["pxname"], {})[row["svname"]] = row.get("status", "")
    return states


class HAProxy:
    name = "haproxy"

    def prepare(self, lab: LabContext) -> None:
        config = render_config(lab, RuntimeInventory.load(lab.runtime_inventory_file))
        config_file(lab).parent.mkdir(parents=True, exist_ok=True)
        config_file(lab).write_text(config)
        config_file(lab).chmod(0o644)
        # HAProxy creates its admin socket here (one left by an older, root-run lab too);
        # every port it binds is above 1024.
        admin_socket(lab).parent.mkdir(parents=True, exist_ok=True)
        users.hand_over(admin_socket(lab).parent, recursive=True)

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name="global-haproxy", center=GLOBAL, component="haproxy",
                        command=[binaries.path("haproxy"), "-db", "-f", str(config_file(lab))],
                        user=users.SERVICE_USER, priority=400)]

    def health(self, lab: LabContext) -> dict[str, dict]:
        states = server_states(lab)
        if not states:
            return {GLOBAL: {"healthy": False, "detail": "admin socket does not answer"}}
        writers = {system.name: [s for s, st in states.get(proxy(lab, "read-write", system.name), {}).items()
                                 if st == "UP"] for system in lab.systems}
        apps = [s for s, st in states.get(proxy(lab, "app"), {}).items() if st == "UP"]
        healthy = all(len(w) == 1 for w in writers.values()) and len(apps) == len(lab.placement.app_centers)
        writes = ", ".join(f"{system} writes → {w or 'nobody'}" for system, w in writers.items())
        return {GLOBAL: {"healthy": healthy, "servers": states,
                         "detail": f"{writes}, app → {apps or 'nobody'}"}}

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        # Its endpoints are the database's and the app's, recorded by those components;
        # the host is listed so the haproxy role has somewhere to render for.
        if not any(h.name == HOST for h in runtime.hosts):
            runtime.hosts.append(Host(name=HOST, center=GLOBAL, role=HostRole.lb,
                                      address=lab.entry_address, root=str(sshd.host_root(lab, HOST)),
                                      service_manager="supervisor",
                                      service_user=users.SERVICE_USER))
        from lab.components.sshd import give_tls

        give_tls(lab, runtime, HOST, lab.entry_address)


def component() -> HAProxy:
    return HAProxy()
