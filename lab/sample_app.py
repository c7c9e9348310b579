"""The lab's sample department service: a records API with a PostgreSQL database.

    POST /records        {"key": "optional unique key", "payload": {...}} → 201 {"id": …}
    GET  /records/<id>   → 200 the record, 404 when absent
    GET  /health         → 200 {"center": …, "db": {"reachable": …}} while the process lives

Every response names the center that served it (header X-Served-By and "served_by"), so
a client behind the active-active entry can tell which center answered. The database is
reached through a libpq multi-host string with target_session_attrs=read-write: after a
failover the next connection finds the new primary without any proxy in between. A POST
with a key already stored returns the stored record (200), so writers can retry safely;
every write's response names the database server that took it (db_server).

SIGHUP re-reads the environment files and moves new sessions to the database they name
(systemd's reload): a migration's cutover repoints the application this way, without a
restart (see playbooks/roles/migration).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id bigserial PRIMARY KEY,
    key text UNIQUE,
    payload jsonb NOT NULL DEFAULT '{{}}',
    served_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)"""
INSERT = """
INSERT INTO {table} (key, payload, served_by) VALUES (%s, %s, %s)
ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
RETURNING id, key, payload, served_by, created_at, (xmax = 0) AS inserted,
          host(inet_server_addr()) AS db_server"""
SELECT = "SELECT id, key, payload, served_by, created_at FROM {table} WHERE id = %s"
TABLE = re.compile(r"[a-z_][a-z0-9_]*")
RECORD_PATH = re.compile(r"^/records/(\d+)$")


class Database:
    """One connection per server thread, replaced whenever it breaks or the settings change."""

    def __init__(self, settings: dict[str, str]):
        self.local = threading.local()
        self.status: dict = {"reachable": False, "error": "not checked yet"}
        self.generation = 0
        self.configure(settings)

    def configure(self, settings: dict[str, str]) -> None:
        """Take (new) database settings: every thread's next statement opens a session to
        the database they name; a statement under way finishes where it started."""
        self.hosts = settings["db_hosts"].split(",")
        self.params = (settings["dbname"], settings["user"], settings["passfile"],
                       settings["sslrootcert"], settings["sslmode"])
        self.table = settings["table"]
        self.primary = self.hosts[0]  # the member that last accepted a read-write session
        self.schema_ready = False
        self.generation += 1

    def connection(self) -> psycopg.Connection:
        conn = getattr(self.local, "conn", None)
        stale = getattr(self.local, "generation", None) != self.generation
        if conn is not None and stale:
            conn.close()
        if conn is None or conn.closed or conn.broken or stale:
            generation = self.generation
            # Last known primary first: after a failover, new sessions stop paying the
            # connect timeout of a dead or partitioned former primary.
            ordered = [self.primary] + [h for h in self.hosts if h != self.primary]
            conn = psycopg.connect(conninfo(ordered, *self.params), autocommit=True,
                                   row_factory=dict_row)
            self.primary = f"{conn.info.host}:{conn.info.port}"
            self.local.conn, self.local.generation = conn, generation
            if not self.schema_ready:
                self._create_schema(conn)
        return conn

    def statement(self, template: str) -> str:
        return template.format(table=self.table)

    def _create_schema(self, conn: psycopg.Connection) -> None:
        try:
            conn.execute(self.statement(SCHEMA))
        except psycopg.errors.UniqueViolation:
            pass  # the other center's instance created it at the same moment
        self.schema_ready = True

    def run(self, sql: str, params: tuple) -> dict | None:
        """`sql` may name the application's table as {table}."""
        conn = self.connection()
        try:
            return conn.execute(self.statement(sql), params).fetchone()
        except psycopg.Error:
            conn.close()  # a failover leaves this session on a dead or demoted server
            raise

    def watch(self, interval: float = 1.0) -> None:
        """Keep `status` current from a thread of its own, so /health never waits on the DB."""
        while True:
            try:
                row = self.run("SELECT host(inet_server_addr()) AS server, "
                               "pg_is_in_recovery() AS in_recovery", ())
                self.status = {"reachable": True, "server": row["server"],
                               "read_write": not row["in_recovery"], "checked": time.time()}
            except psycopg.Error as exc:
                self.status = {"reachable": False, "error": str(exc).strip().splitlines()[0]
                               if str(exc).strip() else type(exc).__name__,
                               "checked": time.time()}
            time.sleep(interval)


