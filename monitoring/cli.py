"""`tricenter exporter serve | show`: tricenter's own metrics from the runtime inventory.

Exit codes: 0 served (or printed); 2 user mistake (no or invalid runtime inventory, bad
listen address, an unknown tier), nothing started.
"""
from __future__ import annotations

import functools
import gc
import logging
from pathlib import Path

import click
from prometheus_client import CollectorRegistry, generate_latest

from monitoring import probes
from inventory.runtime import MissingTierTargets, RuntimeInventory
from monitoring.collector import Sources, Targets, TricenterCollector
from monitoring.secrets import Secrets


class UserError(click.ClickException):
    exit_code = 2


def _load_runtime(file: Path):
    from pydantic import ValidationError

    from inventory.runtime import RuntimeInventory

    if not file.is_file():
        raise UserError(f"no runtime inventory at {file}: bring the lab up first "
                        "(`tricenter lab up`) or pass --runtime FILE")
    try:
        return RuntimeInventory.load(file)
    except (ValidationError, ValueError, OSError) as exc:
        raise UserError(f"{file}: not a runtime inventory: {exc}") from None


def _tier_targets(runtime_file: Path, runtime: RuntimeInventory) -> dict[str, Targets]:
    """RTO/RPO targets of every system's tier, from the runtime inventory (as drills read them)."""
    try:
        return {s.tier: Targets(float(t.rto_seconds), float(t.rpo_seconds))
                for s in runtime.systems.values() for t in [runtime.tier_of(s)]}
    except MissingTierTargets as exc:
        raise UserError(f"{runtime_file}: {exc}") from None


