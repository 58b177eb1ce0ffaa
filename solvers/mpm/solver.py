"""The MLS-MPM time stepper: :class:`MPMSolver` (settings, checks) and :class:`MPMState` (particles).

One step (Hu et al. 2018, the 88-line MLS-MPM generalised to d = 2, 3 and four materials):

1. P2G: particle mass, momentum and the affine matrix m C - dt V 4/dx^2 tau to the grid
   (``transfers.Grid.p2g``), tau the Kirchhoff stress left by the previous step.
2. Grid: v_i = (mv)_i / m_i on nodes with mass, v_i += dt g, box walls (``boundary``).
3. G2P: v_p, C_p from the grid; x_p += dt v_p; F_p <- (I + dt C_p) F_p.
4. Constitutive update per material (``materials``): plastic return mapping of F (sand,
   plasticine), fluid reset of F, and the Kirchhoff stress used by the next P2G.

Steps 1-4 run in one of two backends (``backend=``, ``backends``): ``"torch"``, the vectorised
reference above, or ``"warp"``, the same step in compiled kernels (``warp_backend``); they agree
to rounding, and the checks below are the same for both.

Symplectic Euler in time: under gravity alone a body follows exactly
x_n = x_0 + n dt v_0 + n (n + 1)/2 dt^2 g (x(t) + dt t g / 2 for t = n dt, the analytic parabola
plus an O(dt) offset), which ``tests/solvers/test_mpm.py`` checks to round-off.

Conventions: positions in metres, arrays (P, d) with the vertical axis last (y in 2D, z in 3D);
gravity defaults to -9.81 m/s^2 along it. The box ``bounds`` (d, 2) is the domain where particles
live; its faces are the walls. After each step particles are clamped into the box (walls "slip"
or "sticky"), or, with ``boundary="none"``, a particle leaving it is an error. Computation in the
solver's dtype (float64 by default, float32 allowed) on its device (CPU or CUDA).

Time-step checks (fixed dt, never adapted):

* at construction: the elastic-wave Courant number dt c_max / dx must not exceed
  ``MAX_WAVE_COURANT``, c_max the fastest wave speed of the materials (P-wave speed
  sqrt((lambda + 2 mu) / rho), sound speed sqrt(K / rho) of the fluid); and the initial
  velocities' Courant number dt max|v| / dx must not exceed ``MAX_COURANT``;
* at every step: the grid velocities' Courant number dt max|v_i| / dx must stay below
  ``MAX_COURANT`` (no particle may cross more than one cell per step) and finite, else
  :class:`MPMStabilityError` (a ValueError) names the step and time.

``MAX_WAVE_COURANT`` = 0.5, measured on 1 s of the default 2D scenes (dx = 1/64, float64) with the
check lifted: the dam break (fluid, K = 1e5) blows up at a wave Courant number of 0.8, the falling
elastic blocks (E = 1e5, nu = 0.2) at 1.0, the falling sand blocks at 1.5; all run at 0.5 (the
88-line example runs near 1 with its much softer materials).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sciops.solvers.mpm import backends
from sciops.solvers.mpm import materials as M
from sciops.solvers.mpm.transfers import Grid

BOUNDARIES = ("slip", "sticky", "none")
MAX_WAVE_COURANT = 0.5
MAX_COURANT = 1.0
GRAVITY = 9.81


def stable_time_step(materials, dx: float) -> float:
    """The largest dt the elastic-wave check accepts: MAX_WAVE_COURANT dx / c_max."""
    return MAX_WAVE_COURANT * float(dx) / max(m.wave_speed for m in materials)


class MPMStabilityError(ValueError):
    """The time step is beyond the stability limit at some point of a run."""


@dataclass
class _Group:
    """Particles of one material kind and their per-particle parameters."""

    kind: str
    index: torch.Tensor
    mu: torch.Tensor
    lam: torch.Tensor
    extra: torch.Tensor  # alpha (sand), yield stress (plasticine), unused otherwise


@dataclass
class MPMState:
    """Particle state, arrays (P, ...) on the solver's device and dtype."""

    x: torch.Tensor          # positions (P, d), m
    v: torch.Tensor          # velocities (P, d), m/s
    C: torch.Tensor          # APIC affine velocity (P, d, d), 1/s
    F: torch.Tensor          # elastic deformation gradient (P, d, d)
    tau: torch.Tensor        # Kirchhoff stress (P, d, d), Pa
    mass: torch.Tensor       # (P,), kg (per unit length in 2D)
    volume: torch.Tensor     # initial volume (P,), m^d
    material: torch.Tensor   # material id (P,), int64
    step: int = 0
    time: float = 0.0
    groups: list = field(default_factory=list, repr=False)

    @property
    def momentum(self) -> torch.Tensor:
        """Total linear momentum (d,): particle momentum sum_p m_p v_p."""
        return (self.mass[:, None] * self.v).sum(0)


