"""Rich consoles for the CLI that behave like other command-line tools: coloured and fitted
to the window on a terminal; plain and never wrapped when piped or redirected.

Rich wraps at 80 columns when it cannot ask a terminal, which splits summary lines and
table cells (`guangdong/ma…`) in logs, CI output and `| grep`. Without a terminal a line is
as long as its content (tables up to 400 columns); COLUMNS, when set, still wins.
"""
from __future__ import annotations

import os
import sys

from rich.console import Console

UNWRAPPED = 400  # columns without a terminal: tables take only what they need, text never wraps (soft_wrap)


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=UNWRAPPED, soft_wrap=True, color_system=None)


class LazyConsole:
    """A module-level console bound to the stream as it is when something is printed, so
    test runners and redirections made after import are honoured."""

    def __init__(self, stderr: bool = False):
        self.stderr = stderr

    def __getattr__(self, name: str):
        return getattr(console(self.stderr), name)
