"""Benchmark: purely learned first stage against the physics first stage (Deep2S), reduced radar size.

A dense learned map from the measurements to the voxels has 2 M V real weights (M complex
measurements, V voxels): about 1.4e8 on the reference system, too large for a CPU. This script
therefore uses a reduced ``radar`` problem (defaults: ``--freqs 5`` frequencies, cross array, so
5 x 12 x 13 measurements; grid ``--grid 25 13 13`` voxels over the same volume; 30 dB), where the
map has 2 * 780 * 4225 = 6.6e6 weights, and:

1. generates ``--n`` training scenes (seed 0; 10 % held out for validation) in memory, timed;
2. trains, with the same loop and settings (relative L2 loss, Adam, one-cycle lr ``--lr``, batch
   ``--batch``, ``--epochs`` epochs, U-Net width ``--width``, 3 levels, sigmoid):
   * deep2s   ``UNet(input_mode="magnitude")`` on the physics first stage |A^H y| / max (Deep2S),
   * learned  ``sciops.operators.learned_first_stage.LearnedFirstStage``: learned complex linear map
              y -> z, |z| / max, the same U-Net; end to end from the measurements;
3. scores on ``--scenes`` fresh scenes (seed 900001) against the ground-truth magnitude: PSNR and
   SSIM (``sciops.image_metrics``, data range 1), normalised error, seconds per scene from the
   measurements (one scene at a time, first stage included), with Kirchhoff migration and the
   problem's reference solve (10 CG steps, Tikhonov) as classical baselines.

Prints the machine, each step's time, parameter counts and the table.
Usage: ``OMP_NUM_THREADS=1 python scripts/bench_radar_first_stage.py``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_radar_learned import score  # scripts/bench_radar_learned.py: the same scoring of fresh scenes
from machine import machine_line  # scripts/machine.py

from sciops.operators.learned_first_stage import LearnedFirstStage
from sciops.operators.unet import UNet
from sciops.problems import get


def rel_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = (pred - target).flatten(1).norm(dim=1)
    return (d / target.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()


def train(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, n_val: int, *, epochs: int, batch: int,
          lr: float, seed: int = 0) -> float:
    """Train on x[n_val:], validate on x[:n_val]; returns the training seconds. Prints val rel L2 per epoch."""
    torch.manual_seed(seed)
    n_train = len(x) - n_val
    steps = epochs * ((n_train + batch - 1) // batch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0, history = time.perf_counter(), []
    for _ in range(epochs):
        model.train()
        perm = n_val + torch.randperm(n_train)
        for i in range(0, n_train, batch):
            idx = perm[i:i + batch]
            loss = rel_l2(model(x[idx]), t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            history.append(float(sum(rel_l2(model(x[i:i + 16]), t[i:i + 16]) * len(x[i:i + 16])
                                     for i in range(0, n_val, 16)) / max(n_val, 1)))
    seconds = time.perf_counter() - t0
    print(f"  val rel L2 per epoch: {', '.join(f'{h:.3f}' for h in history)}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2400, help="training scenes (10%% held out for validation)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--scenes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=900001)
    ap.add_argument("--freqs", type=int, default=5)
    ap.add_argument("--grid", type=int, nargs=3, default=[25, 13, 13], metavar=("NZ", "NY", "NX"))
    ap.add_argument("--snr", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    nz, ny, nx = args.grid
    problem = get("radar", n_freqs=args.freqs, snr_db=args.snr, nz=nz, ny=ny, nx=nx)
    data_shape = problem.operator().data_shape
    print(machine_line())
    m = int(np.prod(data_shape))
    print(f"radar (reduced): {nz}x{ny}x{nx} grid, {args.freqs} frequencies, measurements {tuple(data_shape)} "
          f"({m} complex), {args.snr:g} dB; {args.threads} thread(s)")

    t0 = time.perf_counter()
    inputs, outputs, _ = problem.generate(args.n, 0)
    print(f"generated {args.n} training scenes in {time.perf_counter() - t0:.0f} s")
    target = torch.from_numpy(outputs["magnitude"])[:, None]
    adjoint = torch.from_numpy(inputs["adjoint"]).permute(0, 4, 1, 2, 3).contiguous()
    meas = torch.from_numpy(outputs["measurements"])
    n_val = args.n // 10

    torch.manual_seed(0)
    models = {
        "deep2s": UNet(2, 1, ndim=3, width=args.width, input_mode="magnitude"),
        "learned": LearnedFirstStage(data_shape, (nz, ny, nx), width=args.width),
    }
    counts = {k: sum(p.numel() for p in mod.parameters()) for k, mod in models.items()}
    train_s = {}
    for name, x in (("deep2s", adjoint), ("learned", meas)):
        print(f"training {name} ({counts[name]:,} parameters), {args.epochs} epochs on {args.n - n_val} scenes")
        train_s[name] = train(models[name], x, target, n_val, epochs=args.epochs, batch=args.batch, lr=args.lr)
        print(f"  {train_s[name]:.0f} s")

    def deep2s(y):
        x = torch.from_numpy(problem.first_stage(y)).permute(3, 0, 1, 2)[None]
        with torch.no_grad():
            return models["deep2s"](x)[0, 0].numpy()

    def learned(y):
        with torch.no_grad():
            return models["learned"](torch.from_numpy(y)[None])[0, 0].numpy()

    methods = {
        "kirchhoff": lambda y: problem.reconstruct(y, "kirchhoff"),
        "reference": lambda y: problem.solve(problem.first_stage(y)),
        "deep2s": deep2s,
        "learned": learned,
    }
    warm = problem.generate(1, 7)[1]["measurements"][0]
    for fn in methods.values():  # warm-up (allocations, operator caches) outside the timing
        fn(warm)
    scores = score(problem, methods, args.scenes, args.seed)
    print(f"{args.scenes} fresh scenes (seed {args.seed})")
    print(f"{'method':<10} {'PSNR dB':>14} {'SSIM':>14} {'norm. error':>12} {'s/scene':>8} {'parameters':>11} {'train s':>8}")
    for k, s in scores.items():
        p, q = np.array(s["psnr"]), np.array(s["ssim"])
        print(f"{k:<10} {p.mean():>7.2f} ± {p.std():<4.2f} {q.mean():>7.3f} ± {q.std():<5.3f} "
              f"{np.mean(s['nrmse']):>12.3f} {np.mean(s['seconds']):>8.4f} {counts.get(k, 0):>11,} "
              f"{train_s.get(k, 0):>8.0f}")
    mean = {k: float(np.mean(s["psnr"])) for k, s in scores.items()}
    print(f"learned first stage - deep2s: {mean['learned'] - mean['deep2s']:+.2f} dB PSNR; "
          f"deep2s - kirchhoff: {mean['deep2s'] - mean['kirchhoff']:+.2f} dB")


if __name__ == "__main__":
    main()
