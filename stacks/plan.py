"""`tricenter plan`: run stacks under mocks and summarize what they would create.

Each stack runs in its own worker process (forked after the inventory is loaded once):
Pulumi's runtime is one global per process, and separate processes use every core.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import resource as rlimit
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inventory.loader import Topology
from inventory.model import ZERO, Resources
from inventory.names import path_under
from stacks.layout import StackLayout

DEPARTMENT_TYPE = "tricenter:index:Department"
SYSTEM_TYPE = "tricenter:index:SystemCenter"
INSTANCE_TYPE = "openstack:compute/instance:Instance"
VOLUME_TYPE = "openstack:blockstorage/volume:Volume"
CONTAINER_TYPE = "openstack:objectstorage/container:Container"
SECRET_MASK = "[secret]"


@dataclass(frozen=True)
class PlannedResource:
    urn: str
    type: str
    department: str | None
    system: str | None
    digest: str  # of the inputs: a changed digest is an update


@dataclass
class Check:
    scope: str  # "department gd-zsj" or "center guangdong/main"
    limit: Resources
    planned: Resources

    @property
    def over(self) -> list[str]:
        return self.planned.exceeding(self.limit)

    def as_dict(self) -> dict:
        return {"scope": self.scope, "ok": not self.over, "over": self.over,
                "limit": self.limit.model_dump(), "planned": self.planned.model_dump()}


@dataclass
class StackPlan:
    stack: str
    resources: list[PlannedResource]
    outputs: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    shortfalls: list = field(default_factory=list)  # stacks.snapshot.Shortfall, with --snapshot

    def counts(self, key: str | None = None) -> dict:
        """Resource counts per type, or per department/system then type."""
        if key is None:
            return dict(sorted(Counter(r.type for r in self.resources).items()))
        grouped: dict[str, Counter] = defaultdict(Counter)
        for r in self.resources:
            owner = getattr(r, key)
            if owner is not None:
                grouped[owner][r.type] += 1
        return {k: dict(sorted(v.items())) for k, v in sorted(grouped.items())}

    @property
    def instances(self) -> int:
        return sum(1 for r in self.resources if r.type == INSTANCE_TYPE)

    def digests(self) -> dict[str, str]:
        return {r.urn: r.digest for r in self.resources}


def _owners(registrations, layout: StackLayout) -> list[PlannedResource]:
    """Attach each custom resource to its department and system (via component parents)."""
    system_of_component = {f"{s.name}-{layout.center_name}": s.name for s in layout.systems}
    owner: dict[str, tuple[str | None, str | None]] = {}
    planned = []
    for reg in registrations:
        dept, system = owner.get(reg.parent, (None, None))
        if reg.type == DEPARTMENT_TYPE:
            dept = reg.name
        elif reg.type == SYSTEM_TYPE:
            system = system_of_component.get(reg.name)
        owner[reg.urn] = (dept, system)
        if reg.custom:
            planned.append(PlannedResource(reg.urn, reg.type, dept, system, reg.digest()))
    return planned


def _instance_resources(inputs: dict, flavors: dict) -> Resources:
    spec = flavors[inputs["flavorName"]]
    disks = sum(int(d.get("volumeSize", 0)) for d in inputs.get("blockDevices") or [])
    return Resources(vcpus=spec.vcpus, ram_gib=spec.ram_gib, storage_gib=disks, instances=1)


def quota_checks(topology: Topology, layout: StackLayout, registrations) -> list[Check]:
    """Planned consumption (from what the program registers) against quotas and capacity."""
    flavors = layout.cloud.flavors
    by_name = {r.urn: r for r in _owners(registrations, layout)}
    used: dict[str, Resources] = defaultdict(lambda: ZERO)
    for reg in registrations:
        planned = by_name.get(reg.urn)
        if planned is None or planned.department is None:
            continue
        if reg.type == INSTANCE_TYPE:
            amount = _instance_resources(reg.inputs, flavors)
        elif reg.type == VOLUME_TYPE:
            amount = Resources(vcpus=0, ram_gib=0, storage_gib=int(reg.inputs["size"]), instances=0)
        elif reg.type == CONTAINER_TYPE and planned.system:
            bucket = topology.systems[planned.system].bucket
            amount = Resources(vcpus=0, ram_gib=0, storage_gib=bucket.size_gib if bucket else 0,
                               instances=0)
        else:
            continue
        used[planned.department] = used[planned.department] + amount
    role = layout.center.role
    checks = [Check(f"department {d.department.id}", d.department.quotas.get(role, ZERO),
                    used[d.department.id]) for d in layout.departments]
    total = ZERO
    for amount in used.values():
        total = total + amount
    checks.append(Check(f"center {layout.cloud.name}/{layout.center_name}", layout.center.capacity,
                        total))
    return checks


async def _resolved_exports() -> dict[str, Any]:
    import pulumi
    from pulumi.runtime.settings import get_root_resource

    exports = {}
    for name, value in getattr(get_root_resource(), "outputs", {}).items():
        out = pulumi.Output.from_input(value)
        exports[name] = SECRET_MASK if await out.is_secret() else await out.future()
    return exports


@dataclass
class ProgramRun:
    """Everything one mocked run of a stack's program registered and exported."""

    layout: StackLayout
    registrations: list  # stacks.mocks.Registration, in registration order
    outputs: dict[str, Any]


