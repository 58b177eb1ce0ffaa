"""2D incompressible Navier-Stokes on the periodic square, vorticity form, pseudo-spectral.

Equation
    dw/dt + u . grad(w) = nu lap(w) - mu w + f,   u = (d psi/dy, -d psi/dx),  lap(psi) = -w,

on [0, L)^2 with periodic boundaries: w vorticity, nu kinematic viscosity, mu linear drag
(0 unless asked for), f a steady vorticity forcing.

Discretisation
    Fourier pseudo-spectral on the grid x_j = j L / n (no duplicated end point), arrays
    ``[..., y, x]``. The state is kept in spectral space, w_hat = rfft2(w) of shape
    (..., n, n // 2 + 1), so a step costs only the transforms of the nonlinear term. The
    advection term is evaluated in physical space in advective form, -(u w_x + v w_y), and
    dealiased with the 2/3 rule (square mask, ``spectral.dealias_mask``); the forcing is added
    spectrally and is not filtered. This is the same splitting as jax-cfd's
    ``spectral.equations.NavierStokes2D`` and torch-cfd's ``NavierStokes2DSpectral``:

        explicit_terms(w_hat) = -mask * rfft2(u w_x + v w_y) + f_hat
        implicit_terms(w_hat) = (-nu |k|^2 - mu) w_hat
        implicit_solve(w_hat, eta) = w_hat / (1 + eta (nu |k|^2 + mu))

    The drag is linear, so like jax-cfd / torch-cfd it is treated implicitly with the viscosity
    (unconditionally stable; the brief allowed it in the explicit part, the implicit choice
    matches the reference codes exactly).

    Five real FFTs per explicit evaluation (inverse transforms of u, v, w_x, w_y and one forward
    transform of the product), the floor for the advective form; the velocity and gradient
    symbols and the forcing's transform are precomputed once.

Time stepping
    ``solvers.time_stepping``: ``crank_nicolson_rk4`` (default; Carpenter-Kennedy RK4 for the
    explicit part, Crank-Nicolson for nu lap - mu: order 4 without viscosity and drag, order 2
    otherwise, with a much smaller error constant than RK2-CN when advection dominates) or ``crank_nicolson_rk2`` (order 2). The time step is chosen by the user or
    by :func:`stable_time_step` from the CFL number C = dt max(|u| + |v|) / dx.

Forcings (``FORCINGS``; each with its natural domain length, used when ``length`` is None)
    ``"fno"``         f = 0.1 (sin(2 pi (x + y) / L) + cos(2 pi (x + y) / L)), L = 1: the FNO
                      data (Li et al., ICLR 2021).
    ``"kolmogorov"``  body force (sin(k 2 pi y / L), 0), i.e. vorticity forcing
                      f = -(2 pi k / L) cos(2 pi k y / L), k = 4, drag mu = 0.1, L = 2 pi
                      (Kochkov et al., PNAS 2021; jax-cfd's ``kolmogorov_forcing``).
    ``"none"``        decaying turbulence, L = 2 pi.
    A tensor of shape (n, n) is used as the vorticity forcing itself.

Blow-up
    :func:`simulate` checks the state every ``check_every`` steps and at every record: a
    non-finite value or a CFL number above ``max_courant`` raises :class:`BlowUpError` (a
    ``ValueError``) naming the sample index and the simulated time.

Dtypes and devices
    float32 (complex64 state) or float64 (complex128 state); the device and dtype of the
    input vorticity. Batched over any leading dimensions; ``simulate`` takes (batch, n, n).

References
    Kochkov, Smith, Alieva, Wang, Brenner & Hoyer. Machine learning-accelerated computational fluid
    dynamics. PNAS 118 (2021) e2101784118 (jax-cfd).
    Li et al. Fourier Neural Operator for Parametric PDEs. ICLR 2021 (the FNO forcing and data).
    Canuto, Hussaini, Quarteroni & Zang. Spectral Methods (Springer 2006/2007).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from sciops.solvers import spectral
from sciops.solvers.time_stepping import get_stepper


class BlowUpError(ValueError):
    """The simulation produced a non-finite state or exceeded the CFL limit."""

    def __init__(self, sample: int, time: float, reason: str):
        self.sample, self.time, self.reason = sample, time, reason
        super().__init__(f"Navier-Stokes blow-up in sample {sample} at t = {time:.6g}: {reason}")


# --------------------------------------------------------------------------------------- forcings
def _fno_forcing(x: torch.Tensor, y: torch.Tensor, length: float, amplitude: float = 0.1) -> torch.Tensor:
    phase = (2 * math.pi / length) * (x + y)
    return amplitude * (torch.sin(phase) + torch.cos(phase))


def _kolmogorov_forcing(x: torch.Tensor, y: torch.Tensor, length: float, wavenumber: int = 4,
                        amplitude: float = 1.0) -> torch.Tensor:
    k = 2 * math.pi * wavenumber / length
    return (-amplitude * k * torch.cos(k * y)).expand(y.shape[0], x.shape[1])


def _no_forcing(x: torch.Tensor, y: torch.Tensor, length: float) -> torch.Tensor:
    return torch.zeros(y.shape[0], x.shape[1], dtype=x.dtype, device=x.device)


class Forcing(NamedTuple):
    vorticity: Callable[..., torch.Tensor]  # (x (1, n), y (n, 1), length, **params) -> (n, n)
    length: float                           # natural domain length
    drag: float                             # default linear drag


FORCINGS: dict[str, Forcing] = {
    "fno": Forcing(_fno_forcing, 1.0, 0.0),
    "kolmogorov": Forcing(_kolmogorov_forcing, 2 * math.pi, 0.1),
    "none": Forcing(_no_forcing, 2 * math.pi, 0.0),
}


def forcing_field(name: str, n: int, length: float | None = None, *, dtype=torch.float64, device=None,
                  **params) -> torch.Tensor:
    """The vorticity forcing ``name`` on the n x n grid of [0, L)^2, shape (n, n) ``[y, x]``."""
    if name not in FORCINGS:
        raise ValueError(f"forcing must be one of {sorted(FORCINGS)} or an (n, n) tensor, got {name!r}")
    spec = FORCINGS[name]
    length = spec.length if length is None else float(length)
    s = spectral.grid_coordinates(n, length, dtype=torch.float64, device=device)
    return spec.vorticity(s[None, :], s[:, None], length, **params).to(dtype).contiguous()


# --------------------------------------------------------------------------------------- equation
class NavierStokes2D:
    """The IMEX equation object for the vorticity w_hat = rfft2(w), shape (..., n, n // 2 + 1).

    Args:
        n: grid points per direction.
        viscosity: nu >= 0.
        length: domain length L (default: the forcing's natural length, see module docstring).
        forcing: a name in ``FORCINGS`` or a vorticity forcing tensor of shape (n, n).
        drag: linear drag mu >= 0 (default: the forcing's, 0.1 for "kolmogorov", else 0).
        dealias: apply the 2/3 rule to the advection term.
        dtype: real dtype of the physical fields (float32 or float64).
        device: torch device of the state.
        forcing_params: keyword arguments of the named forcing (``amplitude``, ``wavenumber``).
    """

    def __init__(self, n: int, viscosity: float, *, length: float | None = None,
                 forcing: str | torch.Tensor | None = "fno", drag: float | None = None,
                 dealias: bool = True, dtype: torch.dtype = torch.float64, device=None,
                 forcing_params: dict | None = None):
        if forcing is None:
            forcing = "none"
        if isinstance(forcing, str) and forcing not in FORCINGS:
            raise ValueError(f"forcing must be one of {sorted(FORCINGS)} or an (n, n) tensor, got {forcing!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if not (isinstance(n, int) and n >= 4):
            raise ValueError(f"n must be an integer >= 4, got {n!r}")
        if not viscosity >= 0:
            raise ValueError(f"viscosity must be >= 0, got {viscosity!r}")
        spec = FORCINGS[forcing] if isinstance(forcing, str) else None
        self.n = n
        self.viscosity = float(viscosity)
        self.length = float(length) if length is not None else (spec.length if spec else 2 * math.pi)
        self.drag = float(drag) if drag is not None else (spec.drag if spec else 0.0)
        if not self.drag >= 0 or not self.length > 0:
            raise ValueError(f"need drag >= 0 and length > 0, got drag={self.drag}, length={self.length}")
        self.dtype, self.device = dtype, torch.device(device) if device is not None else torch.device("cpu")
        self.complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        self.dx = self.length / n

        kw = dict(dtype=torch.float64, device=self.device)
        ky, kx = spectral.wavenumbers(n, self.length, zero_nyquist=True, **kw)
        inv_lap = spectral.inverse_laplacian_symbol(n, self.length, **kw)
        lap = spectral.laplacian_symbol(n, self.length, **kw)
        # u_hat = i ky psi_hat, v_hat = -i kx psi_hat, psi_hat = -inv_lap w_hat; w_x, w_y.
        shape = (n, n // 2 + 1)
        symbols = torch.stack([(-1j * ky * inv_lap).expand(shape), (1j * kx * inv_lap).expand(shape),
                               (1j * kx).expand(shape), (1j * ky).expand(shape)])
        self._vel_grad = symbols.to(self.complex_dtype)                       # (4, n, m)
        self._velocity = symbols[:2].to(self.complex_dtype)                  # (2, n, m)
        mask = spectral.dealias_mask(n, **kw) if dealias else torch.ones(shape, **kw)
        self._neg_mask = (-mask).to(self.complex_dtype)
        self.linear = (self.viscosity * lap - self.drag).to(dtype)           # (n, m), real
        self._solve_cache: dict[float, torch.Tensor] = {}

        if isinstance(forcing, str):
            params = forcing_params or {}
            f = forcing_field(forcing, n, self.length, dtype=torch.float64, device=self.device, **params)
            self.forcing_name = forcing
        else:
            f = torch.as_tensor(forcing, dtype=torch.float64, device=self.device)
            if f.shape != (n, n):
                raise ValueError(f"a forcing tensor must have shape ({n}, {n}), got {tuple(f.shape)}")
            self.forcing_name = "custom"
        if not bool(torch.isfinite(f).all()):
            raise ValueError("the forcing is not finite")
        self.forcing = f.to(dtype)
        self._forcing_hat = None if not bool(f.abs().max() > 0) else torch.fft.rfft2(f).to(self.complex_dtype)

    # ---- transforms
    def to_spectral(self, w: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(w)

    def to_physical(self, w_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(w_hat, s=(self.n, self.n))

    # ---- the IMEX interface (solvers.time_stepping)
    def explicit_terms(self, w_hat: torch.Tensor) -> torch.Tensor:
        """-mask * rfft2(u w_x + v w_y) + f_hat, shape of ``w_hat``."""
        # One inverse transform per field: on CPU four (batch, n, n) calls are about twice as
        # fast as one (batch, 4, n, n) call (cache), and no slower on CUDA.
        s = (self.n, self.n)
        u, v, wx, wy = (torch.fft.irfft2(symbol * w_hat, s=s) for symbol in self._vel_grad)
        advection_hat = torch.fft.rfft2(torch.addcmul(u * wx, v, wy))
        if self._forcing_hat is None:
            return advection_hat.mul_(self._neg_mask)
        return torch.addcmul(self._forcing_hat, self._neg_mask, advection_hat)

    def implicit_terms(self, w_hat: torch.Tensor) -> torch.Tensor:
        """(nu lap - mu) w_hat."""
        return self.linear * w_hat

    def tendency(self, w_hat: torch.Tensor) -> torch.Tensor:
        """d w_hat / dt, both parts: a quadratic polynomial of w_hat (``solvers.residual``)."""
        return self.explicit_terms(w_hat) + self.implicit_terms(w_hat)

    def implicit_solve(self, w_hat: torch.Tensor, eta: float) -> torch.Tensor:
        """The y with y - eta (nu lap - mu) y = w_hat."""
        key = float(eta)
        inv = self._solve_cache.get(key)
        if inv is None:
            inv = 1.0 / (1.0 - key * self.linear.double())
            inv = self._solve_cache[key] = inv.to(self.dtype)
        return inv * w_hat

    # ---- derived fields
    def velocity_hat(self, w_hat: torch.Tensor) -> torch.Tensor:
        """(u_hat, v_hat) stacked on a new axis -3: shape (..., 2, n, n // 2 + 1)."""
        return self._velocity * w_hat.unsqueeze(-3)

    def velocity(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Physical velocity (..., 2, n, n), components (u, v)."""
        return torch.fft.irfft2(self.velocity_hat(w_hat), s=(self.n, self.n))

    def courant_number(self, w_hat: torch.Tensor, dt: float) -> torch.Tensor:
        """dt max(|u| + |v|) / dx per sample: shape w_hat.shape[:-2]."""
        uv = self.velocity(w_hat).abs().sum(-3)
        return uv.amax(dim=(-2, -1)) * (dt / self.dx)


# --------------------------------------------------------------------------------------- time step
def stable_time_step(max_velocity: float, dx: float, *, max_courant: float = 0.5, viscosity: float = 0.0,
                     implicit_diffusion: bool = True, dt_max: float | None = None) -> float:
    """Largest dt with CFL number dt max(|u| + |v|) / dx <= ``max_courant``.

    With explicit diffusion also dt <= dx^2 / (4 nu). ``dt_max`` caps the result (used when the
    velocity is zero). Courant numbers 0.5-0.7 are safe for both RK-CN steppers with the 2/3 rule.
    """
    candidates = [] if dt_max is None else [float(dt_max)]
    if max_velocity > 0:
        candidates.append(max_courant * dx / float(max_velocity))
    if not implicit_diffusion and viscosity > 0:
        candidates.append(dx * dx / (4 * viscosity))
    if not candidates:
        raise ValueError("zero velocity and no dt_max: cannot choose a time step")
    return min(candidates)


# --------------------------------------------------------------------------------------- driver
class Trajectory(NamedTuple):
    vorticity: torch.Tensor  # (batch, T, n, n), dtype and device of w0
    times: torch.Tensor      # (T,), float64


def _record_times(t_final, record_every, record_times, include_initial) -> list[float]:
    if record_times is not None:
        if record_every is not None:
            raise ValueError("give record_every or record_times, not both")
        times = [float(t) for t in record_times]
        if not times or any(t < 0 for t in times) or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"record_times must be non-empty, >= 0 and strictly increasing, got {times}")
        if t_final is not None and abs(times[-1] - t_final) > 1e-12 * max(1.0, t_final):
            raise ValueError(f"the last record time {times[-1]} differs from t_final {t_final}")
        return times
    if t_final is None or not t_final > 0:
        raise ValueError(f"t_final must be > 0, got {t_final!r}")
    if record_every is None:
        times = [float(t_final)]
    else:
        if not record_every > 0:
            raise ValueError(f"record_every must be > 0, got {record_every!r}")
        count = int(math.floor(t_final / record_every * (1 + 1e-12)))
        times = [record_every * k for k in range(1, count + 1)]
        if not times or abs(times[-1] - t_final) > 1e-9 * t_final:
            times.append(float(t_final))
    return ([0.0] if include_initial else []) + times


def simulate(w0: torch.Tensor, t_final: float | None = None, dt: float | None = None, *,
             record_every: float | None = None, record_times: Sequence[float] | None = None,
             include_initial: bool = True, viscosity: float = 1e-3, forcing: str | torch.Tensor | None = "fno",
             length: float | None = None, drag: float | None = None, stepper: str = "crank_nicolson_rk4",
             dealias: bool = True, max_courant: float = 1.0, check_every: int = 10,
             forcing_params: dict | None = None) -> Trajectory:
    """Integrate the vorticity ``w0`` of shape (batch, n, n) (or (n, n)) and record it.

    Args:
        w0: initial vorticity ``[batch, y, x]``, float32 or float64, on any device.
        t_final: final time (optional when ``record_times`` is given).
        dt: time step; None: :func:`stable_time_step` at Courant number 0.5 from w0's velocity.
            Between two record times the step is shortened (never lengthened) so that the
            records fall exactly on the requested times.
        record_every: record interval; records at k * record_every up to t_final.
        record_times: explicit increasing record times (0 records the initial state).
        include_initial: with ``record_every`` or only ``t_final``, also record t = 0.
        viscosity, forcing, length, drag, dealias, forcing_params: see :class:`NavierStokes2D`.
        stepper: a name in ``solvers.time_stepping.STEPPERS``.
        max_courant: CFL number above which :class:`BlowUpError` is raised.
        check_every: steps between blow-up checks (also checked at every record).

    Returns:
        ``Trajectory(vorticity, times)``: vorticity (batch, T, n, n) in w0's dtype and device,
        times (T,) float64. A 2-D ``w0`` gives vorticity of shape (T, n, n).

    Raises:
        ValueError on bad arguments; BlowUpError (a ValueError) naming the sample and time.
    """
    w0 = torch.as_tensor(w0)
    squeeze = w0.ndim == 2
    if squeeze:
        w0 = w0[None]
    if w0.ndim != 3 or w0.shape[-1] != w0.shape[-2]:
        raise ValueError(f"w0 must have shape (batch, n, n) or (n, n), got {tuple(w0.shape)}")
    if w0.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"w0 must be float32 or float64, got {w0.dtype}")
    bad = ~torch.isfinite(w0).flatten(1).all(1)
    if bool(bad.any()):
        raise ValueError(f"w0 is not finite in sample {int(bad.nonzero()[0])}")
    if not (isinstance(check_every, int) and check_every >= 1):
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    times = _record_times(t_final, record_every, record_times, include_initial)
    eq = NavierStokes2D(w0.shape[-1], viscosity, length=length, forcing=forcing, drag=drag, dealias=dealias,
                        dtype=w0.dtype, device=w0.device, forcing_params=forcing_params)
    make_step = get_stepper(stepper)

    with torch.no_grad():
        w_hat = eq.to_spectral(w0)
        if dt is None:
            speed = float(eq.velocity(w_hat).abs().sum(-3).amax())
            dt = stable_time_step(speed, eq.dx, max_courant=0.5, dt_max=max(times) / 10 if max(times) > 0 else 1.0)
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt!r}")
        out = torch.empty((w0.shape[0], len(times), *w0.shape[1:]), dtype=w0.dtype, device=w0.device)
        steps: dict[float, Callable] = {}
        t = 0.0

        def check(w_hat, t, h):
            if not bool(torch.isfinite(torch.view_as_real(w_hat)).all()):
                finite = torch.isfinite(torch.view_as_real(w_hat)).flatten(1).all(1)
                raise BlowUpError(int((~finite).nonzero()[0]), t, "non-finite vorticity")
            c = eq.courant_number(w_hat, h)
            if bool((c > max_courant).any()):
                i = int((c > max_courant).nonzero()[0])
                raise BlowUpError(i, t, f"CFL number {float(c[i]):.3g} exceeds max_courant = {max_courant}")

        for r, t_rec in enumerate(times):
            span = t_rec - t
            if span > 0:
                nsteps = max(1, math.ceil(span / dt * (1 - 1e-9)))
                h = span / nsteps
                key = round(h, 15)
                step = steps.get(key) or steps.setdefault(key, make_step(eq, h))
                for i in range(1, nsteps + 1):
                    w_hat = step(w_hat)
                    if i % check_every == 0 and i != nsteps:
                        check(w_hat, t + i * h, h)
                t = t_rec
                check(w_hat, t, h)
            out[:, r] = eq.to_physical(w_hat)
    vort = out[0] if squeeze else out
    return Trajectory(vort, torch.tensor(times, dtype=torch.float64))
