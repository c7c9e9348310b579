"""Drill scenarios: recovery plans as data (`dr/scenarios/*.yaml`), checked by a schema.

A scenario names centers by *role* (main, samecity, remote) so it runs unchanged on any
cloud whose runtime inventory maps roles to center names. Errors name the file, the
field, the line and the fix, like the inventory's.
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inventory.yamlsource import YamlFileError, load_yaml

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

CenterRole = Literal["main", "samecity", "remote"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(str, enum.Enum):
    """Everything a step can do. Fault actions go through the FaultInjector; database
    actions through Patroni's REST API or SQL; `hold` keeps a fault in place on purpose."""

    kill_center = "kill_center"
    start_center = "start_center"
    freeze_center = "freeze_center"
    thaw_center = "thaw_center"
    isolate_center = "isolate_center"
    heal_center = "heal_center"
    kill_component = "kill_component"
    start_component = "start_component"
    hold = "hold"
    switchover = "switchover"
    wait_leader = "wait_leader"
    wait_healthy = "wait_healthy"
    wait_layout = "wait_layout"
    declare_disaster = "declare_disaster"
    promote_remote = "promote_remote"
    reprotect_from_remote = "reprotect_from_remote"
    backup = "backup"
    restore_copy = "restore_copy"
    verify_copy = "verify_copy"
    drop_copy = "drop_copy"


# Which parameters each action needs; checked so a typo fails at load, not mid-drill.
NEEDS: dict[Action, tuple[str, ...]] = {
    Action.kill_center: ("center",),
    Action.start_center: ("center",),
    Action.freeze_center: ("center",),
    Action.thaw_center: ("center",),
    Action.isolate_center: ("center",),
    Action.heal_center: ("center",),
    Action.kill_component: ("center", "component"),
    Action.start_component: ("center", "component"),
    Action.switchover: ("to",),
    Action.wait_leader: ("center",),
    Action.restore_copy: ("center",),
    Action.verify_copy: (),
}


class Step(Strict):
    action: Action
    center: CenterRole | None = None
    component: str | None = None
    to: CenterRole | None = None
    # hold: fixed seconds, or a multiple of the Patroni leader lease (ttl) read at run time
    seconds: float | None = Field(default=None, gt=0)
    lease_multiple: float | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=90, gt=0)
    note: str = ""

    @model_validator(mode="after")
    def _params(self) -> "Step":
        missing = [p for p in NEEDS.get(self.action, ()) if getattr(self, p) is None]
        if missing:
            raise ValueError(f"action '{self.action.value}' needs {', '.join(missing)} — add it")
        if self.action == Action.hold and (self.seconds is None) == (self.lease_multiple is None):
            raise ValueError("action 'hold' needs exactly one of seconds, lease_multiple")
        if self.component is not None:
            from dr.faults import COMPONENTS
            if self.component not in COMPONENTS:
                raise ValueError(f"unknown component '{self.component}' — one of {', '.join(COMPONENTS)}")
        return self


class Check(str, enum.Enum):
    """Named conditions verified before the fault and after recovery/restore."""

    cluster_healthy = "cluster_healthy"  # a leader, every member running
    original_layout = "original_layout"  # leader/sync/async where the inventory intends
    sync_standby = "sync_standby"  # a synchronous standby is attached
    remote_streaming = "remote_streaming"  # the async member streams
    app_reachable = "app_reachable"  # the active-active entry answers
    writes_resumed = "writes_resumed"  # acknowledged writes after the fault
    no_split_brain = "no_split_brain"
    no_lost_writes = "no_lost_writes"
    netns = "netns"  # the lab runs in network-namespace mode
    backup_repository = "backup_repository"  # pgBackRest reachable
    backup_present = "backup_present"  # ...and holding a backup to restore


class Workload(Strict):
    db_writers: int = Field(default=3, ge=0, le=32)
    app_writers: int = Field(default=1, ge=0, le=32)
    readers: int = Field(default=1, ge=0, le=8)
    rate_per_writer: float = Field(default=25, gt=0, le=1000, description="writes/s per writer")
    warmup_seconds: float = Field(default=3, ge=0)
    settle_seconds: float = Field(default=3, ge=0, description="keep writing after recovery")
    attempt_timeout_seconds: float = Field(default=3, gt=0)


