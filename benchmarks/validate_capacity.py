"""Benchmark: `validate` and `capacity` on a generated 1,000-system / 10,000-VM inventory,
with the 25-system sample side by side as the baseline. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/validate_capacity.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=REPO,
                          stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # capacity exits 1 when a recovery promise does not fit
        raise SystemExit(f"tricenter {' '.join(args)} failed with exit {done.returncode}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=10000)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "generated"
        timed(["generate", "--out", str(generated), "--systems", str(opts.systems),
               "--vms", str(opts.vms)])
        inventories = {"sample (25 systems / 288 VMs)": REPO / "inventory" / "guangdong",
                       f"generated ({opts.systems} systems / {opts.vms} VMs)": generated}
        print(f"{'command':<10} {'inventory':<38} {'min':>7} {'median':>7} {'max':>7}  (seconds, whole CLI process)")
        for command in ("validate", "capacity"):
            medians = []
            for label, path in inventories.items():
                runs = [timed([command, "--inventory", str(path), "--json"]) for _ in range(opts.repeat)]
                medians.append(statistics.median(runs))
                print(f"{command:<10} {label:<38} {min(runs):7.2f} {medians[-1]:7.2f} {max(runs):7.2f}")
            print(f"{'':<10} ratio generated/sample: {medians[1] / medians[0]:.1f}x for "
                  f"{opts.vms / 288:.0f}x the VMs; target < 5 s: {'met' if medians[1] < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
