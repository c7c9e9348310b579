"""Cross-checks over a topology. Every rule returns problems; none raises, so a user sees
all mistakes at once — schema errors included: objects with schema errors arrive built from
their valid fields (`Topology.incomplete`) and are checked as far as those fields go."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from inventory import ipam
from inventory.demand import CenterDemand, system_demand
from inventory.errors import InvalidInventory, InventoryProblem
from inventory.loader import (DEFAULT_INVENTORY, Topology, load_gbt_table,
                              load_topology_and_problems)
from inventory.model import (ZERO, AppPlacement, CenterRole, Cloud, DbReplication, Department,
                             Resources, System, Tier)
from inventory.names import BUCKET_MAX, backup_bucket

Rule = Callable[[Topology], Iterator[InventoryProblem]]


def _at(topo: Topology, kind: str, name: str, *sub: str | int) -> Callable[[str], InventoryProblem]:
    origin = topo.origin(kind, name)
    return lambda message: origin.problem(topo.root, tuple(sub), message)


T = TypeVar("T")


def _each(topo: Topology, items: Iterable[T],
          check: Callable[[Topology, T], Iterator[InventoryProblem]]) -> Iterator[InventoryProblem]:
    """`check` on every item; one that reads a field its schema error left unset is skipped
    (that error is already reported) instead of ending the whole rule."""
    for item in items:
        try:
            yield from check(topo, item)
        except AttributeError:
            if not topo.incomplete:
                raise  # a complete topology has every field: this is a bug, not a user's mistake


def check_clouds(topo: Topology) -> Iterator[InventoryProblem]:
    yield from _each(topo, topo.clouds.values(), _cloud)


def _cloud(topo: Topology, cloud: Cloud) -> Iterator[InventoryProblem]:
    seen_roles: dict[CenterRole, str] = {}
    for name, center in cloud.centers.items():
        if center.role in seen_roles:
            yield _at(topo, "cloud", cloud.name, "centers", name, "role")(
                f"center '{name}' has role {center.role.value} like '{seen_roles[center.role]}'; "
                "a cloud has at most one center per role")
        seen_roles[center.role] = name
    items = list(cloud.centers.items())
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1:]:
            if a.address_space.overlaps(b.address_space):
                yield _at(topo, "cloud", cloud.name, "centers", name_b, "address_space")(
                    f"{b.address_space} overlaps center '{name_a}' ({a.address_space}); "
                    "give each center its own address space")
    sizes = cloud.ipam
    if not sizes.department_prefix < sizes.system_prefix < sizes.network_prefix:
        yield _at(topo, "cloud", cloud.name, "ipam")(
            "prefixes must grow: department_prefix < system_prefix < network_prefix")
    elif sizes.network_prefix - sizes.system_prefix < 1:
        yield _at(topo, "cloud", cloud.name, "ipam", "network_prefix")(
            f"a system block must hold {len(ipam.NETWORKS)} networks")


def check_departments(topo: Topology) -> Iterator[InventoryProblem]:
    yield from _each(topo, topo.departments.values(), _department)


def _department(topo: Topology, dept: Department) -> Iterator[InventoryProblem]:
    if dept.cloud not in topo.clouds and not topo.may_exist("cloud", dept.cloud):
        yield _at(topo, "department", dept.id, "cloud")(
            f"unknown cloud '{dept.cloud}'; known clouds: {', '.join(sorted(topo.clouds))}")


def check_tiers(topo: Topology) -> Iterator[InventoryProblem]:
    yield from _each(topo, topo.tiers.values(), _tier)


def _tier(topo: Topology, tier: Tier) -> Iterator[InventoryProblem]:
    levels = {lvl.level: lvl for lvl in load_gbt_table(tier.gbt20988_edition).levels}
    at = lambda *sub: _at(topo, "tier", tier.name, *sub)  # noqa: E731
    primaries = [r for r, m in tier.placement.database.items() if m == DbReplication.primary]
    if tier.placement.database and any(m != DbReplication.none
                                       for m in tier.placement.database.values()):
        if len(primaries) != 1:
            yield at("placement", "database")(
                f"exactly one center role must hold the primary (found {len(primaries)})")
    level = levels.get(tier.gbt20988_level)
    if level is None:
        return
    if level.rto_max_seconds is not None and tier.rto_seconds > level.rto_max_seconds:
        yield at("rto_seconds")(
            f"{tier.rto_seconds} s is above GB/T 20988-{tier.gbt20988_edition} level "
            f"{level.level}'s RTO bound "
            f"({level.rto_max_seconds} s); lower the target or the level")
    if level.rpo_max_seconds is not None and tier.rpo_seconds > level.rpo_max_seconds:
        yield at("rpo_seconds")(
            f"{tier.rpo_seconds} s is above GB/T 20988-{tier.gbt20988_edition} level "
            f"{level.level}'s RPO bound "
            f"({level.rpo_max_seconds} s); lower the target or the level")


def _system_refs(topo: Topology, system: System) -> Iterator[InventoryProblem]:
    at = lambda *sub: _at(topo, "system", system.name, *sub)  # noqa: E731
    if system.department not in topo.departments \
            and not topo.may_exist("department", system.department):
        yield at("department")(f"unknown department '{system.department}'; declare it in "
                               "departments.yaml or fix the id")
    if system.tier not in topo.tiers and not topo.may_exist("tier", system.tier):
        yield at("tier")(f"unknown tier '{system.tier}'; known tiers: {', '.join(sorted(topo.tiers))}")
    dept = topo.departments.get(system.department)
    cloud = topo.clouds.get(dept.cloud) if dept else None
    if cloud is None:
        return
    if system.app.flavor not in cloud.flavors:
        yield at("app", "flavor")(f"unknown flavor '{system.app.flavor}' in cloud {cloud.name}; "
                                  f"known: {', '.join(sorted(cloud.flavors))}")
    if system.app.image not in cloud.images:
        yield at("app", "image")(f"unknown image '{system.app.image}' in cloud {cloud.name}; "
                                 f"known: {', '.join(cloud.images)}")
    if system.database and system.database.flavor not in cloud.flavors:
        yield at("database", "flavor")(f"unknown flavor '{system.database.flavor}' in cloud "
                                       f"{cloud.name}; known: {', '.join(sorted(cloud.flavors))}")
    bucket = backup_bucket(cloud.name, system.name)
    if system.bucket and len(bucket) > BUCKET_MAX:
        yield at("name")(f"its backup bucket '{bucket}' would be {len(bucket)} characters, over "
                         f"the S3 limit of {BUCKET_MAX}; shorten the system or cloud name")


def _system_placement(topo: Topology, system: System) -> Iterator[InventoryProblem]:
    tier = topo.tiers.get(system.tier)
    dept = topo.departments.get(system.department)
    cloud = topo.clouds.get(dept.cloud) if dept else None
    if tier is None or cloud is None:
        return
    at = lambda *sub: _at(topo, "system", system.name, *sub)  # noqa: E731
    present = {c.role for c in cloud.centers.values()}
    needed = {r for r, p in tier.placement.app.items() if p != AppPlacement.none}
    if system.database:
        needed |= {r for r, m in tier.placement.database.items() if m != DbReplication.none}
    for role in sorted(needed - present, key=lambda r: r.value):
        yield at("tier")(f"tier '{tier.name}' places the system in a {role.value} center, but "
                         f"cloud {cloud.name} has none; choose another tier or add the center")
    for role in CenterRole:
        count = system.app.instances.get(role, 0)
        placement = tier.placement.app_role(role)
        if placement == AppPlacement.none and count:
            yield at("app", "instances", role.value)(
                f"tier '{tier.name}' runs no app instances in {role.value}; set it to 0 or "
                "choose a tier that does")
        elif placement != AppPlacement.none and count == 0 and role in present:
            yield at("app", "instances", role.value)(
                f"tier '{tier.name}' runs the app ({placement.value}) in {role.value}; "
                "give it at least 1 instance")


def _system_flows(topo: Topology, system: System) -> Iterator[InventoryProblem]:
    for index, flow in enumerate(system.flows):
        source = flow.source
        at = _at(topo, "system", system.name, "flows", index, "from")
        if source == "external":
            continue
        if source.startswith("department:"):
            department = source.split(":", 1)[1]
            if department not in topo.departments and not topo.may_exist("department", department):
                yield at(f"unknown department in '{source}'")
        elif source not in topo.systems and not topo.may_exist("system", source):
            yield at(f"unknown system '{source}'; use a system name, 'department:<id>' "
                     "or 'external'")
        elif source == system.name:
            yield at("a system needs no flow from itself; remove it")


def _system_folder(topo: Topology, system: System) -> Iterator[InventoryProblem]:
    """systems/<dept>/<system>.yaml: a request filed in another department's folder would
    be reviewed by the wrong people and counted against the wrong quota by a reader."""
    relative = topo.origin("system", system.name).file.relative_to(topo.root / "systems")
    folder = relative.parts[0] if len(relative.parts) > 1 else None
    if folder is not None and folder in topo.departments and folder != system.department:
        yield _at(topo, "system", system.name, "department")(
            f"system '{system.name}' of department '{system.department}' is filed under "
            f"systems/{folder}/, another department's folder; move it to "
            f"systems/{system.department}/ or fix the department")


def check_systems(topo: Topology) -> Iterator[InventoryProblem]:
    for check in (_system_folder, _system_refs, _system_placement, _system_flows):
        yield from _each(topo, topo.systems.values(), check)


def _resolvable(topo: Topology, system: System) -> bool:
    dept = topo.departments.get(system.department)
    cloud = topo.clouds.get(dept.cloud) if dept else None
    return (cloud is not None and system.tier in topo.tiers and system.app.flavor in cloud.flavors
            and (system.database is None or system.database.flavor in cloud.flavors))


def _countable_demand(topo: Topology, system: System) -> dict[CenterRole, CenterDemand] | None:
    """The system's demand per center role, or None when it cannot be counted: unresolved
    references, or a schema error in it or its department (see `Topology.incomplete`)."""
    try:
        if ("department", system.department) in topo.incomplete or not _resolvable(topo, system):
            return None
        return system_demand(topo.cloud_of(system), topo.tiers[system.tier], system)
    except AttributeError:
        if not topo.incomplete:
            raise
        return None


def department_usage(topo: Topology) -> dict[tuple[str, CenterRole], Resources]:
    """What each department's countable systems use per center role.

    A department or system with a schema error is left out: its quota or demand is not
    known, and a sum without it could only claim an overflow that is not there."""
    usage: dict[tuple[str, CenterRole], Resources] = defaultdict(lambda: ZERO)
    for system in topo.systems.values():
        for role, demand in (_countable_demand(topo, system) or {}).items():
            usage[(system.department, role)] += demand.resources
    return usage


def check_quotas(topo: Topology) -> Iterator[InventoryProblem]:
    usage = department_usage(topo)
    for (dept_id, role), used in sorted(usage.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
        dept = topo.departments[dept_id]
        quota = dept.quotas.get(role, ZERO)
        over = used.exceeding(quota)
        if over:
            yield _quota_problem(topo, dept_id, role, used, quota, over)


def _quota_problem(topo: Topology, dept_id: str, role: CenterRole, used: Resources,
                   quota: Resources, over: list[str]) -> InventoryProblem:
    """Points at this department's `quotas:` line — a quota shared through a YAML anchor
    would otherwise point at the department that declared the anchor — and names the
    department's systems that use the center, largest first."""
    detail = ", ".join(f"{d} {getattr(used, d)} > {getattr(quota, d)}" for d in over)
    demands = {s.name: d[role].resources for s in topo.systems.values()
               if s.department == dept_id and (d := _countable_demand(topo, s))}
    systems = sorted(demands, key=lambda name: -getattr(demands[name], over[0]))
    names = ", ".join(systems[:5]) + (" …" if len(systems) > 5 else "")
    origin = topo.origin("department", dept_id)
    problem = origin.problem(topo.root, ("quotas", role.value),
                             f"quota exceeded in {role.value}: {detail} for department '{dept_id}' "
                             f"(systems: {names}); raise the quota or shrink these systems")
    line = origin.document.line_of(origin.path + ("quotas",))
    return InventoryProblem(problem.file, problem.path, problem.message, line, dept_id)


def check_address_space(topo: Topology) -> Iterator[InventoryProblem]:
    if topo.incomplete:
        # Blocks are handed out in a stable order over all departments and systems; with
        # one left out or half-read, the plan would differ from the lock for no reason.
        return
    yield from ipam.allocate(topo).problems


RULES: tuple[Rule, ...] = (check_clouds, check_departments, check_tiers, check_systems,
                           check_quotas, check_address_space)


def validate(topo: Topology) -> list[InventoryProblem]:
    return [problem for rule in RULES for problem in rule(topo)]


def load_valid_topology(root: Path | str = DEFAULT_INVENTORY) -> Topology:
    """Load, schema-check and cross-check; raise InvalidInventory listing every problem,
    schema and cross-check alike, in one pass."""
    topo, problems = load_topology_and_problems(root)
    problems = problems + validate(topo)
    if problems:
        raise InvalidInventory(problems)
    return topo
