"""
A surrogate inside your own time loop
=====================================

A trained operator answers ``surrogate.solve(a)`` with what ``problem.solve(a)`` returns, so it
drops into code that calls a solver many times. Here the loop is a toy two-phase flow in the
IMPES spirit: each step, the permeability of a slowly changing medium (a coefficient that
interpolates between two random media) needs a pressure solve, -div(a grad p) = 1, and the step
uses the pressure. The loop runs once with the reference solver and once with the surrogate, and
compares the pressures and the time spent.
"""
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.training import TrainConfig

work = Path(tempfile.mkdtemp())
problem = problems.get("darcy", resolution=17, subsample=2, coefficient="lognormal")
generate(problem, 96, work / "darcy.h5", seed=0, progress=False)
sciops.train("fno", work / "darcy.h5", work / "run", hparams={"modes": 6, "width": 16, "layers": 2},
             config=TrainConfig(epochs=8, batch_size=8, lr=5e-3, loss="h1"), progress=False)
surrogate = sciops.load(work / "run")

# %%
# Your loop: the medium at step k blends two draws of the same distribution (in log space, so it
# stays lognormal-like); the pressure drives an explicit update of a tracer c.
a0, a1 = problem.sample_inputs(2, seed=77)


def medium(s):
    return np.exp((1 - s) * np.log(a0) + s * np.log(a1)).astype(np.float32)


def run(solve, steps=20):
    c = np.zeros_like(a0)
    pressures, seconds = [], 0.0
    for k in range(steps):
        a = medium(k / (steps - 1))
        t0 = time.perf_counter()
        p = solve(a[None])[0]          # one pressure solve per step: the call the surrogate replaces
        seconds += time.perf_counter() - t0
        c = c + 0.05 * p / p.max()     # the rest of your step (here: a tracer driven by p)
        pressures.append(p)
    return np.stack(pressures), c, seconds


p_ref, c_ref, t_ref = run(problem.solve)
p_sur, c_sur, t_sur = run(surrogate.solve)
err = np.linalg.norm((p_sur - p_ref).reshape(len(p_ref), -1), axis=1) / np.linalg.norm(p_ref.reshape(len(p_ref), -1), axis=1)
print(f"solver {t_ref * 1e3:.1f} ms, surrogate {t_sur * 1e3:.1f} ms for {len(p_ref)} pressure solves")
print(f"pressure relative L2 error per step: max {err.max():.3f}, mean {err.mean():.3f}")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
axes[0].plot(err, "o-")
axes[0].set_xlabel("time step")
axes[0].set_ylabel("relative L2 error of p")
for ax, field, title in ((axes[1], c_ref, "tracer, solver"), (axes[2], c_sur, "tracer, surrogate")):
    im = ax.imshow(field, origin="lower", extent=(0, 1, 0, 1))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()

# %%
# The speed of one call depends on the batch: a surrogate pays per call, a direct solver per
# sample. The accuracy-cost example shows how to compare the two honestly, against cheaper
# configurations of the solver itself.
