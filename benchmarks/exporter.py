"""Benchmark: one scrape of the tricenter exporter for 100 systems x 3 centers.
Target (issue 11): ≤ 0.5 s. With --side-by-side, on the running lab: CPU per scrape of
the tricenter exporter vs postgres_exporter on the same database node, in one run.

    python benchmarks/exporter.py [--systems 100] [--scrapes 5] [--json]
    python benchmarks/exporter.py --side-by-side [--scrapes 12] [--interval 5] [--json]

Endpoints are simulated: one local HTTP server answers every Patroni member's /cluster,
/primary and /health, every etcd member's /health and status, and HAProxy's stats CSV,
over real loopback HTTP, from a process of its own (as real endpoints are: in-process
it would compete with the exporter for the interpreter lock). PostgreSQL's
pg_stat_replication and pgbackrest info are answered in-process (they need a database
and a repository per system).
"""
from __future__ import annotations

import argparse
import base64
import functools
import gc
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
import requests  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember,  # noqa: E402
                               HostPort, RuntimeInventory, SecretRef, SystemRuntime)
from monitoring import probes  # noqa: E402
from monitoring.collector import Sources, Targets, TricenterCollector  # noqa: E402
from monitoring.probes import ReplicationRow  # noqa: E402
from support.patroni_dcs import PatroniDcs  # noqa: E402
from support.waiting import WaitTimeout, wait_until  # noqa: E402

CENTERS = ("main", "samecity", "remote")
ROLES = {"main": DbIntendedRole.leader, "samecity": DbIntendedRole.sync,
         "remote": DbIntendedRole.async_}


def cluster_reply(system: str) -> bytes:
    members = [{"name": f"{system}-{c}", "role": r, "state": s, "timeline": 3, "lag": lag}
               for c, r, s, lag in (("main", "leader", "running", None),
                                    ("samecity", "sync_standby", "streaming", 0),
                                    ("remote", "replica", "streaming", 4096))]
    return json.dumps({"members": members}).encode()


DCS_PREFIX = "/service/"


def etcd_range_reply(systems: list[str]) -> bytes:
    """Patroni's keys of every cluster as etcd's gateway returns them (base64), saying what
    cluster_reply says."""
    def kv(key: str, value: str) -> dict:
        return {"key": base64.b64encode(f"{DCS_PREFIX}{key}".encode()).decode(),
                "value": base64.b64encode(value.encode()).decode()}
    kvs = []
    for system in systems:
        kvs += [kv(f"{system}/leader", f"{system}-main"), kv(f"{system}/status", '{"optime": 8192}'),
                kv(f"{system}/sync", json.dumps({"leader": f"{system}-main",
                                                 "sync_standby": f"{system}-samecity"}))]
        for center, lsn in (("main", 8192), ("samecity", 8192), ("remote", 4096)):
            kvs.append(kv(f"{system}/members/{system}-{center}", json.dumps(
                {"state": "running", "role": "master" if center == "main" else "replica",
                 "xlog_location": lsn, "timeline": 3,
                 **({} if center == "main" else {"replication_state": "streaming"})})))
    return json.dumps({"kvs": kvs, "count": str(len(kvs))}).encode()


