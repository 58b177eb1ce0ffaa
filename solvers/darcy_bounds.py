"""Guaranteed error bounds for approximate Darcy solutions, and the CG solver they make certified.

For the 5-point system A(a) u = f of :mod:`sciops.solvers.darcy` on a vertex grid (interior
unknowns, u = 0 on the boundary) and any approximation v (a neural operator's output, a CG
iterate), the error e = u_h - v satisfies ||e||_A^2 = r^T A^-1 r with r = f - A v. Every face
coefficient of A lies in [a_min, a_max] (the least and largest face value, harmonic or arithmetic
mean of two nodal values), so A = D^T diag(a_faces) D lies between a_min L and a_max L in the
Loewner order, L = D^T D being the constant-coefficient 5-point Laplacian on the same grid:

    r^T L^-1 r / a_max  <=  ||u_h - v||_A^2  <=  r^T L^-1 r / a_min.

L is diagonalised by the type-I discrete sine transform (scipy.fft.dstn), so the bound costs two
DSTs, O(n^2 log n). Relative to the solution: ||u_h||_A >= ||v||_A - ||e||_A, hence

    ||u_h - v||_A / ||u_h||_A  <=  eta / (||v||_A - eta),   eta = sqrt(r^T L^-1 r / a_min),

and inf when ||v||_A <= eta (nothing is certified then). What is certified is the distance to the
discrete solution on v's own grid; the discretisation error of that grid is a separate matter.

:func:`pcg` is conjugate gradients preconditioned by the same DST Poisson solve: the condition
number of L^-1 A is at most a_max / a_min (4 for the FNO's {3, 12} coefficients), and r^T L^-1 r
is the quantity PCG forms anyway, so its stopping test is the certified bound itself (checked
again on the true residual before it stops). Arrays are batched: (batch, ny, nx), float64.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from sciops.solvers.darcy import face_coefficients


def _spacing(shape) -> tuple[float, float]:
    ny, nx = shape[-2:]
    return (nx - 1) ** -2, (ny - 1) ** -2


def laplacian_eigenvalues(ny: int, nx: int) -> np.ndarray:
    """Eigenvalues (ny-2, nx-2) of the 5-point Dirichlet Laplacian on the interior, in DST-I order."""
    hx2, hy2 = _spacing((ny, nx))
    kx = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, nx - 1) / (nx - 1))
    ky = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, ny - 1) / (ny - 1))
    return ky[:, None] / hy2 + kx[None, :] / hx2


def poisson_solve(r: np.ndarray) -> np.ndarray:
    """L^-1 r for interior arrays r (batch, ny-2, nx-2): one forward and one inverse DST-I."""
    ny, nx = r.shape[-2] + 2, r.shape[-1] + 2
    spectrum = scipy.fft.dstn(r, type=1, axes=(-2, -1), norm="ortho")
    return scipy.fft.dstn(spectrum / laplacian_eigenvalues(ny, nx), type=1, axes=(-2, -1), norm="ortho")


class DarcyOperator:
    """The matrix-free operator A(a) of a batch of coefficients, with its face-coefficient range.

    ``a``: (batch, ny, nx) nodal coefficients; ``f``: the forcing, broadcastable to ``a``.
    Interior arrays are (batch, ny-2, nx-2).
    """

    def __init__(self, a: np.ndarray, f, averaging: str = "harmonic") -> None:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 3 or min(a.shape[1:]) < 3:
            raise ValueError(f"a must have shape (batch, ny, nx) with ny, nx >= 3, got {a.shape}")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            bad = int(np.argmax(~np.isfinite(a).reshape(len(a), -1).all(1) | (a <= 0).reshape(len(a), -1).any(1)))
            raise ValueError(f"coefficient of sample {bad} must be finite and positive everywhere")
        hx2, hy2 = _spacing(a.shape)
        east, north = face_coefficients(a.transpose(1, 2, 0), averaging)  # faces over (y, x), batch last
        east, north = east.transpose(2, 0, 1), north.transpose(2, 0, 1)
        self.west, self.east = east[:, 1:-1, :-1] / hx2, east[:, 1:-1, 1:] / hx2
        self.south, self.north = north[:, :-1, 1:-1] / hy2, north[:, 1:, 1:-1] / hy2
        self.diagonal = self.west + self.east + self.south + self.north
        faces = [east[:, 1:-1, :], north[:, :, 1:-1]]  # every face an interior unknown touches
        self.a_min = np.minimum(*(x.reshape(len(a), -1).min(1) for x in faces))
        self.a_max = np.maximum(*(x.reshape(len(a), -1).max(1) for x in faces))
        self.rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), a.shape)[:, 1:-1, 1:-1]

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """A v for interior arrays v (batch, ny-2, nx-2) (zero boundary values)."""
        out = self.diagonal * v
        out[:, :, 1:] -= self.west[:, :, 1:] * v[:, :, :-1]
        out[:, :, :-1] -= self.east[:, :, :-1] * v[:, :, 1:]
        out[:, 1:, :] -= self.south[:, 1:, :] * v[:, :-1, :]
        out[:, :-1, :] -= self.north[:, :-1, :] * v[:, 1:, :]
        return out

    def energy(self, v: np.ndarray) -> np.ndarray:
        """||v||_A per sample."""
        return np.sqrt(np.maximum(np.einsum("bij,bij->b", v, self(v)), 0.0))

    def residual_norms(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r, r^T L^-1 r) for r = f - A v."""
        r = self.rhs - self(v)
        return r, np.einsum("bij,bij->b", r, poisson_solve(r))

    def certify(self, v: np.ndarray, rho: np.ndarray | None = None) -> np.ndarray:
        """The guaranteed relative energy-norm error bound of interior arrays ``v``, from
        ``rho`` = r^T L^-1 r when known (else computed from the true residual)."""
        if rho is None:
            _, rho = self.residual_norms(v)
        rho = np.where(np.isfinite(rho), np.maximum(rho, 0.0), np.inf)
        return relative_bound(np.sqrt(rho / self.a_min), self.energy(v))

    def subset(self, idx: np.ndarray) -> "DarcyOperator":
        """The operator of the samples ``idx`` of the batch."""
        sub = DarcyOperator.__new__(DarcyOperator)
        for name in ("west", "east", "south", "north", "diagonal", "a_min", "a_max", "rhs"):
            setattr(sub, name, getattr(self, name)[idx])
        return sub


