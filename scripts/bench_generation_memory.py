"""How close each problem's memory estimate (``Problem.peak_memory``) is to a real batch's memory.

For each problem (defaults, or the settings given with --set NAME:KEY=VALUE) and batch size: the
estimate against the growth of the process's peak resident memory while ``problem.generate``
solves one batch, measured in a fresh process per case (the peak cannot be reset). Prints the
ratio; ``sciops generate`` refuses work whose estimate exceeds the free memory, so a ratio below 1
is a run it may let through that does not fit.

    python scripts/bench_generation_memory.py [--set navier-stokes:solve_resolution=256]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = """
import json, resource, sys
from pathlib import Path
from sciops.problems import get
name, params, batch = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
problem = get(name, **params)
problem.generate(1, 0, 0)  # warm-up: caches, thread pools, lazily built operators
rss0 = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
problem.generate(batch, 0, 1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": problem.peak_memory(batch), "growth": max(peak - max(rss0, peak0), 0),
                  "peak": peak}))
"""

CASES = {
    "darcy": [{"resolution": 257}, {"resolution": 129, "subsample": 4}, {"resolution": 513, "linear_solver": "amg"}],
    "navier-stokes": [{"solve_resolution": 128, "t_final": 2.0}, {"solve_resolution": 256, "t_final": 2.0}],
    "shallow-water": [{}],
    "radar": [{}],
    "particles": [{}],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="PROBLEM:KEY=VALUE")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 8)")
    args = parser.parse_args()
    cases = {k: [dict(c) for c in v] for k, v in CASES.items()}
    for item in args.set:
        name, _, pair = item.partition(":")
        key, _, value = pair.partition("=")
        cases.setdefault(name, [{}])[-1][key] = json.loads(value) if value[:1].isdigit() else value
    print("peak memory of one generated batch: estimate against the measured growth (MiB)")
    print(f"{'problem':<14} {'settings':<44} {'batch':>5} {'estimate':>9} {'growth':>8} {'ratio':>6}")
    for name, settings in cases.items():
        for params in settings:
            for batch in args.batch or (1, 8):
                out = subprocess.run([sys.executable, "-c", CASE, name, json.dumps(params), str(batch)],
                                     capture_output=True, text=True)
                label = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
                if out.returncode:
                    print(f"{name:<14} {label:<44} {batch:>5} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                ratio = r["estimate"] / r["growth"] if r["growth"] else float("inf")
                print(f"{name:<14} {label:<44} {batch:>5} {r['estimate'] / 2**20:>9.1f} {r['growth'] / 2**20:>8.1f} "
                      f"{ratio:>6.2f}")


if __name__ == "__main__":
    main()
