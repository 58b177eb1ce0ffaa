"""Error-controlled rollouts (issue 21): surrogate alone, hybrid at two tolerances and the solver ladder
over 4x the training horizon, on navier-stokes (nu = 1e-3) and shallow-water at tiny sizes.

Trains a small fno-rollout per problem here (seconds on 2 cores), calibrates it on its validation
trajectories, and on fresh trajectories prints the estimators' rank correlation with the true
per-record errors and their cost against a surrogate record and a reference solver record, then
per-record relative L2 errors of the surrogate alone, the hybrid at tolerances of 1/2 and 1/4 of
the surrogate's own worst error (so that both bite), and the solver's rungs; the solver's record
share and wall time per trajectory against the solver alone and against the cheapest rung as
accurate as the hybrid. Usage: .venv/bin/python scripts/bench_hybrid.py [--out DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402
from results import Results  # noqa: E402

import sciops  # noqa: E402
from sciops.cli import main  # noqa: E402
from sciops.grid import hybrid  # noqa: E402

CASES = {
    "navier-stokes": (dict(resolution=16, solve_resolution=32, t_final=0.75, record_every=0.25), 96, 25,
                      ["--set", "width=16", "--set", "modes=6", "--set", "layers=3"]),
    "shallow-water": (dict(nlat=16, records=3, record_every=3600.0), 64, 25,
                      ["--set", "width=16", "--set", "modes=6", "--set", "layers=3"]),
}
TOL_FRACTIONS = (0.5, 0.25)
FRESH = 8


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def as_dict(problem, answer):
    return answer if isinstance(answer, dict) else {problem.output_fields[0]: answer}


def bench(name, out_dir, res):
    params, n, epochs, model = CASES[name]
    data, run = out_dir / f"{name}.h5", out_dir / f"{name}-run"
    args = [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    t0 = time.perf_counter()
    main(["generate", name, "-n", str(n), "-o", str(data), "-q", *args])
    main(["train", "fno-rollout", "--data", str(data), "-o", str(run), "--epochs", str(epochs), *model, "-q"])
    print(f"[{name}] generated and trained in {time.perf_counter() - t0:.0f} s")
    main(["calibrate", str(run)])
    s = sciops.load(run, device="cpu")
    problem, cal = s.problem, s.spec.error_estimator
    steps = 4 * problem.time_steps
    x = problem.sample_inputs(FRESH, s.spec.fresh_seed(FRESH))
    ref, solver_s = timed(problem.with_records(steps).solve, x)
    ref, solver_s = as_dict(problem, ref), solver_s / FRESH
    print(f"[{name}] {steps} records (4x the training horizon {problem.time_steps}), {FRESH} fresh trajectories; "
          f"solver alone {solver_s * 1e3:.3g} ms/trajectory")

    # the estimators on fresh trajectories over the training horizon
    start = hybrid.states_of(problem, problem.as_field_dict(x, "input"), "input")
    pred = as_dict(problem, s.solve(x))
    errors = hybrid.trajectory_errors(problem, pred, {k: v[:, :problem.time_steps] for k, v in ref.items()})
    stepper, sec = hybrid.Stepper(problem), cal["seconds"]
    est_table = res.table(f"{name}-estimators", ["estimator", "Spearman (validation)", "Spearman (fresh)",
                                                 "cost / surrogate record", "cost / solver record"],
                          title=f"{name}: error indicators against the true per-record error")
    for est in cal["spearman"]:
        ind = np.cumsum(hybrid.indicators(est, stepper, cal["rung"], start, pred), 1)
        rho = hybrid.spearman(ind, errors)
        row = [est, round(cal["spearman"][est], 3), round(rho, 3), round(sec[est] / sec["surrogate"], 2),
               round(sec[est] / sec["solver"], 3)]
        est_table.add(row)
        print(f"  estimator {est}{' (chosen)' if est == cal['estimator'] else ''}: Spearman validation {row[1]}, "
              f"fresh {row[2]}; cost {row[3]}x a surrogate record, {row[4]}x a reference solver record")

    table = res.table(f"{name}-rollouts", ["answer", "max record error", "solver records", "ms / trajectory",
                                           "x solver", "x equally accurate rung"],
                      title=f"{name}: {steps} records (4x the training horizon), {FRESH} fresh trajectories")
    rungs = []
    for rung in problem.with_records(steps).ladder():
        if rung.solve is None:
            continue
        try:
            answer, seconds = timed(rung.solve, x)
        except ValueError as err:
            print(f"  rung {rung.label}: failed ({str(err)[:80]})")
            continue
        err_r = hybrid.trajectory_errors(problem, as_dict(problem, answer), ref).max()
        rungs.append((rung.label, err_r, seconds / FRESH))
        table.add([f"rung {rung.label}", round(float(err_r), 4), "100%", round(seconds / FRESH * 1e3, 3),
                   round(solver_s / (seconds / FRESH), 2), ""])
        print(f"  rung {rung.label}: max record error {err_r:.4f}, {seconds / FRESH * 1e3:.3g} ms/traj")

    def report(label, result):
        e = hybrid.trajectory_errors(problem, as_dict(problem, result.records), ref)
        seconds = result.seconds / FRESH
        equal = [r for r in rungs if r[1] <= e.max()]
        cheapest = min(equal, key=lambda r: r[2]) if equal else None
        vs_rung = f"{cheapest[2] / seconds:.2g}x ({cheapest[0]})" if cheapest else "no rung as accurate"
        table.add([label, round(float(e.max()), 4), f"{result.solver_record_share:.0%}", round(seconds * 1e3, 3),
                   round(solver_s / seconds, 2), vs_rung])
        print(f"  {label}: max record error {e.max():.4f} (per record " + " ".join(f"{v:.3f}" for v in e.max(0))
              + f"), solver records {result.solver_record_share:.0%}, {seconds * 1e3:.3g} ms/traj = "
              f"{solver_s / seconds:.2g}x the solver's speed; against the equally accurate rung: {vs_rung}")
        return e.max()

    worst = report("surrogate alone", s.solve(x, steps=steps))
    for fraction in TOL_FRACTIONS:
        tol = float(f"{fraction * worst:.2g}")
        report(f"hybrid tol {tol:g}", s.solve(x, steps=steps, tol=tol))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="keep the data and runs here (default: a temporary folder)")
    parser.add_argument("--problems", nargs="*", default=list(CASES))
    parser.add_argument("--json", help="write the results here (default docs/benchmarks/bench_hybrid.json)")
    a = parser.parse_args()
    print(machine_line())
    results = Results("bench_hybrid", settings={"problems": a.problems, "fresh": FRESH,
                                                "tol_fractions": list(TOL_FRACTIONS)})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in a.problems:
            bench(name, out, results)
    results.note("tolerances are fractions of the surrogate alone's worst record error over the same rollouts")
    results.write(a.json)
