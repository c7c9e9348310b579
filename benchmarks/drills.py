"""Benchmark: main-center-loss N times with the fast Patroni profile and with the stock one;
or, with --worlds, scenarios through the lab's world and through the SSH world side by side.

    .venv/bin/python benchmarks/drills.py --repeat 10 [--scenario main-center-loss]
    .venv/bin/python benchmarks/drills.py --worlds lab,ssh --repeat 3 \
        --scenario main-center-loss,db-primary-crash,main-center-freeze

Needs a running lab (`tricenter lab up`). Switches the lab's Patroni profile with
`tricenter lab up --patroni-profile P` (idempotent), runs the drill N times back to back
with each, prints min/median/max RTO per profile, the lost writes of every trial, and
the stock/fast ratio of the medians; leaves the lab on the fast profile.
Targets (issue 5): fast median RTO ≤ 5 s, RPO 0 in every trial, ≥ 5× faster than stock.
With --worlds (issue 12) the lab keeps its profile; each scenario runs N times in each
world (the SSH world confirmed for the runtime inventory's cloud, `lab`), and the table
shows median RTOs and their difference (target: within 1 s); the load average is printed
next to the figures, which are noisy on a busy machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "scripts.cli"]


def lab_up(profile: str) -> None:
    done = subprocess.run(CLI + ["lab", "up", "--patroni-profile", profile], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"`tricenter lab up --patroni-profile {profile}` failed:\n{done.stderr[-3000:]}")


def run(scenario: str, repeat: int, world: tuple[str, ...] = ()) -> dict:
    done = subprocess.run(CLI + ["drill", "run", scenario, "--repeat", str(repeat), "--json", *world],
                          capture_output=True, text=True, timeout=600 * repeat)
    sys.stderr.write(done.stderr[-2000:] if done.returncode not in (0, 1) else "")
    if not done.stdout.strip():
        sys.exit(f"drill produced no result (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if repeat == 1:  # one trial: wrap it like a --repeat summary
        result = {"rto_seconds_spread": {k: result["rto_seconds"] for k in ("min", "median", "max")},
                  "rto_seconds_all": [result["rto_seconds"]],
                  "rpo_lost_writes_per_trial": [result["rpo_lost_writes"]],
                  "split_brain": result["split_brain"], "passed_trials": int(result["passed"]),
                  "trials": 1}
    return result


WORLD_OPTIONS = {"lab": ("--world", "lab"), "ssh": ("--world", "ssh", "--confirm", "lab")}


def compare_worlds(scenarios: list[str], worlds: list[str], repeat: int) -> None:
    """Each scenario N times per world, worlds alternating scenario by scenario."""
    rows = []
    for scenario in scenarios:
        row = {"scenario": scenario}
        for world in worlds:
            result = run(scenario, repeat, WORLD_OPTIONS[world])
            row[world] = {"rtos": result["rto_seconds_all"], "passed": result["passed_trials"],
                          "trials": result["trials"], "lost": result["rpo_lost_writes_per_trial"],
                          "load": os.getloadavg()[0]}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--scenario", default="main-center-loss",
                        help="one scenario; with --worlds, a comma-separated list")
    parser.add_argument("--profiles", default="fast,stock")
    parser.add_argument("--stock-repeat", type=int, default=None,
                        help="trials with the stock profile (default: --repeat); each takes ~2 min")
    parser.add_argument("--worlds", default=None,
                        help="compare drill worlds instead of Patroni profiles, e.g. lab,ssh")
    args = parser.parse_args()
    if args.worlds:
        compare_worlds(args.scenario.split(","), args.worlds.split(","), args.repeat)
        return
    results: dict[str, dict] = {}
    for profile in args.profiles.split(","):
        began = time.monotonic()
        lab_up(profile)
        n = args.stock_repeat if profile == "stock" and args.stock_repeat else args.repeat
        results[profile] = run(args.scenario, n)
        results[profile]["wall_seconds"] = round(time.monotonic() - began, 1)
    lab_up("fast")  # the lab's default: leave it as found
    print(f"{args.scenario}: trials per profile: " + ", ".join(f"{p} {r['trials']}" for p, r in results.items()))
    print(f"{'profile':8} {'RTO min':>8} {'median':>8} {'max':>8}  lost writes per trial        split brain  passed")
    for profile, r in results.items():
        rto = r["rto_seconds_spread"] or {"min": None, "median": None, "max": None}
        fmt = lambda x: f"{x:8.2f}" if x is not None else "     n/a"  # noqa: E731
        print(f"{profile:8} {fmt(rto['min'])} {fmt(rto['median'])} {fmt(rto['max'])}  "
              f"{str(r['rpo_lost_writes_per_trial']):28} {str(r['split_brain']):11}  "
              f"{r['passed_trials']}/{r['trials']}")
        print(f"         all RTOs: {', '.join(f'{x:.2f}' for x in r['rto_seconds_all'])}")
    fast, stock = results.get("fast"), results.get("stock")
    if fast and stock and fast["rto_seconds_spread"] and stock["rto_seconds_spread"]:
        ratio = stock["rto_seconds_spread"]["median"] / fast["rto_seconds_spread"]["median"]
        print(f"stock/fast median RTO ratio: {ratio:.1f}x (target ≥ 5x)")
    if fast and fast["rto_seconds_spread"]:
        ok = fast["rto_seconds_spread"]["median"] <= 5 and not any(fast["rpo_lost_writes_per_trial"])
        print(f"fast profile target (median RTO ≤ 5 s, RPO 0 every trial): {'MET' if ok else 'MISSED'}")
    print(json.dumps({p: {k: r.get(k) for k in ("rto_seconds_spread", "rto_seconds_all", "rpo_lost_writes_per_trial",
                                                  "split_brain", "passed_trials", "trials", "wall_seconds")}
                      for p, r in results.items()}))


if __name__ == "__main__":
    main()
