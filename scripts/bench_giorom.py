"""GIOROM against a full-graph GNS-style interaction network on MPM particle data (2D).

1. Accuracy, for elastic (falling blocks) and sand (column collapse) data from the ``particles``
   problem: both models are trained with the same number of optimiser steps and the same
   hyperparameters (the baseline is GIOROM without its latent grid, i.e. an interaction network);
   GIOROM steps ``--sparse`` particles of each cloud and reconstructs the others with a trained
   kernel, the baseline steps every particle. Printed: position MSE (m^2) averaged over a
   ``--rollout``-frame rollout from frames 0..5 of held-out trajectories, beside the
   constant-velocity extrapolation, and the ratio GIOROM / baseline.
2. Speed: seconds per rollout step producing 10k and 100k points: GIOROM on 1,000 sparse particles
   plus the reconstruction to all points, against the baseline stepping all points; both
   untrained (the cost does not depend on the weights), radius graphs with the same mean degree.

Everything runs in one process on ``--threads`` CPU threads; the figures depend on the small
training budget (defaults sized for a 2-core machine in minutes, far below the papers' 1e6
steps), so read the MSE as a same-budget comparison, not as converged accuracy.

    python scripts/bench_giorom.py
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from sciops import problems
from sciops.operators.giorom import GIOROM, KernelReconstruction
from sciops.particles.stepping import train_reconstruction, train_stepper
from sciops.particles.surrogate import ParticleSurrogate

DEGREE_RADIUS = 2.5  # graph radius in particle spacings (about 20 neighbours in 2D)


def data(material: str, scene: str, n: int, particles: int, frames: int, seed: int):
    p = problems.get("particles", scene=scene, material=material, n_particles=particles, frames=frames, stride=10,
                     boundary="sticky" if material == "sand" else "slip")
    inputs, outputs, seconds = p.generate(n, seed)
    spacing = float(np.mean(inputs["volume"])) ** 0.5
    return outputs["position"], inputs["particle_type"].astype(np.int64), spacing, seconds


def model(radius: float, latent: bool, args) -> GIOROM:
    return GIOROM(2, hidden=args.hidden, interaction_layers=2, latent_grid=32 if latent else 0, attention_layers=1,
                  heads=4, radius=radius)


def rollout_mse(surrogate: ParticleSurrogate, pos, types, steps: int) -> float:
    errs = []
    for n in range(len(pos)):
        pred = surrogate.rollout({"positions": pos[n, :6], "particle_type": types[n]}, steps)
        errs.append(float(((pred - pos[n, 6:6 + steps]) ** 2).mean()))
    return float(np.mean(errs))


def constant_velocity_mse(pos, steps: int) -> float:
    k = np.arange(1, steps + 1)[None, :, None, None]
    pred = pos[:, 5:6] + k * (pos[:, 5:6] - pos[:, 4:5])
    return float(((pred - pos[:, 6:6 + steps]) ** 2).mean())


def accuracy(args) -> None:
    frames = 6 + args.rollout
    print(f"accuracy: {args.train} training + {args.test} held-out trajectories of {args.particles} particles, "
          f"{frames} frames (stride 10), {args.steps} optimiser steps per model, hidden {args.hidden}")
    for material, scene in (("elastic", "falling_blocks"), ("sand", "column_collapse")):
        t0 = time.perf_counter()
        train_pos, train_types, spacing, _ = data(material, scene, args.train, args.particles, frames, 0)
        test_pos, test_types, _, _ = data(material, scene, args.test, args.particles, frames, 1000)
        generated = time.perf_counter() - t0
        full_radius = DEGREE_RADIUS * spacing
        sparse_radius = full_radius * math.sqrt(args.particles / args.sparse)
        torch.manual_seed(0)
        baseline = model(full_radius, False, args)
        t1 = time.perf_counter()
        train_stepper(baseline, train_pos, train_types, steps=args.steps, lr=args.lr, noise_std=args.noise)
        t_base = time.perf_counter() - t1
        torch.manual_seed(0)
        giorom = model(sparse_radius, True, args)
        t1 = time.perf_counter()
        train_stepper(giorom, train_pos, train_types, steps=args.steps, lr=args.lr, noise_std=args.noise,
                      n_sparse=args.sparse)
        recon = KernelReconstruction(2)
        train_reconstruction(recon, train_pos, args.sparse, steps=100, lr=3e-3)
        t_gio = time.perf_counter() - t1
        mse_base = rollout_mse(ParticleSurrogate(baseline, None, n_sparse=args.particles), test_pos, test_types,
                               args.rollout)
        mse_gio = rollout_mse(ParticleSurrogate(giorom, recon, n_sparse=args.sparse), test_pos, test_types, args.rollout)
        mse_cv = constant_velocity_mse(test_pos, args.rollout)
        print(f"  {material:<8} ({scene}; data {generated:.0f} s; training {t_base:.0f} s baseline, {t_gio:.0f} s giorom)")
        print(f"    rollout MSE over {args.rollout} frames: GIOROM ({args.sparse} sparse) {mse_gio:.3e} m^2, "
              f"full-graph baseline {mse_base:.3e}, constant velocity {mse_cv:.3e}; ratio GIOROM / baseline "
              f"{mse_gio / mse_base:.3g}")


def speed(args) -> None:
    print(f"speed: seconds per rollout step (untrained models, hidden {args.hidden}, 4 interaction layers; GIOROM on "
          f"1000 sparse particles + reconstruction)")
    rng = np.random.default_rng(0)
    for points in (10_000, 100_000):
        cloud = 0.2 + 0.6 * rng.random((points, 2))
        spacing = math.sqrt(0.36 / points)
        window = torch.as_tensor(cloud, dtype=torch.float32)[:, None, :].repeat(1, 6, 1)
        types = np.zeros(points, np.int64)
        state = {"positions": window.permute(1, 0, 2).numpy(), "particle_type": types}
        sparse_radius = DEGREE_RADIUS * math.sqrt(0.36 / 1000)
        gio = ParticleSurrogate(model(sparse_radius, True, args), KernelReconstruction(2), n_sparse=1000)
        base = ParticleSurrogate(model(DEGREE_RADIUS * spacing, False, args), None, n_sparse=points)
        times = {}
        for name, surrogate in (("giorom", gio), ("baseline", base)):
            surrogate.rollout(state, 1)  # warm-up
            t0 = time.perf_counter()
            surrogate.rollout(state, args.speed_steps)
            times[name] = (time.perf_counter() - t0) / args.speed_steps
        print(f"  {points:>7} points: GIOROM {times['giorom']:.3f} s/step, full-graph baseline {times['baseline']:.3f} "
              f"s/step, speedup {times['baseline'] / times['giorom']:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--particles", type=int, default=2000, help="particles per trajectory (accuracy part)")
    ap.add_argument("--sparse", type=int, default=500, help="GIOROM's sparse particles (accuracy part)")
    ap.add_argument("--train", type=int, default=6)
    ap.add_argument("--test", type=int, default=2)
    ap.add_argument("--rollout", type=int, default=50)
    ap.add_argument("--steps", type=int, default=300, help="optimiser steps per model")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--noise", type=float, default=3e-5, help="random-walk input noise (m/frame)")
    ap.add_argument("--speed-steps", type=int, default=2)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"GIOROM benchmark, torch {torch.__version__}, {args.threads} thread(s)")
    t0 = time.perf_counter()
    speed(args)
    if not args.skip_accuracy:
        accuracy(args)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
