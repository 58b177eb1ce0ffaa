"""Quadrature and spherical-harmonic pieces of the losses on the unit sphere (geometry ``"sphere"``).

Fields are (..., nlat, nlon) on a torch-harmonics grid (``"equiangular"`` or ``"legendre-gauss"``),
latitudes north to south, longitudes 2 pi j / nlon, as stored by the ``shallow-water`` problem.

* Lp: ``||f||_p^p = sum_ij W_i |f_ij|^p`` with W_i the grid's quadrature weight times 2 pi / nlon
  (sum_ij W_i = 4 pi, the area of the unit sphere): exact for band-limited |f|^p of the grid's
  exact degree (2 nlat - 1 on Legendre-Gauss, nlat - 1 on equiangular).
* H^s, any real s: ``||f||_{H^s}^2 = sum_{l, m} (1 + l (l + 1))^s |f_lm|^2`` with f_lm the
  orthonormal coefficients of torch-harmonics' ``RealSHT`` (norm "ortho"), which stores only the
  orders m >= 0 of a real field: the orders +-m > 0 have equal moduli, so each m > 0 counts twice.
  The transform keeps the grid's alias-free degrees l < lmax (``solvers.sphere_grid.default_lmax``:
  nlat on Legendre-Gauss, (nlat + 1) // 2 on equiangular), so at s = 0 the norm equals the
  quadrature L2 norm for fields of those degrees (Parseval), and is the L2 norm of their projection
  otherwise. Since -Delta Y_lm = l (l + 1) Y_lm, s = 1 is ||f||^2 + ||grad f||^2.
Transforms are built per (grid, shape, device, dtype) and cached.
"""
from __future__ import annotations

import math

import torch

from sciops.solvers.sphere_grid import GRIDS, check_grid, default_lmax, quadrature

_CACHE: dict = {}


def check_sphere_grid(grid: str | None) -> str:
    if grid not in GRIDS:
        raise ValueError(f"geometry 'sphere' needs the grid type: got grid={grid!r}; expected one of {', '.join(GRIDS)}")
    return grid


def _check_shape(shape: tuple[int, ...], grid: str) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fields on the sphere need (..., nlat, nlon) dims, got shape {tuple(shape)}")
    nlat, nlon = shape[-2:]
    check_grid(nlat, nlon, grid)
    return nlat, nlon


def area_weights(shape: tuple[int, ...], grid: str, device=None, dtype=torch.float32) -> torch.Tensor:
    """W_i of the module docstring broadcast to (nlat, nlon); sums to 4 pi."""
    nlat, nlon = _check_shape(shape, grid)
    key = ("w", nlat, nlon, grid, str(device), dtype)
    if key not in _CACHE:
        w = quadrature(nlat, grid)[1] * (2 * math.pi / nlon)
        _CACHE[key] = w[:, None].expand(nlat, nlon).to(device=device, dtype=dtype)
    return _CACHE[key]


def real_sht(nlat: int, nlon: int, grid: str, device=None, dtype=torch.float32, lmax: int | None = None):
    """Cached ``torch_harmonics.RealSHT`` (orthonormal) of a grid at its alias-free lmax by default."""
    import torch_harmonics as th

    lmax = default_lmax(nlat, grid) if lmax is None else lmax
    key = ("sht", nlat, nlon, grid, lmax, str(device), dtype)
    if key not in _CACHE:
        _CACHE[key] = th.RealSHT(nlat, nlon, lmax=lmax, grid=grid, norm="ortho").to(device=device, dtype=dtype)
    return _CACHE[key]


def degree_weights(lmax: int, mmax: int, s: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """(lmax, mmax) weights (1 + l (l + 1))^s c_m on m <= l (c_0 = 1, c_m = 2), zero above."""
    ell = torch.arange(lmax, dtype=torch.float64)[:, None]
    m = torch.arange(mmax, dtype=torch.float64)[None, :]
    weight = (1.0 + ell * (ell + 1.0)) ** s * torch.where(m > 0, 2.0, 1.0) * (m <= ell)
    return weight.to(device=device, dtype=dtype)


def sobolev_squared(u: torch.Tensor, s: float, grid: str) -> torch.Tensor:
    """sum over every leading dim but the first of ||u||_{H^s}^2: shape (batch,)."""
    nlat, nlon = _check_shape(tuple(u.shape), grid)
    dtype = u.dtype if u.dtype in (torch.float32, torch.float64) else torch.float32
    sht = real_sht(nlat, nlon, grid, u.device, dtype)
    coeffs = sht(u.to(dtype))
    weight = degree_weights(sht.lmax, sht.mmax, s, u.device, dtype)
    return (weight * coeffs.abs() ** 2).flatten(1).sum(1)
