"""Benchmark: learned near-field MIMO radar reconstructions against classical ones, on fresh scenes.

Steps (each skipped when its output already exists in ``--workdir``, so an interrupted run resumes):

1. generate ``--n`` training scenes of the ``radar`` problem (reference cross array, 49 x 25 x 25
   grid, ``--freqs`` frequencies, ``--snr`` dB; seed 0), timed;
2. train, with the generic trainer (relative L2 loss, batch 4, one-cycle lr ``--lr``):
   * deep2s          ``unet`` with ``input_mode="magnitude"``: |A^H y| / max -> |x| (Deep2S),
   * deep2s-complex  ``unet`` with ``input_mode="channels"``: real and imaginary channels,
   * fno-2s          ``fno`` (3D, width 12, modes 10 x 6 x 6) on the complex channels: an FNO second stage;
   and the PnP denoiser (``sciops.training.denoiser``: the same U-Net on ground-truth magnitudes plus
   Gaussian noise of sigma ~ U(0, 0.2), sigma as a second channel);
3. choose the learned PnP strength among ``--learned-strengths`` on ``--tune-scenes`` scenes of seed 7
   (not the benchmark scenes);
4. score on ``--scenes`` fresh scenes (seed 900001, as ``bench_radar_recon.py``) against the
   ground-truth magnitude: PSNR and SSIM (``sciops.image_metrics``, data range 1), normalised error
   ||pred - |x| || / || |x| ||, seconds per scene from the measurements (one scene at a time; the
   learned methods include their physics first stage, the normalised adjoint):
   kirchhoff, reference (the problem's solve: 10 CG steps, Tikhonov), pnp-sparsity (as in
   ``bench_radar_recon.py``), pnp-learned, deep2s, deep2s-complex, fno-2s.

Prints each step's time and a table; the ratios asked by the issue (Deep2S minus Kirchhoff PSNR,
PnP-ADMM time over Deep2S time) come from this one run.
Usage: ``OMP_NUM_THREADS=1 python scripts/bench_radar_learned.py --workdir /tmp/radar_learned``
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_line  # scripts/machine.py

import sciops
from sciops.datasets import generate
from sciops.grid.trainer import train
from sciops.image_metrics import nrmse, psnr, ssim
from sciops.problems import get
from sciops.training.config import TrainConfig
from sciops.training.denoiser import LearnedDenoiser, train_denoiser

PNP = dict(iters=20, rho=0.05)  # bench_radar_recon.py's PnP-ADMM settings (sparsity strength 0.05)


def score(problem, methods: dict, scenes: int, seed: int) -> dict[str, dict[str, list[float]]]:
    """Per method (a function measurements -> magnitude image) and per fresh scene (``scenes`` from
    ``seed``): PSNR, SSIM and normalised error against the ground-truth magnitude, and the seconds the
    reconstruction took. Also used by ``bench_radar_first_stage.py``."""
    scores = {m: {"psnr": [], "ssim": [], "nrmse": [], "seconds": []} for m in methods}
    for i in range(scenes):
        _, out, _ = problem.generate(1, seed, start=i)
        truth, y = out["magnitude"][0], out["measurements"][0]
        for m, fn in methods.items():
            t0 = time.perf_counter()
            rec = fn(y)
            scores[m]["seconds"].append(time.perf_counter() - t0)
            scores[m]["psnr"].append(psnr(rec, truth))
            scores[m]["ssim"].append(ssim(rec, truth))
            scores[m]["nrmse"].append(nrmse(rec, truth))
    return scores


def tune_pnp_strength(problem, denoiser, strengths, scenes: int) -> float:
    """The learned PnP strength with the best mean PSNR on ``scenes`` scenes of seed 7 (not the benchmark's)."""
    best_strength, best_score = None, -np.inf
    for strength in strengths:
        mean_psnr = 0.0
        for i in range(scenes):
            _, out, _ = problem.generate(1, 7, start=i)
            rec = problem.reconstruct(out["measurements"][0], "pnp-learned", denoiser=denoiser, strength=strength, **PNP)
            mean_psnr += psnr(rec, out["magnitude"][0]) / scenes
        print(f"pnp-learned strength {strength:g}: {mean_psnr:.2f} dB on {scenes} tuning scenes (seed 7)")
        if mean_psnr > best_score:
            best_strength, best_score = strength, mean_psnr
    return best_strength


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--n", type=int, default=2000, help="training scenes (10%% held out for validation)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--fno-epochs", type=int, default=5)
    ap.add_argument("--denoiser-epochs", type=int, default=4)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--scenes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=900001)
    ap.add_argument("--freqs", type=int, default=15)
    ap.add_argument("--snr", type=float, default=30.0)
    ap.add_argument("--learned-strengths", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--tune-scenes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    problem = get("radar", n_freqs=args.freqs, snr_db=args.snr)
    print(machine_line())
    print(f"radar: 49x25x25 grid, {args.freqs} frequencies, {args.snr:g} dB; {args.threads} thread(s)")

    data = work / "train.h5"
    if not data.exists():
        t0 = time.perf_counter()
        generate(problem, args.n, data, seed=0, progress=False)
        print(f"generated {args.n} training scenes in {time.perf_counter() - t0:.0f} s")
    runs = {
        "deep2s": ("unet", {"width": args.width, "input_mode": "magnitude"}, args.epochs),
        "deep2s-complex": ("unet", {"width": args.width, "input_mode": "channels"}, args.epochs),
        "fno-2s": ("fno", {"width": 12, "modes": [10, 6, 6], "projection": 32}, args.fno_epochs),
    }
    for name, (operator, hparams, epochs) in runs.items():
        if not (work / name / "config.json").exists():
            cfg = TrainConfig(epochs=epochs, batch_size=4, lr=args.lr, loss="l2", metrics=["l2"], select="l2")
            summary = train(operator, data, work / name, hparams=hparams, config=cfg, progress=False)
            print(f"trained {name} ({operator} {hparams}): {summary['epochs']} epochs in {summary['train_seconds']:.0f} s, "
                  f"best val rel L2 {summary['best_val']['l2']:.4f}")
    if not (work / "denoiser" / "config.json").exists():
        summary = train_denoiser(data, work / "denoiser", width=args.width, epochs=args.denoiser_epochs, lr=args.lr)
        print(f"trained denoiser: {summary['epochs']} epochs in {summary['train_seconds']:.0f} s, "
              f"best val MSE {summary['best_val_mse']:.3g}")
    surrogates = {name: sciops.load(work / name, device="cpu") for name in runs}
    denoiser = LearnedDenoiser.load(work / "denoiser")

    best_strength = tune_pnp_strength(problem, denoiser, args.learned_strengths, args.tune_scenes)
    methods = {
        "kirchhoff": lambda y: problem.reconstruct(y, "kirchhoff"),
        "reference": lambda y: problem.solve(problem.first_stage(y)),
        "pnp-sparsity": lambda y: problem.reconstruct(y, "pnp-sparsity", strength=0.05, **PNP),
        "pnp-learned": lambda y: problem.reconstruct(y, "pnp-learned", denoiser=denoiser, strength=best_strength, **PNP),
        **{name: (lambda y, s=s: s.solve(problem.first_stage(y))) for name, s in surrogates.items()},
    }
    for s in surrogates.values():  # warm-up (allocations) outside the timing
        s.solve(problem.first_stage(problem.generate(1, 7)[1]["measurements"][0]))
    scores = score(problem, methods, args.scenes, args.seed)
    print(f"{args.scenes} fresh scenes (seed {args.seed}); pnp-learned strength {best_strength:g}")
    print(f"{'method':<15} {'PSNR dB':>14} {'SSIM':>14} {'norm. error':>12} {'s/scene':>8}")
    for m, s in scores.items():
        p, q = np.array(s["psnr"]), np.array(s["ssim"])
        print(f"{m:<15} {p.mean():>7.2f} ± {p.std():<4.2f} {q.mean():>7.3f} ± {q.std():<5.3f} "
              f"{np.mean(s['nrmse']):>12.3f} {np.mean(s['seconds']):>8.3f}")
    mean = {m: {k: float(np.mean(v)) for k, v in s.items()} for m, s in scores.items()}
    print(f"deep2s - kirchhoff: {mean['deep2s']['psnr'] - mean['kirchhoff']['psnr']:+.2f} dB PSNR (goal >= +5); "
          f"pnp-sparsity / deep2s time: {mean['pnp-sparsity']['seconds'] / mean['deep2s']['seconds']:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
