"""
Add an operator in one file
===========================

An operator is a ``torch.nn.Module`` subclassing :class:`sciops.operators.base.Operator` whose
constructor takes ``in_channels``, ``out_channels``, ``ndim`` and ``geometry`` (given by the data)
and any hyperparameters with JSON defaults (stored in the run's ``config.json``, so the model can
be rebuilt). One line in ``sciops.operators.REGISTRY`` makes it trainable with ``sciops train``,
loadable with ``sciops.load`` and evaluable against the solver like the shipped ones.

The operator here is a deliberately small one: a residual stack of convolutions with a global
(mean) channel mixing, a "local + global" operator in a few lines.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

import sciops
from sciops import operators, problems
from sciops.datasets import generate
from sciops.operators.base import Operator
from sciops.training import TrainConfig


class LocalGlobal(Operator):
    """Lift, then ``layers`` blocks of (3^d convolution + a global mean term), then project."""

    def __init__(self, in_channels: int, out_channels: int, ndim: int, geometry: str = "bounded",
                 width: int = 16, layers: int = 3):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
        mode = "circular" if geometry == "periodic" else "zeros"
        self.lift = conv(in_channels, width, 1)
        self.local = nn.ModuleList(conv(width, width, 3, padding=1, padding_mode=mode) for _ in range(layers))
        self.mix = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.project = nn.Sequential(conv(width, width, 1), nn.GELU(), conv(width, out_channels, 1))

    def forward(self, x):
        h = self.lift(x)
        space = tuple(range(2, h.ndim))
        for local, mix in zip(self.local, self.mix):
            glob = mix(h.mean(dim=space)).reshape(*h.shape[:2], *[1] * len(space))
            h = h + nn.functional.gelu(local(h) + glob)
        return self.project(h)


# %%
# Register it and look at what sciops sees: the hyperparameters a user may set.
operators.REGISTRY["local-global"] = "__main__:LocalGlobal"
print(operators.hyperparameters("local-global"))

# %%
# Train, load and evaluate as any other operator (``sciops train local-global`` would do the same
# from a shell once the module is importable).
work = Path(tempfile.mkdtemp())
problem = problems.get("darcy", resolution=17, subsample=2, coefficient="fno")
generate(problem, 96, work / "darcy.h5", seed=0, progress=False)
summary = sciops.train("local-global", work / "darcy.h5", work / "run", hparams={"width": 16, "layers": 4},
                       config=TrainConfig(epochs=20, batch_size=8, lr=5e-3, loss="h1"), progress=False)
surrogate = sciops.load(work / "run")
print(surrogate.spec.operator)

from sciops.grid.evaluation import evaluate, summary_line  # noqa: E402

report = evaluate(surrogate, fresh=8, progress_enabled=False, ladder=False)
print(summary_line(report))

a = problem.sample_inputs(1, seed=5)
with torch.no_grad():
    u, u_hat = problem.solve(a)[0], surrogate.solve(a)[0]
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
for ax, field, title in zip(axes, (a[0], u, u_hat), ("a", "solver", "LocalGlobal")):
    im = ax.imshow(field, origin="lower", extent=(0, 1, 0, 1))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
