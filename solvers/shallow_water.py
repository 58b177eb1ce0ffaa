"""Shallow water equations on the rotating sphere: vorticity / divergence / geopotential form,
spectral transform method on torch-harmonics' spherical harmonic transforms.

Equations (Williamson et al. 1992, eqs. 2-4 in vorticity-divergence form; Hack & Jakob 1992)

    d zeta / dt = - div((zeta + f) V)                                  - nu_l zeta
    d delta / dt =  curl((zeta + f) V) - lap(Phi + |V|^2 / 2)          - nu_l delta
    d Phi / dt   = - div(Phi V)

V = (u, v) the horizontal wind (east, north; m/s), zeta = curl V the relative vorticity, delta =
div V the divergence (1/s), Phi = g h the geopotential (m^2/s^2, h the fluid depth),
f = 2 Omega sin(lat) the Coriolis parameter (or the tilted-axis form of Williamson's case 2, see
``axis_tilt``). Earth constants as in Williamson et al.: radius 6.37122e6 m, Omega 7.292e-5 1/s,
g 9.80616 m/s^2.

Discretisation
    The state is the spectral coefficients (..., 3, lmax, mmax) of (Phi, zeta, delta), complex,
    orthonormal real spherical harmonics without the Condon-Shortley phase (torch-harmonics
    ``norm="ortho", csphase=False``, as its example solver). One evaluation of the right-hand side
    costs one inverse scalar SHT of (Phi, zeta), one inverse vector SHT for V from (zeta, delta)
    (V = grad chi + k x grad psi with lap psi = zeta, lap chi = delta), one forward vector SHT of
    the two fluxes (zeta + f) V and Phi V (their curl and divergence) and one forward scalar SHT of
    Phi + |V|^2 / 2. Products are formed on the grid without dealiasing (as the anchor); the
    hyperdiffusion removes the energy that aliasing feeds into the largest degrees.
    Grids: torch-harmonics "equiangular" (Clenshaw-Curtis in cos(colatitude), poles included) and
    "legendre-gauss"; latitudes from north to south, longitudes 2 pi j / nlon. Truncation: degrees
    l < lmax and orders m < mmax = min(lmax, nlon // 2 + 1). The default lmax is the one at which
    the forward transform of a field of degree < lmax is exact: nlat on the Legendre-Gauss grid
    (its quadrature is exact to degree 2 nlat - 1) and (nlat + 1) // 2 on the equiangular grid
    (Clenshaw-Curtis is exact to degree nlat - 1). torch-harmonics defaults to lmax = nlat on both;
    on the equiangular grid that truncation aliases: the vorticity of solid-body rotation comes
    out 0.45% wrong at 64x128 and Williamson's steady case 2 drifts by 1e-4 in 5 days (5e-9 on
    Legendre-Gauss); pass lmax=nlat to reproduce it anyway.
    A grid is refused unless 2 <= lmax <= nlat and nlon // 2 + 1 >= lmax (every order the
    truncation holds must be resolvable in longitude: nlon >= 2 lmax - 2).

Hyperdiffusion (scale selective, on zeta and delta only, so mass is untouched)
    nu_l = (1 / tau) (l (l + 1) / ((lmax - 1) lmax))^p with tau = ``hyperdiffusion_time`` (default
    7200 s: the largest degree e-folds in 2 hours) and p = ``hyperdiffusion_order`` (default 4, a
    del^8 operator): exactly the rate of torch-harmonics' example solver, whose per-step factor is
    exp(-dt / 2 / 3600 (lap / lap_max)^4). Both solvers therefore discretise the same ODE; ours
    integrates the decay exactly (integrating factor).

Time stepping (``solvers.exponential_stepping``)
    ``"rk4"`` Lawson (integrating-factor) RK4, order 4, default; ``"ab3"`` integrating-factor
    third-order Adams-Bashforth started by two RK4 steps, order 3 (the anchor's scheme, with the
    decay integrated exactly and without its Euler/AB2 start).
    :func:`time_step_limit` is the stability limit for the fastest linear waves: with
    c = sqrt(max Phi) the gravity-wave speed, U = max |V| and k = sqrt((lmax - 1) lmax) / a the
    largest wavenumber, the fastest frequency is (c + U) k and dt (c + U) k must stay inside the
    scheme's imaginary-axis stability interval (2 sqrt 2 for RK4, 0.7236 for AB3).
    :func:`stable_time_step` returns 0.8 of it (or a divisor of a record interval below that);
    :func:`simulate` refuses a dt above the limit of the initial state.

Blow-up
    :func:`simulate` checks the state every ``check_every`` steps and at every record; a NaN or Inf
    raises :class:`BlowUpError` (a ValueError) naming the sample and the simulated time.

Conventions
    Grid fields are (..., nlat, nlon), vector fields (..., 2, nlat, nlon) with (u, v) = (east,
    north). float32 (complex64 state) or float64 (complex128 state); every buffer lives on the
    device and dtype given to :class:`ShallowWaterSphere` (move it with ``.to(device)``); the state
    tensors passed in must match. Batched over any leading dims.

References
    Williamson, Drake, Hack, Jakob & Swarztrauber. A standard test set for numerical approximations
    to the shallow water equations in spherical geometry. J. Comput. Phys. 102 (1992) 211-224.
    Hack & Jakob. Description of a global shallow water model based on the spectral transform
    method. NCAR TN-343+STR (1992).
    Galewsky, Scott & Polvani. An initial-value problem for testing numerical models of the global
    shallow-water equations. Tellus 56A (2004) 429-440.
    Bonev et al. Spherical Fourier Neural Operators. ICML 2023 (torch-harmonics, its example solver).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch_harmonics as th

from sciops.solvers.exponential_stepping import IMAGINARY_STABILITY, get_stepper
from sciops.solvers.sphere_grid import check_grid, quadrature

EARTH_RADIUS = 6.37122e6   # m
EARTH_OMEGA = 7.292e-5     # 1/s
GRAVITY = 9.80616          # m/s^2
MEAN_DEPTH = 1.0e4         # m, the usual mean fluid depth (Galewsky, SFNO data)
DTYPES = (torch.float32, torch.float64)
SAFETY = 0.8               # stable_time_step's fraction of the stability limit


class BlowUpError(ValueError):
    """The shallow-water state became non-finite."""

    def __init__(self, sample: int, time: float, reason: str):
        self.sample, self.time, self.reason = sample, time, reason
        super().__init__(f"shallow-water blow-up in sample {sample} at t = {time:.6g} s "
                         f"({time / 3600:.4g} h): {reason}")


def _fix_vector_sht_normalisation(vsht: torch.nn.Module, lmax: int) -> None:
    """torch-harmonics 0.8.0's RealVectorSHT scales its weights by 1 / (l (l + 1)) computed in float32
    (``torch.arange`` of ints), which limits the forward vector transform to ~3e-8 relative accuracy
    even in float64 (a random field's round trip; Williamson's case 2 then drifts by 5e-9 in 5 days).
    Rescale the weights to the float64 factor."""
    if th.__version__ != "0.8.0":
        return
    ell = torch.arange(0, lmax)
    single = 1.0 / ell / (ell + 1)  # exactly the library's float32 factor
    single[0] = 1.0
    ell = ell.double()
    double = torch.where(ell > 0, 1.0 / (ell * (ell + 1)).clamp(min=1), 1.0)
    vsht.weights.mul_((double / single.double())[None, None, :, None])


class ShallowWaterSphere(torch.nn.Module):
    """The discretised equations on one grid; see the module docstring.

    ``explicit_terms(state)`` and ``decay_rates`` are the interface of
    ``solvers.exponential_stepping``."""

    def __init__(self, nlat: int, nlon: int, grid: str = "equiangular", lmax: int | None = None, *,
                 radius: float = EARTH_RADIUS, omega: float = EARTH_OMEGA, gravity: float = GRAVITY,
                 hyperdiffusion_time: float | None = 7200.0, hyperdiffusion_order: int = 4,
                 axis_tilt: float = 0.0, dtype: torch.dtype = torch.float64, device=None):
        super().__init__()
        self.lmax = check_grid(nlat, nlon, grid, lmax)
        if dtype not in DTYPES:
            raise ValueError(f"shallow-water: dtype={dtype} is not supported; expected torch.float32 or torch.float64")
        if hyperdiffusion_time is not None and not hyperdiffusion_time > 0:
            raise ValueError(f"shallow-water: hyperdiffusion_time={hyperdiffusion_time!r}; expected a positive "
                             f"number of seconds or None (no hyperdiffusion)")
        if int(hyperdiffusion_order) != hyperdiffusion_order or hyperdiffusion_order < 1:
            raise ValueError(f"shallow-water: hyperdiffusion_order={hyperdiffusion_order!r}; expected an integer >= 1")
        self.nlat, self.nlon, self.grid = int(nlat), int(nlon), grid
        self.mmax = min(self.lmax, self.nlon // 2 + 1)
        self.radius, self.omega, self.gravity = float(radius), float(omega), float(gravity)
        self.hyperdiffusion_time, self.hyperdiffusion_order = hyperdiffusion_time, int(hyperdiffusion_order)
        self.axis_tilt = float(axis_tilt)
        kw = dict(lmax=self.lmax, mmax=self.mmax, grid=grid, csphase=False)
        self.sht = th.RealSHT(self.nlat, self.nlon, **kw)
        self.isht = th.InverseRealSHT(self.nlat, self.nlon, **kw)
        self.vsht = th.RealVectorSHT(self.nlat, self.nlon, **kw)
        self.ivsht = th.InverseRealVectorSHT(self.nlat, self.nlon, **kw)
        _fix_vector_sht_normalisation(self.vsht, self.lmax)

        lats, weights = quadrature(self.nlat, grid)
        lons = 2 * math.pi * torch.arange(self.nlon, dtype=torch.float64) / self.nlon
        ell = torch.arange(self.lmax, dtype=torch.float64)[:, None]
        lap = -ell * (ell + 1) / self.radius ** 2
        invlap = torch.where(ell > 0, 1 / torch.where(ell > 0, lap, 1.0), 0.0)
        # f = 2 Omega (sin lat cos a - cos lon cos lat sin a): the rotation axis tilted by a towards lon = pi.
        coriolis = 2 * self.omega * (torch.sin(lats)[:, None] * math.cos(self.axis_tilt)
                                     - torch.cos(lons)[None, :] * torch.cos(lats)[:, None] * math.sin(self.axis_tilt))
        rates = torch.zeros(3, self.lmax, 1, dtype=torch.float64)
        if hyperdiffusion_time is not None:
            top = (self.lmax - 1) * self.lmax
            rates[1:] = (ell * (ell + 1) / top) ** self.hyperdiffusion_order / hyperdiffusion_time
        for name, value in (("lats", lats), ("lons", lons), ("quad_weights", weights), ("lap", lap),
                            ("invlap", invlap), ("coriolis", coriolis), ("decay_rates", rates)):
            self.register_buffer(name, value, persistent=False)
        self.to(device=device, dtype=dtype)

    # --- dtypes ------------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.lap.dtype

    @property
    def complex_dtype(self) -> torch.dtype:
        return torch.complex128 if self.dtype == torch.float64 else torch.complex64

    @property
    def device(self) -> torch.device:
        return self.lap.device

    # --- transforms --------------------------------------------------------------------------------
    def vortdiv_spectral(self, uv: torch.Tensor) -> torch.Tensor:
        """Spectral (curl, divergence) (..., 2, lmax, mmax) of vector fields (..., 2, nlat, nlon)."""
        return self.lap * self.radius * self.vsht(uv)

    def wind(self, vortdiv: torch.Tensor) -> torch.Tensor:
        """Wind (u, v) (..., 2, nlat, nlon) of spectral (vorticity, divergence) (..., 2, lmax, mmax)."""
        return self.ivsht(self.invlap * vortdiv / self.radius)

    def from_grid(self, phi: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Spectral state (..., 3, lmax, mmax) of grid geopotential and wind (each (..., nlat, nlon))."""
        phi, u, v = (torch.as_tensor(x, dtype=self.dtype, device=self.device) for x in (phi, u, v))
        self._check_grid_shape(phi.shape)
        return torch.cat((self.sht(phi).unsqueeze(-3), self.vortdiv_spectral(torch.stack((u, v), dim=-3))), dim=-3)

    def to_grid(self, state: torch.Tensor) -> torch.Tensor:
        """Grid (Phi, u, v) (..., 3, nlat, nlon) of a spectral state."""
        return torch.cat((self.isht(state[..., :1, :, :]), self.wind(state[..., 1:, :, :])), dim=-3)

    def vorticity_divergence_grid(self, state: torch.Tensor) -> torch.Tensor:
        """Grid (zeta, delta) (..., 2, nlat, nlon) of a spectral state."""
        return self.isht(state[..., 1:, :, :])

    # --- the equations -----------------------------------------------------------------------------
    def explicit_terms(self, state: torch.Tensor) -> torch.Tensor:
        """d(Phi, zeta, delta)/dt without the hyperdiffusion, spectral (..., 3, lmax, mmax)."""
        phi_vort = self.isht(state[..., :2, :, :])
        phi, vort = phi_vort[..., 0, :, :], phi_vort[..., 1, :, :]
        uv = self.wind(state[..., 1:, :, :])
        fluxes = torch.stack((uv * (vort + self.coriolis).unsqueeze(-3), uv * phi.unsqueeze(-3)), dim=-4)
        curl_div = self.vortdiv_spectral(fluxes)  # (..., 2 fluxes, (curl, div), lmax, mmax)
        bernoulli = self.sht(phi + 0.5 * (uv * uv).sum(-3))
        return torch.stack((-curl_div[..., 1, 1, :, :], -curl_div[..., 0, 1, :, :],
                            curl_div[..., 0, 0, :, :] - self.lap * bernoulli), dim=-3)

    def tendency(self, state: torch.Tensor) -> torch.Tensor:
        """d(Phi, zeta, delta)/dt with the hyperdiffusion: a quadratic polynomial of the state
        (``solvers.residual``)."""
        return self.explicit_terms(state) - self.decay_rates * state

    # --- checks ------------------------------------------------------------------------------------
    def _check_grid_shape(self, shape) -> None:
        if tuple(shape[-2:]) != (self.nlat, self.nlon):
            raise ValueError(f"shallow-water: a field of shape {tuple(shape)} does not match the solver's "
                             f"{self.nlat}x{self.nlon} grid; expected (..., {self.nlat}, {self.nlon})")

    def check_state(self, state: torch.Tensor) -> None:
        """ValueError unless ``state`` is a spectral state of this solver (shape, dtype, device)."""
        want = (3, self.lmax, self.mmax)
        if not isinstance(state, torch.Tensor) or tuple(state.shape[-3:]) != want:
            shape = tuple(state.shape) if hasattr(state, "shape") else type(state).__name__
            raise ValueError(f"shallow-water: state of shape {shape} does not match the solver; expected a spectral "
                             f"state (..., {want[0]}, {want[1]}, {want[2]}) of the {self.nlat}x{self.nlon} {self.grid} grid")
        if state.dtype != self.complex_dtype or state.device != self.device:
            raise ValueError(f"shallow-water: state is {state.dtype} on {state.device}; expected {self.complex_dtype} "
                             f"on {self.device} (the solver's dtype and device)")

    def extra_repr(self) -> str:
        return (f"nlat={self.nlat}, nlon={self.nlon}, grid={self.grid!r}, lmax={self.lmax}, mmax={self.mmax}, "
                f"hyperdiffusion_time={self.hyperdiffusion_time}, dtype={self.dtype}")


