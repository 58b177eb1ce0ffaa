"""
Navier-Stokes trajectories with T1 and the spatiotemporal FNO
=============================================================

Trajectory operators map an initial vorticity (or a segment of K records) to the next T records
of the 2D Navier-Stokes solution. Two of them here, at tiny settings (16^2 stored, solved at
32^2, nu = 1e-2, four records 0.5 apart): T1, which transforms once and keeps every layer in the
frequency domain, and the spatiotemporal FNO (``st-fno``), which maps a 3-record segment to the
trajectory with space-time spectral convolutions.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.training import TrainConfig

work = Path(tempfile.mkdtemp())
ns = problems.get("navier-stokes", resolution=16, solve_resolution=32, viscosity=1e-2, t_final=2.0,
                  record_every=0.5)
segments = ns.with_params(input_steps=3)                # the input: the drawn state and 2 more records
generate(ns, 64, work / "ns.h5", seed=0, progress=False)
generate(segments, 64, work / "ns_seg.h5", seed=0, progress=False)

sciops.train("t1", work / "ns.h5", work / "t1",
             hparams={"modes": 6, "width": 16, "layers": 2, "resolution": 16, "gain": 0.3},
             config=TrainConfig(epochs=10, batch_size=8, lr=1e-2, loss="l2"), progress=False)
sciops.train("st-fno", work / "ns_seg.h5", work / "st",
             hparams={"modes": [3, 6, 6], "width": 8, "layers": 2},
             config=TrainConfig(epochs=10, batch_size=8, lr=1e-2, loss="l2"), progress=False)

# %%
# Both surrogates answer like ``problem.solve``: the T records after the input.
t1, st = sciops.load(work / "t1"), sciops.load(work / "st")
w0 = ns.sample_inputs(4, seed=321)
w = ns.solve(w0)                                         # (4, T, 16, 16)
seg = segments.sample_inputs(4, seed=321)
w_seg = segments.solve(seg)
pred_t1, pred_st = t1.solve(w0), st.solve(seg)


def per_record(pred, ref):
    axes = (0, 2, 3)
    return np.sqrt(((pred - ref) ** 2).sum(axis=axes) / (ref ** 2).sum(axis=axes))


times = ns.grid["t"]
print("T1 relative L2 per record:    ", np.round(per_record(pred_t1, w), 3))
print("st-fno relative L2 per record:", np.round(per_record(pred_st, w_seg), 3))

fig, axes = plt.subplots(1, 4, figsize=(13, 3))
axes[0].plot(times, per_record(pred_t1, w), "o-", label="T1")
axes[0].plot(times, per_record(pred_st, w_seg), "s-", label="st-fno")
axes[0].set_xlabel("t")
axes[0].set_ylabel("relative L2")
axes[0].legend()
vmax = np.abs(w[0, -1]).max()
for ax, field, title in zip(axes[1:], (w[0, -1], pred_t1[0, -1], pred_t1[0, -1] - w[0, -1]),
                            ("solver, last record", "T1", "T1 - solver")):
    im = ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_title(title)
    ax.set_axis_off()
fig.colorbar(im, ax=axes[1:], shrink=0.8)

# %%
# ``sciops evaluate`` does the same against fresh solves and the solver's ladder (coarser grids):
# at these sizes an 8^2 solve is already more accurate than either surrogate.
from sciops.grid.evaluation import evaluate, summary_line  # noqa: E402

print(summary_line(evaluate(t1, fresh=8, progress_enabled=False)))
