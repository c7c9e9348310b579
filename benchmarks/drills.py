"""Benchmark: the failover drills of issue 12, fast Patroni profile beside the stock one.

    .venv/bin/python benchmarks/drills.py [--loss 10] [--stock-loss 3] [--freeze 10]
        [--switchover 3] [--isolation 1] [--load-rate 270] [--profiles fast,stock]

Needs a running lab (`tricenter lab up`; `--netns` for the isolation drill). For each
profile it switches the lab with `tricenter lab up --patroni-profile P` (idempotent), then
runs, back to back: main-center-loss N times while an outside client writes ~270/s
through the public app entry (this process, not the drill's own workload),
main-center-freeze, samecity-switchover (its longest write gap) and, on a netns lab,
main-center-isolation. Prints one table, the profiles side by side with the targets, and
leaves the lab on the fast profile. Figures on a shared machine are noisy: the load
average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import requests

CLI = [sys.executable, "-m", "scripts.cli"]
TARGETS = {"loss": "median ≤ 5 s; stock ≥ 5× slower", "freeze": "all pass",
           "switchover": "write gap ≤ 1 s", "isolation": "all pass"}
SCENARIOS = {"loss": "main-center-loss", "freeze": "main-center-freeze",
             "switchover": "samecity-switchover", "isolation": "main-center-isolation"}


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), check=False, capture_output=True, text=True, timeout=timeout)


def lab_up(profile: str) -> None:
    done = cli("lab", "up", "--patroni-profile", profile)
    if done.returncode != 0:
        sys.exit(f"`tricenter lab up --patroni-profile {profile}` failed:\n{done.stderr[-3000:]}")


def lab_status() -> dict:
    return json.loads(cli("lab", "status", "--json", timeout=120).stdout)


def drill(scenario: str, repeat: int) -> list[dict]:
    """Every trial's full result, as its report.json holds it (a --repeat summary keeps
    only spreads); a --repeat run stops at the first trial that could not run."""
    done = cli("drill", "run", scenario, "--repeat", str(repeat), "--json", timeout=900 * repeat)
    if not done.stdout.strip():
        sys.exit(f"{scenario} produced no result (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if repeat == 1:
        return [result]
    trials = []
    for trial in result["trials_detail"]:
        report = Path(trial["report_dir"] or "/nonexistent") / "report.json"
        trials.append(json.loads(report.read_text()) if report.is_file() else trial)
    return trials


@dataclass
class OutsideLoad:
    """An application's clients: threads posting records to the public app entry at a
    total rate, counting what was acknowledged and what failed."""

    url: str
    rate: float
    threads: int = 6
    acked: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._post, daemon=True) for _ in range(self.threads)]

    def __enter__(self) -> Self:
        self.began = time.monotonic()
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)
        self.seconds = time.monotonic() - self.began

    def _post(self) -> None:
        session, period, run = requests.Session(), self.threads / self.rate, uuid.uuid4().hex[:8]
        n = 0
        while not self._stop.is_set():
            began, n = time.monotonic(), n + 1
            try:
                session.post(f"{self.url}/records", json={"key": f"load:{run}:{n}"},
                             timeout=5).raise_for_status()
                with self._lock:
                    self.acked += 1
            except requests.RequestException:
                with self._lock:
                    self.failed += 1
                session = requests.Session()
            self._stop.wait(max(0.0, period - (time.monotonic() - began)))


def app_url() -> str:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext
    runtime = RuntimeInventory.load(LabContext().runtime_inventory_file)
    return next(s.app_url for s in runtime.systems.values() if s.app_url).rstrip("/")


def measure(profile: str, plan: dict[str, int], load_rate: float, netns: bool) -> dict:
    lab_up(profile)
    results: dict[str, dict] = {}
    for key, repeat in plan.items():
        if not repeat:
            continue
        if key == "isolation" and not netns:
            results[key] = {"note": "needs `tricenter lab up --netns`"}
            continue
        load1 = os.getloadavg()[0]
        if key == "loss" and load_rate > 0:
            with OutsideLoad(app_url(), load_rate) as load:
                trials = drill(SCENARIOS[key], repeat)
            outside = f"outside {load.acked / load.seconds:.0f}/s acked, {load.failed} failed"
        else:
            trials, outside = drill(SCENARIOS[key], repeat), ""
        results[key] = {"trials": trials, "outside": outside,
                        "load": f"{load1:.1f}→{os.getloadavg()[0]:.1f}"}
    return results


def cell(key: str, r: dict) -> str:
    if "note" in r:
        return r["note"]
    trials = r["trials"]
    passed = sum(1 for t in trials if t.get("status") == "passed")
    if key == "switchover":
        gaps = [t["max_write_gap_seconds"] for t in trials if t.get("max_write_gap_seconds") is not None]
        figure = f"write gap {', '.join(f'{g:.2f}' for g in gaps)} s" if gaps else "no write gap"
    else:
        rtos = [t["rto_seconds"] for t in trials if t.get("rto_seconds") is not None]
        figure = (f"RTO median {statistics.median(rtos):.2f} s ({min(rtos):.2f}–{max(rtos):.2f})"
                  if rtos else "no RTO")
    lost = sum(t.get("rpo_lost_writes") or 0 for t in trials)
    return (f"{passed}/{len(trials)} passed, {figure}, lost {lost}{touched(trials)}"
            f"{'; ' + r['outside'] if r['outside'] else ''}; load {r['load']}")


def touched(trials: list[dict]) -> str:
    """The other systems a center fault took with it, each against its own tier."""
    by_system: dict[str, list[dict]] = {}
    for trial in trials:
        for system in trial.get("touched_systems") or []:
            by_system.setdefault(system["name"], []).append(system)
    parts = []
    for name, runs in by_system.items():
        rtos = [x["rto_seconds"] for x in runs if x.get("rto_seconds") is not None]
        parts.append(f"{name} ({runs[0]['tier']}) {sum(1 for x in runs if x['passed'])}/{len(runs)} passed, "
                     + (f"RTO median {statistics.median(rtos):.2f} s" if rtos else "no RTO")
                     + f", lost {sum(x.get('rpo_lost_writes') or 0 for x in runs)}")
    return f"; also touched: {'; '.join(parts)}" if parts else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=int, default=10, help="main-center-loss trials (fast)")
    parser.add_argument("--stock-loss", type=int, default=3,
                        help="main-center-loss trials with the stock profile (each ~1 min)")
    parser.add_argument("--freeze", type=int, default=10)
    parser.add_argument("--switchover", type=int, default=3)
    parser.add_argument("--isolation", type=int, default=1)
    parser.add_argument("--load-rate", type=float, default=270,
                        help="outside writes per second during main-center-loss (0: none)")
    parser.add_argument("--profiles", default="fast,stock")
    args = parser.parse_args()
    netns = bool((lab_status().get("settings") or {}).get("netns"))
    results = {}
    for profile in args.profiles.split(","):
        plan = {"loss": args.stock_loss if profile == "stock" else args.loss, "freeze": args.freeze,
                "switchover": args.switchover, "isolation": args.isolation}
        results[profile] = measure(profile, plan, args.load_rate, netns)
    if args.profiles.split(",") != ["fast"]:
        lab_up("fast")  # the lab's default: leave it as found
    print(f"2-core machine shared with other labs; load average now {os.getloadavg()[0]:.1f}")
    for key, scenario in SCENARIOS.items():
        print(f"\n{scenario} (target: {TARGETS[key]})")
        for profile, r in results.items():
            if key in r:
                print(f"  {profile:6} {cell(key, r[key])}")
    medians = {p: statistics.median([t["rto_seconds"] for t in r["loss"]["trials"] if t.get("rto_seconds")])
               for p, r in results.items() if "loss" in r and "trials" in r["loss"]
               and any(t.get("rto_seconds") for t in r["loss"]["trials"])}
    if "fast" in medians and "stock" in medians:
        print(f"\nstock/fast median main-center-loss RTO: {medians['stock'] / medians['fast']:.1f}× "
              "(target ≥ 5×)")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
