"""Generation speed of the ``navier-stokes`` problem with its defaults, and why it solves at 64^2.

    python scripts/bench_ns_generation.py [-n 100] [--threads 2] [--compare 2]

1. Runs ``sciops generate navier-stokes -n N`` with the default parameters (nu = 1e-3, FNO initial
   vorticity and forcing, 64^2, 10 records every time unit, RK4-CN, float64) into a temporary file
   and prints trajectories per second, the solver's share of the wall time, and the wall time
   extrapolated linearly to 1000 trajectories (the issue's goal: under 15 minutes on 2 cores).
2. Solves ``--compare`` of the same initial states with solve_resolution=128 (truncated to 64^2)
   and prints the relative difference per record against the default 64^2 solve, and the cost
   ratio of the two: the evidence that solving at the stored grid loses nothing at nu = 1e-3.

The machine's load average is printed too: other processes on a shared machine slow it down.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="trajectories to generate (default 100)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compare", type=int, default=2, help="trajectories solved at 128^2 too (0: skip)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from sciops import problems
    from sciops.datasets import generate, open_xarray

    problem = problems.get("navier-stokes")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"defaults: {problem.params}")
    print(f"solver: dt = {problem.dt:.5g} ({round(problem.params['record_every'] / problem.dt)} steps per record), "
          f"k_max {problem.solver_info['max_wavenumber']:.4g} vs dissipation wavenumber "
          f"{problem.dissipation_wavenumber():.4g}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ns.h5"
        t0 = time.perf_counter()
        generate(problem, args.n, path, seed=0, progress=False)
        wall = time.perf_counter() - t0
        ds = open_xarray(path)
        solve = float(ds.attrs["solve_seconds"])
        w0 = ds["w0"].values[: args.compare]
        w64 = ds["w"].values[: args.compare]
    rate = args.n / wall
    print(f"generate -n {args.n}: {wall:.1f} s wall ({rate:.2f} trajectories/s, {1e3 * wall / args.n:.0f} ms each), "
          f"solver {solve:.1f} s = {100 * solve / wall:.0f}% of the wall time; "
          f"load average {os.getloadavg()[0]:.2f} at end")
    print(f"extrapolated to 1000 trajectories: {1000 / rate / 60:.1f} min (goal: < 15 min)")

    if args.compare > 0:
        fine = problems.get("navier-stokes", solve_resolution=128)
        t0 = time.perf_counter()
        w128 = fine.solve(w0)
        t_fine = (time.perf_counter() - t0) / len(w0)
        diff = np.linalg.norm((w128 - w64).reshape(len(w0), w64.shape[1], -1), axis=-1) / \
            np.linalg.norm(w128.reshape(len(w0), w64.shape[1], -1), axis=-1)
        print(f"solve_resolution 128 (dt = {fine.dt:.5g}) truncated to 64^2 vs the default 64^2 solve, "
              f"{len(w0)} trajectories: relative L2 difference per record (max over samples) "
              + " ".join(f"{d:.1e}" for d in diff.max(0)))
        print(f"cost per trajectory: {t_fine:.2f} s at 128^2 vs {solve / args.n:.2f} s at 64^2 "
              f"({t_fine / (solve / args.n):.1f}x)")


if __name__ == "__main__":
    sys.exit(main())
