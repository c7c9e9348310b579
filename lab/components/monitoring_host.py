"""The lab's monitoring hosts: one per center and one at the global site.

Prometheus and Alertmanager both run on them; this is the one place that says where such
a host's root is, what its address is, and how it is listed in the runtime inventory, so
the two components (and the roles that write under the root as under /) agree.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from lab import users
from lab.context import CENTERS, GLOBAL

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

HOST = "monitoring"
# The global site holds the federated view and the alert receiver (the pager's stand-in);
# the centers each hold a Prometheus and an Alertmanager member that die with the center.
SITES = (*CENTERS, GLOBAL)


def host_name(site: str) -> str:
    return f"{site}-{HOST}"


def home(lab: "LabContext", site: str) -> Path:
    """The host's root: roles write under it as under /."""
    from lab.components.sshd import host_root  # sshd lists the monitoring hosts: no cycle at import

    return host_root(lab, host_name(site))


def address(lab: "LabContext", site: str) -> str:
    return lab.address(site, HOST)


def endpoint(lab: "LabContext", site: str, port: int) -> str:
    return f"{address(lab, site)}:{port}"


def add_host(lab: "LabContext", runtime: "RuntimeInventory", site: str) -> None:
    """List the site's monitoring host (once) so roles have a host to render for."""
    from inventory.runtime import Host, HostRole

    if not any(h.name == host_name(site) for h in runtime.hosts):
        runtime.hosts.append(Host(name=host_name(site), center=site, role=HostRole.monitoring,
                                  address=address(lab, site), root=str(home(lab, site)),
                                  service_manager="supervisor",
                                  service_user=users.SERVICE_USER))
    from lab.components.sshd import give_tls

    give_tls(lab, runtime, host_name(site), address(lab, site))


def signal_running(lab: "LabContext", programs: set[str], signum: signal.Signals) -> None:
    """Signal those of `programs` supervisord reports running (reloads without HTTP)."""
    from lab.supervisor import Supervisor

    for info in Supervisor(lab).processes():
        if info["name"] in programs and info["statename"] == "RUNNING" and info["pid"]:
            os.kill(info["pid"], signum)
