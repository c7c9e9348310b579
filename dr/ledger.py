"""The write ledger: every write attempt of a drill and what came back.

Pure data, thread-safe to append to, saved next to the report as JSON lines so a
checker run can be repeated (and audited) without the lab.
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Write:
    """One write attempt. `acked` means the commit returned success to the writer."""

    id: int
    channel: str  # "db" (read-write endpoint) or "app" (active-active entry)
    writer: int
    sent_at: float  # wall clock, seconds
    done_at: float
    acked: bool
    node: str | None = None  # which database node acknowledged it (member name)
    timeline: int | None = None
    system_id: str | None = None
    server_time: float | None = None  # the node's clock inside the write's transaction
    error: str | None = None


@dataclass(frozen=True)
class Read:
    """One read probe through the read-only endpoint."""

    sent_at: float
    done_at: float
    ok: bool
    node: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Observation:
    """What Patroni said at one moment: the leader its members agree on (None: no leader,
    or no majority of the members that answered named the same one) and its timeline."""

    at: float
    leader: str | None
    timeline: int | None
    members: dict[str, str]  # member → role/state, e.g. {"main": "leader/running"}
    # member → the leader it named, kept only when they disagreed (an auditor asks why)
    disputed: dict[str, str | None] = field(default_factory=dict)


class WriteLedger:
    """Append-only record of writes, reads and cluster observations of one drill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: list[Write] = []
        self.reads: list[Read] = []
        self.observations: list[Observation] = []

    def add_write(self, write: Write) -> None:
        with self._lock:
            self.writes.append(write)

    def add_read(self, read: Read) -> None:
        with self._lock:
            self.reads.append(read)

    def add_observation(self, obs: Observation) -> None:
        with self._lock:
            self.observations.append(obs)

    def snapshot(self) -> tuple[list[Write], list[Read], list[Observation]]:
        with self._lock:
            return list(self.writes), list(self.reads), list(self.observations)

    def acked(self) -> list[Write]:
        with self._lock:
            return [w for w in self.writes if w.acked]

    def save(self, file: Path) -> None:
        writes, reads, observations = self.snapshot()
        with file.open("w") as out:
            for kind, items in (("write", writes), ("read", reads), ("observation", observations)):
                for item in items:
                    out.write(json.dumps({"kind": kind, **asdict(item)}) + "\n")

    @classmethod
    def load(cls, file: Path) -> "WriteLedger":
        ledger = cls()
        for line in file.read_text().splitlines():
            record = json.loads(line)
            kind = record.pop("kind")
            if kind == "write":
                ledger.writes.append(Write(**record))
            elif kind == "read":
                ledger.reads.append(Read(**record))
            else:
                ledger.observations.append(Observation(**record))
        return ledger
