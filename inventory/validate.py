"""Cross-checks over a schema-valid topology. Every rule returns problems; none raises,
so a user sees all mistakes at once."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from inventory import ipam
from inventory.demand import center_demand
from inventory.errors import InvalidInventory, InventoryProblem
from inventory.loader import DEFAULT_INVENTORY, Topology, load_topology
from inventory.model import (ZERO, AppPlacement, CenterRole, DbReplication, Resources, System)
from inventory.names import BUCKET_MAX, backup_bucket

Rule = Callable[[Topology], Iterator[InventoryProblem]]


def _at(topo: Topology, kind: str, name: str, *sub: str | int) -> Callable[[str], InventoryProblem]:
    origin = topo.origin(kind, name)
    return lambda message: origin.problem(topo.root, tuple(sub), message)


def check_clouds(topo: Topology) -> Iterator[InventoryProblem]:
    for cloud in topo.clouds.values():
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
    for dept in topo.departments.values():
        if dept.cloud not in topo.clouds:
            yield _at(topo, "department", dept.id, "cloud")(
                f"unknown cloud '{dept.cloud}'; known clouds: {', '.join(sorted(topo.clouds))}")


def check_tiers(topo: Topology) -> Iterator[InventoryProblem]:
    levels = {lvl.level: lvl for lvl in topo.gbt.levels}
    for tier in topo.tiers.values():
        at = lambda *sub: _at(topo, "tier", tier.name, *sub)  # noqa: E731
        primaries = [r for r, m in tier.placement.database.items() if m == DbReplication.primary]
        if tier.placement.database and any(m != DbReplication.none
                                           for m in tier.placement.database.values()):
            if len(primaries) != 1:
                yield at("placement", "database")(
                    f"exactly one center role must hold the primary (found {len(primaries)})")
        level = levels.get(tier.gbt20988_level)
        if level is None:
            continue
        if level.rto_max_seconds is not None and tier.rto_seconds > level.rto_max_seconds:
            yield at("rto_seconds")(
                f"{tier.rto_seconds} s is above GB/T 20988 level {level.level}'s RTO bound "
                f"({level.rto_max_seconds} s); lower the target or the level")
        if level.rpo_max_seconds is not None and tier.rpo_seconds > level.rpo_max_seconds:
            yield at("rpo_seconds")(
                f"{tier.rpo_seconds} s is above GB/T 20988 level {level.level}'s RPO bound "
                f"({level.rpo_max_seconds} s); lower the target or the level")


def _system_refs(topo: Topology, system: System) -> Iterator[InventoryProblem]:
    at = lambda *sub: _at(topo, "system", system.name, *sub)  # noqa: E731
    if system.department not in topo.departments:
        yield at("department")(f"unknown department '{system.department}'; declare it in "
                               "departments.yaml or fix the id")
    if system.tier not in topo.tiers:
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
            if source.split(":", 1)[1] not in topo.departments:
                yield at(f"unknown department in '{source}'")
        elif source not in topo.systems:
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
    for system in topo.systems.values():
        yield from _system_folder(topo, system)
        yield from _system_refs(topo, system)
        yield from _system_placement(topo, system)
        yield from _system_flows(topo, system)


def _resolvable(topo: Topology, system: System) -> bool:
    dept = topo.departments.get(system.department)
    cloud = topo.clouds.get(dept.cloud) if dept else None
    return (cloud is not None and system.tier in topo.tiers and system.app.flavor in cloud.flavors
            and (system.database is None or system.database.flavor in cloud.flavors))


def check_quotas(topo: Topology) -> Iterator[InventoryProblem]:
    usage: dict[tuple[str, CenterRole], Resources] = defaultdict(lambda: ZERO)
    for system in topo.systems.values():
        if not _resolvable(topo, system):
            continue
        cloud = topo.cloud_of(system)
        tier = topo.tiers[system.tier]
        for role in CenterRole:
            usage[(system.department, role)] += center_demand(cloud, tier, system, role).resources
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
    systems = sorted((s for s in topo.systems.values() if s.department == dept_id
                      and _resolvable(topo, s)),
                     key=lambda s: -getattr(center_demand(topo.cloud_of(s), topo.tiers[s.tier], s,
                                                          role).resources, over[0]))
    names = ", ".join(s.name for s in systems[:5]) + (" …" if len(systems) > 5 else "")
    origin = topo.origin("department", dept_id)
    problem = origin.problem(topo.root, ("quotas", role.value),
                             f"quota exceeded in {role.value}: {detail} for department '{dept_id}' "
                             f"(systems: {names}); raise the quota or shrink these systems")
    line = origin.document.line_of(origin.path + ("quotas",))
    return InventoryProblem(problem.file, problem.path, problem.message, line)


def check_address_space(topo: Topology) -> Iterator[InventoryProblem]:
    yield from ipam.allocate(topo).problems


RULES: tuple[Rule, ...] = (check_clouds, check_departments, check_tiers, check_systems,
                           check_quotas, check_address_space)


def validate(topo: Topology) -> list[InventoryProblem]:
    return [problem for rule in RULES for problem in rule(topo)]


def load_valid_topology(root: Path | str = DEFAULT_INVENTORY) -> Topology:
    """Load, schema-check and cross-check; raise InvalidInventory listing every problem."""
    topo = load_topology(root)
    problems = validate(topo)
    if problems:
        raise InvalidInventory(problems)
    return topo
