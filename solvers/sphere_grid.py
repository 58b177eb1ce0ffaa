"""Grids on the unit sphere served by the spherical harmonic transform: grid types, the alias-free
truncation lmax, validation, latitudes and quadrature weights.

Geometry, not a solver: the shallow-water solver, the spherical losses and the SFNO all describe
their grids with it, so it lives at the bottom layer where every other layer may import it.
Latitudes run north to south; weights w_i satisfy int f dOmega = (2 pi / nlon) sum_ij w_i f_ij.
"""
from __future__ import annotations

import torch
from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights

GRIDS = ("equiangular", "legendre-gauss")
MIN_NLAT = 4


def default_lmax(nlat: int, grid: str) -> int:
    """The alias-free truncation of a grid: Gauss-Legendre integrates degree 2 nlat - 1 exactly, so
    lmax = nlat; Clenshaw-Curtis only degree nlat - 1, so lmax = (nlat + 1) // 2 (module docstring)."""
    return nlat if grid == "legendre-gauss" else (nlat + 1) // 2


def check_grid(nlat: int, nlon: int, grid: str, lmax: int | None = None) -> int:
    """Validate a grid for the SHT and return the truncation lmax (ValueError otherwise)."""
    if grid not in GRIDS:
        raise ValueError(f"shallow-water: grid={grid!r} is not supported; expected one of {', '.join(GRIDS)}")
    for name, value in (("nlat", nlat), ("nlon", nlon)):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"shallow-water: {name}={value!r} is not an integer")
    if nlat < MIN_NLAT:
        raise ValueError(f"shallow-water: nlat={nlat} is too small; expected nlat >= {MIN_NLAT}")
    lmax = default_lmax(int(nlat), grid) if lmax is None else lmax
    if not 2 <= lmax <= nlat:
        raise ValueError(f"shallow-water: lmax={lmax} cannot be served by {nlat} latitudes; expected 2 <= lmax <= nlat")
    if nlon // 2 + 1 < lmax:
        raise ValueError(f"shallow-water: nlon={nlon} longitudes cannot resolve the orders m < lmax={lmax} of a "
                         f"{nlat}-latitude {grid} grid; expected nlon >= {2 * lmax - 2} (e.g. nlon = 2 nlat)")
    return lmax


def quadrature(nlat: int, grid: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Latitudes (radians, north to south) and the weights w_i of int f dOmega = (2 pi / nlon)
    sum_ij w_i f_ij on the unit sphere (sum_i w_i = 2), float64."""
    cost, w = (legendre_gauss_weights if grid == "legendre-gauss" else clenshaw_curtiss_weights)(nlat, -1, 1)
    return -torch.arcsin(torch.as_tensor(cost, dtype=torch.float64)), torch.as_tensor(w, dtype=torch.float64)