# ----------------------------------------------------------------------------------------- time step
def time_step_limit(solver: ShallowWaterSphere, state: torch.Tensor, stepper: str = "rk4") -> float:
    """Largest stable dt (s) for the fastest linear waves of ``state`` (module docstring)."""
    get_stepper(stepper)
    grid = solver.to_grid(state)
    wave = math.sqrt(max(float(grid[..., 0, :, :].max()), 0.0))
    wind = float(torch.sqrt(grid[..., 1, :, :] ** 2 + grid[..., 2, :, :] ** 2).max())
    k = math.sqrt((solver.lmax - 1) * solver.lmax) / solver.radius
    speed = wave + wind
    return math.inf if speed == 0 else IMAGINARY_STABILITY[stepper] / (speed * k)


def stable_time_step(solver: ShallowWaterSphere, state: torch.Tensor, stepper: str = "rk4",
                     record_every: float | None = None, safety: float = SAFETY) -> float:
    """``safety`` x :func:`time_step_limit`, shortened to divide ``record_every`` when given."""
    dt = safety * time_step_limit(solver, state, stepper)
    if record_every is None:
        return dt
    return record_every / math.ceil(record_every / dt * (1 - 1e-12)) if math.isfinite(dt) else record_every


# -------------------------------------------------------------------------------------------- simulate
class Trajectory(NamedTuple):
    states: torch.Tensor  # (batch, T, 3, lmax, mmax) spectral states at the record times
    times: torch.Tensor   # (T,) seconds