def make_handler(center: str, db: Database) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tricenter-sample-app"

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps({**body, "served_by": center}, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", center)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._reply(200, {"status": "ok", "center": center, "db": db.status})
                return
            match = RECORD_PATH.match(self.path)
            if not match:
                self._reply(404, {"error": f"no route {self.path}"})
                return
            try:
                row = db.run(SELECT, (int(match.group(1)),))
            except psycopg.Error as exc:
                self._reply(503, {"error": f"database unavailable: {exc}"})
                return
            if row is None:
                self._reply(404, {"error": f"no record {match.group(1)}"})
            else:
                self._reply(200, {**row, "record_served_by": row["served_by"]})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/records":
                self._reply(404, {"error": f"no route {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError as exc:
                self._reply(400, {"error": f"invalid JSON body: {exc}"})
                return
            try:
                row = db.run(INSERT, (body.get("key"), Jsonb(body.get("payload", {})), center))
            except psycopg.Error as exc:
                self._reply(503, {"error": f"database unavailable: {exc}"})
                return
            inserted = row.pop("inserted")
            self._reply(201 if inserted else 200, {**row, "record_served_by": row["served_by"]})

        def log_message(self, format: str, *args: object) -> None:
            pass  # a drill's workload would flood the log; errors are in the responses

    return Handler


def conninfo(hosts: list[str], dbname: str, user: str, passfile: str, sslrootcert: str,
             sslmode: str = "verify-full") -> str:
    names = ",".join(h.rsplit(":", 1)[0] for h in hosts)
    ports = ",".join(h.rsplit(":", 1)[1] for h in hosts)
    # A partitioned primary drops packets instead of refusing them: without a bound on
    # unacknowledged data a session to it would hang for the kernel's full TCP timeout.
    # Each member is reached by the address its certificate names: verify-full (a legacy
    # server without TLS is the exception its settings name).
    return (f"host={names} port={ports} dbname={dbname} user={user} passfile={passfile} "
            f"sslmode={sslmode} sslrootcert={sslrootcert} "
            "target_session_attrs=read-write connect_timeout=2 application_name=sample-app "
            "tcp_user_timeout=3000 keepalives=1 keepalives_idle=2 keepalives_interval=1 "
            "keepalives_count=2")


ENV_KEYS = {"center": "APP_CENTER", "listen": "APP_LISTEN", "db_hosts": "APP_DB_HOSTS",
            "dbname": "APP_DBNAME", "user": "APP_USER", "passfile": "APP_PASSFILE",
            "sslrootcert": "APP_SSLROOTCERT", "sslmode": "APP_SSLMODE", "table": "APP_TABLE",
            "pidfile": "APP_PIDFILE"}
DEFAULTS = {"sslmode": "verify-full", "table": "records", "pidfile": ""}


def read_env_file(file: str) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile reads the app role's <system>.env."""
    values = {}
    for line in Path(file).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def settings(options: argparse.Namespace) -> dict[str, str]:
    """Command-line options, else the environment files (a later file wins, as with
    systemd's repeated EnvironmentFile=), else the defaults; raises KeyError naming a
    missing one."""
    env: dict[str, str] = {}
    for file in options.env_file or []:
        env |= read_env_file(file)
    found = {}
    for attr, key in ENV_KEYS.items():
        value = getattr(options, attr)
        value = value if value is not None else env.get(key, DEFAULTS.get(attr))
        if value is None:
            raise KeyError(f"--{attr.replace('_', '-')} (or {key} in --env-file) is required")
        found[attr] = value
    if not TABLE.fullmatch(found["table"]):
        raise KeyError(f"APP_TABLE {found['table']!r} is not a plain lower-case table name")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", action="append",
                        help="an environment file (APP_* keys); repeatable, a later one wins")
    parser.add_argument("--center")
    parser.add_argument("--listen", help="ADDRESS:PORT")
    parser.add_argument("--db-hosts", help="ADDRESS:PORT,… of all members")
    parser.add_argument("--dbname")
    parser.add_argument("--user")
    parser.add_argument("--passfile")
    parser.add_argument("--sslrootcert", help="the CA the database servers' certificates chain to")
    parser.add_argument("--sslmode", help="libpq sslmode (default verify-full)")
    parser.add_argument("--table", help="the records table (default records)")
    parser.add_argument("--pidfile", help="where to write the process id, for a reload by "
                                          "signal (`pkill -HUP -F FILE`)")
    args = parser.parse_args(argv)
    try:
        config = settings(args)
    except KeyError as exc:
        parser.error(exc.args[0])
    db = Database(config)
    if config["pidfile"]:
        Path(config["pidfile"]).write_text(f"{os.getpid()}\n")

    def reload(signum: int, frame: object) -> None:
        try:
            db.configure(settings(args))
        except (KeyError, OSError) as exc:  # a half-written file: keep the old settings
            print(f"reload refused: {exc}", file=sys.stderr, flush=True)
            return
        print(f"reloaded: database {db.hosts} {db.params[0]}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGHUP, reload)
    threading.Thread(target=db.watch, daemon=True).start()
    address, port = config["listen"].rsplit(":", 1)
    server = ThreadingHTTPServer((address, int(port)), make_handler(config["center"], db))
    server.daemon_threads = True
    print(f"sample app of {config['center']} listening on {config['listen']}", file=sys.stderr,
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
