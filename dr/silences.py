"""A planned switchover does not page: the runbook silences, for its own system only, the
alerts a handover raises by design, for as long as the rules can still see it.

Why a silence rather than rules that tell planned from unplanned: the rules see the same
thing in both (a few seconds without a confirmed leader, roles off their intended
centers), and a switchover on a loaded machine blocks writes for longer than the 3 s
leader-watch threshold. A silence is the team's own, visible, time-bounded statement that
this is planned (`amtool silence query` lists it); other systems and every other alert
still page. It is created through one member of the Alertmanager cluster, which gossips
it to the others, so it holds whichever member notifies.
"""
from __future__ import annotations

import datetime

import requests

# What a handover raises by design; a stuck switchover still shows in the drill report
# (writes blocked, RTO) and every other alert (etcd, replication, backups) still pages.
PLANNED_HANDOVER_ALERTS = ("TricenterPrimaryLost", "TricenterLayoutNotAsIntended",
                           "TricenterNoSyncStandby")
# After the switch, TricenterPrimaryLost still fires while the 30 s look-back of its
# leaderless-episode counter holds the episode, plus a scrape, an evaluation and a
# notification group interval.
AFTERGLOW_SECONDS = 60


class SilenceFailed(Exception):
    """No Alertmanager member accepted the silence; the message names each one's answer."""


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def silence_body(system: str, seconds: float, comment: str,
                 now: datetime.datetime | None = None) -> dict:
    """Alertmanager API v2 silence: this system's planned-handover alerts, `seconds` long."""
    start = now or datetime.datetime.now(datetime.timezone.utc)
    return {
        "matchers": [
            {"name": "system", "value": system, "isRegex": False, "isEqual": True},
            {"name": "alertname", "value": "|".join(PLANNED_HANDOVER_ALERTS), "isRegex": True,
             "isEqual": True},
        ],
        "startsAt": _iso(start),
        "endsAt": _iso(start + datetime.timedelta(seconds=seconds)),
        "createdBy": "tricenter runbook",
        "comment": comment,
    }


def silence_planned_handover(alertmanagers: dict[str, str], system: str, seconds: float,
                             comment: str, timeout: float = 3) -> tuple[str, str]:
    """(member URL, silence id) from the first member that accepts it."""
    if not alertmanagers:
        raise SilenceFailed("the runtime inventory lists no Alertmanager (monitoring.alertmanagers)")
    body = silence_body(system, seconds, comment)
    refused = []
    for center, url in sorted(alertmanagers.items()):
        try:
            reply = requests.post(url.rstrip("/") + "/api/v2/silences", json=body, timeout=timeout)
            reply.raise_for_status()
            return url, reply.json()["silenceID"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            refused.append(f"{center} ({url}): {type(exc).__name__}")
    raise SilenceFailed("no Alertmanager member accepted the silence: " + "; ".join(refused))
