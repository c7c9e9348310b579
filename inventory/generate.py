"""Write a synthetic inventory of any size (1+N+M clouds) for benchmarks and scale tests.

Deterministic for given arguments (a seeded RNG), valid by construction, and exact on
the VM total, so benchmark figures compare like with like.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import yaml

from inventory.loader import DEFAULT_INVENTORY
from inventory.model import CenterRole

SYSTEMS_PER_DEPARTMENT = 12  # a /18 department block holds 16 /22 system blocks
TIER_MIX = (("platform", 0.05), ("critical", 0.20), ("important", 0.35), ("general", 0.40))
# Fixed VMs per tier besides the main-center app instances: the tier's database members,
# the same-city twin of every main instance (active-active tiers), the remote pilot.
APP_SHAPE = {
    "platform": {"samecity": 1.0, "remote": 1, "db": 3},
    "critical": {"samecity": 1.0, "remote": 1, "db": 3},
    "important": {"samecity": 1.0, "remote": 0, "db": 3},
    "general": {"samecity": 0.0, "remote": 0, "db": 2},
}
FLAVORS = {
    "app.small": {"vcpus": 2, "ram_gib": 4, "disk_gib": 40},
    "app.medium": {"vcpus": 4, "ram_gib": 8, "disk_gib": 40},
    "db.medium": {"vcpus": 4, "ram_gib": 16, "disk_gib": 100},
}


def _vms(tier: str, main: int) -> int:
    shape = APP_SHAPE[tier]
    return main + int(main * shape["samecity"]) + shape["remote"] + shape["db"]


def _cloud(name: str, kind: str, index: int, systems: int) -> dict:
    huge = {"vcpus": systems * 200, "ram_gib": systems * 800, "storage_gib": systems * 20000,
            "instances": systems * 40}
    centers = {}
    for offset, role in enumerate(CenterRole):
        centers[role.value] = {
            "role": role.value, "city": f"city-{index}", "region": f"{name}-{role.value}",
            "availability_zones": [f"{name}-{role.value}-az1"],
            "address_space": f"10.{16 * (offset + 1)}.0.0/12",
            "external_network": f"{name}-{role.value}-ext", "capacity": huge,
        }
    return {"name": name, "kind": kind, "display_name": f"synthetic {kind} cloud {name}",
            "dns_zone": f"{name}.internal.", "centers": centers, "flavors": FLAVORS,
            "images": ["kylin-v10-sp3", "kylin-v10-sp3-patroni"],
            "database_image": "kylin-v10-sp3-patroni"}


class OutputNotEmpty(ValueError):
    """The target directory holds something and replacing it was not asked for."""


def _clear(out: Path, force: bool) -> None:
    """Make `out` an empty directory, deleting what it holds only when `force` says so."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputNotEmpty(f"{out} is a symlink or a file, not a directory: choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        count = sum(1 for _ in out.iterdir())
        raise OutputNotEmpty(f"{out} is not empty ({count} entries): choose an empty or new "
                             "directory, or pass --force to delete what it holds and replace it")
    shutil.rmtree(out)


def generate_inventory(out: Path, systems: int, vms: int, clouds: int = 4, seed: int = 2026,
                       force: bool = False) -> dict:
    """Write the inventory under `out` (new or empty, or replaced with `force`); return its totals."""
    if vms < systems * 4:
        raise ValueError(f"{vms} VMs are too few for {systems} systems (at least 4 each)")
    _clear(out, force)
    rng = random.Random(seed)
    (out / "clouds").mkdir(parents=True)
    shutil.copy(DEFAULT_INVENTORY / "tiers.yaml", out / "tiers.yaml")
    cloud_names = ["province"] + [f"industry{i}" if i % 2 else f"city{i}" for i in range(1, clouds)]
    per_cloud = [systems // clouds + (1 if i < systems % clouds else 0) for i in range(clouds)]
    for i, name in enumerate(cloud_names):
        kind = "provincial" if i == 0 else ("industry" if i % 2 else "city")
        (out / "clouds" / f"{name}.yaml").write_text(yaml.safe_dump(_cloud(name, kind, i, per_cloud[i])))

    tiers = [t for t, share in TIER_MIX for _ in range(round(share * 100))]
    plan = []  # (cloud, department, system, tier, main instances)
    for c, name in enumerate(cloud_names):
        for s in range(per_cloud[c]):
            plan.append([name, f"{name}-d{s // SYSTEMS_PER_DEPARTMENT:03d}", f"{name}-s{s:04d}",
                         tiers[rng.randrange(len(tiers))], 1])
    plan[-1][3] = "general"  # one VM per step, so any total is reachable exactly
    # Grow main-center app counts round-robin until the VM total is reached exactly.
    remaining = vms - sum(_vms(p[3], p[4]) for p in plan)
    while remaining > 0:
        for entry in plan:
            step = _vms(entry[3], entry[4] + 1) - _vms(entry[3], entry[4])
            if step <= remaining:
                entry[4] += 1
                remaining -= step
            if remaining == 0:
                break
    departments = {}
    for cloud, dept, name, tier, main in plan:
        if dept not in departments:
            quota = {"vcpus": 10**6, "ram_gib": 10**7, "storage_gib": 10**8, "instances": 10**5}
            departments[dept] = {"id": dept, "cloud": cloud, "name_zh": f"部门 {dept}",
                                 "name_en": f"department {dept}",
                                 "quotas": {r.value: quota for r in CenterRole}}
        shape = APP_SHAPE[tier]
        instances = {"main": main}
        if shape["samecity"]:
            instances["samecity"] = int(main * shape["samecity"])
        if shape["remote"]:
            instances["remote"] = shape["remote"]
        request = {"name": name, "department": dept, "tier": tier, "wave": 1 + len(departments) % 5,
                   "app": {"flavor": "app.medium", "image": "kylin-v10-sp3", "volume_gib": 20,
                           "port": 8443, "instances": instances},
                   "database": {"engine": "postgresql", "version": "15", "flavor": "db.medium",
                                "size_gib": 100},
                   "bucket": {"size_gib": 50},
                   "flows": [{"from": "external", "ports": [443]}]}
        folder = out / "systems" / dept
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(request, sort_keys=False))
    (out / "departments.yaml").write_text(yaml.safe_dump(list(departments.values()), allow_unicode=True))
    return {"clouds": clouds, "departments": len(departments), "systems": len(plan), "instances": vms}
