"""Classical reconstructions for near-field MIMO radar (operator: ``sciops.solvers.radar.MimoBorn``).

All functions take measurements y of shape (batch, F, T, R) or (F, T, R) and return complex
images (batch, nz, ny, nx) or (nz, ny, nx) on the operator's device and dtype.

* :func:`backprojection`  x = sum_{f,t,r} exp(+j k (R_t + R_r)) y (the phase-only adjoint).
* :func:`kirchhoff`       back-projection with the Kirchhoff weighting
                          4 dzR_t dzR_r ((jk)^2 R_t R_r + jk (R_t + R_r) + 1) (METHODS.md).
* :func:`cgls`            conjugate-gradient least squares for min ||A x - y||^2 + lam ||x||^2
                          (Hestenes-Stiefel CGLS; the damped residual
                          sqrt(||y - A x_k||^2 + lam ||x_k||^2) decreases monotonically in k).
* :func:`cg_normal`       CG on (A^H A + lam I) x = b, for a right-hand side b = A^H y already formed.
* :func:`pnp_admm`        plug-and-play ADMM for min 1/2 ||A x - y||^2 + g(|x|):
                          x <- (A^H A + rho I)^-1 (A^H y + rho (z - u))  (warm-started CG),
                          z <- D(|x + u|) exp(j angle(x + u))          (prox on the magnitude only),
                          u <- u + x - z.
  Built-in D: ``"tv"`` (isotropic 3D total variation, Chambolle's projection algorithm, with
  Neumann boundaries; weight ``strength``) and ``"sparsity"`` (soft threshold at ``strength``).
  Any callable ``D(magnitude, sigma) -> magnitude`` on tensors (batch, nz, ny, nx) can be passed
  (a learned denoiser). The denoiser sees magnitudes divided by their per-sample maximum (so in
  [0, 1]) and its output is scaled back: ``strength`` is relative to the image maximum.
  rho = ``rho`` * ||A||^2, with ||A||^2 estimated once by :func:`operator_norm_sq`.

Conventions: per-sample scalars in CG/ADMM (a batch solves independent problems); no global state.
References: Chambolle, An algorithm for total variation minimization, JMIV 20 (2004);
Venkatakrishnan, Bouman & Wohlberg, Plug-and-play priors, GlobalSIP 2013; Paige & Saunders (CGLS).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from sciops.solvers.radar import MimoBorn


def backprojection(op: MimoBorn, y) -> torch.Tensor:
    """Back-projection image (phase-compensated sum, no amplitude weighting)."""
    return op.back(y, "backprojection")


def kirchhoff(op: MimoBorn, y) -> torch.Tensor:
    """Kirchhoff migration image (back-projection with the obliquity / range weighting)."""
    return op.back(y, "kirchhoff")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real inner products Re<a, b> over all but the first axis."""
    return (a.conj() * b).real.reshape(a.shape[0], -1).sum(1)