def run_program(topology: Topology, stack: str, fast: bool = True,
                restore_gc: bool = True, settings: Any = None,
                snapshot: Any = None) -> ProgramRun:
    """Run one stack's program under mocks in this process.

    `restore_gc=False` leaves the cyclic collector off afterwards: for a process that
    plans and exits, which would otherwise pay one full pass over the whole run."""
    import pulumi
    from pulumi.runtime.settings import set_root_resource

    from stacks.mocks import fast_mock_runtime, install_mocks
    from stacks.program import StackSettings, build_stack

    set_root_resource(None)  # a fresh Stack resource: no exports left from an earlier run
    monitor = install_mocks(stack, fast=fast, snapshot=snapshot)
    captured: dict[str, Any] = {}

    def program():
        captured["layout"] = build_stack(topology, stack, settings or StackSettings(planning=True))

        async def exports():
            captured["outputs"] = await _resolved_exports()
        return pulumi.Output.from_input(exports())

    with fast_mock_runtime(restore_gc) if fast else contextlib.nullcontext():
        pulumi.runtime.test(program)()
    return ProgramRun(captured["layout"], monitor.registrations, captured.get("outputs", {}))


def plan_stack(topology: Topology, stack: str, fast: bool = True,
               restore_gc: bool = True, snapshot: Any = None) -> StackPlan:
    started = time.perf_counter()
    run = run_program(topology, stack, fast, restore_gc, snapshot=snapshot)
    plan = StackPlan(stack, _owners(run.registrations, run.layout), run.outputs,
                     quota_checks(topology, run.layout, run.registrations))
    if snapshot is not None:
        plan.shortfalls = _shortfalls(run.layout, snapshot, plan.checks[-1].planned)
    plan.seconds = time.perf_counter() - started
    plan.peak_rss_mb = rlimit.getrusage(rlimit.RUSAGE_SELF).ru_maxrss / 1024
    return plan


def _shortfalls(layout: StackLayout, snapshot: Any, planned: Resources) -> list:
    """What the cloud lacks for this stack, under the stack's own config (if any)."""
    from stacks.deploy import stack_config
    from stacks.snapshot import shortfalls
    from stacks.system import LB_PROVIDER

    config = stack_config(layout.stack)
    return shortfalls(layout, snapshot, planned,
                      config.get("tricenter:lbProvider") or LB_PROVIDER,
                      config.get("tricenter:adoptProjects") or {})


_TOPOLOGY: Topology | None = None  # inherited by forked workers, so each loads nothing
_SNAPSHOT: Any = None


