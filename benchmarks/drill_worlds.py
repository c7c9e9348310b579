"""Benchmark: drills through the lab's own world and through the SSH world, side by side.

    .venv/bin/python benchmarks/drill_worlds.py --repeat 3 \
        [--scenario main-center-loss,db-primary-crash,main-center-freeze] [--worlds lab,ssh]

Needs a running lab (`tricenter lab up`); the lab keeps its Patroni profile. Each scenario
runs N times in each world (the SSH world confirmed for the runtime inventory's cloud,
`lab`); the table shows the median RTO per world and their difference (issue 12's target:
within 1 s). The load average is printed next to the figures, which are noisy on a busy
machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CLI = [sys.executable, "-m", "scripts.cli"]
WORLD_OPTIONS = {"lab": ("--world", "lab"), "ssh": ("--world", "ssh", "--confirm", "lab")}


def run(scenario: str, repeat: int, world: tuple[str, ...]) -> dict:
    """RTOs, lost writes and passes of N trials, whatever the repeat count."""
    done = subprocess.run(CLI + ["drill", "run", scenario, "--repeat", str(repeat), "--json", *world],
                          check=False, capture_output=True, text=True, timeout=600 * repeat)
    if not done.stdout.strip():
        sys.exit(f"{scenario} produced no result (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if repeat == 1:
        return {"rtos": [result["rto_seconds"]] if result["rto_seconds"] is not None else [],
                "lost": [result["rpo_lost_writes"]], "passed": int(result["passed"]), "trials": 1}
    return {"rtos": result["rto_seconds_all"], "lost": result["rpo_lost_writes_per_trial"],
            "passed": result["passed_trials"], "trials": result["trials"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", default="main-center-loss,db-primary-crash,main-center-freeze")
    parser.add_argument("--worlds", default="lab,ssh")
    args = parser.parse_args()
    worlds = args.worlds.split(",")
    rows = []
    for scenario in args.scenario.split(","):
        row = {"scenario": scenario}
        for world in worlds:  # alternate worlds scenario by scenario, so drift hits both
            row[world] = {**run(scenario, args.repeat, WORLD_OPTIONS[world]), "load": os.getloadavg()[0]}
        rows.append(row)
    print(f"{'scenario':20} " + " ".join(f"{w + ' RTO median':>16} {'passed':>7}" for w in worlds)
          + "  difference  load (1 min, after each world)")
    for row in rows:
        medians = {w: statistics.median(row[w]["rtos"]) if row[w]["rtos"] else None for w in worlds}
        cells = " ".join(f"{medians[w] if medians[w] is not None else float('nan'):16.2f} "
                         f"{row[w]['passed']:>3}/{row[w]['trials']:<3}" for w in worlds)
        known = [medians[w] for w in worlds if medians[w] is not None]
        diff = f"{known[-1] - known[0]:+10.2f}" if len(known) == 2 else "       n/a"
        print(f"{row['scenario']:20} {cells}  {diff}  " + " / ".join(f"{row[w]['load']:.1f}" for w in worlds))
        for w in worlds:
            print(f"{'':20} {w}: RTOs {', '.join(f'{x:.2f}' for x in row[w]['rtos'])}; "
                  f"lost writes {row[w]['lost']}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
