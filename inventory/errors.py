"""Errors in an inventory: each names the file, the field path, the line, and the fix."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class InventoryProblem:
    file: str
    path: str
    message: str
    line: int | None = None
    department: str | None = None  # whose request or quota it is, when known
    system: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def subject(self) -> str:
        parts = [f"system {self.system}" if self.system else "",
                 f"department {self.department}" if self.department else ""]
        return ", ".join(p for p in parts if p)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        subject = f" [{self.subject}]" if self.subject else ""
        return f"{where}:{field} {self.message}{subject}"


class InvalidInventory(Exception):
    """The inventory has user mistakes; `problems` lists every one of them."""

    def __init__(self, problems: list[InventoryProblem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the inventory:\n" + "\n".join(map(str, problems)))


def display_path(file: Path, root: Path) -> str:
    """File name relative to the inventory's parent, so messages stay short but unambiguous."""
    try:
        return str(file.relative_to(root.parent))
    except ValueError:
        return str(file)
