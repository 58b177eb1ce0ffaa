"""Gaussian random fields used as input distributions.

``cosine_grf`` draws the field of the FNO Darcy data: a zero-mean Gaussian random field on the
unit square with covariance tau^(2 alpha - 2) (-lap + tau^2 I)^(-alpha) under Neumann boundary
conditions, written as a cosine series

    g(x, y) = sum_{(k1, k2) != 0} tau^(alpha-1) (pi^2 (k1^2 + k2^2) + tau^2)^(-alpha/2) xi_k phi_k1(y) phi_k2(x)

with phi_0 = 1, phi_k(s) = sqrt(2) cos(pi k s) (orthonormal on [0, 1]) and xi_k i.i.d. N(0, 1).
The series is truncated at ``modes`` terms per direction and evaluated exactly at the given
coordinates, so the same draw can be evaluated on any grid.

The periodic fields of the navier-stokes initial conditions are drawn on the n x n DFT grid instead:
a spectrum (``fno_grf_amplitude``: the FNO data's GRF on the torus of side ``length``;
``mcwilliams_amplitude``: the McWilliams 1984 stream-function spectrum) times complex white noise,
synthesised by ``random_phase_field``.
"""
from __future__ import annotations

import math

import numpy as np


def cosine_basis(s: np.ndarray, modes: int) -> np.ndarray:
    """phi_k(s) for k < modes, shape (len(s), modes)."""
    k = np.arange(modes)
    basis = np.sqrt(2.0) * np.cos(np.pi * np.outer(s, k))
    basis[:, 0] = 1.0
    return basis


def cosine_grf(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, *, alpha: float, tau: float,
               modes: int) -> np.ndarray:
    """One draw of the Neumann GRF at the tensor grid (y, x); returns shape (len(y), len(x))."""
    k2 = np.arange(modes)[:, None] ** 2 + np.arange(modes)[None, :] ** 2
    scale = tau ** (alpha - 1.0) * (np.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2.0)
    scale[0, 0] = 0.0  # zero mean
    coefficients = scale * rng.standard_normal((modes, modes))
    return cosine_basis(y, modes) @ coefficients @ cosine_basis(x, modes).T


def integer_modes(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer wavenumbers (my, mx) on the full n x n DFT grid and the mask without Nyquist."""
    m = np.fft.fftfreq(n, 1.0 / n).round()
    my, mx = m[:, None], m[None, :]
    no_nyquist = (np.abs(my) < n / 2) & (np.abs(mx) < n / 2)
    return my, mx, no_nyquist


def fno_grf_amplitude(n: int, length: float, alpha: float, tau: float) -> np.ndarray:
    """sqrt(2) sigma lambda_k^(-alpha/2) on the full n x n DFT grid (0 at k = 0 and Nyquist):
    the standard deviation of |w_k| per normalised coefficient is this (E|w_k|^2 = its square)."""
    my, mx, keep = integer_modes(n)
    lam = (2 * math.pi / length) ** 2 * (my ** 2 + mx ** 2) + tau ** 2
    amp = math.sqrt(2.0) * tau ** (alpha - 1.0) * lam ** (-alpha / 2.0)
    amp[0, 0] = 0.0
    return np.where(keep, amp, 0.0)


def mcwilliams_amplitude(n: int, peak_wavenumber: float) -> np.ndarray:
    """|psi_k| shape (|k|^2 (1 + (|k| / k0)^4))^(-1/2), k0 = 3^(1/4) peak, integer |k|; 0 at k = 0, Nyquist."""
    my, mx, keep = integer_modes(n)
    k = np.sqrt(my ** 2 + mx ** 2)
    k0 = 3 ** 0.25 * peak_wavenumber
    with np.errstate(divide="ignore"):
        amp = np.where(k > 0, 1.0 / (k * np.sqrt(1.0 + (k / k0) ** 4)), 0.0)
    return np.where(keep, amp, 0.0)


def random_phase_field(rng: np.random.Generator, amplitude: np.ndarray) -> np.ndarray:
    """Real part of the inverse DFT (unnormalised synthesis) of amplitude x complex white noise."""
    z = rng.standard_normal((2,) + amplitude.shape)
    return np.fft.ifft2(amplitude * (z[0] + 1j * z[1]), norm="forward").real