def _tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.array(value))


def _as_float(name: str, value, low: float = 0.0) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number; expected a finite float > {low:g}") from None
    if not math.isfinite(out) or out <= low:
        raise ValueError(f"{name}={value!r} is not valid; expected a finite float > {low:g}")
    return out


class MPMSolver:
    """MLS-MPM in a box: settings, validation, and the time step. See the module docstring.

    bounds: (d, 2) box [lo, hi] per axis in metres (d = 2 or 3); dx: grid spacing (the box sides
    must be whole multiples); dt: the fixed time step in s; materials: list of
    :class:`~sciops.solvers.mpm.materials.Material` indexed by particle material ids; gravity:
    (d,) in m/s^2 (default -9.81 along the last axis); boundary: "slip", "sticky" or "none";
    backend: "warp" (compiled kernels) or "torch" (the reference, with autograd), default the
    fastest installed one that serves the dtype and device (``backends``).
    """

    def __init__(self, bounds, dx: float, dt: float, materials, *, gravity=None, boundary: str = "slip",
                 device=None, dtype: torch.dtype = torch.float64, backend: str | None = None) -> None:
        b = np.asarray(bounds, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] not in (2, 3) or not np.isfinite(b).all() \
                or not (b[:, 1] > b[:, 0]).all():
            raise ValueError(f"bounds={np.asarray(bounds).tolist()} is not valid; expected [[lo, hi]] per axis for "
                             f"2 or 3 axes with lo < hi")
        self.dim = b.shape[0]
        self.dx = _as_float("dx", dx)
        self.dt = _as_float("dt", dt)
        cells = (b[:, 1] - b[:, 0]) / self.dx
        if (np.abs(cells - np.round(cells)) > 1e-6 * np.maximum(cells, 1)).any() or (np.round(cells) < 4).any():
            raise ValueError(f"dx={self.dx:g} does not divide the box sides {(b[:, 1] - b[:, 0]).tolist()} into whole "
                             f"numbers of at least 4 cells; expected side / dx an integer >= 4")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} is not valid; expected one of {', '.join(BOUNDARIES)}")
        self.boundary = boundary
        mats = list(materials) if materials is not None else []
        if not mats or not all(isinstance(m, M.Material) for m in mats):
            raise ValueError("materials must be a non-empty list of sciops.solvers.mpm.Material "
                             "(build them with sciops.solvers.mpm.material(kind, ...))")
        self.materials = mats
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype={dtype} is not supported; expected torch.float32 or torch.float64")
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.backend = backends.resolve(backend, dtype, self.device)
        if gravity is None:
            g = np.zeros(self.dim)
            g[-1] = -GRAVITY
        else:
            g = np.asarray(gravity, dtype=np.float64)
            if g.shape != (self.dim,) or not np.isfinite(g).all():
                raise ValueError(f"gravity={np.asarray(gravity).tolist()} is not valid; expected {self.dim} finite "
                                 f"components in m/s^2")
        self.gravity = torch.tensor(g, dtype=dtype, device=self.device)
        self.bounds = torch.tensor(b, dtype=dtype, device=self.device)
        self.grid = Grid(self.bounds, self.dx, tuple(int(c) for c in np.round(cells)))
        speeds = [m.wave_speed for m in mats]
        fastest = int(np.argmax(speeds))
        courant = self.dt * speeds[fastest] / self.dx
        if courant > MAX_WAVE_COURANT:
            raise ValueError(
                f"dt={self.dt:g} s is beyond the stability limit: the {mats[fastest].kind} material {fastest} has wave "
                f"speed {speeds[fastest]:.4g} m/s, so dt c / dx = {courant:.3g} exceeds {MAX_WAVE_COURANT}; expected "
                f"dt <= {self.stable_dt():.4g} s at dx={self.dx:g}")
        self._compiled = None
        if self.backend == "warp":
            from sciops.solvers.mpm.warp_backend import WarpStepper

            self._compiled = WarpStepper(self)

    def stable_dt(self) -> float:
        """The largest dt the elastic-wave check accepts for these materials and dx."""
        return stable_time_step(self.materials, self.dx)

    # ---------------------------------------------------------------------------------- particles
    def state(self, positions, velocities=None, material_ids=None, volumes=None) -> MPMState:
        """Initial state (F = I, C = 0) of particles at ``positions`` (P, d) with velocities (P, d)
        (default 0), material ids (P,) into ``materials`` (default 0) and volumes (P,) in m^d."""
        opts = dict(dtype=self.dtype, device=self.device)
        x = _tensor(positions).to(**opts)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"positions have shape {tuple(x.shape)}; expected (P, {self.dim})")
        n = x.shape[0]
        if n == 0:
            raise ValueError("the scene has no particles (an empty body?); expected at least one particle")
        if not torch.isfinite(x).all():
            raise ValueError("positions contain NaN or Inf; expected finite coordinates in metres")
        outside = ((x < self.bounds[:, 0]) | (x > self.bounds[:, 1])).any(-1)
        if outside.any():
            i = int(outside.nonzero()[0])
            raise ValueError(f"{int(outside.sum())} particle(s) outside the bounds, e.g. particle {i} at "
                             f"{x[i].tolist()}; expected every particle inside {self.bounds.tolist()}")
        v = torch.zeros_like(x) if velocities is None else _tensor(velocities).to(**opts)
        if v.shape != x.shape or not torch.isfinite(v).all():
            raise ValueError(f"velocities have shape {tuple(v.shape)} or are not finite; expected finite ({n}, {self.dim})")
        mid = torch.zeros(n, dtype=torch.long, device=self.device) if material_ids is None else \
            _tensor(material_ids).to(device=self.device, dtype=torch.long)
        if mid.shape != (n,) or (mid < 0).any() or (mid >= len(self.materials)).any():
            raise ValueError(f"material ids must be ({n},) integers in [0, {len(self.materials) - 1}] "
                             f"(indices into the {len(self.materials)} materials)")
        if volumes is None:
            raise ValueError("volumes are required: the initial volume (m^d) of each particle")
        vol = _tensor(volumes).to(**opts)
        if vol.shape != (n,) or not (vol > 0).all() or not torch.isfinite(vol).all():
            raise ValueError(f"volumes must be ({n},) finite positive values in m^{self.dim}")
        courant = self.dt * float(v.abs().max()) / self.dx
        if courant > MAX_COURANT:
            raise ValueError(f"dt={self.dt:g} s is beyond the stability limit for the initial velocities: "
                             f"dt max|v| / dx = {courant:.3g} exceeds {MAX_COURANT}; expected dt <= "
                             f"{MAX_COURANT * self.dx / float(v.abs().max()):.4g} s")
        density = torch.tensor([m.density for m in self.materials], **opts)[mid]
        eye = torch.eye(self.dim, **opts).expand(n, self.dim, self.dim).contiguous()
        state = MPMState(x=x.clone(), v=v.clone(), C=torch.zeros_like(eye), F=eye.clone(), tau=torch.zeros_like(eye),
                         mass=density * vol, volume=vol, material=mid)
        state.groups = self._groups(mid)
        state.F, state.tau = self._constitutive(state.F, state.groups)
        return state

    def _groups(self, mid: torch.Tensor) -> list[_Group]:
        opts = dict(dtype=self.dtype, device=self.device)
        out = []
        for kind in M.KINDS:
            ids = [i for i, m in enumerate(self.materials) if m.kind == kind]
            if not ids:
                continue
            index = torch.isin(mid, torch.tensor(ids, device=self.device)).nonzero().squeeze(1)
            if index.numel() == 0:
                continue
            table = lambda f: torch.tensor([f(m) for m in self.materials], **opts)[mid[index]]  # noqa: E731
            extra = table(lambda m: m.alpha if kind == "sand" else m.yield_stress)
            out.append(_Group(kind, index, table(lambda m: m.mu), table(lambda m: m.lam), extra))
        return out

    def _constitutive(self, F: torch.Tensor, groups: list[_Group]):
        """Projected F and Kirchhoff stress of every particle (materials module)."""
        if len(groups) == 1 and groups[0].index.numel() == F.shape[0]:  # one material: no gather/scatter
            return self._model(groups[0], F)
        F_new, tau = F.clone(), torch.zeros_like(F)
        for g in groups:
            F_new[g.index], tau[g.index] = self._model(g, F[g.index])
        return F_new, tau

    @staticmethod
    def _model(g: _Group, Fg: torch.Tensor):
        """(projected F, Kirchhoff stress) of the particles of group ``g``."""
        if g.kind == "fluid":
            return M.fluid(Fg, g.lam)
        if g.kind == "elastic":
            return Fg, M.fixed_corotated(Fg, g.mu, g.lam)
        U, sigma, Vh = M.rotation_svd(Fg)
        if g.kind == "sand":
            return M.drucker_prager(U, sigma, Vh, g.mu, g.lam, g.extra)
        return M.von_mises(U, sigma, Vh, g.mu, g.lam, g.extra)

    # ---------------------------------------------------------------------------------- stepping
    def step(self, s: MPMState) -> MPMState:
        """Advance ``s`` by one time step in place (and return it)."""
        if self._compiled is not None:
            self._check_grid(s, *self._compiled.to_grid(s))
            self._check_left(s, self._compiled.to_particles(s))
        else:
            self._torch_step(s)
        s.step += 1
        s.time += self.dt
        return s

    def _check_grid(self, s: MPMState, vmax: float, nonfinite: int = 0) -> None:
        dt, dx = self.dt, self.dx
        if nonfinite or not math.isfinite(vmax) or vmax * dt / dx > MAX_COURANT:
            what = "non-finite velocities" if nonfinite or not math.isfinite(vmax) else \
                f"grid speed {vmax:.4g} m/s gives dt max|v| / dx = {vmax * dt / dx:.3g} > {MAX_COURANT}"
            raise MPMStabilityError(f"MPM step {s.step + 1} (t = {s.time + dt:.6g} s): {what}; dt={dt:g} s is beyond the "
                                    f"stability limit for this scene, expected a smaller dt")

    def _check_left(self, s: MPMState, count: int) -> None:
        if count:
            raise MPMStabilityError(f"MPM step {s.step + 1}: {count} particle(s) left the box "
                                    f"{self.bounds.tolist()} (boundary='none'); expected a larger box")

    def _torch_step(self, s: MPMState) -> None:
        grid, dt, dx = self.grid, self.dt, self.dx
        st = grid.stencil(s.x)
        affine = s.mass[:, None, None] * s.C - (dt * 4.0 / dx ** 2) * s.volume[:, None, None] * s.tau
        grid_m, grid_mv = grid.p2g(st, s.mass, s.mass[:, None] * s.v, affine)
        active = (grid_m > 0)[:, None]
        gv = torch.where(active, grid_mv / grid_m.clamp_min(torch.finfo(grid_m.dtype).tiny)[:, None] + dt * self.gravity,
                         torch.zeros_like(grid_mv))
        gv = grid.apply_walls(gv, self.boundary)
        self._check_grid(s, float(gv.abs().max()))
        s.v, s.C = grid.g2p(st, gv)
        s.x = s.x + dt * s.v
        if self.boundary == "none":
            self._check_left(s, int(((s.x < self.bounds[:, 0]) | (s.x > self.bounds[:, 1])).any(-1).sum()))
        else:
            s.x = torch.maximum(torch.minimum(s.x, self.bounds[:, 1]), self.bounds[:, 0])
        s.F, s.tau = self._constitutive(s.F + dt * (s.C @ s.F), s.groups)

    def run(self, s: MPMState, frames: int, stride: int = 1) -> torch.Tensor:
        """Positions (frames, P, d) at steps 0, stride, 2 stride, ... (frame 0 = the current state)."""
        if int(frames) < 1 or int(stride) < 1:
            raise ValueError(f"frames={frames} and stride={stride} must be integers >= 1")
        out = torch.empty((int(frames),) + tuple(s.x.shape), dtype=self.dtype, device=self.device)
        out[0] = s.x
        for k in range(1, int(frames)):
            for _ in range(int(stride)):
                self.step(s)
            out[k] = s.x
        return out
