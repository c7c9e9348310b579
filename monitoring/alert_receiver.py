"""An Alertmanager webhook receiver that records what arrives, so a drill can say which
alerts fired and resolved, and when they reached a human's pager.

POST / (Alertmanager's webhook payload) appends one JSON line per alert to the record
file, stamped with the arrival time; GET /alerts?since=UNIX_TIME returns the recorded
lines since then. Standard library only, so it runs from any Python.

    python -m monitoring.alert_receiver --listen 127.0.10.5:9649 --record alerts.jsonl
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1 << 20  # Alertmanager batches; a megabyte is thousands of alerts


def records_from_payload(payload: dict, received_at: float) -> list[dict]:
    """One record per alert of a webhook payload (version 4)."""
    return [{"received_at": received_at, "name": a.get("labels", {}).get("alertname", ""),
             "status": a.get("status", payload.get("status", "")),
             "labels": a.get("labels", {}), "starts_at": a.get("startsAt"),
             "ends_at": a.get("endsAt")}
            for a in payload.get("alerts", [])]


class Recorder:
    def __init__(self, file: Path):
        self.file = file
        self.lock = threading.Lock()

    def add(self, records: list[dict]) -> None:
        with self.lock, self.file.open("a") as out:
            for record in records:
                out.write(json.dumps(record, sort_keys=True) + "\n")

    def since(self, at: float) -> list[dict]:
        if not self.file.exists():
            return []
        with self.lock:
            lines = self.file.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["received_at"] >= at]


def handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 — http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self._reply(413 if length else 400, {"error": "body missing or too large"})
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self._reply(400, {"error": "not JSON"})
                return
            recorder.add(records_from_payload(payload, time.time()))
            self._reply(200, {"recorded": len(payload.get("alerts", []))})

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != "/alerts":
                self._reply(404, {"error": "GET /alerts?since=UNIX_TIME"})
                return
            try:
                since = float(parse_qs(url.query).get("since", ["0"])[0])
            except ValueError:
                self._reply(400, {"error": "since must be a Unix time"})
                return
            self._reply(200, recorder.since(since))

        def _reply(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # the record file is the log

    return Handler


def serve(listen: str, record: Path) -> ThreadingHTTPServer:
    address, port = listen.rsplit(":", 1)
    return ThreadingHTTPServer((address, int(port)), handler(Recorder(record)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9649", help="ADDRESS:PORT")
    parser.add_argument("--record", type=Path, required=True, help="JSON-lines file to append to")
    args = parser.parse_args()
    serve(args.listen, args.record).serve_forever()


if __name__ == "__main__":
    main()
