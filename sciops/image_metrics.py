"""Image quality metrics for 2D/3D magnitude images: PSNR, SSIM and the normalised error.

* :func:`psnr`  10 log10(data_range^2 / mean((a - b)^2)) in dB, per image of a batch.
* :func:`nrmse` ||a - b|| / ||b||, per image of a batch.
* :func:`ssim`  the structural similarity of Wang et al. (2004) in any dimension, with the
  conventions of ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  use_sample_covariance=False, data_range=...)``: Gaussian window sigma = 1.5 truncated at 3.5
  sigma (``scipy.ndimage.gaussian_filter``, reflect boundary), K1 = 0.01, K2 = 0.03, and the mean
  of the SSIM map over the voxels at least (win_size - 1) / 2 = 5 from every border (win_size 11).
  Written here so the package does not depend on scikit-image.

Inputs: numpy arrays (batch, *space) or (*space) with the same shape; a batch returns one value
per image.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SIGMA, TRUNCATE, K1, K2 = 1.5, 3.5, 0.01, 0.03
SSIM_MIN_SIDE = 2 * int(TRUNCATE * SIGMA + 0.5) + 1  # the window must fit: 11 voxels per side


def _batched(a, b, ndim: int | None):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    nd = a.ndim if ndim is None else ndim
    batched = a.ndim == nd + 1
    return (a if batched else a[None]), (b if batched else b[None]), batched


def psnr(pred, ref, data_range: float = 1.0, ndim: int | None = 3):
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    a, b, batched = _batched(pred, ref, ndim)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        out = 10 * np.log10(data_range ** 2 / mse)
    return out if batched else float(out[0])


def nrmse(pred, ref, ndim: int | None = 3):
    """Normalised error ||pred - ref|| / ||ref|| (a zero reference counts as norm 1e-30)."""
    a, b, batched = _batched(pred, ref, ndim)
    out = np.linalg.norm((a - b).reshape(len(a), -1), axis=1) / np.maximum(np.linalg.norm(b.reshape(len(b), -1), axis=1), 1e-30)
    return out if batched else float(out[0])


def ssim(pred, ref, data_range: float = 1.0, ndim: int | None = 3):
    """Mean structural similarity (see module docstring)."""
    a, b, batched = _batched(pred, ref, ndim)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    pad = int(TRUNCATE * SIGMA + 0.5)  # = (win_size - 1) / 2

    def f(v):
        return gaussian_filter(v, SIGMA, truncate=TRUNCATE)

    out = []
    for x, y in zip(a, b):
        if min(x.shape) < SSIM_MIN_SIDE:
            raise ValueError(f"ssim needs every image side > {SSIM_MIN_SIDE - 1} voxels, got {x.shape}")
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out.append(s[(slice(pad, -pad),) * s.ndim].mean())
    out = np.array(out)
    return out if batched else float(out[0])
