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

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from inventory.errors import InvalidInventory, InventoryProblem, display_path
from inventory.model import GBT_EDITIONS, Cloud, Department, GbtStandard, System, Tier
from inventory.names import NAME_RE
from inventory.yamlsource import PathKey, YamlDocument, YamlFileError, load_yaml

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_INVENTORY = PACKAGE_DIR / "guangdong"
LAB_INVENTORY = PACKAGE_DIR / "lab"
STANDARDS_DIR = PACKAGE_DIR / "standards"
DEFAULT_GBT_EDITION = "2007"
INVENTORY_ENV = "TRICENTER_INVENTORY"
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
    department: str | None = None
    system: str | None = None

    def problem(self, root: Path, subpath: PathKey, message: str) -> InventoryProblem:
        full = self.path + subpath
        return InventoryProblem(
            file=display_path(self.file, root),
            path=format_path(full),
            message=message,
            line=self.document.line_of(full),
            department=self.department,
            system=self.system,
        )


@dataclass
class Topology:
    root: Path
    clouds: dict[str, Cloud] = field(default_factory=dict)
    tiers: dict[str, Tier] = field(default_factory=dict)
    departments: dict[str, Department] = field(default_factory=dict)
    systems: dict[str, System] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    # (kind, name) of objects kept though parts failed their schema: built from the valid
    # fields only, so cross-checks still run on them (every mistake at once); a check
    # that reaches a missing field skips that object, whose schema error is reported.
    incomplete: set[tuple[str, str]] = field(default_factory=set)
    # Names declared in files or entries that could not be read at all (and kinds whose
    # whole list file could not be): a reference to one is not reported as unknown, since
    # the real mistake, the unreadable file, is.
    unreadable: set[tuple[str, str]] = field(default_factory=set)
    unreadable_kinds: set[str] = field(default_factory=set)

    def may_exist(self, kind: str, name: str) -> bool:
        return kind in self.unreadable_kinds or (kind, name) in self.unreadable

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


def _subject(kind: str, value: Any) -> tuple[str | None, str | None]:
    """(department, system) a problem in this raw entry belongs to, as far as it says
    (a value that is not a valid name is shown in its own error, not repeated here)."""
    if not isinstance(value, dict):
        return None, None

    def text(key: str) -> str | None:
        found = value.get(key)
        return found if isinstance(found, str) and NAME_RE.fullmatch(found) else None

    if kind == "department":
        return text("id"), None
    if kind == "system":
        return text("department"), text("name")
    return None, None


class _Collector:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[InventoryProblem] = []

    def add(self, file: Path, path: PathKey, message: str, line: int | None,
            subject: tuple[str | None, str | None] = (None, None)) -> None:
        self.problems.append(InventoryProblem(display_path(file, self.root), format_path(path),
                                              message, line, *subject))

    def read(self, file: Path) -> YamlDocument | None:
        try:
            return load_yaml(file)
        except YamlFileError as exc:
            self.add(file, (), str(exc), exc.line)
        return None

    def parse(self, model: type[M], doc: YamlDocument, path: PathKey, value: Any,
              kind: str) -> tuple[M | None, bool]:
        """The object and whether it is complete; a failing one is reported and rebuilt
        from its valid fields (None when even that is impossible)."""
        try:
            return model.model_validate(value), True
        except ValidationError as exc:
            subject = _subject(kind, value)
            locations = []
            for err in exc.errors():
                # pydantic marks a bad mapping key with a trailing "[key]"; the key is the place.
                loc = tuple(part for part in err["loc"] if part != "[key]")
                locations.append(loc)
                self.add(doc.file, path + loc, explain(err), doc.line_of(path + loc), subject)
            return salvage(model, value, locations), False


_SHOWN_MAX = 60


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (an empty value)"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "…"


def _expected(ctx: dict) -> str:
    return ctx.get("expected", "").replace("'", "")


