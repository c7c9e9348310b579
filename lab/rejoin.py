"""Bringing back database members that starting them does not bring back.

Two states a drill can leave that Patroni does not heal on its own:

- a primary promoted outside Patroni (the regional runbook) while the city is down. Its
  acknowledged writes are the newest: the cluster is rebuilt around it (its Patroni takes
  the leader lock, the city rewinds and follows it), then the primary switches back to
  main. Starting the city first would let main's old timeline win and throw those writes
  away (`rebuild_from`).
- a replica that diverged from the leader or is ahead of it (for instance a promoted
  member now following the old timeline's leader: "requested starting point … is ahead
  of the WAL flush position of this server", forever, while Patroni calls it running).
  Its WAL is copied aside under `<lab>/kept/`, then it is rewound with pg_rewind, else
  re-cloned from the leader with its whole data directory kept aside (`rejoin`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import requests
import yaml

from lab import binaries
from lab.components import etcd, haproxy, patroni
from lab.context import CENTERS, LabContext, Ports
from lab.faults import LabFaults
from lab.supervisor import Supervisor
from support import waiting

log = logging.getLogger(__name__)

# How long a replica may run without streaming from the leader before it is rewound: a
# healthy one streams within a second or two of starting, and Patroni rewinds a member it
# knows diverged within a few loops. Past that, it is stuck: on another timeline, or on
# the same timeline number with another history (both sides promoted once), where it
# asks for WAL "ahead of the WAL flush position" of the leader forever.
DIVERGED_GRACE_SECONDS = 10.0
REWIND_TIMEOUT_SECONDS = 120


class RejoinError(RuntimeError):
    """A member could not be brought back; the message names it and what was kept."""


def wait_until(describe: str, condition, timeout: float, interval: float = 0.3):
    """`support.waiting.wait_until` with the errors a rejoin step may meet counted as
    "not yet", and RejoinError at the deadline."""
    return waiting.wait_until(describe, condition, timeout, interval,
                              retry_on=(OSError, RuntimeError, psycopg.Error,
                                        requests.RequestException), error=RejoinError)


# --- what is where ----------------------------------------------------------------------
def superuser(lab: LabContext, center: str) -> psycopg.Connection:
    """The member's own address, which its certificate names: verify-full."""
    return psycopg.connect(host=lab.address(center), port=Ports.postgres, dbname="postgres",
                           user="postgres", password=lab.secret("postgres-superuser"),
                           autocommit=True, connect_timeout=3, sslmode="verify-full",
                           sslrootcert=patroni.ca_file(lab))


def _patroni_running(supervisor: Supervisor, center: str) -> bool:
    return any(i["name"] == f"{center}-patroni" and i["statename"] in ("RUNNING", "STARTING")
               for i in supervisor.processes())


def runbook_primary(lab: LabContext, supervisor: Supervisor) -> str | None:
    """The center whose PostgreSQL runs as a primary with no Patroni: promoted by hand."""
    for center in CENTERS:
        if patroni.postmaster_pid(lab, center) is None or _patroni_running(supervisor, center):
            continue
        try:
            with superuser(lab, center) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return center
        except psycopg.Error:
            continue
    return None


# --- keeping a member's WAL aside -------------------------------------------------------
def kept_root(lab: LabContext) -> Path:
    return lab.path("kept")


def kept(lab: LabContext) -> list[dict]:
    """What convergence kept aside so far, newest last (read by `lab status`)."""
    root = kept_root(lab)
    if not root.is_dir():
        return []
    entries = []
    for note in sorted(root.glob("*/kept.json")):
        try:
            entries.append({"path": str(note.parent), **json.loads(note.read_text())})
        except (OSError, ValueError):
            entries.append({"path": str(note.parent)})
    return entries


