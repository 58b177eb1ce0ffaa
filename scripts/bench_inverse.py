"""Benchmark: calibration of the Darcy inversion's posterior bands (issue 25), samplers compared.

A label-free DGNO (``DGNO_LABEL_FREE`` of scripts/bench_darcy_operators.py) is trained on
multi-phase Darcy at ``--resolution`` (or ``--run DIR`` reuses a trained run; the last-epoch
weights are used either way, so the model never saw a label). ``--problems`` fresh coefficients
(seed not used by the training file) are each observed at ``--observations`` random interior nodes
with Gaussian noise at ``--snr-db``, and inverted with each ``--samplers`` entry
(``sciops.workflows.inverse.invert``). Per problem, the bands are calibrated as ``sciops invert``
does: ``--calibration`` held-out labelled problems (the run's validation samples), observed at the
same points with the same noise, inverted the same way (``sciops.workflows.inverse_calibration``).

Printed per sampler: posterior-mean relative L2 error of a; coverage of the 50 % and 95 % bands as
a share of grid points (pooled) and of samples (the share of problems whose own coverage lies in
the goal range: 40-60 % and 85-99 %), for the raw bands (central quantiles of the draws), the
old mean +- 2 std band, and the calibrated bands; mean band width; seconds per inversion and per
calibration (K inversions, once per observation design).

Run:  python scripts/bench_inverse.py --workdir /tmp/invbench                 (trains if needed)
      python scripts/bench_inverse.py --run runs/dgno --problems 20 --samplers pcn,laplace
      python scripts/bench_inverse.py --run runs/dgno --samplers laplace --steps 300   (the method before issue 25)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from bench_darcy_operators import DGNO_LABEL_FREE, DGNO_LR, last_epoch_surrogate
from machine import machine_line  # scripts/machine.py

GOAL = {0.5: (0.40, 0.60), 0.95: (0.85, 0.99)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="trained DGNO run (default: train one in --workdir)")
    p.add_argument("--workdir", default="bench_inverse_work")
    p.add_argument("--resolution", type=int, default=29)
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--n-val", type=int, default=50)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--problems", type=int, default=20)
    p.add_argument("--observations", type=int, default=100)
    p.add_argument("--snr-db", type=float, default=25.0)
    p.add_argument("--calibration", type=int, default=8, help="held-out labelled problems per calibration")
    p.add_argument("--samplers", default="pcn,mixture,laplace")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--pcn-steps", type=int, default=400)
    p.add_argument("--steps", type=int, default=100, help="MAP steps per start (300: the setting before issue 25)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def trained_run(args) -> Path:
    if args.run:
        return Path(args.run)
    from sciops import problems
    from sciops.datasets import generate
    from sciops.grid.trainer import train
    from sciops.training import TrainConfig

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    run = work / "run"
    if (run / "config.json").is_file() and "history" in json.loads((run / "config.json").read_text()):
        return run
    problem = problems.get("darcy", coefficient="multiphase", resolution=args.resolution)
    n = args.n_train + args.n_val
    generate(problem, n, work / "train.h5", seed=args.seed, progress=False, overwrite=True)
    train("dgno", work / "train.h5", run, hparams=dict(DGNO_LABEL_FREE, encoder_resolution=args.resolution),
          progress=False, config=TrainConfig(epochs=args.epochs, batch_size=32, lr=DGNO_LR, n_train=args.n_train,
                                             val_fraction=args.n_val / n, seed=args.seed, device="cpu"))
    return run


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sciops.datasets import open_dataset
    from sciops.workflows.inverse import invert
    from sciops.workflows.inverse_calibration import calibrate, calibrated_bands, coverage, shared_prior

    run = trained_run(args)
    surrogate = last_epoch_surrogate(run)
    spec = surrogate.spec.data
    ds = open_dataset(spec.path)
    a_cal, u_cal = (t[:, 0].numpy() for t in ds.get_batch(list(range(spec.n_samples - spec.n_val, spec.n_samples))))
    a_cal, u_cal = a_cal[:args.calibration], u_cal[:args.calibration]
    problem = surrogate.problem
    a, u = problem.generate(args.problems, args.seed + 1000)[:2]
    n = a.shape[-1]
    interior = np.arange(n * n).reshape(n, n)[1:-1, 1:-1].ravel()
    settings = dict(n_samples=args.samples, pcn_steps=args.pcn_steps, steps=args.steps)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    print(f"DGNO run {run}: {spec.n_train} train / {spec.n_val} val samples at {n}^2, {len(history)} epochs, "
          f"last-epoch val rel. L2 of u {history[-1]['val']['l2']:.4f}; {args.problems} fresh problems, "
          f"{args.observations} observations at {args.snr_db:g} dB, {args.calibration} calibration problems", flush=True)
    for sampler in args.samplers.split(","):
        rng = np.random.default_rng(args.seed)
        rows = []
        for i in range(args.problems):
            iy, ix = np.unravel_index(rng.choice(interior, args.observations, replace=False), (n, n))
            points = np.stack([ix / (n - 1), iy / (n - 1)], -1)
            clean = u[i][iy, ix].astype(np.float64)
            values = clean + np.sqrt(np.mean(clean ** 2) / 10 ** (args.snr_db / 10)) * rng.standard_normal(len(clean))
            t0 = time.perf_counter()
            encoded = shared_prior(surrogate, seed=i)
            prior_seconds = time.perf_counter() - t0
            cal = calibrate(surrogate, points, a_cal, u_cal, snr_db=args.snr_db, sampler=sampler, seed=100 * i,
                            encoded=encoded, **settings)
            result = invert(surrogate, points, values, snr_db=args.snr_db, model_error=cal.model_error,
                            sampler=sampler, seed=i, encoded=encoded, **settings)
            raw = dict(result.bands)
            calibrated = calibrated_bands(surrogate, result, cal)
            row = dict(error=np.linalg.norm(result.a_mean - a[i]) / np.linalg.norm(a[i]), seconds=result.seconds,
                       cal_seconds=cal.seconds, call=prior_seconds + cal.seconds + result.seconds, model_error=cal.model_error, loo95=cal.coverage[0.95],
                       two_std=coverage(result.a_mean - 2 * result.a_std, result.a_mean + 2 * result.a_std, a[i]))
            for level in (0.5, 0.95):
                row[f"raw{level}"] = coverage(*raw[level], a[i])
                row[f"cal{level}"] = coverage(*calibrated[level], a[i])
                row[f"width{level}"] = float(np.mean(calibrated[level][1] - calibrated[level][0]))
            rows.append(row)
            print(f"  [{sampler}] problem {i}: error {row['error']:.3f}, calibrated coverage 50% {row['cal0.5']:.2f} "
                  f"95% {row['cal0.95']:.2f}, raw {row['raw0.5']:.2f} / {row['raw0.95']:.2f}, {row['seconds']:.1f} s "
                  f"+ calibration {row['cal_seconds']:.1f} s", flush=True)
        col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
        share = {lv: np.mean((col[f"cal{lv}"] >= GOAL[lv][0]) & (col[f"cal{lv}"] <= GOAL[lv][1])) for lv in GOAL}
        print(f"\n{sampler}: posterior-mean rel. L2 error of a {col['error'].mean():.4f} (max {col['error'].max():.4f}); "
              f"model_error from calibration {col['model_error'].mean():.4f}\n"
              f"  calibrated bands: 50 % coverage {col['cal0.5'].mean():.1%} of points ({share[0.5]:.0%} of samples "
              f"in 40-60 %), 95 % coverage {col['cal0.95'].mean():.1%} of points ({share[0.95]:.0%} of samples in "
              f"85-99 %); mean width {col['width0.5'].mean():.3f} (50 %), {col['width0.95'].mean():.3f} (95 %); "
              f"leave-one-out 95 % coverage on the calibration sets {col['loo95'].mean():.1%}\n"
              f"  uncalibrated: central bands of the draws 50 % {col['raw0.5'].mean():.1%}, 95 % "
              f"{col['raw0.95'].mean():.1%}; mean +- 2 std {col['two_std'].mean():.1%}\n"
              f"  seconds per inversion {col['seconds'].mean():.2f}, per calibration ({args.calibration} inversions) "
              f"{col['cal_seconds'].mean():.2f}, per sciops-invert-like call (prior + calibration + inversion) "
              f"{col['call'].mean():.2f}\n", flush=True)
    print(machine_line(), f"; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total wall time {time.perf_counter() - start:.0f} s")
