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


def statistics(x: torch.Tensor, roughness: bool = True) -> np.ndarray:
    """Statistics (N, S, C) float64 of channel-first inputs x (N, C, *grid), S in ``STATISTICS``
    order (the first four when ``roughness`` is False). A sample holding NaN or Inf has a non-finite
    min or max, so callers can check finiteness from these."""
    x = x.detach().to(torch.float64)
    flat = x.flatten(2)
    low, high = torch.aminmax(flat, dim=2)
    std, mean = torch.std_mean(flat, dim=2, correction=0)
    axes = [d for d in range(2, x.dim()) if x.shape[d] > 1] if roughness else []
    grid = tuple(range(2, x.dim()))
    norms = [torch.linalg.vector_norm(torch.diff(x, dim=d), dim=grid) for d in axes]
    # few reductions in torch, one transfer, the arithmetic on (N, C) arrays in numpy (cheap per call)
    raw = torch.stack([low, high, mean, std, *norms], 1).cpu().numpy()
    if not roughness:
        return raw
    out = np.empty((len(raw), 5, raw.shape[2]))
    out[:, :4] = raw[:, :4]
    std, rough = raw[:, 3], out[:, 4]
    rough[:] = 0
    if axes:
        diffs = np.array([flat.shape[2] // x.shape[d] * (x.shape[d] - 1) for d in axes], dtype=np.float64)
        rms_diff = np.sqrt((raw[:, 4:] ** 2 / diffs[:, None]).mean(1))
        np.divide(rms_diff, std, out=rough, where=std > 0)
    return out


def sample_statistics(x: torch.Tensor) -> dict[str, np.ndarray]:
    """Statistics (N, C) of channel-first inputs x (N, C, *grid), by name."""
    stats = statistics(x)
    return {name: stats[:, i] for i, name in enumerate(STATISTICS)}


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


class Ranges:
    """A summary's ranges widened by ``MARGIN``, built once (a surrogate checks every call against them)."""

    def __init__(self, summary: dict):
        self.grid = summary.get("grid")
        low = np.array([summary[name]["low"] for name in STATISTICS], dtype=np.float64)
        high = np.array([summary[name]["high"] for name in STATISTICS], dtype=np.float64)
        pad = MARGIN * (high - low) + 1e-9 * np.maximum(np.abs(low), np.abs(high))
        self.low, self.high = low - pad, high + pad  # (S, C)

    def same_grid(self, x: torch.Tensor) -> bool:
        """Whether roughness is compared: it depends on the grid spacing, so only on the training grid."""
        return list(x.shape[2:]) == self.grid

    def outside(self, stats: np.ndarray) -> np.ndarray:
        """(N,) bool from ``statistics(x, roughness=self.same_grid(x))``."""
        s = stats.shape[1]
        return ((stats < self.low[:s]) | (stats > self.high[:s])).any((1, 2))


def outside(summary: dict, x: torch.Tensor) -> np.ndarray:
    """(N,) bool: which inputs x (N, C, *grid) leave the summary's ranges (widened by MARGIN)."""
    if not len(x):
        return np.zeros(0, dtype=bool)
    ranges = Ranges(summary)
    return ranges.outside(statistics(x, roughness=ranges.same_grid(x)))


WARNING = "inputs lie outside the range of the training inputs"


@contextlib.contextmanager
def counted_not_warned():
    """Silence the surrogate's out-of-distribution warning where the caller reports the share itself
    (``sciops evaluate``, the demo)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{WARNING}")
        yield
