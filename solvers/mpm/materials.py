"""Constitutive models of the MLS-MPM solver: material parameters, plasticity return mappings, stress.

Every model is written for the deformation gradient F (P, d, d) of a batch of particles and returns
the projected (elastic) F and the Kirchhoff stress tau = P F^T (P, d, d), the quantity the MLS-MPM
momentum transfer needs (``sciops.solvers.mpm.transfers``). Units are SI (Pa, kg/m^3).

Models (``KINDS``; a particle's material id indexes a list of :class:`Material`):

* ``"elastic"``: fixed corotated hyperelasticity (Stomakhin et al. 2012),
  tau = 2 mu (F - R) F^T + lambda (J - 1) J I, R the rotation of the polar decomposition F = R S.
  Default: the elastic jelly of the GNS/GIOROM datasets, E = 1e5 Pa, nu = 0.2, rho = 1000.
* ``"fluid"``: weakly compressible fluid with the J-based equation of state of the 88-line
  MLS-MPM (Hu et al. 2018): energy K/2 (J - 1)^2, tau = K (J - 1) J I (pressure p = -K (J - 1)),
  no shear stress; F is reset to J^(1/d) I each step so that no shear memory accumulates.
  Default: bulk modulus K = 1e5 Pa, rho = 1000 (sound speed 10 m/s, a Mach number below ~0.3
  for the metre-scale scenes here).
* ``"sand"``: Drucker-Prager elastoplasticity with the return mapping of Klar et al. 2016
  (no hardening, no cohesion): with F = U Sigma V^T and the Hencky strain eps = log Sigma,
  eps_hat = eps - tr(eps)/d, the trial state is projected to the cone tip (Sigma = I) when
  tr(eps) > 0 (tension) and otherwise by delta_gamma = |eps_hat| + (d lambda + 2 mu)/(2 mu)
  tr(eps) alpha, alpha = sqrt(2/3) 2 sin(phi) / (3 - sin(phi)), eps <- eps - delta_gamma
  eps_hat/|eps_hat| when delta_gamma > 0. Stress: St. Venant-Kirchhoff in Hencky strain,
  tau = U (2 mu eps + lambda tr(eps) I) U^T. Default (Klar et al.): E = 3.537e5 Pa, nu = 0.3,
  rho = 2200, friction angle 25 degrees (METHODS.md).
* ``"plasticine"``: von Mises plasticity on the same Hencky model: the deviatoric Kirchhoff stress
  s = 2 mu eps_hat is returned to sqrt(3/2) |s| <= sigma_y (the uniaxial yield stress), i.e.
  eps <- eps - (|eps_hat| - sqrt(2/3) sigma_y / (2 mu)) eps_hat/|eps_hat| when positive; volume
  is preserved. Default: E = 1e5 Pa, nu = 0.3, rho = 1000, sigma_y = 5e3 Pa (METHODS.md).

Wave speeds for the time-step check: the P-wave speed sqrt((lambda + 2 mu) / rho) of the solid
models, sqrt(K / rho) for the fluid.

References
    Stomakhin, Howes, Schroeder, Teran. Energetically consistent invertible elasticity. SCA 2012.
    Klar, Gast, Pradhana, Fu, Schroeder, Jiang, Teran. Drucker-Prager elastoplasticity for sand
    animation. ACM TOG 35(4) 2016.
    Hu, Fang, Ge, Qu, Zhu, Pradhana, Jiang. A moving least squares material point method with
    displacement discontinuity and two-way rigid body coupling. ACM TOG 37(4) 2018.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

KINDS = ("elastic", "fluid", "sand", "plasticine")
_DEFAULTS = {  # kind -> parameters that differ from the dataclass defaults
    "elastic": dict(density=1000.0, youngs_modulus=1e5, poisson_ratio=0.2),
    "fluid": dict(density=1000.0, bulk_modulus=1e5),
    "sand": dict(density=2200.0, youngs_modulus=3.537e5, poisson_ratio=0.3, friction_angle=25.0),
    "plasticine": dict(density=1000.0, youngs_modulus=1e5, poisson_ratio=0.3, yield_stress=5e3),
}
MIN_SINGULAR_VALUE = 1e-4  # Hencky strain log(sigma) of an (almost) inverted particle is clamped here


@dataclass(frozen=True)
class Material:
    """One material. Build it with :func:`material` (kind defaults + overrides, validated)."""

    kind: str
    density: float = 1000.0          # kg/m^3
    youngs_modulus: float = 1e5      # Pa (solids)
    poisson_ratio: float = 0.2       # (solids), in [0, 0.5)
    bulk_modulus: float = 1e5        # Pa (fluid)
    friction_angle: float = 25.0     # degrees (sand)
    yield_stress: float = 5e3        # Pa (plasticine)

    @property
    def mu(self) -> float:
        return 0.0 if self.kind == "fluid" else self.youngs_modulus / (2 * (1 + self.poisson_ratio))

    @property
    def lam(self) -> float:
        """Lame's first parameter (3D formula, also used in 2D plane strain); K for the fluid."""
        if self.kind == "fluid":
            return self.bulk_modulus
        nu = self.poisson_ratio
        return self.youngs_modulus * nu / ((1 + nu) * (1 - 2 * nu))

    @property
    def wave_speed(self) -> float:
        """Fastest elastic wave speed in m/s: P-wave for solids, sound speed for the fluid."""
        if self.kind == "fluid":
            return math.sqrt(self.bulk_modulus / self.density)
        return math.sqrt((self.lam + 2 * self.mu) / self.density)

    @property
    def alpha(self) -> float:
        """Drucker-Prager cone coefficient sqrt(2/3) 2 sin(phi) / (3 - sin(phi))."""
        s = math.sin(math.radians(self.friction_angle))
        return math.sqrt(2.0 / 3.0) * 2 * s / (3 - s)


