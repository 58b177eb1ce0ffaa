"""Spectral-Refiner pieces: the H^-1 PDE residual built from the solver's operators (zero on exact
solutions up to the time-difference error, second order in the record spacing), and the
full-mode extension of the last spectral layer (the refined model starts where the trained one was)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sciops import operators
from sciops.normalization import NormalizedOperator
from sciops.refine import extend_last_layer, relative_residual
from sciops.solvers.navier_stokes import NavierStokes2D, simulate


def taylor_green(n: int, times: np.ndarray, nu: float, k: int = 2) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64) / n
    w0 = torch.sin(2 * math.pi * k * x)[None, :] * torch.sin(2 * math.pi * k * x)[:, None]
    decay = torch.exp(-nu * 2 * (2 * math.pi * k) ** 2 * torch.as_tensor(times))
    return decay[:, None, None] * w0


def test_residual_vanishes_on_the_exact_decaying_vortex_and_not_for_a_wrong_viscosity():
    n, nu, dt = 32, 1e-2, 0.01
    w = taylor_green(n, np.arange(11) * dt, nu)[None]
    right = NavierStokes2D(n, nu, forcing="none", length=1.0)
    wrong = NavierStokes2D(n, 2 * nu, forcing="none", length=1.0)
    exact = relative_residual(right, w[:, 0], w[:, 1:], dt).item()
    off = relative_residual(wrong, w[:, 0], w[:, 1:], dt).item()
    assert exact < 1e-3 and off > 100 * exact, (exact, off)


def test_residual_of_a_solver_trajectory_is_second_order_in_the_record_spacing():
    """Forced, nonlinear flow from the solver: the residual left is the finite-difference time
    derivative's, so halving the record spacing divides it by about 4."""
    gen = torch.Generator().manual_seed(0)
    n = 32
    w0 = torch.fft.irfft2(torch.randn(1, n, n // 2 + 1, dtype=torch.cdouble, generator=gen)
                          * (torch.arange(n // 2 + 1) < 5) * (torch.fft.fftfreq(n, 1 / n).abs() < 5)[:, None], s=(n, n))
    w0 = w0 / w0.std()
    equation = NavierStokes2D(n, 1e-3, forcing="fno")
    residuals = []
    for dt in (0.04, 0.02, 0.01):
        traj = simulate(w0, t_final=0.4, dt=dt / 8, record_every=dt, viscosity=1e-3, forcing="fno",
                        include_initial=True).vorticity
        residuals.append(relative_residual(equation, traj[:, 0], traj[:, 1:], dt).item())
    orders = np.log2(np.array(residuals[:-1]) / np.array(residuals[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.3), (residuals, orders)


def test_full_mode_extension_leaves_the_model_unchanged():
    torch.manual_seed(0)
    op = operators.build("fno3d", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=5,
                         modes=(2, 4, 4), width=6, layers=2)
    model = NormalizedOperator(op, [0.0], [1.0], [0.0], [1.0])
    config = {"operator": {"name": "fno3d", "hyperparameters": {"modes": [2, 4, 4]}}}
    grid = (5 + round(0.3 * 5), 16, 16)
    refined, new_config = extend_last_layer(model, config, grid)
    assert refined.operator.fno.spectral[-1].modes == (3, 8, 9)
    assert new_config["operator"]["hyperparameters"]["last_modes"] == [3, 8, 9]
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(refined(x), model(x), atol=1e-5, rtol=1e-5)
    # and the extended layer is what a checkpoint with last_modes rebuilds
    rebuilt = operators.build("fno3d", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=5,
                              modes=(2, 4, 4), width=6, layers=2, last_modes=(3, 8, 9))
    rebuilt.load_state_dict(refined.operator.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), refined.operator(x))
