"""The residual of sampled trajectories in the equation that produced them: how far records u_0, u_1,
..., spaced dt apart in time, are from satisfying du/dt = F(u), without knowing the solution.

Two-point Hermite rule (the trapezoidal rule with its Euler-Maclaurin end correction) over each
record interval

    R_k = u_{k+1} - u_k - dt / 2 (F_k + F_{k+1}) - dt^2 / 12 (F'_k - F'_{k+1}),    F' = (dF/du) F,

which is O(dt^5) for the exact trajectory (the trapezoidal rule alone is O(dt^3)): records a
solver wrote leave a residual far below that of an approximation's records unless they are very
coarse in time. F' is the tendency's derivative along the flow, by the central difference

    F'(u) = (F(u + dt F(u)) - F(u - dt F(u))) / (2 dt),

exact (to round-off) when F is a quadratic polynomial of the state, as the navier-stokes and the
shallow-water tendencies are; otherwise an O(dt^2) approximation of it. Three evaluations of F per
record, each shared by the two intervals the record ends and starts.

Used by the trajectory problems' ``record_residuals`` (the error indicator of
``sciops.grid.error_estimator``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def hermite_residual(states: torch.Tensor, tendency: Callable[[torch.Tensor], torch.Tensor],
                     dt: float) -> torch.Tensor:
    """R_k (batch, T, ...) of records ``states`` (batch, T + 1, ...) spaced ``dt`` apart, the first
    the initial state, for du/dt = ``tendency(u)`` (batched over leading dims); see the module
    docstring."""
    if states.ndim < 2 or states.shape[1] < 2:
        raise ValueError(f"hermite_residual: states of shape {tuple(states.shape)}; expected (batch, T + 1, ...) "
                         f"with T + 1 >= 2 records")
    f = tendency(states)
    df = (tendency(states + dt * f) - tendency(states - dt * f)) / (2 * dt)
    return (states[:, 1:] - states[:, :-1] - dt / 2 * (f[:, :-1] + f[:, 1:])
            - dt ** 2 / 12 * (df[:, :-1] - df[:, 1:]))