def material(kind: str, **overrides) -> Material:
    """The material ``kind`` with its defaults (module docstring) and any parameter overridden."""
    if kind not in KINDS:
        raise ValueError(f"unknown material {kind!r}; expected one of {', '.join(KINDS)}")
    known = {f.name for f in fields(Material)} - {"kind"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown material parameter {unknown[0]!r}; expected one of {', '.join(sorted(known))}")
    m = replace(Material(kind), **{**_DEFAULTS[kind], **overrides})
    checks = [("density", m.density > 0, "> 0"), ("youngs_modulus", m.youngs_modulus > 0, "> 0"),
              ("poisson_ratio", 0 <= m.poisson_ratio < 0.5, "in [0, 0.5)"), ("bulk_modulus", m.bulk_modulus > 0, "> 0"),
              ("friction_angle", 0 < m.friction_angle < 90, "in (0, 90) degrees"),
              ("yield_stress", m.yield_stress > 0, "> 0")]
    for name, ok, expected in checks:
        value = getattr(m, name)
        if not ok or not math.isfinite(value):
            raise ValueError(f"{kind} material: {name}={value!r} is not valid; expected {expected}")
    return m


# ------------------------------------------------------------------------------------------ kinematics
def det(F: torch.Tensor) -> torch.Tensor:
    """Determinants of (P, d, d) matrices, d = 2 or 3, in closed form (no LU factorisation)."""
    if F.shape[-1] == 2:
        return F[:, 0, 0] * F[:, 1, 1] - F[:, 0, 1] * F[:, 1, 0]
    return (F[:, 0, 0] * (F[:, 1, 1] * F[:, 2, 2] - F[:, 1, 2] * F[:, 2, 1])
            - F[:, 0, 1] * (F[:, 1, 0] * F[:, 2, 2] - F[:, 1, 2] * F[:, 2, 0])
            + F[:, 0, 2] * (F[:, 1, 0] * F[:, 2, 1] - F[:, 1, 1] * F[:, 2, 0]))


def _rotation2(angle: torch.Tensor) -> torch.Tensor:
    c, s = angle.cos(), angle.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rotation_svd(F: torch.Tensor):
    """SVD F = U diag(sigma) V^T with det U = det V = +1 (a reflection goes into the last sigma).

    2x2: closed form (F = rot(phi) diag(q + r, q - r) rot(theta) from the conformal and
    anti-conformal parts of F); 3x3: LAPACK through ``torch.linalg.svd`` and a sign fix."""
    if F.shape[-1] == 2:
        e, f = 0.5 * (F[:, 0, 0] + F[:, 1, 1]), 0.5 * (F[:, 0, 0] - F[:, 1, 1])
        g, h = 0.5 * (F[:, 1, 0] + F[:, 0, 1]), 0.5 * (F[:, 1, 0] - F[:, 0, 1])
        q, r = torch.sqrt(e * e + h * h), torch.sqrt(f * f + g * g)
        a1, a2 = torch.atan2(g, f), torch.atan2(h, e)
        return _rotation2(0.5 * (a2 + a1)), torch.stack([q + r, q - r], -1), _rotation2(0.5 * (a2 - a1))
    U, sigma, Vh = torch.linalg.svd(F)
    sign_u, sign_v = det(U).sign(), det(Vh).sign()
    U = U.clone()
    Vh = Vh.clone()
    sigma = sigma.clone()
    U[:, :, -1] *= sign_u[:, None]
    Vh[:, -1, :] *= sign_v[:, None]
    sigma[:, -1] *= sign_u * sign_v
    return U, sigma, Vh


def polar_rotation(F: torch.Tensor, max_iterations: int = 12) -> torch.Tensor:
    """The rotation R of the polar decomposition F = R S (det R = +1), for the fixed corotated model.

    2D: closed form, R = rot(atan2(F10 - F01, F00 + F11)). 3D: Higham's scaled Newton iteration
    X <- (g X + X^-T / g) / 2, g = (|X^-1|_F / |X|_F)^(1/2), with the closed-form 3x3 inverse, until
    the largest change is at round-off (about 3 iterations for the small elastic strains of MPM,
    at most ``max_iterations``, enough for condition numbers ~1e6); particles with det F <= 0
    (inverted) take the SVD route, which puts the reflection into the singular values."""
    if F.shape[-1] == 2:
        return _rotation2(torch.atan2(F[:, 1, 0] - F[:, 0, 1], F[:, 0, 0] + F[:, 1, 1]))
    J = det(F)
    X = F
    tol = 8 * torch.finfo(F.dtype).eps
    for _ in range(max_iterations):
        cof = torch.linalg.cross(X[:, :, [1, 2, 0]], X[:, :, [2, 0, 1]], dim=1)  # columns: cofactors
        inv_t = cof / det(X)[:, None, None]                                     # X^-T
        gamma = (inv_t.square().sum((1, 2)) / X.square().sum((1, 2))).sqrt().sqrt()[:, None, None]
        X_new = 0.5 * (gamma * X + inv_t / gamma)
        change = float((X_new - X).abs().max()) if X.numel() else 0.0
        X = X_new
        if not change > tol:  # converged (NaN from inverted particles is handled below)
            break
    bad = ~(J > 0)
    if bad.any():
        U, _, Vh = rotation_svd(F[bad])
        X = X.clone()
        X[bad] = U @ Vh
    return X


def _compose(U: torch.Tensor, diag: torch.Tensor, Vh: torch.Tensor) -> torch.Tensor:
    return (U * diag[:, None, :]) @ Vh


# -------------------------------------------------------------------------------------------- models
def fixed_corotated(F, mu, lam):
    """Kirchhoff stress of fixed corotated elasticity; mu, lam per particle (P,)."""
    R = polar_rotation(F)
    J = det(F)
    eye = torch.eye(F.shape[-1], dtype=F.dtype, device=F.device)
    return 2 * mu[:, None, None] * (F - R) @ F.mT + (lam * (J - 1) * J)[:, None, None] * eye


def fluid(F, bulk):
    """(F reset to J^(1/d) I, Kirchhoff stress K (J - 1) J I) of the weakly compressible fluid."""
    d = F.shape[-1]
    J = det(F)
    eye = torch.eye(d, dtype=F.dtype, device=F.device)
    F_new = J.clamp_min(1e-6).pow(1.0 / d)[:, None, None] * eye
    return F_new, (bulk * (J - 1) * J)[:, None, None] * eye


def _hencky(U, eps, mu, lam):
    """tau = U (2 mu eps + lam tr(eps) I) U^T for eps (P, d) the Hencky strain in principal axes."""
    principal = 2 * mu[:, None] * eps + (lam * eps.sum(-1))[:, None]
    return (U * principal[:, None, :]) @ U.mT


def drucker_prager(U, sigma, Vh, mu, lam, alpha):
    """Klar et al. (2016) return mapping and Hencky stress; returns (F_elastic, tau)."""
    d = sigma.shape[-1]
    eps = sigma.clamp_min(MIN_SINGULAR_VALUE).log()
    tr = eps.sum(-1)
    dev = eps - tr[:, None] / d
    norm = dev.norm(dim=-1)
    dgamma = norm + (d * lam + 2 * mu) / (2 * mu) * tr * alpha
    safe = norm.clamp_min(torch.finfo(eps.dtype).tiny)
    projected = eps - (dgamma / safe)[:, None] * dev
    tip = (tr > 0) | (norm == 0)
    eps = torch.where(tip[:, None], torch.zeros_like(eps), torch.where((dgamma > 0)[:, None], projected, eps))
    return _compose(U, eps.exp(), Vh), _hencky(U, eps, mu, lam)


def von_mises(U, sigma, Vh, mu, lam, yield_stress):
    """Von Mises return mapping (uniaxial yield stress sigma_y) and Hencky stress; (F_elastic, tau)."""
    d = sigma.shape[-1]
    eps = sigma.clamp_min(MIN_SINGULAR_VALUE).log()
    dev = eps - eps.sum(-1, keepdim=True) / d
    norm = dev.norm(dim=-1)
    dgamma = norm - math.sqrt(2.0 / 3.0) * yield_stress / (2 * mu)
    safe = norm.clamp_min(torch.finfo(eps.dtype).tiny)
    eps = torch.where((dgamma > 0)[:, None], eps - (dgamma / safe)[:, None] * dev, eps)
    return _compose(U, eps.exp(), Vh), _hencky(U, eps, mu, lam)