def _worker(stack: str, conn) -> None:
    status = 0
    try:
        assert _TOPOLOGY is not None
        conn.send(plan_stack(_TOPOLOGY, stack, restore_gc=False, snapshot=_SNAPSHOT))
    except BaseException as exc:  # noqa: BLE001 - re-raised in the parent
        conn.send(exc)
        status = 1
    finally:
        conn.close()
    # Skip interpreter teardown: freeing a whole stack's objects one by one takes
    # seconds at 10,000 VMs, and the process is done.
    os._exit(status)


def plan_stacks(topology: Topology, stacks: list[str], jobs: int | None = None,
                snapshot: Any = None) -> list[StackPlan]:
    """Plan several stacks, each in a fresh forked process, `jobs` at a time.

    One process per stack rather than a pool: Pulumi's runtime state is per process,
    and a process that exits returns all of a stack's memory at once."""
    global _TOPOLOGY, _SNAPSHOT
    jobs = max(1, min(jobs or len(os.sched_getaffinity(0)), len(stacks)))
    if len(stacks) == 1:
        return [plan_stack(topology, stacks[0], restore_gc=False, snapshot=snapshot)]
    # Import the program before forking: each worker then starts with it loaded.
    from stacks import mocks, program  # noqa: F401
    from multiprocessing.connection import wait

    _TOPOLOGY, _SNAPSHOT = topology, snapshot
    context = multiprocessing.get_context("fork")
    # Biggest stacks first, so a large one never starts last and runs alone.
    waiting = sorted(stacks, key=lambda s: -_size_hint(topology, s))
    running: dict = {}
    results: dict[str, StackPlan] = {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                stack = waiting.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_worker, args=(stack, sender), daemon=True)
                process.start()
                sender.close()
                running[receiver] = (stack, process)
            for receiver in wait(list(running)):
                stack, process = running.pop(receiver)
                try:
                    result = receiver.recv()
                except EOFError:
                    result = RuntimeError(f"planning {stack} died (exit code {process.exitcode})")
                process.join()
                if isinstance(result, BaseException):
                    raise result
                results[stack] = result
    finally:
        for _, process in running.values():
            process.kill()
        _TOPOLOGY = _SNAPSHOT = None
    return [results[s] for s in stacks]


def _size_hint(topology: Topology, stack: str) -> int:
    from inventory.demand import center_demand
    from stacks.layout import is_placed, split_stack

    cloud, _, center = split_stack(topology, stack)
    total = 0
    for system in topology.systems_in_cloud(cloud.name):
        tier = topology.tiers[system.tier]
        if is_placed(tier, system, center.role):
            total += 20 + 2 * center_demand(cloud, tier, system, center.role).vms
    return total


# Saved plans and the diff between runs.

def plans_dir() -> Path:
    configured = os.environ.get("TRICENTER_PLANS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / ".plans"


def saved_plan_file(stack: str, directory: Path | None = None) -> Path:
    return path_under(directory or plans_dir(), f"{stack}.json")


@dataclass
class PlanDiff:
    added: list[str]
    removed: list[str]
    changed: list[str]
    previous: bool  # was there a saved plan to compare with

    def as_dict(self) -> dict:
        return {"previous_plan": self.previous, "added": len(self.added),
                "removed": len(self.removed), "changed": len(self.changed),
                "added_urns": self.added[:50], "removed_urns": self.removed[:50],
                "changed_urns": self.changed[:50]}


def diff_against_saved(plan: StackPlan, directory: Path | None = None) -> PlanDiff:
    file = saved_plan_file(plan.stack, directory)
    if not file.exists():
        return PlanDiff(sorted(plan.digests()), [], [], previous=False)
    before = json.loads(file.read_text()).get("digests", {})
    after = plan.digests()
    return PlanDiff(added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)),
                    changed=sorted(u for u in set(after) & set(before) if after[u] != before[u]),
                    previous=True)


def save_plan(plan: StackPlan, directory: Path | None = None) -> Path:
    file = saved_plan_file(plan.stack, directory)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"stack": plan.stack, "resources": plan.counts(),
                                "outputs": plan.outputs, "digests": plan.digests()},
                               sort_keys=True))
    return file
