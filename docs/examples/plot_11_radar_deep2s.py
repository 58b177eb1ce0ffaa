"""
Radar imaging with Deep2S
=========================

Near-field MIMO radar: the matrix-free Born model simulates measurements of random scenes; the
stored input is the normalised adjoint image ``A^H y`` (the physics first stage), the output the
reflectivity magnitude ``|x|``. Deep2S is that first stage followed by a U-Net. Tiny settings: a
16^3 voxel grid, 5 frequencies, a small U-Net trained for a few epochs, scored against the
classical reconstructions by ``evaluate`` (PSNR, SSIM, normalised error).
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
radar = problems.get("radar", nz=16, ny=16, nx=16, n_freqs=5)
generate(radar, 64, work / "radar.h5", seed=0, progress=False)
sciops.train("unet", work / "radar.h5", work / "deep2s", hparams={"width": 4, "levels": 2, "input_mode": "magnitude"},
             config=TrainConfig(epochs=6, batch_size=4, lr=3e-3, loss="l2", metrics=["l2"]), progress=False)

# %%
# The surrogate maps the stored adjoint image to ``|x|``, like ``problem.solve`` (the CG reference).
deep2s = sciops.load(work / "deep2s")
inputs, outputs, _ = radar.generate(1, seed=777)
adjoint = inputs if not isinstance(inputs, dict) else inputs["adjoint"]
truth = outputs if not isinstance(outputs, dict) else outputs["magnitude"]
image = deep2s.solve(adjoint)
cg = radar.solve(adjoint)
views = {"true |x|": truth[0], "|A^H y|": np.hypot(adjoint[0, ..., 0], adjoint[0, ..., 1]),
         "CG reference": cg[0], "Deep2S": image[0]}
fig, axes = plt.subplots(1, 4, figsize=(13, 3))
for ax, (title, vol) in zip(axes, views.items()):
    ax.imshow(vol.max(axis=0), origin="lower", cmap="magma")   # maximum over range (z)
    ax.set_title(title)
    ax.set_axis_off()
fig.tight_layout()

# %%
# ``sciops evaluate`` scores the surrogate, the first stage, the reference solve and Kirchhoff
# migration on fresh scenes.
from sciops import kinds  # noqa: E402

kind = kinds.of_run(work / "deep2s")
print(kind.summary_line(kind.evaluate(deep2s, fresh=4)))