def relative_bound(eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """eta / (||v||_A - eta): a guaranteed bound on ||u_h - v||_A / ||u_h||_A; inf where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(energy > eta, eta / (energy - eta), np.inf)
    return np.where(np.isfinite(eta) & np.isfinite(energy), bound, np.inf)


def error_bounds(a: np.ndarray, v: np.ndarray, f, averaging: str = "harmonic") -> dict[str, np.ndarray]:
    """Bounds for approximations ``v`` (batch, ny, nx) of the Darcy solutions of ``a``.

    Returns ``upper`` and ``lower`` (absolute energy-norm error bounds) and ``relative`` (the
    guaranteed bound on the relative energy-norm error), each (batch,). ``v``'s boundary values
    are not part of the discrete solution space: they are taken as zero (the boundary condition).
    """
    op = DarcyOperator(a, f, averaging)
    v = np.asarray(v, dtype=np.float64)[:, 1:-1, 1:-1]
    _, rho = op.residual_norms(v)
    rho = np.where(np.isfinite(rho), np.maximum(rho, 0.0), np.inf)
    upper = np.sqrt(rho / op.a_min)
    return {"upper": upper, "lower": np.sqrt(rho / op.a_max), "relative": relative_bound(upper, op.energy(v))}


def pcg(a: np.ndarray, f, *, x0: np.ndarray | None = None, tol: float = 1e-10, averaging: str = "harmonic",
        max_iterations: int = 10_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DST-preconditioned CG for a batch, each sample stopped when its certified relative bound is <= ``tol``.

    ``x0``: a starting guess (batch, ny, nx), e.g. a surrogate's answer (boundary values ignored).
    Returns ``(u, bounds, iterations)``: u (batch, ny, nx) with zero boundary, the certified relative
    energy-norm bounds and the iterations each sample took. Samples that reach ``max_iterations``
    keep the bound they reached.
    """
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    op = DarcyOperator(a, f, averaging)
    x = np.zeros(op.rhs.shape) if x0 is None else np.array(np.asarray(x0, dtype=np.float64)[:, 1:-1, 1:-1])
    x[~np.isfinite(x)] = 0.0
    r, _ = op.residual_norms(x)
    z = poisson_solve(r)
    rho = np.einsum("bij,bij->b", r, z)
    p = z.copy()
    iterations = np.zeros(len(x), dtype=np.int64)
    bounds = op.certify(x, rho)
    active = bounds > tol
    while active.any() and iterations.max() < max_iterations:
        idx = np.flatnonzero(active)
        sub = op.subset(idx)
        q = sub(p[idx])
        alpha = rho[idx] / np.einsum("bij,bij->b", p[idx], q)
        x[idx] += alpha[:, None, None] * p[idx]
        r[idx] -= alpha[:, None, None] * q
        z = poisson_solve(r[idx])
        rho_new = np.einsum("bij,bij->b", r[idx], z)
        iterations[idx] += 1
        done = sub.certify(x[idx], rho_new) <= tol
        if done.any():  # confirmed on the true residual: the recurrence drifts in floating point
            check = idx[done]
            bounds[check] = op.subset(check).certify(x[check])
            active[check[bounds[check] <= tol]] = False
        p[idx] = z + (rho_new / rho[idx])[:, None, None] * p[idx]
        rho[idx] = rho_new
    left = np.flatnonzero(active)
    if left.size:
        bounds[left] = op.subset(left).certify(x[left])
    u = np.zeros(x.shape[:1] + (x.shape[1] + 2, x.shape[2] + 2))
    u[:, 1:-1, 1:-1] = x
    return u, bounds, iterations