def _check_finite(state: torch.Tensor, time: float) -> None:
    finite = torch.isfinite(torch.view_as_real(state)).reshape(state.shape[0], -1).all(1)
    if not bool(finite.all()):
        raise BlowUpError(int(torch.argmin(finite.int())), time, "the state is not finite (NaN or Inf)")


def simulate(solver: ShallowWaterSphere, state: torch.Tensor, dt: float, record_times: Sequence[float],
             stepper: str = "rk4", check_every: int = 10, check_time_step: bool = True) -> Trajectory:
    """Integrate spectral states (batch, 3, lmax, mmax) from t = 0 and record them at ``record_times``
    (increasing, each a whole number of steps dt, in s). ValueError for a state that does not match
    the solver, a bad dt or record times, or (``check_time_step``) a dt above
    :func:`time_step_limit` of the initial state; :class:`BlowUpError` naming the sample and time
    if the state becomes non-finite."""
    step_factory = get_stepper(stepper)
    solver.check_state(state)
    if state.ndim != 4:
        raise ValueError(f"shallow-water: simulate expects a batch of states (batch, 3, lmax, mmax), got {tuple(state.shape)}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"shallow-water: dt={dt!r}; expected a positive number of seconds")
    times = [float(t) for t in record_times]
    steps, last = [], 0
    for t in times:
        n = round(t / dt)
        if n <= last or abs(n * dt - t) > 1e-9 * max(1.0, abs(t)):
            raise ValueError(f"shallow-water: record time {t:g} s is not a whole number of steps dt={dt:g} s after the "
                             f"previous record; expected increasing multiples of dt")
        steps.append(n)
        last = n
    _check_finite(state, 0.0)
    if check_time_step:
        limit = time_step_limit(solver, state, stepper)
        if dt > limit:
            raise ValueError(f"shallow-water: dt={dt:g} s is unstable for the {stepper} stepper on the {solver.nlat}x"
                             f"{solver.nlon} grid: the fastest waves (gravity-wave speed + max wind at degree "
                             f"{solver.lmax - 1}) need dt <= {limit:.4g} s; expected dt <= {SAFETY * limit:.4g} s "
                             f"(stable_time_step)")
    step = step_factory(solver, dt)
    records, n = [], 0
    with torch.no_grad():
        for target in steps:
            while n < target:
                state = step(state)
                n += 1
                if n % check_every == 0:
                    _check_finite(state, n * dt)
            _check_finite(state, n * dt)
            records.append(state)
    out = torch.stack(records, dim=1) if records else state.new_zeros((state.shape[0], 0) + tuple(state.shape[1:]))
    return Trajectory(out, torch.tensor(times, dtype=torch.float64))
