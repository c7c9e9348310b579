"""The writer's ledger of a migration: every write the application (or a test writer)
had acknowledged, on which side, when. Kept beside the system's record as JSON lines
(`<system>.writes.jsonl`) so that downtime and lost writes are measured from what a writer
saw, not from the host's clock around the fence.

Write downtime = the first acknowledged write on the target − the last acknowledged write
on the source before it. Lost writes = acknowledged ids that the side now serving does not
hold (verify checks the target after cutover, rollback the source after it)."""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path


class LedgerProblem(ValueError):
    """The ledger file cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Ack:
    table: str  # qualified, as discover names it: public.person
    key: str  # the key column the id is in
    id: int
    side: str  # source | target
    at: float  # wall clock, seconds


def ledger_file(folder: Path, system: str) -> Path:
    return folder / f"{system}.writes.jsonl"


class Ledger:
    """Append-only, thread-safe; each line is flushed as it is acknowledged."""

    def __init__(self, file: Path):
        self.file = file
        self._lock = threading.Lock()

    def add(self, ack: Ack) -> None:
        line = json.dumps(asdict(ack)) + "\n"
        with self._lock, self.file.open("a") as out:
            out.write(line)


def read(file: Path) -> list[Ack]:
    if not file.exists():
        return []
    acks = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            acks.append(Ack(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise LedgerProblem(f"{file}:{number}: not a ledger line ({exc})") from None
    return acks


def downtime(acks: list[Ack]) -> float | None:
    """Seconds from the last source ack before the first target ack to that target ack;
    None until the writer has seen both sides."""
    on_target = [a.at for a in acks if a.side == "target"]
    if not on_target:
        return None
    first_target = min(on_target)
    before = [a.at for a in acks if a.side == "source" and a.at < first_target]
    return round(first_target - max(before), 3) if before else None


def acked_ids(acks: list[Ack]) -> dict[str, dict]:
    """{table: {"key": column, "ids": [...]}} for the step that looks them up."""
    found: dict[str, dict] = {}
    for ack in acks:
        found.setdefault(ack.table, {"key": ack.key, "ids": []})["ids"].append(ack.id)
    return found
