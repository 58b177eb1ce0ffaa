"""Error-controlled rollouts (issue 21): surrogate alone, hybrid at two tolerances and the solver ladder
over 4x the training horizon, on navier-stokes (nu = 1e-3) and shallow-water at tiny sizes.

Trains a small fno-rollout per problem here (a couple of minutes on 2 cores), calibrates it on its
validation trajectories, and on fresh trajectories prints per-record relative L2 errors, the solver's
record and work shares, and wall time per trajectory against the solver alone and against the
cheapest rung as accurate as the hybrid. Usage: .venv/bin/python scripts/bench_hybrid.py [--out DIR]
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

import sciops  # noqa: E402
from sciops.cli import main  # noqa: E402
from sciops.grid import hybrid  # noqa: E402

CASES = {
    "navier-stokes": (dict(resolution=16, solve_resolution=32, t_final=0.75, record_every=0.25), 96, 25,
                      ["--set", "width=16", "--set", "modes=6", "--set", "layers=3"]),
    "shallow-water": (dict(nlat=16, records=3, record_every=3600.0), 64, 25,
                      ["--set", "width=16", "--set", "modes=6", "--set", "layers=3"]),
}
TOLS = (0.1, 0.03)
FRESH = 4


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def per_record(problem, answer, ref, steps):
    answer = answer if isinstance(answer, dict) else {problem.output_fields[0]: answer}
    ref = ref if isinstance(ref, dict) else {problem.output_fields[0]: ref}
    return np.stack([hybrid.record_errors(problem, hybrid.states_of(problem, answer, "output", k),
                                          hybrid.states_of(problem, ref, "output", k)) for k in range(steps)], 1)


def bench(name, out_dir):
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
    long = problem.with_records(steps)
    x = problem.sample_inputs(FRESH, s.spec.fresh_seed(FRESH))
    ref, solver_s = timed(long.solve, x)
    print(f"[{name}] {steps} records (4x the training horizon {problem.time_steps}), {FRESH} fresh trajectories; "
          f"solver alone {solver_s / FRESH * 1e3:.3g} ms/trajectory")
    alone = s.solve(x, steps=steps)
    e = per_record(problem, alone.records, ref, steps)
    print(f"  surrogate alone: {alone.seconds / FRESH * 1e3:.3g} ms/traj; per-record max error "
          + " ".join(f"{v:.3f}" for v in e.max(0)))
    model_inputs = x if isinstance(x, dict) else {problem.input_fields[0]: x}
    start = hybrid.states_of(problem, model_inputs, "input")
    pred = s.solve(x)
    pred = pred if isinstance(pred, dict) else {problem.output_fields[0]: pred}
    ind = np.cumsum(hybrid.indicators(cal["estimator"], hybrid.Stepper(problem), cal["rung"], start, pred), 1)
    fresh_rho = hybrid.spearman(ind, per_record(problem, pred, ref, problem.time_steps))
    print(f"  estimator {cal['estimator']}: validation Spearman {cal['spearman']}, fresh {fresh_rho:.3f}; cost "
          f"defect {cal['seconds']['defect_record'] * 1e3:.3g} ms/record"
          + (f", residual {cal['seconds']['residual_record'] * 1e3:.3g} ms/record" if cal['seconds']['residual_record']
             else "") + f", surrogate {cal['seconds']['surrogate_record'] * 1e3:.3g} ms/record")
    rungs = []
    for rung in long.ladder():
        if rung.solve is None:
            continue
        try:
            answer, seconds = timed(rung.solve, x)
        except ValueError as err:
            print(f"  rung {rung.label}: failed ({str(err)[:80]})")
            continue
        err_r = per_record(problem, answer, ref, steps).max()
        rungs.append((rung.label, err_r, seconds / FRESH))
        print(f"  rung {rung.label}: max record error {err_r:.4f}, {seconds / FRESH * 1e3:.3g} ms/traj")
    for tol in TOLS:
        h = s.solve(x, steps=steps, tol=tol)
        e = per_record(problem, h.records, ref, steps)
        seconds = h.seconds / FRESH
        equal = [r for r in rungs if r[1] <= e.max()]
        cheapest = min(equal, key=lambda r: r[2]) if equal else None
        print(f"  hybrid tol {tol:g}: max record error {e.max():.4f} (per record "
              + " ".join(f"{v:.3f}" for v in e.max(0)) + f"), solver records {h.solver_record_share:.0%}, solver "
              f"work {h.solver_work_share:.0%}, {seconds * 1e3:.3g} ms/traj = {solver_s / FRESH / seconds:.2g}x the "
              f"solver's speed" + (f", {cheapest[2] / seconds:.2g}x the equally accurate rung {cheapest[0]}"
                                   if cheapest else ", no rung as accurate"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="keep the data and runs here (default: a temporary folder)")
    parser.add_argument("--problems", nargs="*", default=list(CASES))
    a = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in a.problems:
            bench(name, out)
