"""Diagnostics of shallow-water states on the sphere (``solvers.shallow_water``).

All functions take the solver and a spectral state (..., 3, lmax, mmax) of (Phi, zeta, delta) and
reduce over the sphere; integrals use the grid's quadrature, dA = a^2 dOmega, h = Phi / g:

    mass                 M = int h dA                                         (m^3)
    total energy         E = int (h |V|^2 / 2 + g h^2 / 2) dA                 (J / kg x m^3 = m^5 / s^2)
    potential enstrophy  Z = int (zeta + f)^2 / (2 h) dA                      (m / s^2)
    kinetic energy spectrum by degree l (area mean, m^2/s^2, so that sum_l E(l) = <|V|^2> / 2):
                         E(l) = a^2 / (8 pi l (l + 1)) sum_m c_m (|zeta_lm|^2 + |delta_lm|^2),
                         c_0 = 1, c_m = 2 for m > 0 (the orders -m of a real field), E(0) = 0.
E and Z are conserved by the inviscid equations (Z for the non-divergent part exactly only in the
continuous limit); the hyperdiffusion makes both decay slowly.
"""
from __future__ import annotations

import math

import torch

from sciops.solvers.shallow_water import ShallowWaterSphere


def integrate(solver: ShallowWaterSphere, field: torch.Tensor) -> torch.Tensor:
    """int field dA over the sphere of radius a for grid fields (..., nlat, nlon)."""
    w = solver.quad_weights[:, None] * (2 * math.pi / solver.nlon) * solver.radius ** 2
    return (field * w).sum((-2, -1))


def area_mean(solver: ShallowWaterSphere, field: torch.Tensor) -> torch.Tensor:
    return integrate(solver, field) / (4 * math.pi * solver.radius ** 2)


def mass(solver: ShallowWaterSphere, state: torch.Tensor) -> torch.Tensor:
    return integrate(solver, solver.isht(state[..., 0, :, :])) / solver.gravity


def total_energy(solver: ShallowWaterSphere, state: torch.Tensor) -> torch.Tensor:
    grid = solver.to_grid(state)
    h, speed2 = grid[..., 0, :, :] / solver.gravity, grid[..., 1, :, :] ** 2 + grid[..., 2, :, :] ** 2
    return integrate(solver, 0.5 * h * speed2 + 0.5 * solver.gravity * h ** 2)


def potential_enstrophy(solver: ShallowWaterSphere, state: torch.Tensor) -> torch.Tensor:
    phi_vort = solver.isht(state[..., :2, :, :])
    h = phi_vort[..., 0, :, :] / solver.gravity
    return integrate(solver, (phi_vort[..., 1, :, :] + solver.coriolis) ** 2 / (2 * h))


def kinetic_energy_spectrum(solver: ShallowWaterSphere, state: torch.Tensor) -> torch.Tensor:
    """E(l), shape (..., lmax), l = 0 .. lmax - 1 (see the module docstring)."""
    ell = torch.arange(solver.lmax, dtype=solver.dtype, device=solver.device)
    inv = torch.where(ell > 0, 1 / torch.where(ell > 0, ell * (ell + 1), 1.0), 0.0)
    cm = torch.full((solver.mmax,), 2.0, dtype=solver.dtype, device=solver.device)
    cm[0] = 1.0
    power = (cm * (state[..., 1:, :, :].abs() ** 2).sum(-3)).sum(-1)
    return solver.radius ** 2 / (8 * math.pi) * inv * power
