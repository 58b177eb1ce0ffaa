"""
Darcy flow end to end
=====================

Generate a dataset with the reference solver, train an FNO on it, and check the trained operator
against the solver on fresh coefficients: what ``sciops demo`` does, here from Python and at tiny
settings. The same steps on the command line::

    sciops generate darcy -n 64 -o darcy.h5 --param resolution=17 --param subsample=2
    sciops train fno --data darcy.h5 -o runs/fno --epochs 6 --set modes=6 --set width=16
    sciops evaluate runs/fno --fresh 8 --plot eval.png
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sciops
from sciops import problems
from sciops.datasets import generate, open_xarray
from sciops.training import TrainConfig

work = Path(tempfile.mkdtemp())

# %%
# The problem: -div(a grad u) = 1 on the unit square, u = 0 on the boundary, with thresholded
# Gaussian random field coefficients a in {3, 12}. ``subsample=2`` solves on the 33 x 33 grid and
# stores every second node (17 x 17), as the FNO paper's data were made.
problem = problems.get("darcy", resolution=17, subsample=2, coefficient="fno")
print(problem)
data = generate(problem, 64, work / "darcy.h5", seed=0, progress=False)

# %%
# The file is self-describing: fields with dims and units, the grid, the problem and its
# parameters, a checksum per sample.
print(open_xarray(data))

# %%
# Train a small FNO for a few epochs (``sciops.train`` picks the trainer from the data's kind).
summary = sciops.train("fno", data, work / "run", hparams={"modes": 6, "width": 16, "layers": 2},
                       config=TrainConfig(epochs=6, batch_size=8, lr=5e-3, loss="h1"), progress=False)
print({k: summary[k] for k in ("epochs", "best_epoch", "best_val", "seconds_per_epoch")})

# %%
# The trained operator is a drop-in for the solver: ``surrogate.solve(a)`` takes and returns what
# ``problem.solve(a)`` does.
surrogate = sciops.load(work / "run")
a = problem.sample_inputs(4, seed=123)
u = problem.solve(a)
u_hat = surrogate.solve(a)
error = np.linalg.norm((u_hat - u).reshape(4, -1), axis=1) / np.linalg.norm(u.reshape(4, -1), axis=1)
print("relative L2 error per sample:", np.round(error, 3))

fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, field, title in zip(axes, (a[0], u[0], u_hat[0], u_hat[0] - u[0]),
                            ("coefficient a", "solver u", "FNO u", "FNO - solver")):
    im = ax.imshow(field, origin="lower", extent=(0, 1, 0, 1), cmap="viridis" if title != "FNO - solver" else "RdBu_r")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()

# %%
# ``evaluate`` draws fresh samples (seeds disjoint from the training file's), solves them with the
# reference solver and the surrogate, and reports errors, a trivial baseline and the speed against
# the solver's ladder (see the accuracy-cost example).
from sciops.grid.evaluation import evaluate, summary_line  # noqa: E402

report = evaluate(surrogate, fresh=8, progress_enabled=False)
print(summary_line(report))
