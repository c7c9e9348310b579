"""Who owns an address, which city a center is in: the runtime inventory's lookups the
exporter makes at every scrape, computed once (the exporter reads the inventory at start).

A HAProxy server, an etcd member, an https endpoint is named by the system and center
the inventory places it in, never by an address alone.
"""
from __future__ import annotations

from inventory.runtime import RuntimeInventory
from monitoring.probes import HaproxyServer

Owner = tuple[str, str, str]  # (kind: app | db, system, center)


def _host(url_or_address: str) -> str:
    rest = url_or_address.split("://", 1)[-1].split("/", 1)[0]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def hostport(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def center_city(runtime: RuntimeInventory, center: str) -> str:
    """main and samecity share a city; remote is the other one."""
    c = runtime.centers.get(center)
    return "remote" if c is not None and c.role == "remote" else "home"


def server_owners(runtime: RuntimeInventory) -> dict[str, Owner]:
    """host:port of every app instance and database member → (kind, system, center)."""
    owners: dict[str, Owner] = {}
    for system in runtime.systems.values():
        for center, urls in system.app_backends.items():
            for url in urls:
                owners[hostport(url)] = ("app", system.name, center)
        if system.database is not None:
            for member in system.database.members:
                owners[f"{member.host}:{member.port}"] = ("db", system.name, member.center)
    return owners


def member_owners(runtime: RuntimeInventory) -> dict[tuple[str, str], Owner]:
    """(cluster, member name) → ("db", system, center). Patroni names members within a
    cluster: two clusters may both have a `pg-main`."""
    return {(s.database.cluster, m.name): ("db", s.name, m.center) for s in runtime.systems.values()
            if s.database is not None for m in s.database.members}


def https_endpoints(runtime: RuntimeInventory) -> list[str]:
    """Every https URL the inventory names: their certificates can expire."""
    urls: list[str] = list(runtime.etcd) + list(runtime.monitoring.exporters.values())
    if runtime.object_store is not None:
        urls.append(runtime.object_store.endpoint)
    if runtime.monitoring.prometheus_url:
        urls.append(runtime.monitoring.prometheus_url)
    for system in runtime.systems.values():
        urls += [system.app_url or ""] + [u for us in system.app_backends.values() for u in us]
        if system.database is not None:
            urls += [m.api_url for m in system.database.members]
    return sorted({u for u in urls if u.startswith("https://")})


class InventoryView:
    """The lookups above, made once for one runtime inventory."""

    def __init__(self, runtime: RuntimeInventory) -> None:
        self.runtime = runtime
        self.servers = server_owners(runtime)
        self.members = member_owners(runtime)
        self.https_endpoints = https_endpoints(runtime)
        self.center_by_address = {a: c.name for c in runtime.centers.values() for a in c.addresses}
        self.city = {name: center_city(runtime, name) for name in runtime.centers}

    def city_of(self, center: str) -> str:
        return self.city.get(center, "home")

    def server_owner(self, server: HaproxyServer) -> Owner:
        """(kind, system, center) of a HAProxy server: by its address, else by its name —
        the stats page leaves `addr` empty unless `stats show-legends` is on."""
        if server.address in self.servers:
            return self.servers[server.address]
        # The haproxy role names a database's listen sections `<cluster>-read-write|read-only`.
        for (cluster, member), owner in self.members.items():
            if server.server == member and server.proxy.startswith(f"{cluster}-"):
                return owner
        tokens = set(server.server.split("-"))
        center = next((c for c in self.runtime.centers if c in tokens),
                      self.center_by_address.get(_host(server.address), ""))
        serving = [s.name for s in self.runtime.systems.values()
                   if center and center in s.app_backends]
        return ("app", serving[0], center) if len(serving) == 1 else ("", "", center)

    def etcd_center(self, url: str) -> str:
        return self.center_by_address.get(_host(url), "unknown")
