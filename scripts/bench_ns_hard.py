"""Navier-Stokes where coarse solves stop being accurate: the equal-accuracy speedup of a trained
trajectory operator at viscosity 1e-4 (FNO forcing, T = 20 records), against its solver ladder.

At nu = 1e-3 a 12^2-16^2 solve is already as accurate as the best surrogate (README), so no
surrogate can win there. At nu = 1e-4 the resolution check demands a 128^2 solve (the dissipation
wavenumber is ~150), stored here at 64^2; the ladder's coarser grids are refused by that check or
inaccurate, and larger steps and RK2-CN are what remains. The script, in one run:

1. generates ``--n`` trajectories (resumable: rerun the same command to continue an interrupted
   generation, or to add samples with a larger ``--n`` in a new ``--out``),
2. trains ``--operator`` (default T1) for ``--epochs`` epochs (resumable),
3. evaluates it on ``--fresh`` fresh trajectories with the ladder (``sciops.grid.evaluation``), and
   prints the summary line, the ladder and the JSON figures (``docs/benchmarks/bench_ns_hard.json``).

On the project's 2-core CPU machines the default settings take about half an hour; report what it
prints, whichever way the comparison falls. ``--regime kolmogorov-re1000`` is Kolmogorov flow at
Re = 1000, which the resolution check solves at 544^2: a GPU's work (not run on the CPU machines).

    python scripts/bench_ns_hard.py [--regime fno-nu1e-4] [--n 48] [--epochs 20] [--fresh 4] [--out bench_ns_hard]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from machine import machine_line
from results import Results

from sciops import problems
from sciops.datasets import generate
from sciops.grid.evaluation import evaluate, summary_line
from sciops.grid.surrogate import Surrogate
from sciops.grid.trainer import train
from sciops.reporting import public
from sciops.training import TrainConfig

REGIMES = {  # problem parameters; solve_resolution is what the resolution check demands
    "fno-nu1e-4": dict(viscosity=1e-4, forcing="fno", resolution=64, solve_resolution=128, t_final=20.0,
                       record_every=1.0),
    # Kolmogorov flow at Re = 1/nu = 1000 (L = 2 pi, drag 0.1) from McWilliams states: the check demands a
    # 544^2 solve (dissipation wavenumber ~181), beyond what the 2-core CPU machines can generate in a sitting
    "kolmogorov-re1000": dict(viscosity=1e-3, forcing="kolmogorov", initial_condition="mcwilliams", resolution=64,
                              solve_resolution=544, t_final=20.0, record_every=1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="training trajectories (the last tenth validates)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fresh", type=int, default=4, help="fresh trajectories for the evaluation")
    parser.add_argument("--operator", default="t1")
    parser.add_argument("--regime", choices=tuple(REGIMES), default="fno-nu1e-4")
    parser.add_argument("--out", default="bench_ns_hard", help="folder for the data and the run")
    parser.add_argument("--json", help="results JSON (default docs/benchmarks/bench_ns_hard.json)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    params = REGIMES[args.regime]
    problem = problems.get("navier-stokes", **params)
    print(f"navier-stokes {json.dumps(params)}: solver {problem.solver_info['solve_resolution']}^2, "
          f"dt {problem.solver_info['dt']:.3g}")
    t0 = time.perf_counter()
    data = generate(problem, args.n, out / "ns.h5", seed=0, resume=True, progress=None)
    t_generate = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = train(args.operator, data, out / args.operator, config=TrainConfig(epochs=args.epochs, batch_size=8,
                                                                                  loss="l2", metrics=["l2"]),
                    resume=True, progress=None)
    t_train = time.perf_counter() - t0
    report = evaluate(Surrogate.load(out / args.operator), fresh=args.fresh, batch=args.fresh)
    print(f"generate {t_generate:.0f} s, train {t_train:.0f} s ({summary['epochs']} epochs)")
    print(summary_line(report))
    for rung in report["ladder"]:
        print(f"  rung {rung['label']}: " + (f"error {rung['error']:.4g}, {rung['seconds_per_sample'] * 1e3:.4g} "
                                            f"ms/trajectory" if rung["error"] is not None else rung["note"]))
    res = Results("bench_ns_hard", settings={**vars(args), **params})
    table = res.table("ladder", ["configuration", "rel. L2(0,T;L2)", "ms / trajectory", "ms / trajectory, batch 1"],
                      title=f"{args.operator} against the solver ladder, {args.fresh} fresh trajectories")
    table.add([f"{args.operator} surrogate", report["metrics"]["rel_l2"]["mean"],
               report["surrogate_seconds_per_sample"] * 1e3, report["surrogate_seconds_per_sample_batch1"] * 1e3])
    table.add([f"reference ({params['solve_resolution']}^2, rk4cn)", 0.0, report["solver_seconds_per_sample"] * 1e3,
               report["solver_seconds_per_sample_batch1"] * 1e3])
    for rung in report["ladder"]:
        if rung["error"] is not None:
            table.add([rung["label"], rung["error"], rung["seconds_per_sample"] * 1e3,
                       rung["seconds_per_sample_batch1"] * 1e3])
        else:
            res.note(f"rung {rung['label']}: {rung['note']}")
    for key in ("speedup", "speedup_equal_accuracy", "speedup_batch1", "speedup_equal_accuracy_batch1"):
        res.note(f"{key}: {report[key]}" + (f" ({report[key + '_note']})" if key + "_note" in report else ""))
    res.write(args.json)
    (out / "report.json").write_text(json.dumps(public(report), indent=2) + "\n")


if __name__ == "__main__":
    main()