def _parse_listen(listen: str) -> tuple[str, int]:
    address, _, port = listen.rpartition(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--listen {listen!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:9641")
    return address, int(port)


def _collector(runtime_file: Path, haproxy_stats: tuple[str, ...],
               pgbackrest_config: Path | None, pgbackrest_user: str | None,
               drill_history: Path | None) -> TricenterCollector:
    from dr.paths import history_file

    runtime = _load_runtime(runtime_file)
    targets = _tier_targets(runtime_file, runtime)
    drill_history = drill_history or history_file()  # where `tricenter drill run` appends
    secrets = Secrets(runtime_file.parent)  # relative secret files sit beside the inventory
    # What changes slowly and may hang for long is refreshed off the scrape path, and the
    # exporter says how old the answer is (tricenter_probe_answer_age_seconds). A backup
    # alert speaks in hours, object-store replication (container sync) in minutes: a
    # minute-old answer is honest (and a backup shows within a minute), where asking each
    # scrape cost most of the exporter's CPU (pgbackrest info ~22 ms, the S3 heartbeat
    # ~8 ms of CPU per round).
    sources = Sources(haproxy_stats=list(haproxy_stats), pgbackrest_config=pgbackrest_config,
                      pgbackrest_user=pgbackrest_user,
                      pgbackrest=probes.PerStanza(probes.Background(probes.pgbackrest_stanzas,
                                                                    max_age=60)),
                      heartbeat=probes.Background(functools.partial(
                          probes.object_store_heartbeat, ca_file=runtime.tls_ca_file), max_age=60),
                      etcd=functools.partial(probes.etcd_member, tls=runtime.client_tls),
                      drill_history=drill_history, secrets=secrets,
                      patroni_dcs=_patroni_dcs(runtime, secrets))
    return TricenterCollector(runtime, sources, targets)


def _patroni_dcs(runtime: RuntimeInventory, secrets: Secrets):
    """The clusters' states from etcd, as the inventory's read-only etcd user; None when it
    names none (then every scrape asks each cluster's REST API)."""
    from support.patroni_dcs import PatroniDcs

    auth = runtime.etcd_auth
    if auth is None or auth.monitor_password is None or not runtime.etcd:
        return None
    tls = runtime.client_tls
    # With a client certificate, the etcd member probes' pool: one keep-alive connection
    # per member for both.
    dcs = PatroniDcs(runtime.etcd, auth.patroni_prefix, auth.monitor_user,
                     lambda: secrets(auth.monitor_password),
                     **({"http": probes.pool(tls)} if tls else {"ca_file": runtime.tls_ca_file}))
    return functools.partial(probes.patroni_clusters, dcs)


def _watch_poll(runtime: RuntimeInventory, secrets: Secrets):
    """The leader watch's poll: Patroni and the leader's database (probes.leader_poll),
    over the connection the exporter keeps for pg_stat_replication, with the same account."""
    def poll(db, last_leader, timeout, quick):
        return probes.leader_poll(db, last_leader, timeout, runtime.tls_ca_file, quick,
                                  secrets.or_none(db.password))
    return poll


def _watch_confirm(runtime: RuntimeInventory, secrets: Secrets):
    """The leader watch's quick confirmation of every cluster at once
    (probes.confirm_primaries), over the connections the exporter keeps, same account."""
    def confirm(asks, timeout):
        # A cluster without its password, or whose leader the inventory does not list, is
        # left to the poll, which says why.
        known = {name: (db, member, password) for name, (db, leader) in asks.items()
                 if (password := secrets.or_none(db.password)) is not None
                 and (member := next((m for m in db.members if m.name == leader), None))}
        return probes.confirm_primaries(known, runtime.tls_ca_file, timeout)
    return confirm


def _common(func):
    options = [
        click.option("--runtime", "runtime_file", type=click.Path(path_type=Path), required=True,
                     help="Runtime inventory (the lab writes .lab/runtime-inventory.yaml)."),
        click.option("--haproxy-stats", multiple=True, metavar="URL",
                     help="HAProxy stats page to read (repeatable)."),
        click.option("--pgbackrest-config", type=click.Path(path_type=Path), default=None,
                     help="pgbackrest.conf: report backup ages per stanza."),
        click.option("--pgbackrest-user", default=None, metavar="USER",
                     help="Run pgbackrest info as this user (the repository's owner)."),
        click.option("--drill-history", type=click.Path(path_type=Path), default=None,
                     help="Drill history: drill results and the last verified restore "
                          "(default: drills.jsonl in $TRICENTER_REPORTS_DIR, see dr/paths.py)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def exporter() -> None:
    """tricenter's Prometheus exporter: health, replication and RPO per system and center."""


@exporter.command()
@_common
@click.option("--listen", default="127.0.0.1:9641", show_default=True, help="ADDRESS:PORT")
@click.option("--leader-poll", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between leader checks between scrapes (0: off).")
@click.option("--scrape-interval", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Prometheus' scrape interval: the leader checks' timeout "
              "and how long a silent leader is given before it counts as lost derive from it.")
def serve(runtime_file: Path, haproxy_stats: tuple[str, ...],
          pgbackrest_config: Path | None, pgbackrest_user: str | None, drill_history: Path,
          listen: str, leader_poll: float, scrape_interval: float) -> None:
    """Serve /metrics; every scrape asks the endpoints anew."""
    address, port = _parse_listen(listen)
    collector = _collector(runtime_file, haproxy_stats, pgbackrest_config, pgbackrest_user,
                           drill_history)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if leader_poll > 0:
        from monitoring.leader_watch import LeaderWatch, Timing

        secrets = collector.sources.secrets  # the scrapes' cache: one read a minute for both
        collector.watch = LeaderWatch(
            collector.runtime, _watch_poll(collector.runtime, secrets),
            Timing.for_scrapes(scrape_interval, leader_poll),
            confirm=_watch_confirm(collector.runtime, secrets))
        # The scrape reports the watch's verdict instead of asking /primary once more.
        collector.sources.leader_lost = collector.watch.leader_lost
        collector.watch.start()
    registry = CollectorRegistry()
    registry.register(collector)
    # What start-up made (modules, the inventory) lives as long as the process: out of the
    # cyclic collector's sight, its full collections stop rescanning it (at 100 systems,
    # 10.6 -> 2.9 ms of CPU a scrape). benchmarks/exporter.py does the same.
    gc.freeze()
    _serve(address, port, registry)


def _serve(address: str, port: int, registry: CollectorRegistry) -> None:
    """Serve /metrics from this thread, each scrape in a thread of its own, as
    prometheus_client's start_http_server does, except that the loop sleeps until a scrape
    comes: start_http_server's woke every 0.5 s to look for a shutdown that never comes
    here (10 wake-ups per scrape interval, ~1.5 ms of CPU)."""
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 — the base's name
            pass  # one line per scrape is noise; Prometheus keeps the scrapes' record

    server = make_server(address, port, make_wsgi_app(registry), Server, handler_class=Quiet)
    logging.getLogger(__name__).info("serving http://%s:%d/metrics", address, port)
    server.serve_forever(poll_interval=None)


@exporter.command()
@_common
def show(runtime_file: Path, haproxy_stats: tuple[str, ...],
         pgbackrest_config: Path | None, pgbackrest_user: str | None,
         drill_history: Path) -> None:
    """Observe once and print the exposition (what a scrape would return)."""
    collector = _collector(runtime_file, haproxy_stats, pgbackrest_config, pgbackrest_user,
                           drill_history)
    registry = CollectorRegistry()
    registry.register(collector)
    click.echo(generate_latest(registry).decode(), nl=False)


@exporter.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("monitoring/dashboards"),
              show_default=True, help="Directory for the dashboards' JSON (Grafana provisioning).")
def dashboards(out: Path) -> None:
    """Write the Grafana dashboards (overview, one system, drills) as JSON."""
    from monitoring.dashboards import write_all

    for file in write_all(out):
        click.echo(str(file))
