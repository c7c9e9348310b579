"""Logging for the one CLI: `tricenter -v` shows what the planes do (faults applied,
runbook actions, waits), `-vv` how (each wait, each poll's end), `-vvv` adds the
libraries' own debug logs. Without -v only warnings and errors appear.

Logs go to stderr, so `--json` output on stdout stays machine-readable.
"""
from __future__ import annotations

import logging
import sys

# The top-level packages whose modules log through logging.getLogger(__name__).
PLANES = ("dr", "inventory", "lab", "monitoring", "playbooks", "stacks", "support", "scripts")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(verbosity: int) -> None:
    """Set the planes' log level from the count of -v (0: leave Python's default, which
    prints warnings and errors only)."""
    if verbosity <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    level = logging.INFO if verbosity == 1 else logging.DEBUG
    for plane in PLANES:
        logging.getLogger(plane).setLevel(level)
