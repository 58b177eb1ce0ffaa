"""Weak-form residuals of Darcy flow tested against compactly supported Wendland functions.

Equation: -div(a grad u) = f in (0,1)^2, u = 0 on the boundary, in mixed form with the flux
s = a grad u, so that only first derivatives of u appear:

    residual 1 (balance):     int s . grad(phi_j) dx - int f phi_j dx = 0
    residual 2 (constitutive): int (s - a grad u) phi_j dx = 0             (a 2-vector)

for every test function phi_j. Residual 1 is the weak form of -div s = f after integration by
parts; the boundary term vanishes because phi_j is zero on the boundary of its support.

Test functions: the Wendland C^2 function phi(r) = (1 - r/R)_+^4 (4 r/R + 1) centred at c_j with
radius R_j; grad phi(x) = -20 / R^2 (1 - r/R)_+^3 (x - c), continuous with phi = grad phi = 0 at
r = R. The centres are drawn uniformly in [R_j, 1 - R_j]^2, so every support lies inside the unit
square, and R_j uniformly in [r_min, r_max].

Quadrature: a fixed rule on the unit disk mapped to each support, x = c_j + R_j xi, with weights
R_j^2 omega: polar Gauss-Legendre in the radius (``n_radial`` nodes on [0, 1], Jacobian rho
included) times the trapezoid rule in the angle (``n_angular`` equally spaced angles, exact for
trigonometric polynomials of degree < n_angular). Since phi is a degree-5 polynomial in rho the
rule integrates phi exactly for n_radial >= 4; smooth integrands converge spectrally.

Weighted constitutive residual: ``darcy_residuals(..., weight=w)`` tests s - a grad u against w phi
(see :func:`constitutive_test_weight`; w = a_ref / a gives the mixed method's a^-1 s - grad u).

Scaling: both residuals are divided by the test-function mass m_j = int phi_j dx (= pi R_j^2 / 7,
here the quadrature value), so each is a phi-weighted local average: of -div s - f for residual 1
and of s - a grad u for residual 2. Callers nondimensionalise further (DGNO divides by f).

Coefficient lookup (:func:`coefficient_at`): a on a vertex grid is read at arbitrary points either
by nearest node (the medium the finite-difference solver sees: each node owns the half-cells around
it) or, for the multi-phase medium, piecewise constant on the ``cells`` x ``cells`` coarse partition
it was drawn on (cell k = floor(cells x)), taking the value of a node inside each cell.

Conventions: points are (N, 2) in (x, y) order; grids are (batch, y, x); a batch of samples shares
the same points (so a DeepONet-type trunk is evaluated once per batch).

Reference: Y. Zang, P.-S. Koutsourelakis, arXiv:2502.06250 (2025), weak-form residuals with
compactly supported RBFs as virtual observables; H. Wendland, Adv. Comput. Math. 4 (1995) 389-396.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

WENDLAND_MASS = math.pi / 7.0  # int over the disk of radius R of phi = WENDLAND_MASS * R^2


def wendland(rho: torch.Tensor) -> torch.Tensor:
    """phi at normalised radius rho = r / R: (1 - rho)_+^4 (4 rho + 1)."""
    one_minus = (1.0 - rho).clamp_min(0.0)
    return one_minus ** 4 * (4.0 * rho + 1.0)


def wendland_gradient(offset: torch.Tensor, radius: torch.Tensor | float) -> torch.Tensor:
    """grad phi at x = c + offset, offset (..., 2), radius broadcastable to offset[..., 0]."""
    radius = torch.as_tensor(radius, dtype=offset.dtype, device=offset.device)
    rho = offset.norm(dim=-1) / radius
    factor = -20.0 / radius ** 2 * (1.0 - rho).clamp_min(0.0) ** 3
    return factor.unsqueeze(-1) * offset


def disk_quadrature(n_radial: int = 6, n_angular: int = 12, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes xi (Q, 2) and weights omega (Q,) on the unit disk, Q = n_radial * n_angular, sum omega = pi."""
    if n_radial < 1 or n_angular < 3:
        raise ValueError(f"quadrature needs n_radial >= 1 and n_angular >= 3, got {n_radial}, {n_angular}")
    t, w = np.polynomial.legendre.leggauss(n_radial)
    rho, w_rho = (t + 1.0) / 2.0, w / 2.0
    theta = 2.0 * np.pi * (np.arange(n_angular) + 0.5) / n_angular
    rr, tt = np.meshgrid(rho, theta, indexing="ij")
    nodes = np.stack([rr * np.cos(tt), rr * np.sin(tt)], -1).reshape(-1, 2)
    weights = (w_rho[:, None] * rho[:, None] * (2.0 * np.pi / n_angular) * np.ones_like(tt)).reshape(-1)
    return torch.tensor(nodes, dtype=dtype), torch.tensor(weights, dtype=dtype)


