"""The one way to wait for something: poll a condition until it holds or a deadline passes.

Every wait names what it waits for, so the error (and the debug log) says what was not
reached and the last thing seen instead of it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class WaitTimeout(RuntimeError):
    """The condition did not hold within the deadline (or the wait was stopped)."""


def wait_until(describe: str, condition: Callable[[], T], timeout: float, interval: float = 0.3,
               *, retry_on: tuple[type[BaseException], ...] = (),
               error: Callable[[str], Exception] = WaitTimeout,
               stop: threading.Event | None = None) -> T:
    """Call `condition` every `interval` seconds until it returns something true, and return
    that. Exceptions of `retry_on` count as "not yet" (the last one is quoted). At the
    deadline, or once `stop` is set, raise `error` with a message naming `describe`."""
    deadline = time.monotonic() + timeout
    last: object = "no answer yet"
    log.debug("waiting up to %.1f s: %s", timeout, describe)
    while True:
        try:
            answer = condition()
            if answer:
                log.debug("reached: %s", describe)
                return answer
            last = answer
        except retry_on as exc:
            last = exc
        if stop is not None and stop.is_set():
            raise error(f"{describe}: stopped before it was reached (last: {last})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.info("not reached within %.0f s: %s (last: %s)", timeout, describe, last)
            raise error(f"{describe}: not reached within {timeout:.0f} s (last: {last})")
        pause = min(interval, remaining)
        if stop is not None:
            stop.wait(pause)
        else:
            time.sleep(pause)
