"""Benchmark `tricenter plan --all`: the sample, and generated 1,000- and 10,000-VM inventories.

Prints wall time, CPU time (this process and its workers), peak memory of the largest
worker, resources planned and resources per second; then time(10k)/time(1k). Each run
is a fresh `tricenter plan` process, as an operator would start it.

    .venv/bin/python benchmarks/plan.py [--sizes sample,1000,10000] [--jobs N] [--naive]

`--naive` also times the stock mocked runtime (GC on, threads, stack traces, output
tracking) on the 1k inventory, to show what the fast path removes.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEMS_PER_VMS = {1000: 100, 10000: 1000}


def inventory_for(size: str, workdir: Path) -> Path:
    if size == "sample":
        return ROOT / "inventory" / "guangdong"
    from inventory.generate import generate_inventory

    vms = int(size)
    out = workdir / f"inventory-{vms}"
    generate_inventory(out, systems=SYSTEMS_PER_VMS.get(vms, max(1, vms // 10)), vms=vms)
    return out


def run_plan(inventory: Path, jobs: int | None, plans: Path) -> dict:
    cmd = [sys.executable, "-m", "scripts.cli", "plan", "--all", "--json", "--no-save",
           "--inventory", str(inventory)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TRICENTER_PLANS_DIR": str(plans)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": after.ru_maxrss / 1024,
            "resources": report["total_resources"], "instances": report["total_instances"],
            "stacks": len(report["stacks"])}


def run_naive(inventory: Path) -> dict:
    """The stock mocked runtime, one stack after another in one process."""
    code = f"""
import json, time, resource
from inventory.validate import load_valid_topology
from stacks.layout import all_stacks
from stacks.plan import run_program
topo = load_valid_topology({str(inventory)!r})
start = time.perf_counter(); cpu = time.process_time(); n = 0
for stack in all_stacks(topo):
    n += sum(r.custom for r in run_program(topo, stack, fast=False).registrations)
print(json.dumps({{"wall_s": time.perf_counter() - start, "resources": n,
                  "cpu_s": time.process_time() - cpu,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="sample,1000,10000")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tricenter-bench-") as tmp:
        workdir = Path(tmp)
        print(f"{'inventory':>10} {'VMs':>6} {'stacks':>6} {'resources':>9} {'wall s':>7} "
              f"{'cpu s':>7} {'peak MB':>8} {'res/s':>7}")
        for size in args.sizes.split(","):
            inventory = inventory_for(size, workdir)
            r = run_plan(inventory, args.jobs, workdir / "plans")
            results[size] = r
            print(f"{size:>10} {r['instances']:>6} {r['stacks']:>6} {r['resources']:>9} "
                  f"{r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} {r['peak_rss_mb']:>8.0f} "
                  f"{r['resources'] / r['wall_s']:>7.0f}", flush=True)
        if "1000" in results and "10000" in results:
            ratio = results["10000"]["wall_s"] / results["1000"]["wall_s"]
            cpu_ratio = results["10000"]["cpu_s"] / results["1000"]["cpu_s"]
            print(f"time(10k)/time(1k) = {ratio:.2f} wall, {cpu_ratio:.2f} cpu (target ≤ 11); "
                  f"10k wall {results['10000']['wall_s']:.1f} s (target < 30 s)")
        if args.naive:
            inventory = inventory_for("1000", workdir)
            r = run_naive(inventory)
            print(f"stock mocked runtime (GC on, threads, stack traces, tracking), 1k VMs, one "
                  f"process: {r['resources']} resources in {r['wall_s']:.2f} s wall, "
                  f"{r['cpu_s']:.2f} s cpu, peak {r['peak_rss_mb']:.0f} MB")
    print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other work on the machine inflates wall times)")


if __name__ == "__main__":
    main()
