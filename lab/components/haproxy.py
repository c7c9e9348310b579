"""HAProxy: the lab's front door, outside every center (a GSLB/VIP in a real cloud).

Writes go to whichever member Patroni's REST API calls primary, reads to replicas, and
the application entry spreads requests over the app instances of both active centers.
"""
from __future__ import annotations

import socket

from inventory.runtime import RuntimeInventory
from lab import binaries
from lab import users
from lab.component import Program
from lab.components import app, patroni
from lab.context import CENTERS, GLOBAL, LabContext, Ports

# Fast detection, and cut sessions to a demoted primary at once so clients reconnect.
CHECK = "inter 1s fall 2 rise 1 on-marked-down shutdown-sessions"
# The write endpoint checks Patroni five times a second: a promoted member is in the pool
# within 0.2 s instead of up to 1 s, a cheap share of a 5 s RTO budget.
DB_CHECK = "inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions"


def config_file(lab: LabContext):
    return lab.component_dir("haproxy") / "haproxy.cfg"


def admin_socket(lab: LabContext):
    return lab.path("haproxy", "admin.sock")


def render_config(lab: LabContext) -> str:
    entry = lab.entry_address
    db_servers = [f"    server {patroni.member_name(c)} {lab.address(c)}:{Ports.postgres} "
                  f"check port {Ports.patroni_api}" for c in CENTERS]
    app_servers = [f"    server {c}-app {lab.address(c, 'app')}:{Ports.app} check"
                   for c in app.ACTIVE_CENTERS]
    return "\n".join([
        "global",
        "    maxconn 2000",
        f"    stats socket {admin_socket(lab)} mode 600 level admin",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 1s",
        "    retries 2",
        "",
        "listen db-read-write",
        f"    bind {entry}:{Ports.db_read_write}",
        "    option httpchk GET /primary",
        "    http-check expect status 200",
        f"    default-server {DB_CHECK}",
        *db_servers,
        "",
        "listen db-read-only",
        f"    bind {entry}:{Ports.db_read_only}",
        "    balance roundrobin",
        "    option httpchk GET /replica",
        "    http-check expect status 200",
        f"    default-server {DB_CHECK}",
        *db_servers,
        "",
        "listen app",
        f"    bind {entry}:{Ports.app_entry}",
        "    mode http",
        "    balance roundrobin",
        "    timeout client 30s",
        "    timeout server 15s",
        "    option httpchk GET /health",
        "    http-check expect status 200",
        # A killed instance refuses the connection: send the request to the other center.
        "    option redispatch 1",
        "    retry-on conn-failure",
        f"    default-server {CHECK}",
        *app_servers,
        "",
        "listen stats",
        f"    bind {entry}:{Ports.haproxy_stats}",
        "    mode http",
        "    timeout client 30s",
        "    timeout server 30s",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        "    monitor-uri /healthz",
        "",
    ])


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
        config_file(lab).write_text(render_config(lab))
        # HAProxy creates its admin socket here (one left by an older, root-run lab too);
        # every port it binds is above 1024.
        users.hand_over(config_file(lab).parent, recursive=True)

    def programs(self, lab: LabContext) -> list[Program]:
        return [Program(name="global-haproxy", center=GLOBAL, component="haproxy",
                        command=[binaries.path("haproxy"), "-db", "-f", str(config_file(lab))],
                        user=users.SERVICE_USER, priority=400)]

    def health(self, lab: LabContext) -> dict[str, dict]:
        states = server_states(lab)
        if not states:
            return {GLOBAL: {"healthy": False, "detail": "admin socket does not answer"}}
        writers = [s for s, st in states.get("db-read-write", {}).items() if st == "UP"]
        apps = [s for s, st in states.get("app", {}).items() if st == "UP"]
        healthy = len(writers) == 1 and len(apps) == len(app.ACTIVE_CENTERS)
        return {GLOBAL: {"healthy": healthy, "servers": states,
                         "detail": f"writes → {writers or 'nobody'}, app → {apps or 'nobody'}"}}

    def add_to_runtime(self, lab: LabContext, runtime: RuntimeInventory) -> None:
        pass  # its endpoints are the database's and the app's, recorded by those components


def component() -> HAProxy:
    return HAProxy()
