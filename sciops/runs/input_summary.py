"""A summary of a run's training inputs, and the test that flags inputs outside it.

Per sample and channel, five cheap statistics: min, max, mean, standard deviation and roughness
(the root-mean-square first difference along the grid axes over the standard deviation: 0 for a
constant, about 1.4 for white noise, small for smooth fields). The summary is, per statistic and
channel, the range [low, high] over the training samples; an input is out of distribution when
one of its statistics leaves that range widened by ``MARGIN`` of its width on each side. Roughness depends on the grid spacing, so
it is compared only on the training grid; the other four are compared at any resolution. A
constant coefficient, another phase contrast, a scaled or a lognormal coefficient all leave the
range of thresholded-GRF training data; a fresh draw from the training distribution rarely does
(``sciops evaluate`` reports the share flagged). It is a warning, not a guarantee: certified
bounds (``sciops.grid.certified``) hold for any input.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

STATISTICS = ("min", "max", "mean", "std", "roughness")
MARGIN = 0.05


def sample_statistics(x: torch.Tensor) -> dict[str, np.ndarray]:
    """Statistics (N, C) of channel-first inputs x (N, C, *grid)."""
    x = x.detach().to(torch.float64)
    flat = x.flatten(2)
    std = flat.std(dim=2, unbiased=False)
    grid_axes = range(2, x.dim())
    diffs = [torch.diff(x, dim=d).flatten(2).pow(2).mean(2) for d in grid_axes if x.shape[d] > 1]
    rms_diff = torch.stack(diffs).mean(0).sqrt() if diffs else torch.zeros_like(std)
    roughness = torch.where(std > 0, rms_diff / std.clamp_min(1e-300), torch.zeros_like(std))
    stats = {"min": flat.amin(2), "max": flat.amax(2), "mean": flat.mean(2), "std": std, "roughness": roughness}
    return {k: v.cpu().numpy() for k, v in stats.items()}


def summarize(batches) -> dict:
    """The summary of the training inputs, from an iterable of channel-first batches."""
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    grid = None
    for x in batches:
        grid = list(x.shape[2:])
        for name, values in sample_statistics(x).items():
            lo, hi = values.min(0), values.max(0)
            low[name] = lo if name not in low else np.minimum(low[name], lo)
            high[name] = hi if name not in high else np.maximum(high[name], hi)
    return {"grid": grid, **{name: {"low": low[name].tolist(), "high": high[name].tolist()} for name in STATISTICS}}


def outside(summary: dict, x: torch.Tensor) -> np.ndarray:
    """(N,) bool: which inputs x (N, C, *grid) leave the summary's ranges (widened by MARGIN)."""
    flagged = np.zeros(len(x), dtype=bool)
    if not len(x):
        return flagged
    stats = sample_statistics(x)
    same_grid = list(x.shape[2:]) == summary.get("grid")
    for name in STATISTICS if same_grid else ("min", "max", "mean", "std"):
        lo, hi = np.asarray(summary[name]["low"]), np.asarray(summary[name]["high"])
        pad = MARGIN * (hi - lo) + 1e-9 * np.maximum(np.abs(lo), np.abs(hi))
        flagged |= ((stats[name] < lo - pad) | (stats[name] > hi + pad)).any(1)
    return flagged


WARNING = "inputs lie outside the range of the training inputs"


@contextlib.contextmanager
def counted_not_warned():
    """Silence the surrogate's out-of-distribution warning where the caller reports the share itself
    (``sciops evaluate``, the demo)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{WARNING}")
        yield
