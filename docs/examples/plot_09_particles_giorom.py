"""
Particles with GIOROM
=====================

Lagrangian particle trajectories from the MLS-MPM solver, and GIOROM, a reduced-order graph
operator that steps a sparse subsample of the particles and moves the whole cloud with them by a
learned kernel reconstruction. Tiny settings: a sand column collapsing in 2D, 300 particles, 16
frames; GIOROM trained for two short epochs. ``sciops.load`` returns a ``ParticleSurrogate``:
``solve(inputs)`` answers like ``problem.solve(inputs)`` (the first 6 frames from the solver, the
rest rolled out by the operator), ``rollout({"positions": last 6 frames, "particle_type": ...},
steps)`` rolls out from frames you have.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.particles.trainer import ParticleTrainConfig

work = Path(tempfile.mkdtemp())
sand = problems.get("particles", scene="column_collapse", material="sand", boundary="sticky",
                    n_particles=300, frames=16, stride=10, grid=32)
generate(sand, 6, work / "sand.h5", seed=0, progress=False)

summary = sciops.train("giorom", work / "sand.h5", work / "run",
                       hparams={"hidden": 16, "attention_layers": 1, "radius": 0.08},
                       config=ParticleTrainConfig(epochs=2, n_sparse=150, windows_per_epoch=20,
                                                  reconstruction_steps=10, lr=2e-3),
                       progress=False)
print({k: summary[k] for k in ("epochs", "best_epoch", "seconds_per_epoch")})

# %%
# A fresh simulation, and the surrogate's answer for the same inputs.
surrogate = sciops.load(work / "run")
inputs = sand.sample_inputs(1, seed=4242)
reference = sand.solve(inputs)[0]                       # (frames, particles, 2) positions in m
rollout = surrogate.solve(inputs)[0][6:]                # the frames the operator rolled out
mse = ((rollout - reference[6:]) ** 2).sum(-1).mean(-1)
print("position MSE per rolled-out frame (m^2):", np.array2string(mse, precision=2))

fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
for ax, cloud, title in ((axes[0], reference[-1], "MLS-MPM, last frame"), (axes[1], rollout[-1], "GIOROM rollout")):
    ax.scatter(reference[0][:, 0], reference[0][:, 1], s=2, color="0.8", label="initial column")
    ax.scatter(cloud[:, 0], cloud[:, 1], s=3)
    ax.set_title(title)
    ax.set_aspect("equal")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# ``sciops evaluate RUN --fresh N`` reports the rollout error against fresh simulations, the
# constant-velocity floor, and the speed against MPM on coarser grids (the particles' ladder).
from sciops import kinds  # noqa: E402

kind = kinds.of_run(work / "run")
print(kind.summary_line(kind.evaluate(surrogate, fresh=2)))
