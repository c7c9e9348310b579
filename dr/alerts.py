"""Which alerts a drill raised and when, from what the alert receiver recorded.

Each scenario names the alerts it expects (`alerts:` in dr/scenarios/*.yaml); the drill
reads the receiver's record after its run (runtime inventory: monitoring.alert_receiver_url)
and reports, per alert, seconds from the fault to its first firing notification and to
its resolution. An expected alert that never arrived is reported as such. A finished
drill waits (boundedly) for the expected alerts it raised to resolve, so the report can
say when each did: Alertmanager tells a resolution a rule window plus a group interval
after recovery, usually after the restore steps are done. A drill that recovered fast
also waits for an expected alert that has not arrived yet, up to a deadline after the
fault (an alert is due within 15 s of it: issue 11).
"""
from __future__ import annotations

import datetime
import re

import requests

# Clocks of Prometheus, Alertmanager and the drill may differ by this much (one machine in
# the lab; NTP between centers).
CLOCK_SLACK_SECONDS = 2.0


class ReceiverUnavailable(Exception):
    """The alert receiver did not answer or answered something unreadable."""


def fetch(receiver_url: str, since: float, timeout: float = 3) -> list[dict]:
    try:
        reply = requests.get(receiver_url.rstrip("/") + "/alerts", params={"since": since},
                             timeout=timeout)
        reply.raise_for_status()
        records = reply.json()
    except (requests.RequestException, ValueError) as exc:
        raise ReceiverUnavailable(f"alert receiver {receiver_url}: {type(exc).__name__}") from None
    if not isinstance(records, list):
        raise ReceiverUnavailable(f"alert receiver {receiver_url}: expected a list")
    return records


def _about(record: dict, system: str) -> bool:
    """An alert about this system, or about no system in particular (etcd, certificates)."""
    return record.get("labels", {}).get("system", system) == system


def began_at(record: dict) -> float | None:
    """When the alert a notification is about began (Alertmanager's startsAt), as Unix
    time; None when the record does not say."""
    text = record.get("starts_at")
    if not text:
        return None
    # Alertmanager writes nanoseconds; fromisoformat takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _since(record: dict, fault_at: float) -> bool:
    """A notification of this drill's making: received after the fault, about an alert
    that began after it. Another Alertmanager member can deliver the last drill's
    resolution seconds into this one (seen: a stale "resolved" 8 s after the fault, while
    the primary was still lost)."""
    began = began_at(record)
    return record["received_at"] >= fault_at and (began is None or began >= fault_at - CLOCK_SLACK_SECONDS)


def firing_at(records: list[dict], at: float, system: str) -> list[str]:
    """Alerts whose last notification before `at` said firing: Alertmanager will not
    notify them again, so a fault at `at` cannot be timed by them."""
    last: dict[str, str] = {}
    for r in sorted(records, key=lambda r: r["received_at"]):
        if r["received_at"] < at and _about(r, system):
            last[r["name"]] = r["status"]
    return sorted(name for name, status in last.items() if status == "firing")


def timeline(records: list[dict], expected: list[str], fault_at: float,
             system: str) -> tuple[list[dict], list[str]]:
    """([{name, fired_after_s, resolved_after_s}], expected alerts that never fired).
    Alerts that fired but were not expected are listed too: they are news for the team."""
    relevant = sorted((r for r in records if _about(r, system) and _since(r, fault_at)),
                      key=lambda r: r["received_at"])
    names = list(dict.fromkeys([*expected, *(r["name"] for r in relevant)]))
    alerts = []
    for name in names:
        fired = next((r["received_at"] for r in relevant
                      if r["name"] == name and r["status"] == "firing"), None)
        resolved = None if fired is None else next(
            (r["received_at"] for r in relevant
             if r["name"] == name and r["status"] == "resolved" and r["received_at"] >= fired), None)
        alerts.append({"name": name,
                       "fired_after_s": None if fired is None else round(fired - fault_at, 3),
                       "resolved_after_s": None if resolved is None else round(resolved - fault_at, 3)})
    missing = [a["name"] for a in alerts if a["name"] in expected and a["fired_after_s"] is None]
    return alerts, missing


def awaited(records: list[dict], expected: list[str], fault_at: float, system: str,
            now: float, fire_within: float) -> list[str]:
    """Expected alerts a finished drill should still wait for: those that fired after the
    fault and whose resolution has not arrived, and those not fired yet while the fault
    is less than `fire_within` seconds old (a drill that recovers fast may end before
    its page arrives)."""
    found, _ = timeline(records, expected, fault_at, system)
    return [a["name"] for a in found if a["name"] in expected and (
        a["resolved_after_s"] is None if a["fired_after_s"] is not None
        else now - fault_at < fire_within)]