@dataclass
class WendlandSet:
    """J Wendland test functions with Q quadrature points each.

    points (J * Q, 2) centre-major; weights, phi (J, Q); grad_phi (J, Q, 2); centres (J, 2);
    radii (J,); mass (J,) = int phi_j dx by the same quadrature."""

    centres: torch.Tensor
    radii: torch.Tensor
    points: torch.Tensor
    weights: torch.Tensor
    phi: torch.Tensor
    grad_phi: torch.Tensor
    mass: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights.shape)

    def to(self, device) -> "WendlandSet":
        return WendlandSet(*(getattr(self, k).to(device) for k in self.__dataclass_fields__))


def wendland_set(centres: torch.Tensor, radii: torch.Tensor, *, n_radial: int = 6,
                   n_angular: int = 12) -> WendlandSet:
    """Test functions at given centres (J, 2) with radii (J,) and the mapped disk rule."""
    xi, omega = disk_quadrature(n_radial, n_angular, dtype=centres.dtype)
    xi, omega = xi.to(centres.device), omega.to(centres.device)
    radii = radii.to(centres)
    offsets = radii[:, None, None] * xi[None]  # (J, Q, 2)
    points = (centres[:, None, :] + offsets).reshape(-1, 2)
    weights = radii[:, None] ** 2 * omega[None]
    phi = wendland(xi.norm(dim=-1)).expand(len(centres), -1)
    grad_phi = wendland_gradient(offsets, radii[:, None])
    mass = (weights * phi).sum(1)
    return WendlandSet(centres, radii, points, weights, phi, grad_phi, mass)


def sample_wendland_set(n_centres: int, radius: tuple[float, float] = (0.02, 0.08), *, n_radial: int = 6,
                          n_angular: int = 12, generator: torch.Generator | None = None,
                          device=None, dtype=torch.float32) -> WendlandSet:
    """Random centres in [R, 1 - R]^2 with R ~ U[radius] (the supports lie inside the unit square)."""
    r_min, r_max = float(radius[0]), float(radius[1])
    if not 0.0 < r_min <= r_max < 0.5:
        raise ValueError(f"radius range must satisfy 0 < r_min <= r_max < 0.5, got {radius}")
    if n_centres < 1:
        raise ValueError(f"n_centres must be >= 1, got {n_centres}")
    u = torch.rand(n_centres, 3, generator=generator, dtype=torch.float64)
    radii = r_min + (r_max - r_min) * u[:, 0]
    centres = radii[:, None] + (1.0 - 2.0 * radii[:, None]) * u[:, 1:]
    return wendland_set(centres.to(device=device, dtype=dtype), radii.to(device=device, dtype=dtype),
                          n_radial=n_radial, n_angular=n_angular)


