"""Implicit-explicit (IMEX) time steppers for du/dt = F(u) + G(u), G linear.

The interface follows jax-cfd (``jax_cfd/spectral/time_stepping.py``): an equation object
exposes

    explicit_terms(u)        F(u), the non-stiff (typically nonlinear) part,
    implicit_terms(u)        G(u), the stiff linear part,
    implicit_solve(u, eta)   the y with y - eta G(y) = u,

and a stepper is a function of ``(equation, dt)`` returning ``step(u) -> u_next``. A new
stepper does not touch any equation, and a new equation does not touch any stepper.
Autonomous equations only (jax-cfd's convention): F and G do not depend on t.

Steppers (``STEPPERS`` maps names to them)
    ``backward_forward_euler``  F by forward Euler, G by backward Euler. Order 1.
    ``crank_nicolson_rk2``      Heun's RK2 for F, Crank-Nicolson for G (Chandler & Kerswell 2013,
                                section 3; jax-cfd / torch-cfd ``crank_nicolson_rk2`` /
                                ``IMEXStepper(order=2)``). Order 2.
    ``crank_nicolson_rk4``      Carpenter-Kennedy five-stage, fourth-order, 2N-storage RK for F;
                                each stage treats G by Crank-Nicolson over the stage interval
                                (Canuto et al. 2007, appendix D.3; jax-cfd ``crank_nicolson_rk4``,
                                torch-cfd ``RK4CrankNicolsonStepper``).

Order of ``crank_nicolson_rk4``: the explicit part alone (G = 0) is the fourth-order
Carpenter-Kennedy scheme; the implicit part alone (F = 0) is a composition of Crank-Nicolson
steps over sub-intervals summing to dt, which is second order; the combined IMEX scheme is
second order. Its error is dominated by the fourth-order explicit part when advection dominates
(low viscosity), so it is much more accurate than RK2-CN there, but its asymptotic order is 2.
tests/solvers/test_navier_stokes.py measures all three orders.

Coefficients of the low-storage scheme, stage k = 0..4 (Carpenter & Kennedy, NASA TM-109112,
1994, the (5,4) 2N-storage scheme, exact rationals; jax-cfd and torch-cfd 0.2.6 use the same
values rounded to 10-13 digits: alphas [0, 0.1496590219993, 0.3704009573644, 0.6222557631345,
0.9582821306748, 1], betas [0, -0.4178904745, -1.192151694643, -1.697784692471,
-1.514183444257], gammas [0.1496590219993, 0.3792103129999, 0.8229550293869,
0.6994504559488, 0.1530572479681]):

    h <- F(u) + beta_k h
    mu = dt (alpha_{k+1} - alpha_k) / 2
    u <- implicit_solve(u + gamma_k dt h + mu G(u), mu)

References
    Carpenter, M. H. & Kennedy, C. A. Fourth-order 2N-storage Runge-Kutta schemes. NASA TM-109112 (1994).
    Canuto, Hussaini, Quarteroni & Zang. Spectral Methods: Evolution to Complex Geometries and
    Applications to Fluid Dynamics. Springer (2007), appendix D.3.
    Chandler, G. J. & Kerswell, R. R. J. Fluid Mech. 722, 554-595 (2013), section 3.
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Protocol

import torch

StepFn = Callable[[torch.Tensor], torch.Tensor]


class ImplicitExplicitODE(Protocol):
    """du/dt = explicit_terms(u) + implicit_terms(u); implicit_solve inverts (1 - eta G)."""

    def explicit_terms(self, u: torch.Tensor) -> torch.Tensor: ...

    def implicit_terms(self, u: torch.Tensor) -> torch.Tensor: ...

    def implicit_solve(self, u: torch.Tensor, eta: float) -> torch.Tensor: ...


def backward_forward_euler(equation: ImplicitExplicitODE, dt: float) -> StepFn:
    """u_{n+1} = (1 - dt G)^{-1} (u_n + dt F(u_n)). First order."""
    def step(u):
        return equation.implicit_solve(u + dt * equation.explicit_terms(u), dt)
    return step


def crank_nicolson_rk2(equation: ImplicitExplicitODE, dt: float) -> StepFn:
    """Heun (RK2) for F, Crank-Nicolson for G. Second order (Chandler & Kerswell 2013)."""
    F, G, G_inv = equation.explicit_terms, equation.implicit_terms, equation.implicit_solve

    def step(u0):
        g = u0 + (0.5 * dt) * G(u0)
        h1 = F(u0)
        u1 = G_inv(g + dt * h1, 0.5 * dt)
        h2 = 0.5 * (F(u1) + h1)
        return G_inv(g + dt * h2, 0.5 * dt)
    return step


# Carpenter & Kennedy (1994), (5,4) 2N-storage scheme: A_k (betas), B_k (gammas), c_k (alphas).
_CK_BETAS = [Fraction(0), Fraction(-567301805773, 1357537059087), Fraction(-2404267990393, 2016746695238),
             Fraction(-3550918686646, 2091501179385), Fraction(-1275806237668, 842570457699)]
_CK_GAMMAS = [Fraction(1432997174477, 9575080441755), Fraction(5161836677717, 13612068292357),
              Fraction(1720146321549, 2090206949498), Fraction(3134564353537, 4481467310338),
              Fraction(2277821191437, 14882151754819)]
_CK_ALPHAS = [Fraction(0), Fraction(1432997174477, 9575080441755), Fraction(2526269341429, 6820363962896),
              Fraction(2006345519317, 3224310063776), Fraction(2802321613138, 2924317926251), Fraction(1)]
CARPENTER_KENNEDY = {
    "alphas": tuple(float(a) for a in _CK_ALPHAS),
    "betas": tuple(float(b) for b in _CK_BETAS),
    "gammas": tuple(float(g) for g in _CK_GAMMAS),
}


def low_storage_runge_kutta_crank_nicolson(alphas, betas, gammas, equation: ImplicitExplicitODE,
                                           dt: float) -> StepFn:
    """Low-storage RK for F with a Crank-Nicolson step for G on each stage interval.

    ``alphas`` (stage times, length s + 1, from 0 to 1), ``betas`` and ``gammas`` (length s):
    see the module docstring for the update.
    """
    if not (len(alphas) - 1 == len(betas) == len(gammas)):
        raise ValueError(f"need len(alphas) - 1 == len(betas) == len(gammas), got "
                         f"{len(alphas)}, {len(betas)}, {len(gammas)}")
    F, G, G_inv = equation.explicit_terms, equation.implicit_terms, equation.implicit_solve
    stages = [(float(b), float(g) * dt, 0.5 * dt * (float(a1) - float(a0)))
              for b, g, a0, a1 in zip(betas, gammas, alphas[:-1], alphas[1:])]

    def step(u):
        h = None
        for beta, gamma_dt, mu in stages:
            h = F(u) if h is None else torch.add(F(u), h, alpha=beta)
            u = G_inv(u + gamma_dt * h + mu * G(u), mu)
        return u
    return step


def crank_nicolson_rk4(equation: ImplicitExplicitODE, dt: float) -> StepFn:
    """Carpenter-Kennedy low-storage RK4 for F, Crank-Nicolson for G; second order overall."""
    return low_storage_runge_kutta_crank_nicolson(equation=equation, dt=dt, **CARPENTER_KENNEDY)


STEPPERS: dict[str, Callable[[ImplicitExplicitODE, float], StepFn]] = {
    "backward_forward_euler": backward_forward_euler,
    "crank_nicolson_rk2": crank_nicolson_rk2,
    "crank_nicolson_rk4": crank_nicolson_rk4,
}

#: Formal order of accuracy of each stepper for the full IMEX problem (F and G both active).
STEPPER_ORDER = {"backward_forward_euler": 1, "crank_nicolson_rk2": 2, "crank_nicolson_rk4": 2}


def get_stepper(name: str) -> Callable[[ImplicitExplicitODE, float], StepFn]:
    """The stepper factory registered under ``name``."""
    try:
        return STEPPERS[name]
    except KeyError:
        raise ValueError(f"stepper must be one of {sorted(STEPPERS)}, got {name!r}") from None
