"""Fourier pseudo-spectral helpers on the periodic square [0, L)^2.

Conventions
    Grid x_j = j L / n, y_i = i L / n (no duplicated end point), arrays indexed ``[..., y, x]``.
    Spectral arrays are ``torch.fft.rfft2`` over the last two axes, shape ``[..., n, n // 2 + 1]``:
    axis -2 holds the full set of y-wavenumbers, axis -1 the non-negative x-wavenumbers.
    Wavenumbers are angular, k = 2 pi m / L with integer m (``torch.fft.fftfreq`` order).

Symbols
    d/dx -> i kx, d/dy -> i ky, lap -> -(kx^2 + ky^2). For odd derivatives the Nyquist
    wavenumber (m = -n/2 for even n) is set to zero (Trefethen, *Spectral Methods in MATLAB*,
    SIAM 2000, ch. 3), so the derivative of a real field is again a real field and
    ``rfft2(irfft2(.))`` is the identity on it. The inverse Laplacian maps the mean (k = 0) to 0.
    Consequently curl(velocity(w)) = w exactly for fields without Nyquist content (all fields
    for odd n); the Navier-Stokes advection term is dealiased, so it never adds Nyquist content.

Stream function and velocity (vorticity form of 2D incompressible flow)
    lap psi = -w,  u = d psi / dy,  v = -d psi / dx, so div u = 0 and curl u = dv/dx - du/dy = w.

Dealiasing
    Orszag's 2/3 rule: a quadratic product is alias-free on the kept modes when every kept
    integer wavenumber satisfies 3 |m| < n, i.e. |m| <= (n - 1) // 3, applied per direction
    (square mask). This equals jax-cfd's / torch-cfd's ``brick_wall_filter_2d`` for n = 64 and
    n = 256; for some other n (e.g. 32, 128) theirs keeps one more negative y-wavenumber.

Resampling (transfer between grids)
    :func:`fourier_resample` moves periodic fields between n x n grids by Fourier truncation
    (coarser) or zero padding (finer), keeping the modes both grids hold without their Nyquist
    modes: padding and truncating back is the identity, and a coarse solve's records return to the
    fine grid as trigonometric interpolants.

References
    Canuto, Hussaini, Quarteroni & Zang, *Spectral Methods: Fundamentals in Single Domains*
    (Springer 2006), sections 2.1 and 3.4 (2/3 rule); Orszag, J. Atmos. Sci. 28 (1971) 1074.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _real_dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def integer_wavenumbers(n: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer wavenumbers (my, mx) of shapes (n, 1) and (1, n // 2 + 1) for rfft2 on n x n."""
    my = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device).round()
    mx = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64, device=device).round()
    return my[:, None], mx[None, :]


