"""
Shallow water on the sphere with SFNO
=====================================

The rotating shallow water equations on the sphere (spectral-transform solver on torch-harmonics'
spherical harmonic transforms, SI units) and the spherical FNO, whose spectral layers are
per-degree weights in the spherical-harmonic basis, against the flat FNO rollout that treats the
(lat, lon) grid as a periodic box. Tiny settings: 16 x 32 Legendre-Gauss grid, 4 hourly records,
a few epochs; the channel-standardised ``norm-h1`` loss, so the winds count as much as the
geopotential.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch  # noqa: F401  (imported before the problems, as any torch program does)

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.training import TrainConfig

work = Path(tempfile.mkdtemp())
sw = problems.get("shallow-water", nlat=16, records=4)
print(sw.fields)
generate(sw, 48, work / "sw.h5", seed=0, progress=False)

config = TrainConfig(epochs=6, batch_size=8, lr=5e-3, loss="norm-h1")
sciops.train("sfno", work / "sw.h5", work / "sfno", hparams={"modes": 8, "width": 16, "layers": 2, "projection": 32},
             config=config, progress=False)
sciops.train("fno-rollout", work / "sw.h5", work / "flat", hparams={"modes": 4, "width": 12, "layers": 2},
             config=config, progress=False)

# %%
# Both answer like ``problem.solve``: a dict of the fields phi, u, v over the records.
inputs = sw.sample_inputs(2, seed=99)
reference = sw.solve(inputs)
preds = {name: sciops.load(work / name).solve(inputs) for name in ("sfno", "flat")}
for name, pred in preds.items():
    errors = {f: np.linalg.norm(pred[f] - reference[f]) / np.linalg.norm(reference[f]) for f in ("phi", "u", "v")}
    print(name, {f: round(float(e), 3) for f, e in errors.items()})

lat, lon = sw.grid["lat"], sw.grid["lon"]
extent = (lon[0], lon[-1], lat[-1], lat[0])
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, field, title in zip(axes, (reference["u"][0, -1], preds["sfno"]["u"][0, -1], preds["flat"]["u"][0, -1]),
                            ("solver", "SFNO", "flat FNO rollout")):
    im = ax.imshow(field, extent=extent, aspect="auto", cmap="RdBu_r")
    ax.set_title(f"zonal wind u (m/s), last record: {title}", fontsize=9)
    ax.set_xlabel("longitude")
fig.colorbar(im, ax=axes, shrink=0.8)
