"""Load an inventory directory into a `Topology`, collecting every schema problem at once.

Layout of an inventory directory::

    clouds/<cloud>.yaml          one cloud and its centers, flavors, images
    tiers.yaml                   list of tiers (RTO/RPO targets, placement)
    departments.yaml             list of departments (tenants) and their quotas
    systems/**/<system>.yaml     one reviewed request per system
    ipam.lock.yaml               address blocks already handed out (written by `tricenter ipam`)
    cloud-snapshot.yaml          not read here: what the real cloud has, for `plan --snapshot`

Any other file whose name ends in .yaml or .yml is an error: it looks like part of the
inventory, and a request nobody reads would silently drop out of plans. Names starting
with '.' (editor and VCS files) are neither read nor reported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from inventory.errors import InvalidInventory, InventoryProblem, display_path
from inventory.model import Cloud, Department, GbtStandard, System, Tier
from inventory.yamlsource import PathKey, YamlDocument, YamlFileError, load_yaml

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_INVENTORY = PACKAGE_DIR / "guangdong"
LAB_INVENTORY = PACKAGE_DIR / "lab"
GBT_TABLE = PACKAGE_DIR / "standards" / "gbt20988-2007.yaml"
IPAM_LOCK_NAME = "ipam.lock.yaml"
TOP_LEVEL_FILES = ("tiers.yaml", "departments.yaml", IPAM_LOCK_NAME)
# Kept beside the inventory and read by other commands (`tricenter plan --snapshot`).
COMPANION_FILES = ("cloud-snapshot.yaml",)
YAML_SUFFIXES = (".yaml", ".yml")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Origin:
    """Where a model object was declared, so cross-checks can point back at it."""

    file: Path
    path: PathKey
    document: YamlDocument

    def problem(self, root: Path, subpath: PathKey, message: str) -> InventoryProblem:
        full = self.path + subpath
        return InventoryProblem(
            file=display_path(self.file, root),
            path=format_path(full),
            message=message,
            line=self.document.line_of(full),
        )


@dataclass
class Topology:
    root: Path
    clouds: dict[str, Cloud] = field(default_factory=dict)
    tiers: dict[str, Tier] = field(default_factory=dict)
    departments: dict[str, Department] = field(default_factory=dict)
    systems: dict[str, System] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    gbt: GbtStandard | None = None

    def origin(self, kind: str, name: str) -> Origin:
        return self.origins[(kind, name)]

    def cloud_of(self, system: System) -> Cloud:
        return self.clouds[self.departments[system.department].cloud]

    def systems_in_cloud(self, cloud: str) -> list[System]:
        return [s for s in self.systems.values() if self.departments[s.department].cloud == cloud]

    @property
    def ipam_lock_file(self) -> Path:
        return self.root / IPAM_LOCK_NAME


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, str) and not part.isprintable():
            part = repr(part)  # a key from the file must not put control characters on a terminal
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Collector:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[InventoryProblem] = []

    def add(self, file: Path, path: PathKey, message: str, line: int | None) -> None:
        self.problems.append(
            InventoryProblem(display_path(file, self.root), format_path(path), message, line)
        )

    def read(self, file: Path) -> YamlDocument | None:
        try:
            return load_yaml(file)
        except YamlFileError as exc:
            self.add(file, (), str(exc), exc.line)
        return None

    def parse(self, model: type[M], doc: YamlDocument, path: PathKey, value: Any) -> M | None:
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            for err in exc.errors():
                # pydantic marks a bad mapping key with a trailing "[key]"; the key is the place.
                loc = path + tuple(part for part in err["loc"] if part != "[key]")
                self.add(doc.file, loc, _explain(err), doc.line_of(loc))
            return None


def _explain(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key — remove it or check its spelling against docs/inventory.md"
    if kind == "missing":
        return "required field is missing — add it"
    if kind == "string_pattern_mismatch":
        return f"{msg}: names use lower-case letters, digits and '-', starting with a letter"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return f"{msg} (got {shown})"


def _list_file(col: _Collector, file: Path, model: type[M], key_field: str, kind: str,
               topo: Topology, into: dict[str, M]) -> None:
    if not file.exists():
        col.add(file, (), f"missing file: create {file.name} with a list of {kind}s", None)
        return
    doc = col.read(file)
    if doc is None:
        return
    if not isinstance(doc.data, list):
        col.add(file, (), f"must be a YAML list of {kind}s (got {type(doc.data).__name__})", doc.line_of(()))
        return
    for index, entry in enumerate(doc.data):
        obj = col.parse(model, doc, (index,), entry)
        if obj is None:
            continue
        name = getattr(obj, key_field)
        if name in into:
            first = topo.origins[(kind, name)]
            col.add(file, (index, key_field),
                    f"duplicate {kind} '{name}' (first declared in "
                    f"{display_path(first.file, topo.root)}) — rename one of them",
                    doc.line_of((index, key_field)))
            continue
        into[name] = obj
        topo.origins[(kind, name)] = Origin(file, (index,), doc)


def _one_per_file(col: _Collector, files: list[Path], model: type[M], kind: str,
                  topo: Topology, into: dict[str, M]) -> None:
    for file in files:
        doc = col.read(file)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            col.add(file, (), f"must be a YAML mapping describing one {kind}", doc.line_of(()))
            continue
        obj = col.parse(model, doc, (), doc.data)
        if obj is None:
            continue
        name = obj.name
        if name in into:
            first = topo.origins[(kind, name)]
            col.add(file, ("name",),
                    f"duplicate {kind} '{name}' (also in {display_path(first.file, topo.root)}) "
                    f"— {kind} names must be unique across the inventory",
                    doc.line_of(("name",)))
            continue
        into[name] = obj
        topo.origins[(kind, name)] = Origin(file, (), doc)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _yaml_files(folder: Path, pattern: str) -> list[Path]:
    """Files `pattern` matches under `folder`, leaving out hidden names at any depth."""
    return sorted(f for f in folder.glob(pattern)
                  if not any(_hidden(part) for part in f.relative_to(folder).parts))


def _in_layout(relative: Path) -> bool:
    """Whether the loader reads a file at this place (relative to the inventory root)."""
    top = relative.parts[0]
    if len(relative.parts) == 1:
        return top in TOP_LEVEL_FILES
    return relative.suffix == ".yaml" and (
        top == "systems" or (top == "clouds" and len(relative.parts) == 2))


def _unread_message(relative: Path) -> str:
    renamed = relative.with_suffix(".yaml")
    if relative.suffix != ".yaml" and _in_layout(renamed):
        fix = f"tricenter reads only names ending in '.yaml': rename it to {renamed.name}"
    else:
        fix = ("tricenter reads clouds/<cloud>.yaml, tiers.yaml, departments.yaml, "
               f"systems/<dept>/<system>.yaml and {IPAM_LOCK_NAME}: move it where it belongs")
    return (f"file is not read — {fix}; to keep it unread on purpose, rename it to "
            f"{relative.name}.disabled or move it out of the inventory")


def _report_unread(col: _Collector, root: Path, read: set[Path]) -> None:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            file = Path(folder) / name
            if _hidden(name) or not name.lower().endswith(YAML_SUFFIXES) or file in read:
                continue
            if file.relative_to(root).as_posix() in COMPANION_FILES:
                continue
            col.add(file, (), _unread_message(file.relative_to(root)), None)


def load_gbt_table(file: Path = GBT_TABLE) -> GbtStandard:
    return GbtStandard.model_validate(load_yaml(file).data)


def load_topology(root: Path | str = DEFAULT_INVENTORY) -> Topology:
    """Load and schema-check an inventory; raise InvalidInventory listing every problem.

    Cross-references (unknown tier, quota, placement …) are checked by `inventory.validate`.
    """
    root = Path(root).resolve()
    col = _Collector(root)
    topo = Topology(root=root, gbt=load_gbt_table())
    if not root.is_dir():
        raise InvalidInventory([InventoryProblem(str(root), "", "inventory directory not found — "
                                                 "pass --inventory DIR pointing at one")])
    cloud_files = _yaml_files(root / "clouds", "*.yaml")
    if not cloud_files:
        col.add(root / "clouds", (), "no clouds declared: add clouds/<name>.yaml", None)
    _one_per_file(col, cloud_files, Cloud, "cloud", topo, topo.clouds)
    _list_file(col, root / "tiers.yaml", Tier, "name", "tier", topo, topo.tiers)
    _list_file(col, root / "departments.yaml", Department, "id", "department", topo, topo.departments)
    system_files = _yaml_files(root / "systems", "**/*.yaml")
    _one_per_file(col, system_files, System, "system", topo, topo.systems)
    # the IPAM lock is read by inventory.ipam when addresses are checked
    _report_unread(col, root, {*cloud_files, *system_files, *(root / n for n in TOP_LEVEL_FILES)})
    if col.problems:
        raise InvalidInventory(col.problems)
    return topo