_WORDS: dict[str, Callable[[dict], str]] = {
    "greater_than_equal": lambda c: f"must be {c['ge']} or more",
    "greater_than": lambda c: f"must be more than {c['gt']}",
    "less_than_equal": lambda c: f"must be {c['le']} or less",
    "less_than": lambda c: f"must be less than {c['lt']}",
    "int_parsing": lambda c: "must be a whole number",
    "int_type": lambda c: "must be a whole number",
    "int_from_float": lambda c: "must be a whole number",
    "string_type": lambda c: "must be text (quote it if it looks like a number)",
    "bool_parsing": lambda c: "must be true or false",
    "bool_type": lambda c: "must be true or false",
    "enum": lambda c: f"must be one of {_expected(c)}",
    "literal_error": lambda c: f"must be {_expected(c)}",
    "dict_type": lambda c: "must be a mapping (indented 'key: value' lines)",
    "model_type": lambda c: "must be a mapping (indented 'key: value' lines)",
    "model_attributes_type": lambda c: "must be a mapping (indented 'key: value' lines)",
    "list_type": lambda c: "must be a list ('- item' lines)",
    "ip_v4_network": lambda c: "must be an IPv4 network with its prefix, such as 10.1.0.0/16, "
                               "with no host bits set",
}


def explain(err: dict) -> str:
    """A schema error in the words of the person who wrote the file: what the value must
    be and what it is, never pydantic's "Input should be …"."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key — remove it or check its spelling against docs/inventory.md"
    if kind == "missing":
        return "required field is missing — add it"
    got = f", got {_shown(err.get('input'))}"
    if kind == "too_short":
        what = "entry" if ctx.get("field_type") == "Dictionary" else "item"
        return f"must have at least {ctx['min_length']} {what}(s), got {ctx['actual_length']}"
    if kind == "name_format":
        return f"must be {ctx['rule']}{got}"
    if kind == "string_pattern_mismatch":
        return f"names use lower-case letters, digits and '-', starting with a letter{got}"
    if kind in _WORDS:
        return _WORDS[kind](ctx) + got
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return f"{err['msg']}{got}"


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    info = model.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[info.annotation, *info.metadata])  # type: ignore[misc]


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    inner = [a for a in get_args(annotation) if a is not type(None)]  # `Model | None`
    if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
        return inner[0]
    return None


def salvage(model: type[M], value: Any, failed: list[PathKey]) -> M | None:
    """`model` built from the fields of `value` that passed: a failed field takes its default,
    a failed nested mapping is salvaged the same way, and a failed required field is left
    unset (reading it raises AttributeError). None when `value` is not a mapping."""
    if not isinstance(value, dict) or () in failed:
        return None
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in value:
            continue  # model_construct fills defaults; a missing required field stays unset
        below = [loc[1:] for loc in failed if loc[:1] == (key,)]
        if not below:
            fields[name] = _field_adapter(model, name).validate_python(value[key])
            continue
        nested = _model_class(info.annotation)
        part = salvage(nested, value[key], below) if nested else None
        if part is not None:
            fields[name] = part
        elif not info.is_required():
            fields[name] = info.get_default(call_default_factory=True)
    return model.model_construct(**fields)


def _list_file(col: _Collector, file: Path, model: type[M], key_field: str, kind: str,
               topo: Topology, into: dict[str, M]) -> None:
    if not file.exists():
        col.add(file, (), f"missing file: create {file.name} with a list of {kind}s", None)
        return
    doc = col.read(file)
    if doc is None or not isinstance(doc.data, list):
        topo.unreadable_kinds.add(kind)
    if doc is None:
        return
    if not isinstance(doc.data, list):
        col.add(file, (), f"must be a YAML list of {kind}s (got {type(doc.data).__name__})", doc.line_of(()))
        return
    for index, entry in enumerate(doc.data):
        obj, complete = col.parse(model, doc, (index,), entry, kind)
        name = getattr(obj, key_field, None)
        if name is None:
            # What it declares is unknown, so no reference to a missing one is reported.
            topo.unreadable_kinds.add(kind)
            continue
        if name in into:
            first = topo.origins[(kind, name)]
            col.add(file, (index, key_field),
                    f"duplicate {kind} '{name}' (first declared in "
                    f"{display_path(first.file, topo.root)}) — rename one of them",
                    doc.line_of((index, key_field)))
            continue
        _register(topo, kind, name, obj, complete, into, Origin(file, (index,), doc,
                                                               *_subject(kind, entry)))


def _unreadable(topo: Topology, kind: str, name: object) -> None:
    if isinstance(name, str):
        topo.unreadable.add((kind, name))


def _register(topo: Topology, kind: str, name: str, obj: M, complete: bool,
              into: dict[str, M], origin: Origin) -> None:
    into[name] = obj
    topo.origins[(kind, name)] = origin
    if not complete:
        topo.incomplete.add((kind, name))


def _one_per_file(col: _Collector, files: list[Path], model: type[M], kind: str,
                  topo: Topology, into: dict[str, M]) -> None:
    for file in files:
        # By convention the file is named after what it declares (systems/<dept>/<name>.yaml).
        doc = col.read(file)
        if doc is None:
            _unreadable(topo, kind, file.stem)
            continue
        if not isinstance(doc.data, dict):
            col.add(file, (), f"must be a YAML mapping describing one {kind}", doc.line_of(()))
            _unreadable(topo, kind, file.stem)
            continue
        obj, complete = col.parse(model, doc, (), doc.data, kind)
        name = getattr(obj, "name", None)
        if name is None:
            _unreadable(topo, kind, file.stem)
            _unreadable(topo, kind, doc.data.get("name"))
            continue
        if name in into:
            first = topo.origins[(kind, name)]
            col.add(file, ("name",),
                    f"duplicate {kind} '{name}' (also in {display_path(first.file, topo.root)}) "
                    f"— {kind} names must be unique across the inventory",
                    doc.line_of(("name",)))
            continue
        _register(topo, kind, name, obj, complete, into,
                  Origin(file, (), doc, *_subject(kind, doc.data)))


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


def default_inventory() -> Path:
    """`$TRICENTER_INVENTORY`, else the sample (inventory/guangdong)."""
    configured = os.environ.get(INVENTORY_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_INVENTORY


def gbt_table_file(edition: str) -> Path:
    return STANDARDS_DIR / f"gbt20988-{edition}.yaml"


@cache
def load_gbt_table(edition: str = DEFAULT_GBT_EDITION) -> GbtStandard:
    """The GB/T 20988 level table of one edition (inventory/standards/gbt20988-<edition>.yaml)."""
    if edition not in GBT_EDITIONS:
        raise ValueError(f"GB/T 20988 edition {edition!r} is not shipped; known: "
                         f"{', '.join(GBT_EDITIONS)} (inventory/standards/)")
    table = GbtStandard.model_validate(load_yaml(gbt_table_file(edition)).data)
    if table.edition != edition:
        raise ValueError(f"{gbt_table_file(edition)}: declares edition {table.edition!r}, "
                         f"its name says {edition!r}")
    return table


def _merge_shared(problems: list[InventoryProblem]) -> list[InventoryProblem]:
    """One problem for a value that several entries share through a YAML anchor (`quotas:
    *id001`): it is written, and fixed, once; listing it per department hides the others."""
    groups: dict[tuple[str, int | None, str, str], list[InventoryProblem]] = {}
    for problem in problems:
        inner = re.sub(r"^\[\d+\]", "", problem.path)
        key = (problem.file, problem.line, problem.message, inner)
        groups.setdefault(key if problem.line and inner != problem.path else (id(problem),),
                          []).append(problem)
    merged = []
    for same in groups.values():
        first = same[0]
        owners = [p.department for p in same if p.department]
        if len(same) > 1 and len(owners) == len(same):
            first = replace(first, department=None, message=(
                f"{first.message} — written once and shared through a YAML anchor by "
                f"departments {', '.join(owners)}"))
        merged.append(first)
    return merged


def load_topology_and_problems(root: Path | str = DEFAULT_INVENTORY
                               ) -> tuple[Topology, list[InventoryProblem]]:
    """Load an inventory as far as it goes, with every schema problem found on the way.

    Objects with schema errors are kept, built from their valid fields (`Topology.incomplete`),
    so the cross-checks of `inventory.validate` can run on them in the same pass. Raises
    InvalidInventory only when there is no inventory directory at all.
    """
    root = Path(root).resolve()
    col = _Collector(root)
    topo = Topology(root=root)
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
    log.debug("loaded %s: %d system(s), %d problem(s)", root, len(topo.systems), len(col.problems))
    return topo, _merge_shared(col.problems)


def load_topology(root: Path | str = DEFAULT_INVENTORY) -> Topology:
    """Load and schema-check an inventory; raise InvalidInventory listing every problem.

    Cross-references (unknown tier, quota, placement …) are checked by `inventory.validate`,
    whose `load_valid_topology` reports them together with these.
    """
    topo, problems = load_topology_and_problems(root)
    if problems:
        raise InvalidInventory(problems)
    return topo
