"""The Hermite record residual (``solvers.residual``): fifth order per interval on a manufactured
solution, exact derivative along the flow for a quadratic tendency, and its refusals."""
from __future__ import annotations

import math

import pytest
import torch

from sciops.solvers.residual import hermite_residual


def riccati(u):
    return -u * u  # u' = -u^2: u(t) = 1 / (1 + t), a quadratic tendency


def samples(dt, count=4):
    t = dt * torch.arange(count + 1, dtype=torch.float64)
    return (1 / (1 + t))[None]  # (1, T + 1)


def test_fifth_order_per_interval():
    coarse, fine = (hermite_residual(samples(dt), riccati, dt)[0, 0].abs().item() for dt in (0.1, 0.05))
    assert math.log2(coarse / fine) > 4.7  # the trapezoidal rule alone is third order


def test_leading_error_term_of_a_linear_equation():
    # u' = a u sampled exactly: R_k = (a dt)^5 / 720 u_k + O(dt^7), the Euler-Maclaurin remainder of
    # the corrected trapezoidal rule (the central difference gives F' = a^2 u exactly)
    a, dt = -1.3, 0.05
    u = torch.exp(a * dt * torch.arange(3, dtype=torch.float64))[None]
    r = hermite_residual(u, lambda v: a * v, dt)[0]
    expected = (a * dt) ** 5 / 720 * u[0, :-1]
    torch.testing.assert_close(r, expected, rtol=0.05, atol=0)


def test_refuses_a_single_record():
    with pytest.raises(ValueError, match=r"expected \(batch, T \+ 1, \.\.\.\)"):
        hermite_residual(torch.ones(2, 1, 3), riccati, 0.1)
