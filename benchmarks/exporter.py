"""Benchmark: one scrape of the tricenter exporter for 100 systems x 3 centers.
Target (issue 11): ≤ 0.5 s.

    python benchmarks/exporter.py [--systems 100] [--scrapes 5] [--json]

Endpoints are simulated: one local HTTP server answers every Patroni member's /cluster,
/primary and /health, every etcd member's /health and status, and HAProxy's stats CSV,
over real loopback HTTP, from a process of its own (as real endpoints are: in-process
it would compete with the exporter for the interpreter lock). PostgreSQL's
pg_stat_replication and pgbackrest info are answered in-process (they need a database
and a repository per system).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from inventory.runtime import (CenterRuntime, DatabaseCluster, DbIntendedRole, DbMember,  # noqa: E402
                               HostPort, RuntimeInventory, SecretRef, SystemRuntime)
from monitoring.collector import Sources, Targets, TricenterCollector  # noqa: E402
from monitoring.probes import ReplicationRow  # noqa: E402
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


def handler(systems: int) -> type[BaseHTTPRequestHandler]:
    clusters = {f"sys{i:03d}": cluster_reply(f"sys{i:03d}") for i in range(systems)}
    csv = "# pxname,svname,status,stot,addr\n" + "".join(
        f"app,sys{i:03d}-{c},UP,{100 + i},\n" for i in range(systems) for c in ("main", "samecity"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
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
    sources = Sources(haproxy_stats=[base], pgbackrest_config=Path("/dev/null"),
                      replication=lambda db, leader, pw: rows,
                      pgbackrest=lambda config, stanza, run_as: backup)
    registry = CollectorRegistry()
    registry.register(TricenterCollector(runtime(args.systems, base), sources,
                                         {"critical": Targets(120, 0)}))
    seconds, size = [], 0
    for _ in range(args.scrapes):
        started = time.perf_counter()
        size = len(generate_latest(registry))
        seconds.append(time.perf_counter() - started)
    endpoints.terminate()
    endpoints.join()
    result = {"systems": args.systems, "centers": len(CENTERS), "scrapes": args.scrapes,
              "seconds_min": round(min(seconds), 3), "seconds_median": round(statistics.median(seconds), 3),
              "seconds_max": round(max(seconds), 3), "exposition_bytes": size, "target_seconds": 0.5,
              "met": statistics.median(seconds) <= 0.5}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.systems} systems x {len(CENTERS)} centers: one scrape min {result['seconds_min']} s, "
              f"median {result['seconds_median']} s, max {result['seconds_max']} s "
              f"({size} bytes); target ≤ 0.5 s: {'met' if result['met'] else 'MISSED'}")
    sys.exit(0 if result["met"] else 1)


if __name__ == "__main__":
    main()