def _bcast(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.reshape((-1,) + (1,) * (like.ndim - 1))


def _check_lam(lam: float, name: str = "tikhonov") -> float:
    if not (float(lam) >= 0 and float(lam) < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {lam!r}")
    return float(lam)


def _check_iters(iters: int, name: str = "iters") -> int:
    if isinstance(iters, bool) or int(iters) != iters or iters < 1:
        raise ValueError(f"{name} must be a positive integer, got {iters!r}")
    return int(iters)


def cgls(op: MimoBorn, y, *, tikhonov: float = 0.0, iters: int = 20, x0=None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """CGLS for min ||A x - y||^2 + tikhonov ||x||^2.

    Returns (x, history) with history (iters + 1, batch) the damped residual norms
    sqrt(||y - A x_k||^2 + tikhonov ||x_k||^2), k = 0 .. iters.
    """
    lam, iters = _check_lam(tikhonov), _check_iters(iters)
    yb, batched = op._data_in(y)
    b = yb.shape[0]
    x = torch.zeros((b, *op.image_shape), dtype=op.dtype, device=op.device) if x0 is None else \
        op._image_in(x0)[0].reshape(b, *op.image_shape).clone()
    r = yb - op.forward(x) if x0 is not None else yb.clone()
    s = op.adjoint(r) - lam * x
    p = s.clone()
    gamma = _dot(s, s)
    hist = [torch.sqrt(_dot(r, r) + lam * _dot(x, x))]
    for _ in range(iters):
        q = op.forward(p)
        delta = _dot(q, q) + lam * _dot(p, p)
        alpha = torch.where(delta > 0, gamma / torch.where(delta > 0, delta, 1), 0)
        x = x + _bcast(alpha, x) * p
        r = r - _bcast(alpha, r) * q
        s = op.adjoint(r) - lam * x
        gamma_new = _dot(s, s)
        beta = torch.where(gamma > 0, gamma_new / torch.where(gamma > 0, gamma, 1), 0)
        p = s + _bcast(beta, p) * p
        gamma = gamma_new
        hist.append(torch.sqrt(_dot(r, r) + lam * _dot(x, x)))
    return (x if batched else x[0]), torch.stack(hist)


def cg_normal(op: MimoBorn, rhs, *, tikhonov: float = 0.0, iters: int = 20, x0=None) -> torch.Tensor:
    """CG for (A^H A + tikhonov I) x = rhs, rhs an image (batch, nz, ny, nx) such as A^H y."""
    lam, iters = _check_lam(tikhonov), _check_iters(iters)
    rhs, batched = op._image_in(rhs)
    rhs = rhs.reshape(-1, *op.image_shape)
    x = torch.zeros_like(rhs) if x0 is None else op._image_in(x0)[0].reshape(rhs.shape).clone()
    r = rhs - (op.normal(x) + lam * x) if x0 is not None else rhs.clone()
    p = r.clone()
    rr = _dot(r, r)
    for _ in range(iters):
        ap = op.normal(p) + lam * p
        pap = _dot(p, ap)
        alpha = torch.where(pap > 0, rr / torch.where(pap > 0, pap, 1), 0)
        x = x + _bcast(alpha, x) * p
        r = r - _bcast(alpha, r) * ap
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, 1), 0)
        p = r + _bcast(beta, p) * p
        rr = rr_new
    return x if batched else x[0]


def operator_norm_sq(op: MimoBorn, iters: int = 15, seed: int = 0) -> float:
    """||A||_2^2 (largest eigenvalue of A^H A) by power iteration from a seeded random image."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((1, *op.image_shape), generator=g, dtype=op.real_dtype)
    x = torch.complex(x, torch.randn(x.shape, generator=g, dtype=op.real_dtype)).to(op.device)
    lam = 0.0
    for _ in range(_check_iters(iters)):
        x = x / torch.linalg.vector_norm(x)
        ax = op.normal(x)
        lam = float(_dot(x, ax)[0])
        x = ax
    return lam


# --- proximal steps on the magnitude ------------------------------------------------------------------
def _grad(u: torch.Tensor) -> torch.Tensor:
    """Forward differences (Neumann) of (B, nz, ny, nx) -> (B, 3, nz, ny, nx)."""
    g = torch.zeros((u.shape[0], 3, *u.shape[1:]), dtype=u.dtype, device=u.device)
    g[:, 0, :-1] = u[:, 1:] - u[:, :-1]
    g[:, 1, :, :-1] = u[:, :, 1:] - u[:, :, :-1]
    g[:, 2, :, :, :-1] = u[:, :, :, 1:] - u[:, :, :, :-1]
    return g


def _div(p: torch.Tensor) -> torch.Tensor:
    """Discrete divergence, minus the adjoint of :func:`_grad` for fields whose last entry along
    each axis is zero (as Chambolle's iterates are: the gradient vanishes there)."""
    d = torch.zeros((p.shape[0], *p.shape[2:]), dtype=p.dtype, device=p.device)
    for axis in range(3):
        q, dim = p[:, axis], axis + 1
        n = q.shape[dim]
        d = d + q
        if n > 1:
            d.narrow(dim, 1, n - 1).sub_(q.narrow(dim, 0, n - 1))
    return d


def prox_tv(mag: torch.Tensor, weight: float, iters: int = 30) -> torch.Tensor:
    """argmin_u 1/2 ||u - mag||^2 + weight TV(u) (isotropic 3D TV), Chambolle's dual projection."""
    if weight <= 0:
        return mag
    p = torch.zeros((mag.shape[0], 3, *mag.shape[1:]), dtype=mag.dtype, device=mag.device)
    tau = 1.0 / 12.0  # tau <= 1 / ||div||^2 = 1 / (4 d) in d = 3 dimensions
    for _ in range(iters):
        g = _grad(_div(p) - mag / weight)
        p = (p + tau * g) / (1 + tau * torch.linalg.vector_norm(g, dim=1, keepdim=True))
    return mag - weight * _div(p)


def prox_sparsity(mag: torch.Tensor, weight: float) -> torch.Tensor:
    """Soft threshold of a non-negative magnitude: max(mag - weight, 0) (the l1 prox)."""
    return torch.clamp(mag - weight, min=0)


def _denoiser(prox: str | Callable) -> Callable:
    if callable(prox):
        return prox
    if prox == "tv":
        return prox_tv
    if prox == "sparsity":
        return prox_sparsity
    raise ValueError(f"prox must be 'tv', 'sparsity' or a callable D(magnitude, sigma), got {prox!r}")


def pnp_admm(op: MimoBorn, y, *, prox: str | Callable = "tv", strength: float = 0.02, rho: float = 0.05,
             iters: int = 20, cg_iters: int = 4, norm_sq: float | None = None) -> torch.Tensor:
    """Plug-and-play ADMM with a proximal step on |x| (see module docstring); returns z (complex)."""
    iters, cg_iters = _check_iters(iters), _check_iters(cg_iters, "cg_iters")
    if not (strength >= 0) or not (rho > 0):
        raise ValueError(f"pnp_admm needs strength >= 0 and rho > 0, got strength={strength!r}, rho={rho!r}")
    denoise = _denoiser(prox)
    yb, batched = op._data_in(y)
    rho_abs = rho * (operator_norm_sq(op) if norm_sq is None else norm_sq)
    aty = op.adjoint(yb)
    x = cg_normal(op, aty, tikhonov=rho_abs, iters=cg_iters)
    z = x.clone()
    u = torch.zeros_like(x)
    for _ in range(iters):
        x = cg_normal(op, aty + rho_abs * (z - u), tikhonov=rho_abs, iters=cg_iters, x0=x)
        v = x + u
        mag = v.abs()
        scale = _bcast(mag.reshape(mag.shape[0], -1).amax(1).clamp_min(torch.finfo(mag.dtype).tiny), mag)
        den = torch.clamp(denoise(mag / scale, strength), min=0) * scale
        z = torch.polar(den, v.angle())
        u = u + x - z
    return z if batched else z[0]
