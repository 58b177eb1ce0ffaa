"""Diagnostics of 2D periodic vorticity fields: energy, enstrophy, spectrum, correlation.

All functions take physical vorticity ``w`` of shape (..., n, n) on the grid x_j = j L / n of
[0, L)^2 (arrays ``[..., y, x]``) and reduce over the last two axes. Quantities are domain
averages (per unit area), so they do not depend on n for resolved fields:

    kinetic energy   E = (1/2) <u^2 + v^2>         (u from w through the stream function)
    enstrophy        Z = (1/2) <w^2>
    energy spectrum  E(k) = sum over the shell k - 1/2 <= |m| < k + 1/2 of (1/2) |u_hat_m|^2 / n^4,
                     m the integer wavenumber vector, so that sum_k E(k) = E (Parseval);
                     returned against the shell index k = 0 .. floor(n / 2 * sqrt 2) and its
                     angular wavenumber 2 pi k / L.
    correlation      rho(w1, w2) = <w1 w2> / sqrt(<w1^2> <w2^2>)  (Kochkov et al. 2021; w has zero
                     mean on the torus, so this equals the Pearson correlation).

For unforced flow without drag, dE/dt = -2 nu Z and dZ/dt = -nu <|grad w|^2>: both decay
monotonically, a check in tests/solvers/test_navier_stokes.py.
"""
from __future__ import annotations

import math

import torch

from sciops.solvers import spectral


def kinetic_energy(w: torch.Tensor, length: float = 2 * math.pi) -> torch.Tensor:
    """(1/2) <u^2 + v^2>, shape w.shape[:-2]."""
    u, v = spectral.velocity(w, length)
    return 0.5 * (u ** 2 + v ** 2).mean(dim=(-2, -1))


def enstrophy(w: torch.Tensor) -> torch.Tensor:
    """(1/2) <w^2>, shape w.shape[:-2]."""
    return 0.5 * (w ** 2).mean(dim=(-2, -1))


def energy_spectrum(w: torch.Tensor, length: float = 2 * math.pi) -> tuple[torch.Tensor, torch.Tensor]:
    """Isotropic energy spectrum: ``(k, E)`` with k (K,) angular shell wavenumbers and E (..., K).

    ``E.sum(-1)`` equals :func:`kinetic_energy` to round-off.
    """
    n = w.shape[-1]
    u_hat, v_hat = spectral.velocity_hat(torch.fft.rfft2(w), length)
    density = 0.5 * (u_hat.abs() ** 2 + v_hat.abs() ** 2) / n ** 4
    # rfft2 stores half the x-wavenumbers: the others are complex conjugates, counted twice.
    weight = torch.full((n // 2 + 1,), 2.0, dtype=density.dtype, device=w.device)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    density = density * weight
    my, mx = spectral.integer_wavenumbers(n, device=w.device)
    shell = torch.sqrt(my ** 2 + mx ** 2).round().long().expand(n, n // 2 + 1).reshape(-1)
    nshell = int(shell.max()) + 1
    flat = density.reshape(-1, n * (n // 2 + 1))
    spectrum = torch.zeros(flat.shape[0], nshell, dtype=density.dtype, device=w.device)
    spectrum.index_add_(1, shell, flat)
    k = torch.arange(nshell, dtype=density.dtype, device=w.device) * (2 * math.pi / length)
    return k, spectrum.reshape(*w.shape[:-2], nshell)


def vorticity_correlation(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """<w1 w2> / sqrt(<w1^2> <w2^2>) over the last two axes, e.g. (batch, T) for trajectories."""
    num = (w1 * w2).mean(dim=(-2, -1))
    return num / torch.sqrt((w1 ** 2).mean(dim=(-2, -1)) * (w2 ** 2).mean(dim=(-2, -1)))
