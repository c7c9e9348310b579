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
import re

import requests

from support.waiting import WaitTimeout, wait_until

# What a handover raises by design; a stuck switchover still shows in the drill report
# (writes blocked, RTO) and every other alert (etcd, replication, backups) still pages.
PLANNED_HANDOVER_ALERTS = ("TricenterPrimaryLost", "TricenterLayoutNotAsIntended",
                           "TricenterNoSyncStandby")
# After the switch, TricenterPrimaryLost can still fire while its 30 s look-back at the
# exporter's leaderless-episode counter holds the episode, plus a scrape (5 s) and an
# evaluation (5 s): the silence is held that long after the switch before it is lifted.
LOOK_BACK_SECONDS = 40
# Lifted only once Alertmanager holds none of the silenced alerts for the system; if one
# still does after this, the silence is left to end by itself (its endsAt).
QUIET_DEADLINE_SECONDS = 60


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


def _filters(system: str, names: tuple[str, ...] | list[str] = PLANNED_HANDOVER_ALERTS) -> list[str]:
    return [f'system="{system}"', f'alertname=~"{"|".join(names)}"']


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


def handover_alerts_active(member: str, system: str, timeout: float = 3,
                           names: tuple[str, ...] | list[str] = PLANNED_HANDOVER_ALERTS) -> list[str]:
    """Which of `names` (the silenced ones by default) Alertmanager still holds unresolved
    for the system, silenced or not."""
    reply = requests.get(member.rstrip("/") + "/api/v2/alerts", timeout=timeout,
                         params={"active": "true", "silenced": "true", "inhibited": "true",
                                 "unprocessed": "true", "filter": _filters(system, names)})
    reply.raise_for_status()
    return sorted({a["labels"]["alertname"] for a in reply.json()})


def silences_covering(member: str, system: str, names: tuple[str, ...] | list[str],
                      timeout: float = 3) -> list[str]:
    """Active or pending silences that would mute one of `names` for the system: "id
    (by whom, until when)". A drill started under one would miss its own page."""
    reply = requests.get(member.rstrip("/") + "/api/v2/silences", timeout=timeout)
    reply.raise_for_status()
    return sorted(f"{s['id']} ({s.get('createdBy', '?')}, until {s.get('endsAt', '?')})"
                  for s in reply.json()
                  if s.get("status", {}).get("state") in ("active", "pending")
                  and any(mutes(s.get("matchers", []), system, name) for name in names))


def holding_a_page_back(alertmanagers: dict[str, str], system: str,
                        names: tuple[str, ...] | list[str]) -> list[str]:
    """What Alertmanager holds that would keep a new page of `names` for the system from
    being sent: the alerts still active, the silences muting them. One member answers for
    the cluster (alerts and silences are gossiped); none answering: nothing known, []."""
    for url in sorted(alertmanagers.values()):
        try:
            return ([f"{name} held by Alertmanager" for name in
                     handover_alerts_active(url, system, names=names)]
                    + [f"silence {s}" for s in silences_covering(url, system, names)])
        except (requests.RequestException, ValueError, KeyError):
            continue
    return []


def expire(member: str, silence_id: str, timeout: float = 3) -> None:
    requests.delete(f"{member.rstrip('/')}/api/v2/silence/{silence_id}",
                    timeout=timeout).raise_for_status()


def expire_each(alertmanagers: dict[str, str], silence_ids: list[str]) -> None:
    """Expire each silence through the first member that takes it (the cluster gossips
    the expiry); one no member takes ends at its own endsAt."""
    for silence_id in silence_ids:
        for url in sorted(alertmanagers.values()):
            try:
                expire(url, silence_id)
                break
            except requests.RequestException:
                continue


def mutes(matchers: list[dict], system: str, alertname: str) -> bool:
    """Whether a silence's matchers match an alert with these two labels alone (a matcher
    on any other label may match it too: counted as muting, to be safe)."""
    labels = {"system": system, "alertname": alertname}
    for m in matchers:
        if m["name"] not in labels:
            continue
        value = labels[m["name"]]
        hit = re.fullmatch(m["value"], value) is not None if m.get("isRegex") else value == m["value"]
        if hit != m.get("isEqual", True):
            return False
    return True


def lift_when_quiet(member: str, silence_id: str, system: str, stop, poll: float = 1) -> tuple[bool, str]:
    """Hold the silence over the rules' look-back, then lift it once none of its alerts is
    still active — so the next fault pages. `stop` (a threading.Event) ends the waits early
    on abort; then, as when the alerts stay active, the silence ends at its own endsAt.
    (lifted, what happened)."""
    if stop.wait(LOOK_BACK_SECONDS):
        return False, f"silence {silence_id} left to expire (drill stopping)"
    still: list[str] = []

    def quiet() -> bool:
        still[:] = handover_alerts_active(member, system)
        return not still

    try:
        wait_until(f"{system}'s handover alerts no longer active", quiet,
                   QUIET_DEADLINE_SECONDS, poll, stop=stop)
        expire(member, silence_id)
        return True, f"silence {silence_id} lifted"
    except (requests.RequestException, ValueError, KeyError) as exc:
        return False, f"silence {silence_id} left to expire ({member}: {type(exc).__name__})"
    except WaitTimeout:
        return False, f"silence {silence_id} left to expire: still active {', '.join(still)}"