def handler(systems: int) -> type[BaseHTTPRequestHandler]:
    clusters = {f"sys{i:03d}": cluster_reply(f"sys{i:03d}") for i in range(systems)}
    patroni_keys = etcd_range_reply([f"sys{i:03d}" for i in range(systems)])
    csv = "# pxname,svname,status,stot,addr\n" + "".join(
        f"app,sys{i:03d}-{c},UP,{100 + i},\n" for i in range(systems) for c in ("main", "samecity"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in one write. Written apart (the default, unbuffered),
        # Nagle holds the body until the client acknowledges the headers, and the client
        # delays that ACK by 40 ms: every request stalled 40 ms on the simulator's side.
        wbufsize = -1

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path.startswith("/patroni/"):
                _, _, system, _center, what = path.split("/")
                body = clusters[system] if what == "cluster" else b"{}"
            elif path == "/health":
                body = b'{"health": "true"}'
            elif path.startswith("/;csv"):
                body = csv.encode()
            else:
                body = b"{}"
            self._send(body)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/v3/auth/authenticate"):
                self._send(b'{"token": "bench-token"}')
            elif self.path.endswith("/v3/kv/range"):
                self._send(patroni_keys)
            else:
                self._send(b'{"header": {"member_id": "1"}, "leader": "1"}')

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default 5 refuses a burst of 16 parallel probes


def serve(systems: int, port) -> None:
    server = Server(("127.0.0.1", 0), handler(systems))
    port.value = server.server_address[1]
    server.serve_forever()


def runtime(systems: int, base: str) -> RuntimeInventory:
    centers = {c: CenterRuntime(name=c, role=c, addresses=[f"127.0.{n}.1"])
               for n, c in enumerate(CENTERS, 1)}
    inventory = RuntimeInventory(source="lab", cloud="bench", centers=centers,
                                 etcd=[f"{base}/etcd-{c}" for c in CENTERS])
    for i in range(systems):
        name = f"sys{i:03d}"
        members = [DbMember(name=f"{name}-{c}", center=c, host=f"127.0.{n}.1", port=5432 + i,
                            api_url=f"{base}/patroni/{name}/{c}", intended_role=ROLES[c])
                   for n, c in enumerate(CENTERS, 1)]
        db = DatabaseCluster(cluster=name, dbname=name, user=name, password=SecretRef(env="BENCH_PW"),
                             members=members, read_write=HostPort(host="127.0.10.6", port=5000),
                             read_only=HostPort(host="127.0.10.6", port=5001))
        inventory.systems[name] = SystemRuntime(name=name, department="d", tier="critical",
                                                database=db)
    return inventory


POSTGRES_EXPORTER = Path("/usr/bin/prometheus-postgres-exporter")


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def process_cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of the process and of the children it has waited for
    (pgbackrest info, run by the tricenter exporter)."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


# Where a process can be given a control group of its own, to read its CPU time exactly.
CGROUP_CPU = [(Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage", 1e-9),  # cgroup v1: ns
              (Path("/sys/fs/cgroup/unified"), "cpu.stat", 1e-6),  # v2 beside v1: usage_usec
              (Path("/sys/fs/cgroup"), "cpu.stat", 1e-6)]  # v2 alone


class CpuMeter:
    """CPU seconds of a process, its threads (exited ones too) and its children.

    The kernel charges a process's CPU time in clock ticks (10 ms here): postgres_exporter
    spends 3-4 ms a scrape, so 12 scrapes were 4 or 5 ticks, and its figure moved by 25%
    from run to run. A control group of its own counts in nanoseconds; where none can be
    made (no root, a read-only cgroup file system), the ticks are what there is."""

    def __init__(self, pid: int, name: str) -> None:
        self.process, self.group, self.file, self.unit = psutil.Process(pid), None, "", 0.0
        for root, file, unit in CGROUP_CPU:
            group = root / f"tricenter-bench-{name}-{pid}"
            try:
                group.mkdir()
            except OSError:
                continue
            # Set before the move, so that close() removes a group the process never joined.
            self.group, self.file, self.unit = group, file, unit
            try:
                (group / "cgroup.procs").write_text(f"{pid}\n")
                self.seconds()  # readable, or not this one
                break
            except (OSError, ValueError, StopIteration):
                self.close()
                self.group = None

    @property
    def exact(self) -> bool:
        return self.group is not None

    def seconds(self) -> float:
        if self.group is None:
            return process_cpu_seconds(self.process)
        text = (self.group / self.file).read_text()
        if self.file == "cpu.stat":
            text = next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))
        return int(text) * self.unit

    def close(self) -> None:
        """Leave the group (back to the parent's) and remove it."""
        if self.group is None:
            return
        try:
            procs = (self.group / "cgroup.procs").read_text().split()
            for pid in procs:
                (self.group.parent / "cgroup.procs").write_text(f"{pid}\n")
            self.group.rmdir()
        except OSError:
            pass


def scrape_until_ready(url: str, deadline_seconds: float = 60) -> None:
    try:
        wait_until(f"{url} answers", lambda: requests.get(url, timeout=10).ok, deadline_seconds,
                   0.5, retry_on=(requests.RequestException,))
    except WaitTimeout as exc:
        sys.exit(str(exc))


def settle(url: str, interval: float, deadline_seconds: float = 120) -> None:
    """Until the exporter's first background answers (pgbackrest info, the object-store
    heartbeat, certificates) are in, then two scrapes more: a start-up cost, not a
    per-scrape one (the first heartbeat builds boto3's clients, ~0.3 s of CPU; measured
    from just after the first pgbackrest answer, a 12-scrape window held ~0.15 s of
    start-up and read 30 ms a scrape where the steady state is ~17). Their periodic
    refreshes (every 60 s) do fall in a window of 12 scrapes at 5 s, and are counted."""
    def answered() -> bool:
        text = requests.get(url, timeout=30).text
        return ('probe_answer_age_seconds{probe="pgbackrest"' in text
                and ('probe="object_store"' not in text  # an inventory without a store
                     or 'probe_answer_age_seconds{probe="object_store"' in text)
                and "tricenter_tls_certificate_expiry_timestamp_seconds{" in text)
    try:
        wait_until("the exporter's background answers", answered, deadline_seconds, interval,
                   retry_on=(requests.RequestException,))
    except WaitTimeout as exc:
        print(f"warning: {exc}; measuring anyway", file=sys.stderr)
    for _ in range(2):
        time.sleep(interval)
        requests.get(url, timeout=30)


def postgres_exporter_dsn(node: DbMember, db: DatabaseCluster, password: str,
                          ca_file: str | None) -> str:
    """postgres_exporter's connection as the database's superuser, over TLS verified as
    every client of the lab's PostgreSQL must (pg_hba accepts hostssl only)."""
    tls = "sslmode=verify-full" + (f"&sslrootcert={quote(ca_file, safe='/')}" if ca_file else "")
    return (f"postgresql://{quote(db.admin_user or 'postgres', safe='')}:{quote(password, safe='')}"
            f"@{node.host}:{node.port}/{quote(db.dbname, safe='')}?{tls}")


def require_connected(url: str, log: Path) -> None:
    """Stop unless postgres_exporter reaches its database (pg_up 1). One that cannot connect
    still answers each scrape, at a fraction of the CPU: a baseline that says nothing
    (from 2026-12-02, when the lab's PostgreSQL took TLS only, until 2026-12-04, every
    side-by-side figure was measured so)."""
    if not postgres_up(requests.get(url, timeout=30).text):
        detail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
        sys.exit(f"postgres_exporter at {url} reports pg_up 0: it cannot reach its database, "
                 f"so its CPU is no baseline. Its log ({log}): {' '.join(detail) or 'empty'}")


def postgres_up(exposition: str) -> bool:
    return any(line.split()[-1] == "1" for line in exposition.splitlines()
               if line.startswith("pg_up ") or line.startswith("pg_up{"))


def side_by_side(scrapes: int, interval: float) -> dict:
    """Both exporters started fresh beside the running lab, scraped in turn at the
    Prometheus interval; CPU over the whole window (background work included) / scrapes.
    The tricenter exporter covers every database node of the inventory, postgres_exporter
    one (the primary's), so the comparison is per database node."""
    from dr.workload import resolve_secret
    from inventory.runtime import RuntimeInventory
    from lab.components import exporter
    from lab.context import LabContext

    if not POSTGRES_EXPORTER.is_file():
        sys.exit(f"{POSTGRES_EXPORTER} is missing: apt-get install prometheus-postgres-exporter "
                 "(scripts/bootstrap.sh installs it)")
    lab = LabContext()
    if not lab.runtime_inventory_file.exists():
        sys.exit(f"no lab at {lab.root}: run `tricenter lab up` first (TRICENTER_LAB_DIR)")
    runtime = RuntimeInventory.load(lab.runtime_inventory_file)
    system = next(s for s in runtime.systems.values() if s.database)
    db = system.database
    node = next(m for m in db.members if m.intended_role == DbIntendedRole.leader)
    nodes = sum(len(s.database.members) for s in runtime.systems.values() if s.database)
    tricenter_port, postgres_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    tricenter_cmd = exporter.command(lab)
    tricenter_cmd[tricenter_cmd.index("--listen") + 1] = f"127.0.0.1:{tricenter_port}"
    dsn = postgres_exporter_dsn(node, db, resolve_secret(db.superuser_password), runtime.tls_ca_file)
    postgres_log = lab.root / "logs" / "benchmark-postgres-exporter.log"
    started = [
        subprocess.Popen(tricenter_cmd, cwd=lab.repo, env={**os.environ, "PYTHONPATH": str(lab.repo)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        # The DSN (a password) goes by environment, never on a command line or in a log.
        subprocess.Popen([str(POSTGRES_EXPORTER), f"--web.listen-address=127.0.0.1:{postgres_port}"],
                         env={**os.environ, "DATA_SOURCE_NAME": dsn},
                         stdout=subprocess.DEVNULL, stderr=postgres_log.open("w"))]
    urls = [f"http://127.0.0.1:{tricenter_port}/metrics", f"http://127.0.0.1:{postgres_port}/metrics"]
    meters: list[CpuMeter] = []
    try:
        for url in urls:
            scrape_until_ready(url)  # also the warm-up scrape
        settle(urls[0], interval)
        require_connected(urls[1], postgres_log)
        meters.extend(CpuMeter(p.pid, name) for p, name in zip(started, ("tricenter", "postgres")))
        before = [m.seconds() for m in meters]
        wall = [0.0, 0.0]
        for _ in range(scrapes):
            tick = time.monotonic()
            for i, url in enumerate(urls):
                begun = time.perf_counter()
                requests.get(url, timeout=30).raise_for_status()
                wall[i] += time.perf_counter() - begun
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
        after = [m.seconds() for m in meters]
        exact = all(m.exact for m in meters)
        require_connected(urls[1], postgres_log)  # the whole window measured a working baseline
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)
        for meter in meters:
            meter.close()
    tricenter_ms, postgres_ms = ((a - b) * 1000 / scrapes for a, b in zip(after, before))
    per_node = tricenter_ms / nodes
    return {"system": system.name, "node": node.name, "database_nodes_covered": nodes,
            "scrapes": scrapes, "interval_s": interval, "cpu_counted": "exactly (cgroup)" if exact
            else "in clock ticks (10 ms): a few scrapes' figures are coarse",
            "tricenter_cpu_ms_per_scrape": round(tricenter_ms, 1),
            "tricenter_cpu_ms_per_scrape_per_node": round(per_node, 1),
            "postgres_exporter_cpu_ms_per_scrape": round(postgres_ms, 1),
            "tricenter_scrape_wall_ms": round(wall[0] * 1000 / scrapes, 1),
            "postgres_exporter_scrape_wall_ms": round(wall[1] * 1000 / scrapes, 1),
            "ratio_per_node": round(per_node / postgres_ms, 2) if postgres_ms else None,
            "met": postgres_ms > 0 and per_node <= postgres_ms}


def print_side_by_side(result: dict) -> None:
    print(f"CPU per scrape on {result['node']} ({result['scrapes']} scrapes every "
          f"{result['interval_s']} s, background work included; CPU counted {result['cpu_counted']}):")
    print(f"  tricenter exporter  {result['tricenter_cpu_ms_per_scrape']:7.1f} ms for "
          f"{result['database_nodes_covered']} database nodes = "
          f"{result['tricenter_cpu_ms_per_scrape_per_node']:.1f} ms per node "
          f"(scrape {result['tricenter_scrape_wall_ms']} ms)")
    print(f"  postgres_exporter   {result['postgres_exporter_cpu_ms_per_scrape']:7.1f} ms for 1 node "
          f"(scrape {result['postgres_exporter_scrape_wall_ms']} ms; connected over TLS, pg_up 1)")
    print(f"  ratio per node {result['ratio_per_node']}; target ≤ 1: "
          f"{'met' if result['met'] else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=None,
                        help="default 5 (simulated), 12 (--side-by-side)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="on the running lab: tricenter exporter vs postgres_exporter")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between scrapes with --side-by-side (Prometheus' in the lab)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.side_by_side:
        result = side_by_side(args.scrapes or 12, args.interval)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print_side_by_side(result)
        sys.exit(0 if result["met"] else 1)
    args.scrapes = args.scrapes or 5
    os.environ.setdefault("BENCH_PW", "bench")
    port = multiprocessing.Value("i", 0)
    endpoints = multiprocessing.Process(target=serve, args=(args.systems, port), daemon=True)
    endpoints.start()
    try:  # the child binds a free port and says which
        wait_until("the simulated endpoints say their port",
                   lambda: port.value != 0 or not endpoints.is_alive(), 30, 0.05)
    except WaitTimeout:
        pass
    if port.value == 0:
        sys.exit("the simulated endpoints did not start")
    base = f"http://127.0.0.1:{port.value}"
    rows = [ReplicationRow("x-samecity", "streaming", "sync", 0, 0, 0, 0.0, 0.0)]
    backup = {"status": {"code": 0}, "backup": [{"type": "full", "timestamp": {"stop": 1.0}}]}
    inventory = runtime(args.systems, base)
    # Patroni's state from etcd in one read (an inventory with the exporter's etcd user), or
    # from each cluster's REST API (one without): both measured in the same run.
    dcs = PatroniDcs(inventory.etcd, DCS_PREFIX, "bench", lambda: "bench")
    by_source = {}
    for source, patroni_dcs in (("etcd", functools.partial(probes.patroni_clusters, dcs)),
                                ("rest", None)):
        sources = Sources(haproxy_stats=[base], pgbackrest_config=Path("/dev/null"),
                          replication=lambda db, leader, pw, ca_file=None: rows,
                          pgbackrest=lambda config, stanza, run_as=None: backup,
                          patroni_dcs=patroni_dcs)
        registry = CollectorRegistry()
        registry.register(TricenterCollector(inventory, sources, {"critical": Targets(120, 0)}))
        by_source[source] = scrape_figures(registry, args.scrapes)
    endpoints.terminate()
    endpoints.join()
    result = {"systems": args.systems, "centers": len(CENTERS), "scrapes": args.scrapes,
              "target_seconds": 0.5, "load_average_1m": round(os.getloadavg()[0], 1),
              "patroni_state_from": by_source,
              "met": all(f["seconds_median"] <= 0.5 for f in by_source.values())}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.systems} systems x {len(CENTERS)} centers, one scrape (target ≤ 0.5 s: "
              f"{'met' if result['met'] else 'MISSED'}; load average {result['load_average_1m']}):")
        for source, f in by_source.items():
            print(f"  Patroni's state from {source:4s}: min {f['seconds_min']} s, median "
                  f"{f['seconds_median']} s, max {f['seconds_max']} s ({f['exposition_bytes']} bytes); "
                  f"CPU per scrape {f['cpu_seconds_median']} s")
    sys.exit(0 if result["met"] else 1)


def scrape_figures(registry: CollectorRegistry, scrapes: int) -> dict:
    gc.freeze()  # as `tricenter exporter serve` does before it serves
    generate_latest(registry)  # warm-up: connections, sessions, threads are kept from here on
    seconds, cpu, size = [], [], 0
    for _ in range(scrapes):
        started, cpu_started = time.perf_counter(), time.process_time()
        size = len(generate_latest(registry))
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return {"seconds_min": round(min(seconds), 3), "seconds_median": round(statistics.median(seconds), 3),
            "seconds_max": round(max(seconds), 3), "exposition_bytes": size,
            # The exporter's CPU (this process; the endpoints run in another): unlike the
            # wall time, barely moved by other load on the machine.
            "cpu_seconds_median": round(statistics.median(cpu), 3)}


if __name__ == "__main__":
    main()
