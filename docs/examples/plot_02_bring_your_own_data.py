"""
Bring your own data
===================

Arrays you computed elsewhere become an ordinary sciops dataset (checksums, fields with dims and
units, a grid, provenance) with :func:`sciops.datasets.from_arrays`; files of other projects (FNO
``.mat``, neuraloperator ``.pt``, PDEBench, The Well, ``.npz``) with
:func:`sciops.datasets.import_file` or ``sciops import FILE -o OUT.h5``. Every operator then trains
on it as on generated data.

Here the "other code" is a spectral solve of the periodic 1D screened Poisson equation
``-u'' + u = f`` on [0, 1), for random smooth right-hand sides f.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sciops
from sciops.datasets import from_arrays, import_file, open_dataset
from sciops.training import TrainConfig

work = Path(tempfile.mkdtemp())
n, samples = 64, 96
x = np.arange(n) / n
rng = np.random.default_rng(0)
k = np.fft.rfftfreq(n, d=1 / n)
f_hat = (rng.standard_normal((samples, k.size)) + 1j * rng.standard_normal((samples, k.size))) / (1 + k) ** 2
f = np.fft.irfft(f_hat, n=n) * n
u = np.fft.irfft(f_hat / (1 + (2 * np.pi * k) ** 2), n=n) * n

# %%
# ``from_arrays``: the sample axis first, the grid by coordinate name, the geometry (periodic here,
# so operators and losses treat the domain as a torus).
path = from_arrays({"f": f}, {"u": u}, path=work / "screened.h5", grid={"x": x}, geometry="periodic",
                   units={"f": "1", "u": "1", "x": "1"})
print(sciops.datasets.describe(path))

# %%
# The same data from an ``.npz`` archive (keys ``x``/``y``, ``a``/``u``, ``inputs``/``outputs`` ...
# are found by themselves; ``input_key``/``output_key`` name others). The provenance records the
# archive's sha256 and every transformation.
np.savez(work / "screened.npz", inputs=f, outputs=u)
result = import_file(work / "screened.npz", work / "imported.h5", grid={"x": x}, geometry="periodic",
                     progress=False)
print(result.message)

# %%
# Train an FNO on the imported file and check it on held-out samples. An ``external`` dataset has
# no solver, so evaluation uses stored data (``sciops evaluate RUN --data FILE``).
summary = sciops.train("fno", path, work / "run", hparams={"modes": 12, "width": 16, "layers": 2},
                       config=TrainConfig(epochs=20, batch_size=16, lr=1e-2, loss="l2"), progress=False)
print(f"best validation relative L2 {summary['best_val']['l2']:.4f} after {summary['epochs']} epochs")

surrogate = sciops.load(work / "run")
pairs = open_dataset(path)
f_test, u_test = f[-3:], u[-3:]
u_pred = surrogate.solve(f_test.astype(np.float32))
fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharey=True)
for ax, fi, ui, pi in zip(axes, f_test, u_test, u_pred):
    ax.plot(x, fi / np.abs(fi).max() * np.abs(ui).max(), color="0.7", label="f (scaled)")
    ax.plot(x, ui, label="u, your solver")
    ax.plot(x, pi, "--", label="u, FNO")
    ax.set_xlabel("x")
axes[0].legend(fontsize=8)
fig.tight_layout()
