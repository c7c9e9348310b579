"""Stdout callback for `tricenter configure`: one JSON object per line, per event.

Events: `task` (a task starts), `result` (one host's outcome of a task: ok, changed,
failed, skipped, unreachable; the message of a failure, a diff in diff mode), `stats`
(the recap). Results of `no_log` tasks arrive here already censored by Ansible; this
callback adds nothing of a result beyond its message and diff, and drops the diff of a
censored result too.
"""
from __future__ import annotations

import json
import sys

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: tricenter_events
type: stdout
short_description: JSON lines for tricenter configure
description: One JSON object per line for each task start, host result and the recap.
"""

VALIDATE_ACTIONS = ("validate_argument_spec", "ansible.builtin.validate_argument_spec")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "tricenter_events"

    def _emit(self, event: dict) -> None:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()

    def v2_playbook_on_play_start(self, play) -> None:
        self._emit({"event": "play", "name": play.get_name()})

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._emit({"event": "task", "name": task.get_name()})

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._emit({"event": "task", "name": task.get_name(), "handler": True})

    def _result(self, result, status: str) -> None:
        data = result._result
        censored = bool(data.get("censored")) or result._task.no_log
        event = {"event": "result", "host": result._host.get_name(),
                 "task": result._task.get_name(), "status": status,
                 "action": result._task.action}
        if status in ("failed", "unreachable"):
            event["msg"] = str(data.get("msg", data.get("censored", "")))[:2000]
        if not censored and context.CLIARGS.get("diff", False) and data.get("diff"):
            diffs = data["diff"] if isinstance(data["diff"], list) else [data["diff"]]
            event["diff"] = "".join(self._get_diff(d) for d in diffs)
        self._emit(event)

    def v2_runner_on_ok(self, result) -> None:
        self._result(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._result(result, "unreachable")

    def v2_runner_item_on_failed(self, result) -> None:
        pass  # the loop's own failure follows, once per host

    def v2_playbook_on_stats(self, stats) -> None:
        hosts = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            hosts[host] = {"ok": summary["ok"], "changed": summary["changed"],
                           "failed": summary["failures"], "unreachable": summary["unreachable"],
                           "skipped": summary["skipped"], "rescued": summary["rescued"],
                           "ignored": summary["ignored"]}
        self._emit({"event": "stats", "hosts": hosts})
