"""Run `playbooks/site.yml` against the hosts of a runtime inventory.

The runtime inventory is the only input: its Ansible view is written to a private
temporary directory, with Ansible's own state (home, temp, SSH control sockets) beside
it, and ansible-playbook runs with a callback that reports every event as a JSON line.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from inventory.runtime import RuntimeInventory, ansible_inventory

log = logging.getLogger(__name__)

PLAYBOOKS = Path(__file__).resolve().parent
SITE = PLAYBOOKS / "site.yml"
RECAP_KEYS = ("ok", "changed", "failed", "unreachable")
# A failure of these means the inventory is wrong, not the hosts: exit 2, like bad input.
INPUT_CHECKS = ("validate_argument_spec", "ansible.builtin.validate_argument_spec",
                "assert", "ansible.builtin.assert")

Event = dict
OnEvent = Callable[[Event], None]


class BadInput(ValueError):
    """The runtime inventory cannot be configured; the message says what to fix."""


@dataclass
class Recap:
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    returncode: int = 0
    bad_input: list[str] = field(default_factory=list)  # messages of failed input checks
    errors: str = ""  # ansible-playbook's stderr when it ended without a recap

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and bool(self.hosts)
                and not any(h["failed"] or h["unreachable"] for h in self.hosts.values()))

    def as_json(self) -> dict:
        return {"ok": self.ok, "hosts": {name: {k: counts.get(k, 0) for k in RECAP_KEYS}
                                         for name, counts in sorted(self.hosts.items())}}


def load_runtime(file: Path) -> RuntimeInventory:
    try:
        runtime = RuntimeInventory.load(file)
    except FileNotFoundError:
        raise BadInput(f"{file}: no such runtime inventory (`tricenter runtime --out DIR` "
                       "or `tricenter lab up` writes one)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{file}: cannot be read as YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"{file}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None
    if not any(h.ssh for h in runtime.hosts):
        raise BadInput(f"{file}: no host has an `ssh` entry, so Ansible can reach none")
    return runtime


def environment(state: Path, **overrides: str) -> dict[str, str]:
    """Ansible's settings for one run whose state lives under `state`; `overrides` (e.g.
    another stdout callback) win over the defaults."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_HOME": str(state / "home"),
        "ANSIBLE_LOCAL_TEMP": str(state / "tmp"),
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
        "ANSIBLE_FILTER_PLUGINS": str(PLAYBOOKS / "filter_plugins"),
        "ANSIBLE_CALLBACK_PLUGINS": str(PLAYBOOKS / "callback_plugins"),
        "ANSIBLE_STDOUT_CALLBACK": "tricenter_events",
        "ANSIBLE_HOST_KEY_CHECKING": "True",  # known_hosts from the inventory, never TOFU
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_PIPELINING": "True",
        # One SSH connection per host for the whole run; the socket path must stay short.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(state / "cp"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
    })
    env.update(overrides)
    return env


@contextmanager
def state_dir(prefix: str = "tricenter-ansible-") -> Iterator[Path]:
    """A private (0700) folder for one Ansible run's home, temp and SSH sockets."""
    state = Path(tempfile.mkdtemp(prefix=prefix))  # 0700
    try:
        for sub in ("home", "tmp", "cp"):
            (state / sub).mkdir(mode=0o700)
        yield state
    finally:
        shutil.rmtree(state, ignore_errors=True)


def command(inventory_file: Path, *, check: bool, diff: bool, limit: str | None,
            tags: str | None) -> list[str]:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_file),
            str(SITE)]
    argv += ["--check"] * check + ["--diff"] * diff
    if limit:
        argv += ["--limit", limit]
    if tags:
        argv += ["--tags", tags]
    return argv


def run(runtime: RuntimeInventory, *, check: bool = False, diff: bool = False,
        limit: str | None = None, tags: str | None = None,
        on_event: OnEvent | None = None) -> Recap:
    """Run the site playbook; each event goes to `on_event` as it happens."""
    recap = Recap()
    with state_dir() as state:
        inventory_file = state / "inventory.yml"
        inventory_file.write_text(yaml.safe_dump(ansible_inventory(runtime), sort_keys=False))
        stderr_file = state / "stderr"
        argv = command(inventory_file, check=check, diff=diff, limit=limit, tags=tags)
        log.info("running %s", " ".join(argv))
        # stderr to a file: a pipe read only at the end could fill and stall Ansible.
        with stderr_file.open("w") as errors, subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=errors, text=True,
                env=environment(state), cwd=PLAYBOOKS) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                event = _parse(line)
                if event is None:
                    continue
                if event["event"] == "stats":
                    recap.hosts = event["hosts"]
                if (event["event"] == "result" and event["status"] == "failed"
                        and event.get("action") in INPUT_CHECKS):
                    recap.bad_input.append(f"{event['host']}: {event.get('msg', '')}")
                if on_event:
                    on_event(event)
        stderr = stderr_file.read_text()
        recap.returncode = proc.returncode
        if not recap.hosts or proc.returncode not in (0, 2, 4):
            recap.errors = stderr.strip()
    return recap


def _parse(line: str) -> Event | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