class Recovery(Strict):
    mode: Literal["automatic", "runbook", "none"]
    expect_primary: CenterRole | None = None  # where the primary must be after recovery
    steps: list[Step] = []
    timeout_seconds: float = Field(default=90, gt=0)

    @model_validator(mode="after")
    def _runbook_has_steps(self) -> "Recovery":
        if self.mode == "runbook" and not self.steps:
            raise ValueError("recovery mode 'runbook' needs steps — list what the drill does")
        return self


class Targets(Strict):
    """Scenario-specific targets; RTO/RPO default to the system's tier when omitted."""

    rto_seconds: float | None = Field(default=None, gt=0)
    rpo_seconds: float | None = Field(default=None, ge=0)
    max_write_gap_seconds: float | None = Field(default=None, gt=0)
    rto_from: Literal["fault", "declaration"] = "fault"
    # async copies cannot promise the tier's RPO: measure it against the replication lag
    # sampled just before the fault instead
    rpo_against: Literal["tier", "replication_lag"] = "tier"


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    title: str
    kind: Literal["planned", "unplanned", "restore", "test"]
    description: str
    # For the Chinese report, read where only Chinese is read; the English text otherwise.
    title_zh: str | None = None
    description_zh: str | None = None
    requires: list[Literal["netns", "pgbackrest", "app"]] = []
    precheck: list[Check] = [Check.cluster_healthy, Check.original_layout]
    workload: Workload = Workload()
    fault: list[Step] = []
    recovery: Recovery
    verify: list[Check] = [Check.writes_resumed, Check.no_split_brain, Check.no_lost_writes]
    restore: list[Step] = []
    targets: Targets = Targets()
    # Alert names (monitoring/rules/*.yml) the fault must raise; the report says when each
    # fired and resolved, and names those that never fired.
    alerts: list[str] = Field(default=[], max_length=20)


class ScenarioProblem(Exception):
    """A scenario file is wrong; the message names file, field, line and fix."""


class UnknownScenario(Exception):
    pass


def _explain(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key — remove it or check its spelling against docs/dr-team.md"
    if err["type"] == "missing":
        return "required field is missing — add it"
    if err["type"] == "enum":
        return f"{err['msg']} (got {err.get('input')!r})"
    return err["msg"].removeprefix("Value error, ")


def load_scenario_file(file: Path) -> Scenario:
    try:
        doc = load_yaml(file)
    except YamlFileError as exc:
        raise ScenarioProblem(f"{file}:{exc.line or '?'}: {exc}") from None
    if not isinstance(doc.data, dict):
        raise ScenarioProblem(f"{file}: must be a YAML mapping describing one scenario")
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            path = ".".join(str(p) for p in loc) or "(top)"
            lines.append(f"{file}:{doc.line_of(loc) or '?'}: {path}: {_explain(err)}")
        raise ScenarioProblem("\n".join(lines)) from None
    if scenario.name != file.stem:
        raise ScenarioProblem(f"{file}:{doc.line_of(('name',))}: name: '{scenario.name}' must "
                              f"match the file name '{file.stem}' — rename one of them")
    return scenario


def load_catalogue(directory: Path = SCENARIO_DIR) -> dict[str, Scenario]:
    """Every scenario of the catalogue; all problems reported together."""
    scenarios: dict[str, Scenario] = {}
    problems: list[str] = []
    for file in sorted(directory.glob("*.yaml")):
        try:
            scenarios[file.stem] = load_scenario_file(file)
        except ScenarioProblem as exc:
            problems.append(str(exc))
    if problems:
        raise ScenarioProblem("\n".join(problems))
    return scenarios


def get_scenario(name: str, directory: Path = SCENARIO_DIR) -> Scenario:
    file = directory / f"{name}.yaml"
    if not file.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise UnknownScenario(f"no scenario '{name}' — known: {known} (see `tricenter drill list`)")
    return load_scenario_file(file)
