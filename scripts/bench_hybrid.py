"""Error-controlled rollouts (issue 21): surrogate alone, hybrid at two tolerances and the solver ladder
over 4x the training horizon, on navier-stokes (nu = 1e-3 at a tiny size, and the honest-speed
issue's harder regime nu = 1e-4, bench_ns_hard.py, over 5 records) and shallow-water.

Trains an fno-rollout per case here (minutes on 2 cores), calibrates it on its validation
trajectories, and on fresh trajectories prints the estimators' rank correlation with the true
per-record errors (over the horizon and over the 4x rollout) and their cost against a surrogate
record and a reference solver record, the error amplification of a record interval (how the defects
are carried from record to record), then
per-record relative L2 errors of the surrogate alone, the hybrid at tolerances of 1/2 and 1/4 of
the surrogate's own worst error (so that both bite), and the solver's rungs; the solver's record
share and wall time per trajectory against the solver alone and against the cheapest rung as
accurate as the hybrid. Last, the residual's cost at the problems' default grids. Usage:
.venv/bin/python scripts/bench_hybrid.py [--cases ...] [--no-sizes] [--out DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402
from results import Results  # noqa: E402

import sciops  # noqa: E402
from sciops.cli import main  # noqa: E402
from sciops.grid import error_estimator as estimator  # noqa: E402

SMALL = ["--set", "width=16", "--set", "modes=6", "--set", "layers=3"]
CASES = {  # label: (problem, parameters, training trajectories, epochs, operator settings)
    "navier-stokes": ("navier-stokes", dict(resolution=16, solve_resolution=32, t_final=0.75, record_every=0.25),
                      96, 25, SMALL),
    # bench_ns_hard.py's regime over 5 records: the coarse grids pass the resolution check over the training
    # horizon, not over the 20-record rollout, whose forcing has had 4x as long to raise the velocity
    "navier-stokes-hard": ("navier-stokes", dict(viscosity=1e-4, forcing="fno", resolution=64, solve_resolution=128,
                                                 t_final=5.0, record_every=1.0), 48, 30, []),
    "shallow-water": ("shallow-water", dict(nlat=16, records=3, record_every=3600.0), 64, 25, SMALL),
}
TOL_FRACTIONS = (0.5, 0.25)
FRESH = 8
# the estimators' cost at the problems' default grids with the default fno-rollout (the cost does not
# depend on the weights: one epoch of training is enough to time it)
SIZES = {
    "navier-stokes": [dict(resolution=n, solve_resolution=n, t_final=3.0, record_every=1.0) for n in (64, 128)],
    "shallow-water": [dict(nlat=n, records=3) for n in (32, 64)],
}


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def as_dict(problem, answer):
    return answer if isinstance(answer, dict) else {problem.output_fields[0]: answer}


def bench(name, out_dir, res):
    problem_name, params, n, epochs, model = CASES[name]
    data, run = out_dir / f"{name}.h5", out_dir / f"{name}-run"
    args = [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    t0 = time.perf_counter()
    main(["generate", problem_name, "-n", str(n), "-o", str(data), "-q", "--resume", *args])
    main(["train", "fno-rollout", "--data", str(data), "-o", str(run), "--epochs", str(epochs), *model, "-q",
          "--resume"])
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

    # the estimators on fresh trajectories over the training horizon and over the 4x rollout
    start = estimator.states_of(problem, problem.as_field_dict(x, "input"), "input")
    pred = as_dict(problem, s.solve(x))
    errors = estimator.trajectory_errors(problem, pred, {k: v[:, :problem.time_steps] for k, v in ref.items()})
    alone = s.solve(x, steps=steps)
    long_errors = estimator.trajectory_errors(problem, as_dict(problem, alone.records), ref)
    stepper, long_stepper, sec = estimator.Stepper(problem), estimator.Stepper(problem, steps), cal["seconds"]
    est_table = res.table(f"{name}-estimators", ["estimator", "Spearman (validation)", "Spearman (fresh)",
                                                 "record number alone", "within a record (median)",
                                                 f"Spearman over {steps} records", "record number alone",
                                                 "within a record (median)", "cost / surrogate record",
                                                 "cost / solver record"],
                          title=f"{name}: error indicators against the true per-record error, fresh trajectories "
                                f"over the horizon and along the surrogate alone's {steps} records")
    spread = [estimator.ranking(errors, errors)["spread"], estimator.ranking(long_errors, long_errors)["spread"]]
    print(f"  the errors' spread across samples within a record (coefficient of variation, median over records): "
          f"{spread[0]:.3f} over the horizon, {spread[1]:.3f} along the rollout")
    res.note(f"{name}: the errors' coefficient of variation across samples within a record, median over records: "
             f"{spread[0]:.3f} over the horizon, {spread[1]:.3f} along the {steps}-record rollout")
    for est in cal["spearman"]:
        short = estimator.ranking(estimator.carried(estimator.indicators(est, stepper, estimator.defect_rungs(cal),
                                                                         start, pred), cal), errors)
        long = estimator.ranking(estimator.carried(estimator.indicators(est, long_stepper, estimator.defect_rungs(cal),
                                                                        start, as_dict(problem, alone.records)), cal),
                                 long_errors)
        row = [est, round(cal["spearman"][est], 3),
               *(round(r[k], 3) for r in (short, long) for k in ("indicator", "record_number", "within_record")),
               round(sec[est] / sec["surrogate"], 2), round(sec[est] / sec["solver"], 3)]
        est_table.add(row)
        print(f"  estimator {est}{' (chosen)' if est == cal['estimator'] else ''}: Spearman validation {row[1]}; "
              f"fresh over the horizon {row[2]} (the record number alone {row[3]}, across samples within a record "
              f"{row[4]}), over the {steps}-record rollout {row[5]} ({row[6]}, {row[7]}); cost {row[8]}x a "
              f"surrogate record, {row[9]}x a reference solver record")
    propagation(name, problem, long_stepper, cal, start, as_dict(problem, alone.records), ref, long_errors, res)

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
        err_r = estimator.trajectory_errors(problem, as_dict(problem, answer), ref).max()
        rungs.append((rung.label, err_r, seconds / FRESH))
        table.add([f"rung {rung.label}", round(float(err_r), 4), "100%", round(seconds / FRESH * 1e3, 3),
                   round(solver_s / (seconds / FRESH), 2), ""])
        print(f"  rung {rung.label}: max record error {err_r:.4f}, {seconds / FRESH * 1e3:.3g} ms/traj")

    def report(label, result):
        e = estimator.trajectory_errors(problem, as_dict(problem, result.records), ref)
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

    worst = report("surrogate alone", alone)
    first = {k: v[:1] for k, v in x.items()} if isinstance(x, dict) else x[:1]
    tols = [float(f"{fraction * worst:.2g}") for fraction in TOL_FRACTIONS]
    # the calibrated choice first, then the other indicator (calibrated with --estimator) for comparison
    for est in sorted(cal["spearman"], key=lambda e: e != cal["estimator"]):
        if est != cal["estimator"]:
            main(["calibrate", str(run), "--estimator", est])
            s = sciops.load(run, device="cpu")
        s.solve(first, steps=steps, tol=tols[0])  # warm-up: the first hybrid call builds the solvers' caches
        for tol in tols:
            report(f"hybrid tol {tol:g}, {est}" + (" (chosen)" if est == cal["estimator"] else ""),
                   s.solve(x, steps=steps, tol=tol))


def propagation(name, problem, stepper, cal, start, records, ref, errors, res):
    """How the defects are carried (D_k = L_k D_{k-1} + d_k): the error amplification of a record
    interval measured on the surrogate's own rollout (the error of the rung's advance of record k - 1
    against the true record k, over the error of record k - 1) within the horizon and past it, and the
    ranking and bound of the defects carried at the calibration's L within the horizon and max(L, 1)
    past it (the estimator's rule), at L throughout, and summed (L = 1). The bound's factor is the worst
    error / indicator past the horizon over the worst within it: above 1, an estimate calibrated within
    the horizon is exceeded past it."""
    names, (n, t) = problem.output_fields, errors.shape
    horizon, stored = problem.time_steps, cal["amplification"]

    def flat(d):
        return {k: np.asarray(v).reshape((n * t,) + np.shape(v)[2:]) for k, v in d.items()}

    prev = flat({k: np.concatenate([np.asarray(start[k])[:, None], np.asarray(records[k])[:, :-1]], 1) for k in names})
    advanced = estimator.states_of(problem, stepper.advance(prev, (*estimator.defect_rungs(cal), "reference")),
                                   "output", 0)
    defects = estimator.record_errors(problem, flat(records), advanced).reshape(n, t)
    carried_errors = estimator.record_errors(problem, advanced, flat({k: v[:, :t] for k, v in ref.items()})).reshape(n, t)
    amplification = carried_errors[:, 1:] / errors[:, :-1]
    within, past = float(np.median(amplification[:, :horizon - 1])), float(np.median(amplification[:, horizon - 1:]))
    table = res.table(f"{name}-propagation", ["defects carried at", "Spearman within the horizon",
                                              f"Spearman over {t} records", "bound factor past the horizon"],
                      title=f"{name}: error amplification of a record interval on fresh trajectories, median "
                            f"{within:.3f} within the horizon, {past:.3f} past it; calibrated L = {stored:.3f}")
    rules = {f"L = {stored:.3f}, max(L, 1) past the horizon (the estimator's)": cal,
             f"L = {stored:.3f} throughout": {**cal, "time_steps": t},
             "1 (summed)": {**cal, "amplification": 1.0}}
    for rule, carry in rules.items():
        ind = estimator.carried(defects, carry)
        ratio = errors / ind
        row = [rule, round(estimator.spearman(ind[:, :horizon], errors[:, :horizon]), 3),
               round(estimator.spearman(ind, errors), 3),
               round(float(ratio[:, horizon:].max() / ratio[:, :horizon].max()), 2)]
        table.add(row)
        print(f"  defects carried at {rule}: Spearman {row[1]} within the horizon, {row[2]} over {t} records; "
              f"the worst error / indicator past the horizon is {row[3]}x the worst within it")


def cost_by_size(out_dir, res):
    """The residual's cost against a surrogate record and a reference solver record at larger grids."""
    warnings.filterwarnings("ignore", message=".*outside the range of the training inputs")  # one epoch's run
    table = res.table("estimator-cost", ["problem", "grid", "surrogate ms/record", "residual ms/record",
                                         "solver ms/record", "residual / surrogate", "residual / solver"],
                      title=f"The residual indicator's cost, default fno-rollout, batch {FRESH}")
    for name, cases in SIZES.items():
        for params in cases:
            grid = "x".join(str(v) for k, v in params.items() if k in ("resolution", "nlat"))
            data, run = out_dir / f"{name}-{grid}.h5", out_dir / f"{name}-{grid}-run"
            args = [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
            main(["generate", name, "-n", str(FRESH), "-o", str(data), "-q", "--resume", *args])
            main(["train", "fno-rollout", "--data", str(data), "-o", str(run), "--epochs", "1", "-q", "--resume"])
            s = sciops.load(run, device="cpu")
            problem, t = s.problem, s.problem.time_steps
            x = problem.sample_inputs(FRESH, 1)
            start = estimator.states_of(problem, problem.as_field_dict(x, "input"), "input")
            stepper = estimator.Stepper(problem)
            pred = as_dict(problem, s.solve(x))
            best = {}
            for label, fn in (("surrogate", lambda: s.solve(x)),
                              ("residual", lambda: estimator.indicators("residual", stepper, (), start, pred)),
                              ("solver", lambda: stepper.advance(start))):
                best[label] = min(timed(fn)[1] for _ in range(3)) / FRESH / (1 if label == "solver" else t)
            shape = "x".join(map(str, problem.field_shape(problem.output_fields[0])[-2:]))
            row = [name, shape, *(round(best[k] * 1e3, 3) for k in ("surrogate", "residual", "solver")),
                   round(best["residual"] / best["surrogate"], 2), round(best["residual"] / best["solver"], 3)]
            table.add(row)
            print(f"[{name} {row[1]}] surrogate {row[2]} ms/record, residual {row[3]} ms/record, solver {row[4]} "
                  f"ms/record: the residual costs {row[5]}x a surrogate record, {row[6]}x a solver record")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="keep the data and runs here (default: a temporary folder)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", help="write the results here (default docs/benchmarks/bench_hybrid.json)")
    parser.add_argument("--no-sizes", action="store_true", help="leave out the estimator's cost at larger grids")
    a = parser.parse_args()
    print(machine_line())
    results = Results("bench_hybrid", settings={"cases": a.cases, "fresh": FRESH,
                                                "tol_fractions": list(TOL_FRACTIONS)})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in a.cases:
            bench(name, out, results)
        if not a.no_sizes:
            cost_by_size(out, results)
    results.note("tolerances are fractions of the surrogate alone's worst record error over the same rollouts")
    results.write(a.json)
