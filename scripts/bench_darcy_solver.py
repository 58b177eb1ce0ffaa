#!/usr/bin/env python
"""Benchmark: sciops' Darcy reference solver against the way a user would write it with scipy.

What it measures
    Samples per second for solving -div(a grad u) = 1, u = 0 on the boundary of the unit square,
    on the n x n vertex grid, for K random FNO-type coefficients (a in {3, 12}, drawn by
    ``sciops.problems.get("darcy", resolution=n)``), end to end from the coefficient array to u:

    * ``plain-lil``: the same harmonic-averaged 5-point matrix assembled the obvious way, a
      Python loop over interior nodes filling a ``scipy.sparse.lil_matrix``, then
      ``scipy.sparse.linalg.spsolve`` with default options (SuperLU, COLAMD ordering), one
      sample after another;
    * ``plain-diags``: the same matrix assembled with vectorised numpy face coefficients and
      ``scipy.sparse.diags``, then the same default ``spsolve``: the baseline with the Python
      loop taken out, so the last column isolates what sciops' solver settings buy (SuperLU
      in symmetric mode with a minimum-degree ordering of A + A^T, and a 2-thread pool over
      the batch);
    * ``sciops``: ``sciops.solvers.solve_darcy(a_batch)`` with its default settings
      (harmonic averaging, direct solver, workers=2);
    * ``sciops-1t``: the same with ``workers=1``, to separate the ordering / symmetric-mode gain
      from the thread pool (only reported, not a ratio column).

    Before timing, every method's solution of sample 0 is checked against sciops' (relative
    max-norm difference < 1e-8), and every timed solution is checked again afterwards.
    Each method's time is the best of ``--repeats`` runs over the K samples. Timed work is
    in one process; the baselines use one thread, ``sciops`` two (its default). The figures
    depend on the machine and its core count, printed with the table.

How to run
    python scripts/bench_darcy_solver.py                      # sizes 64 128 256 421, K = 4
    python scripts/bench_darcy_solver.py --sizes 128 256 --samples 8 --repeats 3
    python scripts/bench_darcy_solver.py --skip-lil            # the loop assembly is slow at 421
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from results import Results

import sciops.problems
from sciops.solvers import solve_darcy


def harmonic(p: float, q: float) -> float:
    return 2.0 * p * q / (p + q)


def plain_lil(a: np.ndarray, f: float = 1.0) -> np.ndarray:
    """Loop over interior nodes, lil_matrix, default spsolve: what a user writes first."""
    n = a.shape[0]
    m = n - 2
    h2 = 1.0 / (n - 1) ** 2
    A = sp.lil_matrix((m * m, m * m))
    b = np.full(m * m, f)
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            k = (i - 1) * m + (j - 1)
            for p, q in ((i, j - 1), (i, j + 1), (i - 1, j), (i + 1, j)):
                c = harmonic(a[i, j], a[p, q]) / h2
                A[k, k] += c
                if 0 < p < n - 1 and 0 < q < n - 1:
                    A[k, (p - 1) * m + (q - 1)] = -c
    u = np.zeros_like(a)
    u[1:-1, 1:-1] = spla.spsolve(A.tocsc(), b).reshape(m, m)
    return u


def plain_diags(a: np.ndarray, f: float = 1.0) -> np.ndarray:
    """Vectorised face coefficients, scipy.sparse.diags, default spsolve."""
    n = a.shape[0]
    m = n - 2
    h2 = 1.0 / (n - 1) ** 2
    c = a[1:-1, 1:-1]
    west = 2 * c * a[1:-1, :-2] / (c + a[1:-1, :-2]) / h2
    east = 2 * c * a[1:-1, 2:] / (c + a[1:-1, 2:]) / h2
    south = 2 * c * a[:-2, 1:-1] / (c + a[:-2, 1:-1]) / h2
    north = 2 * c * a[2:, 1:-1] / (c + a[2:, 1:-1]) / h2
    main = (west + east + south + north).ravel()
    east_link = -east.copy()
    east_link[:, -1] = 0.0  # no link from the last node of a row to the first of the next
    east_link = east_link.ravel()[:-1]
    north_link = -north[:-1, :].ravel()
    A = sp.diags([main, east_link, east_link, north_link, north_link], [0, 1, -1, m, -m], format="csc")
    u = np.zeros_like(a)
    u[1:-1, 1:-1] = spla.spsolve(A, np.full(m * m, f)).reshape(m, m)
    return u


def per_sample(solver):
    return lambda batch: np.stack([solver(s) for s in batch])


def best_time(fn, batch, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(batch)
        best = min(best, time.perf_counter() - t0)
    return best, out


def rel_diff(u: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(u - ref).max() / np.abs(ref).max())


def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu or 'unknown CPU'}, {os.cpu_count()} logical CPUs ({usable} usable), {platform.system()} "
            f"{platform.machine()}; Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 421], help="grid nodes per side")
    parser.add_argument("--samples", type=int, default=4, help="coefficients per size (K)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per method; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-lil", action="store_true", help="leave out the Python-loop lil_matrix baseline")
    parser.add_argument("--json", help="results file (default docs/benchmarks/bench_darcy_solver.json)")
    args = parser.parse_args(argv)
    if min(args.sizes) < 8 or args.samples < 1 or args.repeats < 1:
        parser.error("sizes must be >= 8, samples and repeats >= 1")

    methods = {"plain-lil": per_sample(plain_lil), "plain-diags": per_sample(plain_diags),
               "sciops-1t": lambda batch: solve_darcy(batch, workers=1),
               "sciops": lambda batch: solve_darcy(batch)}
    if args.skip_lil:
        del methods["plain-lil"]

    print(f"Darcy -div(a grad u) = 1 on n x n nodes, FNO coefficients a in {{3, 12}}, harmonic faces; "
          f"K = {args.samples} samples, best of {args.repeats}")
    print(f"machine: {machine()}")
    head = f"{'n':>5} " + " ".join(f"{name + ' [1/s]':>18}" for name in methods)
    head += " " + " ".join(f"{'x vs ' + name:>16}" for name in methods if not name.startswith("sciops"))
    print(head)
    results = Results("bench_darcy_solver", settings=vars(args))
    baselines = [name for name in methods if not name.startswith("sciops")]
    table = results.table("throughput", ["n", *(f"{name} [samples/s]" for name in methods),
                                         *(f"sciops / {name}" for name in baselines)],
                          title="Samples per second, best of the repeats (sciops on 2 threads, the others on one)")
    for n in args.sizes:
        batch = sciops.problems.get("darcy", resolution=n).sample_inputs(args.samples, args.seed).astype(np.float64)
        reference = solve_darcy(batch[:1])[0]  # also warms up caches
        for name, fn in methods.items():
            d = rel_diff(fn(batch[:1])[0], reference)
            if d >= 1e-8:
                print(f"n={n}: {name} differs from sciops by {d:.2e} (relative), aborting", file=sys.stderr)
                return 1
        rates, outputs = {}, {}
        for name, fn in methods.items():
            seconds, outputs[name] = best_time(fn, batch, args.repeats)
            rates[name] = args.samples / seconds
        for name, out in outputs.items():
            d = rel_diff(out, outputs["sciops"])
            if d >= 1e-8:
                print(f"n={n}: timed {name} solutions differ from sciops by {d:.2e}, aborting", file=sys.stderr)
                return 1
        row = f"{n:>5} " + " ".join(f"{rates[name]:>18.3f}" for name in methods)
        row += " " + " ".join(f"{rates['sciops'] / rates[name]:>16.2f}" for name in methods if not name.startswith("sciops"))
        print(row, flush=True)
        table.add([n, *(rates[name] for name in methods), *(rates["sciops"] / rates[name] for name in baselines)])
    results.note(f"-div(a grad u) = 1 on n x n nodes, FNO coefficients a in {{3, 12}}, harmonic faces; "
                 f"K = {args.samples} samples per size, best of {args.repeats}; every timed solution equals "
                 "sciops' to a relative 1e-8")
    results.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
