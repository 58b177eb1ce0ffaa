"""Integrating-factor (exponential) time steppers for du/dt = N(u) - lambda u, lambda >= 0 diagonal.

The linear part is a diagonal decay (spectral hyperdiffusion) that these schemes integrate
exactly; the nonlinear part N is explicit. An equation object exposes

    explicit_terms(u)      N(u)
    decay_rates            lambda, a tensor broadcastable against u (0 where nothing decays)

and a stepper is a function of ``(equation, dt)`` returning ``step(u) -> u_next`` (the jax-cfd
pattern of ``solvers.time_stepping``). With E(h) = exp(-lambda h):

``lawson_rk4``  classical RK4 applied to v = exp(lambda t) u (Lawson 1967):
                    k1 = N(u)
                    k2 = N(E(dt/2) (u + dt/2 k1))
                    k3 = N(E(dt/2) u + dt/2 k2)
                    k4 = N(E(dt) u + dt E(dt/2) k3)
                    u+ = E(dt) u + dt/6 (E(dt) k1 + 2 E(dt/2) (k2 + k3) + k4)
                Order 4, four evaluations of N per step; stable for dt |Im mu| <= 2 sqrt(2) on the
                imaginary axis (mu an eigenvalue of the linearised N).
``lawson_ab3``  third-order Adams-Bashforth on v:
                    u+ = E(dt) u + dt (23/12 E(dt) N_n - 16/12 E(2 dt) N_{n-1} + 5/12 E(3 dt) N_{n-2})
                Order 3, one evaluation per step after a start by two ``lawson_rk4`` steps (so the
                start-up does not lower the order, unlike a forward-Euler / AB2 start); stable for
                dt |Im mu| <= 0.7236 on the imaginary axis. The stepper keeps the history of N, so
                one ``step`` function serves one trajectory.

Compared with torch-harmonics' example solver, which applies exp(-lambda dt) after a plain AB3
update (u+ = E(dt) (u + dt AB3(N))) and starts with forward Euler then AB2, both schemes here keep
their full order on the damped modes.

References
    Lawson, J. D. Generalized Runge-Kutta processes for stable systems with large Lipschitz
    constants. SIAM J. Numer. Anal. 4 (1967) 372-380.
    Durran, D. R. Numerical Methods for Fluid Dynamics, 2nd ed. (Springer 2010), sections 2.3-2.4
    (Adams-Bashforth stability regions).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

# The half-length of the imaginary-axis segment inside each scheme's stability region.
IMAGINARY_STABILITY = {"rk4": 2.0 * math.sqrt(2.0), "ab3": 0.7236}
EVALUATIONS_PER_STEP = {"rk4": 4, "ab3": 1}


def lawson_rk4(equation, dt: float) -> Callable[[torch.Tensor], torch.Tensor]:
    half = torch.exp(-equation.decay_rates * (dt / 2))
    full = half * half

    def step(u: torch.Tensor) -> torch.Tensor:
        k1 = equation.explicit_terms(u)
        k2 = equation.explicit_terms(half * (u + (dt / 2) * k1))
        k3 = equation.explicit_terms(half * u + (dt / 2) * k2)
        k4 = equation.explicit_terms(full * u + dt * (half * k3))
        return full * u + (dt / 6) * (full * k1 + 2 * half * (k2 + k3) + k4)

    return step


def lawson_ab3(equation, dt: float) -> Callable[[torch.Tensor], torch.Tensor]:
    e1 = torch.exp(-equation.decay_rates * dt)
    e2, e3 = e1 * e1, e1 * e1 * e1
    start = lawson_rk4(equation, dt)
    history: list[torch.Tensor] = []  # N at the previous two steps, newest last

    def step(u: torch.Tensor) -> torch.Tensor:
        if len(history) < 2:
            history.append(equation.explicit_terms(u))
            return start(u)
        n_now = equation.explicit_terms(u)
        n_older, n_old = history
        history[:] = [n_old, n_now]
        return e1 * u + dt * ((23 / 12) * e1 * n_now - (16 / 12) * e2 * n_old + (5 / 12) * e3 * n_older)

    return step


STEPPERS = {"rk4": lawson_rk4, "ab3": lawson_ab3}


def get_stepper(name: str):
    if name not in STEPPERS:
        raise ValueError(f"unknown time stepper {name!r}; expected one of {', '.join(STEPPERS)}")
    return STEPPERS[name]
