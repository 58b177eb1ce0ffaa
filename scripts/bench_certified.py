"""Certified Darcy answers: coverage and effectivity of the bound, and the certified surrogate's speed.

One run, fresh coefficients, the figures printed:

1. Coverage: a Darcy FNO (trained here on FNO-style coefficients at --train-resolution, or
   --run RUN) answers --samples fresh coefficients of each family (fno, multiphase, lognormal)
   at two resolutions; for each answer the guaranteed bound (``surrogate.solve(a,
   return_estimate=True)``) is compared with the true relative energy-norm error against the
   direct solve on the same grid, for the surrogate's own problem (its forcing): the bound holds for
   any coefficient. Coverage (bound >= true error) must be 100 %; "finite" is the share with a
   finite bound (none where the answer is further off than its own energy); effectivity is bound /
   true error (goal on fno: median <= 3); "OOD flag" the share flagged out of distribution.
2. Linear solvers at 64-1025 per side on FNO coefficients: SuperLU, pyamg (CG, relative residual
   1e-8) and DST-preconditioned CG (certified to --solver-tol), seconds per solve and the certified
   bound each reaches.
3. At --big per side and tol --tol: the certified surrogate (FNO answer + bound + CG from it where
   needed) against DST-CG from zero and SuperLU, each to the same certified tolerance, seconds per
   sample at batch --batch.

    python scripts/bench_certified.py [--samples 1000] [--epochs 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def _coverage(surrogate, family: str, resolution: int, samples: int, seed: int) -> dict:
    from sciops.problems import get

    problem = get("darcy", resolution=resolution, coefficient=family)
    a = problem.sample_inputs(samples, seed).astype(np.float32)
    u, bounds = surrogate.solve(a, return_estimate=True)
    true = surrogate.problem.certified_error(a, u)  # the surrogate's problem (its forcing) for any coefficient
    finite = np.isfinite(bounds)
    effectivity = bounds[finite] / true[finite]
    return {"coverage": float(np.mean(bounds >= true * (1 - 1e-9))), "finite": float(finite.mean()),
            "flagged": float(surrogate.out_of_distribution(a).mean()),
            "true_median": float(np.median(true)), "eff": np.percentile(effectivity, [0, 50, 100]) if finite.any()
            else np.full(3, np.nan)}


def _linear_solvers(sizes, tol: float, threads: int) -> None:
    from sciops.problems import get
    from sciops.solvers.darcy import solve_darcy
    from sciops.solvers.darcy_bounds import error_bounds, pcg

    print(f"\nLinear solvers on FNO coefficients (one sample per size, {threads} thread(s)); seconds per solve "
          f"and the certified relative energy bound reached:")
    print(f"{'n':>6} {'SuperLU':>16} {'pyamg CG 1e-8':>20} {f'DST-CG {tol:g}':>20}")
    for n in sizes:
        a = get("darcy", resolution=n).sample_inputs(1, 99).astype(np.float64)
        row = []
        for solver in ("direct", "amg", "dst-cg"):
            t0 = time.perf_counter()
            if solver == "dst-cg":
                u = pcg(a, 1.0, tol=tol)[0]
            else:
                u = solve_darcy(a, 1.0, linear_solver=solver, tol=1e-8, workers=1)
            seconds = time.perf_counter() - t0
            bound = error_bounds(a, u, 1.0)["relative"][0]
            row.append(f"{seconds:8.3f}s ({bound:.1e})")
        print(f"{n:>6} " + " ".join(f"{r:>20}" for r in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained darcy run (default: train an FNO here)")
    parser.add_argument("--train-resolution", type=int, default=33)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=1000, help="fresh coefficients per family and resolution")
    parser.add_argument("--resolutions", type=int, nargs=2, default=(33, 65))
    parser.add_argument("--solver-sizes", type=int, nargs="+", default=(64, 128, 256, 513, 1025))
    parser.add_argument("--solver-tol", type=float, default=1e-6)
    parser.add_argument("--big", type=int, default=256)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*outside the range of the training inputs")  # counted in the table
    import sciops
    from sciops.datasets import generate
    from sciops.grid.trainer import train
    from sciops.problems import get
    from sciops.solvers.darcy import solve_darcy
    from sciops.solvers.darcy_bounds import error_bounds, pcg
    from sciops.training import TrainConfig

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            data = generate(get("darcy", resolution=args.train_resolution), args.n_train, Path(tmp) / "d.h5",
                            progress=False)
            run = Path(tmp) / "fno"
            t0 = time.perf_counter()
            train("fno", data, run, config=TrainConfig(epochs=args.epochs, batch_size=32), progress=False)
            print(f"trained an FNO on {args.n_train} fno coefficients at {args.train_resolution}^2 for {args.epochs} "
                  f"epochs ({time.perf_counter() - t0:.0f} s)")
        surrogate = sciops.load(run, device="cpu")

        print(f"\nCoverage of the guaranteed bound, {args.samples} fresh coefficients per row "
              f"(effectivity = bound / true relative energy error):")
        print(f"{'family':<11} {'n':>4} {'coverage':>9} {'finite':>7} {'true err':>9} {'eff min':>8} {'median':>7} "
              f"{'max':>7} {'OOD flag':>9}")
        for family in ("fno", "multiphase", "lognormal"):
            for n in args.resolutions:
                r = _coverage(surrogate, family, n, args.samples, seed=424242 + n)
                print(f"{family:<11} {n:>4} {r['coverage']:>9.1%} {r['finite']:>7.1%} {r['true_median']:>9.3g} "
                      f"{r['eff'][0]:>8.2f} {r['eff'][1]:>7.2f} {r['eff'][2]:>7.2f} {r['flagged']:>9.1%}")

        _linear_solvers(args.solver_sizes, args.solver_tol, 1)

        problem = get("darcy", resolution=args.big)
        a = problem.sample_inputs(args.batch, 777).astype(np.float32)
        surrogate.solve(a[:2])  # warm-up
        t0 = time.perf_counter()
        answer = surrogate.certify(a, tol=args.tol)
        t_cert = (time.perf_counter() - t0) / args.batch
        t0 = time.perf_counter()
        pcg(a.astype(np.float64), 1.0, tol=args.tol)
        t_cg = (time.perf_counter() - t0) / args.batch
        t0 = time.perf_counter()
        u = solve_darcy(a.astype(np.float64), 1.0, workers=args.threads)
        error_bounds(a.astype(np.float64), u, 1.0)
        t_lu = (time.perf_counter() - t0) / args.batch
        print(f"\nAt {args.big}^2, tol {args.tol:g}, batch {args.batch}: certified surrogate {t_cert * 1e3:.1f} ms/sample "
              f"(max bound {answer.bounds.max():.2g}, {answer.refined.mean():.0%} finished by CG, "
              f"{np.maximum(answer.iterations, 0).mean():.1f} iterations on average); DST-CG from zero "
              f"{t_cg * 1e3:.1f} ms, SuperLU {t_lu * 1e3:.1f} ms: the certified surrogate's speedup is "
              f"{t_cg / t_cert:.2f}x against DST-CG from zero and {t_lu / t_cert:.2f}x against SuperLU, to the "
              f"same certified tolerance")


if __name__ == "__main__":
    main()
