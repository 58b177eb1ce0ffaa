"""Gaussian random fields used as input distributions.

``cosine_grf`` draws the field of the FNO Darcy data: a zero-mean Gaussian random field on the
unit square with covariance tau^(2 alpha - 2) (-lap + tau^2 I)^(-alpha) under Neumann boundary
conditions, written as a cosine series

    g(x, y) = sum_{(k1, k2) != 0} tau^(alpha-1) (pi^2 (k1^2 + k2^2) + tau^2)^(-alpha/2) xi_k phi_k1(y) phi_k2(x)

with phi_0 = 1, phi_k(s) = sqrt(2) cos(pi k s) (orthonormal on [0, 1]) and xi_k i.i.d. N(0, 1).
The series is truncated at ``modes`` terms per direction and evaluated exactly at the given
coordinates, so the same draw can be evaluated on any grid.
"""
from __future__ import annotations

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
