"""One YAML file per system that says where its migration stands (os-migrate style: a
person can read it, and every step reads and writes it).

A step is marked `running` before it acts and cleared when it finishes, so a crash at any
point leaves a record that says which step to rerun. Writes are atomic (a temporary file
renamed over the old one): a crash never leaves half a record."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from playbooks.migration.lifecycle import State, Step, check, state_after, state_during


class RecordProblem(ValueError):
    """A record file that cannot be read; the message names the file and the fix."""


class StepRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float | None = None
    ok: bool | None = None
    error: str | None = None


class Running(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Step
    started_at: datetime
    from_state: State  # where to return if the step fails cleanly


class MigrationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False)
    system: str
    state: State = State.not_ready
    running: Running | None = None
    steps: dict[Step, StepRun] = Field(default_factory=dict)
    discovery: dict | None = None
    precheck: dict | None = None  # {"ok": bool, "problems": [...]}
    replication: dict | None = None  # tables, rows, bytes, lag
    cutover_downtime_seconds: float | None = None
    acknowledged_writes: int = 0
    lost_writes: int = 0
    verified: bool = False
    verification: dict | None = None
    approved_by: str | None = None

    def begin(self, step: Step, now: datetime | None = None) -> None:
        """Check the step may run, then mark it running (resuming keeps the first start)."""
        running = self.running.step if self.running else None
        check(step, self.state, running)
        if running == step:
            return
        now = now or _now()
        from_state = self.running.from_state if self.running else self.state
        self.running = Running(step=step, started_at=now, from_state=from_state)
        self.state = state_during(step, self.state)
        self.steps[step] = StepRun(started_at=now)

    def finish(self, step: Step, now: datetime | None = None) -> None:
        assert self.running is not None and self.running.step == step, "finish without begin"
        now = now or _now()
        run = self.steps[step]
        run.finished_at, run.ok, run.error = now, True, None
        run.seconds = round((now - run.started_at).total_seconds(), 3)
        self.state = state_after(step, self.running.from_state)
        self.running = None

    def fail(self, step: Step, error: str, now: datetime | None = None) -> None:
        """A step that failed cleanly (it said so, it did not crash) returns to where it
        started; a cutover that failed stays `cutting-over` for a rerun or a rollback."""
        assert self.running is not None and self.running.step == step, "fail without begin"
        run = self.steps[step]
        run.finished_at, run.ok, run.error = now or _now(), False, error[:500]
        if step != Step.cutover:
            self.state = self.running.from_state
            self.running = None

    def status(self) -> dict:
        """The stable status contract of `tricenter migrate status SYSTEM --json`."""
        return {"system": self.system, "state": self.state.value,
                "cutover_downtime_seconds": self.cutover_downtime_seconds,
                "acknowledged_writes": self.acknowledged_writes,
                "lost_writes": self.lost_writes, "verified": self.verified}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RecordStore:
    """The folder of records, one `<system>.yaml` each."""

    def __init__(self, folder: Path):
        self.folder = folder

    def file(self, system: str) -> Path:
        return self.folder / f"{system}.yaml"

    def load(self, system: str) -> MigrationRecord:
        file = self.file(system)
        if not file.exists():
            return MigrationRecord(system=system)
        try:
            data = yaml.safe_load(file.read_text())
            return MigrationRecord.model_validate(data)
        except (yaml.YAMLError, ValidationError, TypeError) as exc:
            raise RecordProblem(f"{file}: not a migration record ({str(exc).splitlines()[0]}); "
                                "fix or remove the file (the step runs from its "
                                "recorded state)") from None

    def save(self, record: MigrationRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(record.model_dump(mode="json"), sort_keys=False)
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{record.system}.")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.file(record.system))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def exclusive(self, system: str) -> Iterator[None]:
        """One step at a time per system; the kernel releases the lock of a killed run."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f".{system}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RecordProblem(f"another `tricenter migrate` step is running for {system} "
                                    f"(lock {lock.name}); wait for it") from None
            yield

    def all(self) -> list[MigrationRecord]:
        return [self.load(f.stem) for f in sorted(self.folder.glob("*.yaml"))]
