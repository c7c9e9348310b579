"""How long `tricenter lab up` takes from a stopped lab to healthy, and how much memory
the whole lab holds once healthy. Targets: healthy in under 45 s, under 2 GiB of memory,
measured as PSS (shared pages counted once); the RSS sum, which counts PostgreSQL's shared
buffers once per backend, is printed beside it.

    python benchmarks/lab_up.py            # stopped lab, data kept (the everyday case)
    python benchmarks/lab_up.py --fresh    # from nothing: initdb, base backups, secrets
    python benchmarks/lab_up.py --json

The lab is left as found: running if it was running, stopped otherwise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import processes  # noqa: E402
from lab.context import LabContext  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.components import patroni  # noqa: E402

TARGET_SECONDS = 45
TARGET_BYTES = 2 * 1024**3


def memory_by_component(lab: Lab, measure=processes.pss_bytes) -> dict[str, int]:
    """`measure` (PSS, or RSS) summed over each supervisord program's process tree;
    PostgreSQL counted apart."""
    manifest = json.loads(lab.manifest_file.read_text())
    procs = processes.table()
    owner: dict[int, str] = {}
    for system, center in patroni.nodes(lab.ctx):  # every lab system's members
        postmaster = patroni.postmaster_pid(lab.ctx, center, system)
        if postmaster:
            for pid in processes.group_members(postmaster, procs) | processes.descendants(
                    [postmaster], procs):
                owner[pid] = "postgres"
    for info in lab.supervisor.processes():
        if info["pid"]:
            component = manifest.get(info["name"], {}).get("component", info["name"])
            for pid in processes.descendants([info["pid"]], procs):
                owner.setdefault(pid, component)
    if lab.supervisor.pid:
        owner.setdefault(lab.supervisor.pid, "supervisord")
    totals: dict[str, int] = defaultdict(int)
    for pid, component in owner.items():
        totals[component] += measure(pid)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="wipe the lab's state first")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", choices=["fast", "stock"], default=None)
    args = parser.parse_args()

    lab = Lab(LabContext())
    was_running = lab.supervisor.running()
    if was_running:
        lab.down()
    if args.fresh and lab.ctx.root.exists():
        lab.reset()  # refuses a directory that is not a lab's
    command = [sys.executable, "-m", "scripts.cli", "lab", "up", "--json"]
    if args.profile:
        command += ["--patroni-profile", args.profile]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=lab.ctx.repo)
    up_seconds = time.monotonic() - started
    healthy = done.returncode == 0
    time.sleep(2)  # let start-up transients (base backups, first checkpoints) settle
    by_component = memory_by_component(Lab(LabContext()))
    total = sum(by_component.values())
    rss = sum(memory_by_component(Lab(LabContext()), processes.rss_bytes).values())
    result = {
        "fresh": args.fresh, "healthy": healthy, "up_seconds": round(up_seconds, 1),
        "pss_bytes": total, "pss_mib": round(total / 1024**2), "rss_sum_mib": round(rss / 1024**2),
        "processes": len(lab.lab_pids()),
        "pss_mib_by_component": {k: round(v / 1024**2, 1) for k, v in by_component.items()},
        "targets": {"up_seconds": TARGET_SECONDS, "pss_bytes": TARGET_BYTES},
        "within_targets": healthy and up_seconds < TARGET_SECONDS and total < TARGET_BYTES,
    }
    if not healthy:
        result["error"] = done.stderr[-2000:]
    if not was_running:
        lab.down()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"lab up ({'fresh' if args.fresh else 'stopped, data kept'}): "
              f"{'healthy' if healthy else 'NOT healthy'} in {up_seconds:.1f} s "
              f"(target < {TARGET_SECONDS} s)")
        print(f"whole lab PSS: {total / 1024**2:.0f} MiB over {result['processes']} processes "
              f"(target < {TARGET_BYTES // 1024**2} MiB); RSS summed: {rss / 1024**2:.0f} MiB")
        for component, mib in result["pss_mib_by_component"].items():
            print(f"  {component:<14} {mib:8.1f} MiB")
        if not healthy:
            print(result["error"], file=sys.stderr)
    return 0 if result["within_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