def darcy_residuals(tf: WendlandSet, s: torch.Tensor, grad_u: torch.Tensor, a: torch.Tensor,
                    f: float | torch.Tensor, *,
                    weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mass-normalised weak residuals at the quadrature points of ``tf``.

    Args:
        s: flux (B, J*Q, 2). grad_u: gradient of u (B, J*Q, 2). a: coefficient (B, J*Q).
        f: forcing, a scalar or (B, J*Q).
        weight: optional w (B, J*Q) multiplying the constitutive integrand (see ``constitutive_test_weight``).
    Returns:
        r1 (B, J): (int s . grad phi_j - int f phi_j) / m_j;
        r2 (B, J, 2): int w (s - a grad u) phi_j / m_j (w = 1 without ``weight``).
    """
    J, Q = tf.shape
    B = s.shape[0]
    s = s.reshape(B, J, Q, 2)
    grad_u = grad_u.reshape(B, J, Q, 2)
    a = a.reshape(B, J, Q)
    f = torch.as_tensor(f, dtype=s.dtype, device=s.device)
    f = f.reshape(B, J, Q) if f.dim() else f
    wphi = tf.weights * tf.phi  # (J, Q)
    balance = (tf.weights[..., None] * tf.grad_phi * s).sum((-1, -2)) - (wphi * f).sum(-1)
    mismatch = s - a[..., None] * grad_u
    if weight is not None:
        mismatch = weight.reshape(B, J, Q, 1) * mismatch
    constitutive = (wphi[..., None] * mismatch).sum(-2)
    return balance / tf.mass, constitutive / tf.mass[:, None]


CONSTITUTIVE_FORMS = {"flux": 0.0, "energy": 0.5, "resistivity": 1.0}  # form -> exponent p of (a_ref / a)^p


def constitutive_test_weight(a: torch.Tensor, a_ref: float, form: str = "resistivity") -> torch.Tensor | None:
    """Pointwise weight w = (a_ref / a)^p of the constitutive residual for a ``form`` of CONSTITUTIVE_FORMS.

    Testing s = a grad u against w phi for a bounded w > 0 is a weak statement of the same law, so the
    exact solution zeroes every form; the forms differ in which errors a least-squares fit of smooth
    networks prefers where the coefficient jumps and the networks do not yet resolve the interfaces:
    ``"flux"`` (w = 1): s - a grad u; ``"energy"`` (w = a^(-1/2)): the constitutive-relation error
    int |s - a grad u|^2 / a of Prager and Synge; ``"resistivity"`` (w = a_ref / a): a_ref (s / a -
    grad u), the form of the classical mixed method, in which grad u enters with a constant weight.
    In development runs (label-free DGNO on multi-phase Darcy) the resistivity form gave the lowest
    error and unbiased predictions, the flux form's predictions were systematically too small (an
    effective coefficient that is too large) and the energy form's in between; the figures are on
    the documentation's Darcy operators benchmark page (docs/benchmarks/darcy-operators.md).
    None for ``"flux"`` (no weight)."""
    if form not in CONSTITUTIVE_FORMS:
        raise ValueError(f"constitutive form must be one of {', '.join(CONSTITUTIVE_FORMS)}, got {form!r}")
    p = CONSTITUTIVE_FORMS[form]
    return None if p == 0 else (a_ref / a.clamp_min(1e-12)) ** p


# --- coefficient lookup ---------------------------------------------------------------------------
def node_of_cell(nodes: int, cells: int) -> torch.Tensor:
    """For each of ``cells`` coarse cells [k/cells, (k+1)/cells) the index of a vertex-grid node
    (of ``nodes`` points) lying in it; ValueError if some cell holds no node."""
    k = np.arange(cells)
    j = np.minimum(np.ceil(k * (nodes - 1) / cells - 1e-9).astype(int), nodes - 1)
    owner = np.minimum(np.floor(j * cells / (nodes - 1) + 1e-9).astype(int), cells - 1)
    if not np.array_equal(owner, k):
        raise ValueError(f"a grid of {nodes} nodes per side does not resolve {cells} coefficient cells")
    return torch.as_tensor(j)


def coefficient_at(a_grid: torch.Tensor, points: torch.Tensor, cells: int | None = None) -> torch.Tensor:
    """a at points (N, 2) in (x, y) from vertex-grid values (B, ny, nx): (B, N).

    ``cells=None``: nearest node. ``cells=k``: piecewise constant on the k x k coarse cells."""
    ny, nx = a_grid.shape[-2:]
    x, y = points[:, 0], points[:, 1]
    if cells is None:
        j = (x * (nx - 1)).round().long().clamp(0, nx - 1)
        i = (y * (ny - 1)).round().long().clamp(0, ny - 1)
    else:
        jx = node_of_cell(nx, cells).to(points.device)
        iy = node_of_cell(ny, cells).to(points.device)
        j = jx[(x * cells).floor().long().clamp(0, cells - 1)]
        i = iy[(y * cells).floor().long().clamp(0, cells - 1)]
    return a_grid[:, i, j]