def keep_aside(lab: LabContext, center: str, why: str, member: dict) -> Path:
    """Copy the (stopped) member's pg_wal to `<lab>/kept/<center>-<UTC time>/` with a note."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = kept_root(lab) / f"{center}-{stamp}"
    target.mkdir(parents=True)
    for directory in (kept_root(lab), target):  # a copy of the database: root only
        directory.chmod(0o700)
    shutil.copytree(patroni.data_dir(lab, center) / "pg_wal", target / "pg_wal", symlinks=True)
    note = {"center": center, "why": why, "at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "timeline": member.get("timeline"), "state": member.get("state"),
            "lag": member.get("lag")}
    (target / "kept.json").write_text(json.dumps(note, indent=2))
    return target


# --- a replica that diverged -------------------------------------------------------------
def _stop_member(lab: LabContext, supervisor: Supervisor, center: str) -> None:
    """Stop Patroni (it shuts its PostgreSQL down on the way out), then make sure."""
    supervisor.stop_programs([f"{center}-patroni"])
    if patroni.postmaster_pid(lab, center) is not None:
        subprocess.run([str(binaries.PG_BIN / "pg_ctl"), "stop", "-m", "fast", "-w", "-D",
                        str(patroni.data_dir(lab, center))], user=patroni.OS_USER,
                       capture_output=True, timeout=60)
    if patroni.postmaster_pid(lab, center) is not None:
        raise RejoinError(f"PostgreSQL of {center} does not stop: not touching its data")


def pg_rewind(lab: LabContext, center: str, leader: str) -> tuple[bool, str]:
    """Rewind the stopped member onto the leader's timeline; (done, pg_rewind's last words)."""
    # As Patroni's own rewind: TLS verified against the CA copy the role gave postgres.
    source = (f"host={lab.address(leader)} port={Ports.postgres} user=rewinder "
              f"dbname=postgres connect_timeout=5 sslmode=verify-full "
              f"sslrootcert={patroni.tls_dir(lab, center) / 'ca.crt'}")
    done = subprocess.run(
        [str(binaries.PG_BIN / "pg_rewind"), "--target-pgdata", str(patroni.data_dir(lab, center)),
         "--source-server", source],
        user=patroni.OS_USER, cwd=patroni.config_dir(lab, center), capture_output=True, text=True,
        timeout=REWIND_TIMEOUT_SECONDS,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": lab.secret("postgres-rewind")})
    words = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return done.returncode == 0, words[-1] if words else ""


def rejoin(lab: LabContext, supervisor: Supervisor, center: str, leader: str, member: dict,
           rewind: bool = True) -> str:
    """Keep the member's WAL aside, rewind it from the leader, else (or when `rewind` is
    False: a rewind did not help before) re-clone it."""
    why = (f"timeline {member.get('timeline')}, state {member.get('state')}, not streaming "
           f"from {leader}")
    log.warning("%s diverged from %s (%s): rewinding", center, leader, why)
    try:
        _stop_member(lab, supervisor, center)
        target = keep_aside(lab, center, why, member)
        rewound, words = pg_rewind(lab, center, leader) if rewind else (False, "not tried again")
        # "no rewind required" is pg_rewind comparing timeline numbers only: with the same
        # number on two histories it changes nothing, and the member stays stuck
        if rewound and "no rewind required" not in words:
            return f"{center} rewound from {leader} ({words}); its WAL kept in {target}"
        log.warning("pg_rewind of %s failed (%s): re-cloning from %s", center, words, leader)
        # Patroni clones a member that has no data directory from the leader when it starts
        patroni.data_dir(lab, center).rename(target / "data")
        return (f"{center} re-cloned from {leader} (pg_rewind: {words}); its old data "
                f"directory and WAL kept in {target}")
    finally:
        supervisor.start_programs([f"{center}-patroni"])


class DivergenceWatch:
    """Which replicas have been running without streaming from the leader for longer than
    the grace period: those Patroni is not going to heal by itself."""

    def __init__(self, grace_seconds: float = DIVERGED_GRACE_SECONDS) -> None:
        self.grace = grace_seconds
        self.since: dict[str, float] = {}
        self.rewound: set[str] = set()  # a second time round, re-clone

    def diverged(self, database: dict, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        leader = database["leader"]
        leader_timeline = database["replicas"].get(leader, {}).get("timeline") if leader else None
        found = []
        for center, member in database["replicas"].items():
            off = (leader_timeline is not None and center != leader
                   and member.get("state") in patroni.RUNNING_STATES and not member["streaming"])
            if not off:
                self.since.pop(center, None)
                continue
            if now - self.since.setdefault(center, now) > self.grace:
                found.append(center)
        return found

    def forget(self, center: str) -> None:
        self.since.pop(center, None)


def rejoin_diverged(lab: LabContext, supervisor: Supervisor, watch: DivergenceWatch,
                    database: dict) -> list[str]:
    """Rewind (else re-clone) every replica the watch reports; returns what was done."""
    done = []
    for center in watch.diverged(database):
        done.append(rejoin(lab, supervisor, center, database["leader"], database["replicas"][center],
                           rewind=center not in watch.rewound))
        watch.rewound.add(center)
        watch.forget(center)
    return done


# --- a primary promoted outside Patroni ---------------------------------------------------
def _patroni_yml(lab: LabContext, center: str) -> Path:
    return patroni.config_file(lab, center)


def _tags(lab: LabContext, center: str) -> dict:
    return yaml.safe_load(_patroni_yml(lab, center).read_text())["tags"]


def set_tags(lab: LabContext, center: str, tags: dict) -> None:
    file = _patroni_yml(lab, center)
    config = yaml.safe_load(file.read_text())
    config["tags"].update(tags)
    file.write_text(yaml.safe_dump(config, sort_keys=False))  # keeps owner and mode


def edit_dcs_config(lab: LabContext, center: str, values: dict) -> None:
    """Change Patroni's dynamic config in etcd directly: works with no Patroni running."""
    args = [binaries.path("patronictl"), "-c", str(_patroni_yml(lab, center)),
            "edit-config", "--force"]
    for key, value in values.items():
        args += ["-s", f"{key}={json.dumps(value)}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RejoinError(f"patronictl edit-config failed: {done.stderr.strip() or done.stdout.strip()}")


def leader(lab: LabContext) -> str | None:
    return patroni.database_summary(lab)["leader"]


def rebuild_from(lab: LabContext, center: str, progress=lambda message: None) -> list[str]:
    """Rebuild the cluster around the primary promoted by hand in `center`, keep its
    writes, and fail back to main with every setting put back. Returns what was done."""
    faults, supervisor = LabFaults(lab), Supervisor(lab)
    done: list[str] = []
    city = [c for c in CENTERS if c != center]
    for other in city:
        faults.start_component(other, "etcd")
    wait_until("etcd quorum back", lambda: all(etcd.member_status(lab, c) for c in CENTERS), 60)
    original_tags = _tags(lab, center)
    edit_dcs_config(lab, center, {"synchronous_mode": False})
    set_tags(lab, center, {"nofailover": False, "nosync": False})
    with superuser(lab, center) as conn:
        conn.execute("ALTER SYSTEM RESET synchronous_standby_names")  # set by the promotion
        conn.execute("SELECT pg_reload_conf()")
    faults.start_component(center, "patroni")
    wait_until(f"{center} Patroni holds the leader lock", lambda: leader(lab) == center, 90)
    haproxy.admin(lab, f"enable health {haproxy.proxy(lab, 'read-write')}/{patroni.member_name(center)}")
    progress(f"{center} leads under Patroni again; starting the city as its followers")
    for other in city:
        faults.start_center(other)
    watch = DivergenceWatch()

    def city_follows() -> bool:
        database = patroni.database_summary(lab)
        done.extend(rejoin_diverged(lab, supervisor, watch, database))
        return all(database["replicas"][c]["streaming"] for c in city)
    wait_until(f"{', '.join(city)} rewound and following {center}", city_follows, 180, 0.5)
    intended = lab.placement.leader
    patroni.switchover(lab, intended)
    wait_until(f"{intended} leads again", lambda: leader(lab) == intended, 60)
    set_tags(lab, center, original_tags)
    api = patroni.client(lab, timeout=10)
    api.reload(patroni.member_name(center))
    api.patch_config(patroni.member_name(intended), {"synchronous_mode": True})
    done.insert(0, f"cluster rebuilt around the primary promoted by hand in {center} (its writes "
                   f"kept), city rewound to follow it, failed back to {intended}")
    return done
