"""Where drill reports and the drill history live.

Outside the package tree: an installed tricenter may sit in a read-only site-packages, and
reports an auditor keeps must survive reinstalling it. `TRICENTER_REPORTS_DIR` moves them
(e.g. onto a shared, backed-up volume); the default follows the XDG base directories.
"""
from __future__ import annotations

import os
from pathlib import Path

REPORTS_ENV = "TRICENTER_REPORTS_DIR"
HISTORY_NAME = "drills.jsonl"


def reports_dir() -> Path:
    """`$TRICENTER_REPORTS_DIR`, else `$XDG_DATA_HOME/tricenter/drills` (~/.local/share/…)."""
    configured = os.environ.get(REPORTS_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "tricenter" / "drills"


def history_file() -> Path:
    """One JSON line per drill, next to the report directories."""
    return reports_dir() / HISTORY_NAME