def wavenumbers(n: int, length: float = 2 * math.pi, *, dtype=None, device=None,
                zero_nyquist: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Angular wavenumbers (ky, kx) = 2 pi (my, mx) / L, shapes (n, 1) and (1, n // 2 + 1).

    ``zero_nyquist=True`` sets the Nyquist wavenumber (|m| = n / 2, even n) to zero, the
    right symbol for odd derivatives.
    """
    my, mx = integer_wavenumbers(n, device)
    if zero_nyquist and n % 2 == 0:
        my = torch.where(my.abs() == n // 2, 0.0, my)
        mx = torch.where(mx.abs() == n // 2, 0.0, mx)
    scale = 2 * math.pi / length
    dtype = _real_dtype(dtype)
    return (scale * my).to(dtype), (scale * mx).to(dtype)


def dealias_mask(n: int, *, dtype=None, device=None) -> torch.Tensor:
    """2/3-rule mask of shape (n, n // 2 + 1): 1 where 3 |my| < n and 3 |mx| < n, else 0."""
    my, mx = integer_wavenumbers(n, device)
    keep = (3 * my.abs() < n) & (3 * mx.abs() < n)
    return keep.to(_real_dtype(dtype))


def laplacian_symbol(n: int, length: float = 2 * math.pi, *, dtype=None, device=None) -> torch.Tensor:
    """Symbol of the Laplacian, -(kx^2 + ky^2), shape (n, n // 2 + 1)."""
    ky, kx = wavenumbers(n, length, dtype=torch.float64, device=device)
    return (-(kx ** 2 + ky ** 2)).to(_real_dtype(dtype))


def inverse_laplacian_symbol(n: int, length: float = 2 * math.pi, *, dtype=None, device=None) -> torch.Tensor:
    """Symbol of the inverse Laplacian on zero-mean fields, -1 / |k|^2 with 0 at k = 0."""
    lap = laplacian_symbol(n, length, dtype=torch.float64, device=device)
    inv = torch.where(lap == 0, 0.0, 1.0 / torch.where(lap == 0, 1.0, lap))
    return inv.to(_real_dtype(dtype))


def spectral_derivative(f_hat: torch.Tensor, axis: str, length: float = 2 * math.pi) -> torch.Tensor:
    """d/dx (``axis="x"``) or d/dy (``axis="y"``) of a field given as rfft2 coefficients."""
    n = f_hat.shape[-2]
    ky, kx = wavenumbers(n, length, zero_nyquist=True, device=f_hat.device,
                         dtype=_real_dtype(f_hat.dtype))
    k = {"x": kx, "y": ky}[axis]
    return 1j * k * f_hat


def stream_function_hat(w_hat: torch.Tensor, length: float = 2 * math.pi) -> torch.Tensor:
    """psi_hat with lap psi = -w, zero mean; ``w_hat`` is rfft2 of w, shape (..., n, n//2+1)."""
    n = w_hat.shape[-2]
    inv = inverse_laplacian_symbol(n, length, dtype=_real_dtype(w_hat.dtype), device=w_hat.device)
    return -inv * w_hat


def velocity_hat(w_hat: torch.Tensor, length: float = 2 * math.pi) -> tuple[torch.Tensor, torch.Tensor]:
    """(u_hat, v_hat) = (d psi/dy, -d psi/dx) from vorticity coefficients ``w_hat``."""
    psi_hat = stream_function_hat(w_hat, length)
    return spectral_derivative(psi_hat, "y", length), -spectral_derivative(psi_hat, "x", length)


def velocity(w: torch.Tensor, length: float = 2 * math.pi) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity (u, v) of the physical vorticity ``w`` (..., n, n); each of shape (..., n, n)."""
    n = w.shape[-1]
    u_hat, v_hat = velocity_hat(torch.fft.rfft2(w), length)
    return torch.fft.irfft2(u_hat, s=(n, n)), torch.fft.irfft2(v_hat, s=(n, n))


def curl(u: torch.Tensor, v: torch.Tensor, length: float = 2 * math.pi) -> torch.Tensor:
    """dv/dx - du/dy of a periodic velocity field, spectrally; shapes (..., n, n)."""
    n = u.shape[-1]
    out = spectral_derivative(torch.fft.rfft2(v), "x", length) - spectral_derivative(torch.fft.rfft2(u), "y", length)
    return torch.fft.irfft2(out, s=(n, n))


def divergence(u: torch.Tensor, v: torch.Tensor, length: float = 2 * math.pi) -> torch.Tensor:
    """du/dx + dv/dy of a periodic velocity field, spectrally; shapes (..., n, n)."""
    n = u.shape[-1]
    out = spectral_derivative(torch.fft.rfft2(u), "x", length) + spectral_derivative(torch.fft.rfft2(v), "y", length)
    return torch.fft.irfft2(out, s=(n, n))


def grid_coordinates(n: int, length: float = 2 * math.pi, *, dtype=None, device=None) -> torch.Tensor:
    """The 1-D periodic grid x_j = j L / n, j = 0..n-1."""
    return (torch.arange(n, dtype=torch.float64, device=device) * (length / n)).to(_real_dtype(dtype))


def fourier_resample(w, n: int):
    """Trigonometric interpolation of periodic fields (..., m, m) onto n x n (zero padding when
    n > m, truncation when n < m). Keeps the integer modes |k_i| < min(m, n) / 2 (the even grids'
    Nyquist modes are dropped), so resampling to a finer grid and back is the identity on fields
    without Nyquist content. numpy in gives numpy out (dtype kept), torch in gives torch out."""
    is_numpy = not isinstance(w, torch.Tensor)
    t = torch.as_tensor(np.asarray(w)) if is_numpy else w
    m = t.shape[-1]
    if m == n:
        return w
    keep = (min(m, n) + 1) // 2  # modes 0 .. keep-1 and -(keep-1) .. -1 per direction
    c = torch.fft.rfft2(t, norm="forward")
    out = torch.zeros(t.shape[:-2] + (n, n // 2 + 1), dtype=c.dtype, device=c.device)
    out[..., :keep, :keep] = c[..., :keep, :keep]
    if keep > 1:
        out[..., n - keep + 1:, :keep] = c[..., m - keep + 1:, :keep]
    r = torch.fft.irfft2(out, s=(n, n), norm="forward")
    return r.numpy() if is_numpy else r
