"""The ``shallow-water`` problem: the rotating shallow water equations on the sphere, initial state
-> trajectory (the SFNO data set's setting).

Solver: ``sciops.solvers.shallow_water`` (spectral transform method on torch-harmonics' SHTs,
vorticity / divergence / geopotential form, Lawson RK4 or integrating-factor AB3, hyperdiffusion),
Earth constants of Williamson et al. (1992), mean depth 10 km.

Fields (SI units), on the torch-harmonics grid ``grid`` of ``nlat`` x ``nlon`` points
    inputs   ``phi0`` geopotential g h (m2 s-2), ``u0`` eastward and ``v0`` northward wind (m s-1),
             dims (lat, lon)
    outputs  ``phi``, ``u``, ``v`` at t = record_every, 2 record_every, ..., records x record_every
             after the input state, dims (t, lat, lon). The input state is not repeated as the
             first record (as navier-stokes).
Readers stack them as channels in that order: x (B, 3, nlat, nlon), y (B, 3, T, nlat, nlon).

Grid coordinates: ``lat`` in degrees north, from north to south (the SHT's order; Legendre-Gauss
nodes or the equiangular nodes including the poles), ``lon`` = 360 j / nlon degrees east, ``t`` in
seconds. ``grid/lat`` carries the attribute ``quadrature_weights`` (nlat,): W_i with
sum_ij W_i f(lat_i, lon_j) = int f dOmega over the unit sphere (sum_ij W_i = 4 pi), i.e. the SHT's
quadrature weight times 2 pi / nlon; the area-weighted mean of f is sum_ij W_i f_ij / (4 pi).

Contract (as navier-stokes)
    * ``sample_inputs(n, seed, start)``: sample i from ``numpy.random.default_rng(sample_seed(seed, i))``
      alone; returns the dict of float32 (n, nlat, nlon) arrays.
    * ``solve(inputs)``: projects the input state on the truncation (the stored inputs are already
      band-limited, so ``solve`` of a stored input reproduces the stored trajectory up to float32
      rounding), integrates with a time step fixed by the parameters alone (never by the batch),
      returns the float32 trajectories. A NaN / Inf input or a non-positive geopotential is a
      ValueError naming the sample; a blow-up is a ``BlowUpError`` naming the sample (its index in
      the dataset when called from ``generate``) and the time.

Initial conditions (``initial_condition``; ``amplitude`` means)
    ``"random"``    random balanced states (``sw_initial.random_balanced``): random stream function
                    with energy spectrum l / (1 + (l / l0)^4) peaking at ``peak_degree``, zero
                    divergence, geopotential from the ``balance`` equation (nonlinear by default);
                    ``amplitude`` = the Mach number rms|V| / sqrt(g H) (default 0.1; SFNO used
                    0.1-0.2; at most ``MAX_MACH`` = 0.25: stronger balanced states can have a
                    negative geopotential, which the solver refuses; tests/problems checks the margin).
    ``"galewsky"``  Galewsky et al. (2004) jet (u_max 80 m/s) balanced, with its height perturbation
                    of ``amplitude`` metres (default 120, the paper's) centred at 45 N and a longitude
                    drawn uniformly per sample (the paper's flow rotated about the axis).
    Williamson's case 2 is a steady verification case, not data: it is in ``sw_initial`` only.

Time step
    ``dt`` unset: 0.8 of the stability limit (``solvers.shallow_water.time_step_limit``) estimated
    from the parameters: gravity-wave speed 1.05 sqrt(g H) plus a wind bound (4 x the rms wind for
    ``random``, 1.25 u_max for ``galewsky``), shortened to divide ``record_every``. A given ``dt``
    above the estimated limit is refused by ``get``.

Solver ladder (``ladder()``: cheaper configurations of the reference solver, by estimated cost)
    Each rung is ``solve_with`` (the reference code path on another grid or with another dt); it
    takes and returns what ``solve`` does.
    * ``"solve nlat x nlon (lmax L)"`` for nlat / 2, nlat / 4, ... >= 8 (``coarser``: nlon and a
      given lmax scaled alike, the grid's default time step and hyperdiffusion): the input state's
      spherical-harmonic coefficients truncated to degrees and orders below the coarse truncation
      (orthonormal coefficients do not depend on the grid), each record's zero-padded back and
      evaluated on the input grid. The initial state's truncation dominates its error (the random
      states' energy spectrum falls off as l^-3): a coarse rung is within 10% of the reference's
      records truncated alike (tests/problems/test_shallow_water_ladder.py).
    * ``"dt ... s (stability limit)"``: the fewest steps per record within the estimated stability
      limit (``time_step_limit``, not its 0.8), when fewer than the reference's; a flow that still
      blows up raises ``BlowUpError`` at solve time.
    A grid that cannot serve the truncation would be a rung without ``solve`` and a note.
    The cost estimate is steps x nlat x nlon x lmax.

Defaults: 32 x 64 Legendre-Gauss (lmax 32), hourly records for one day, random states at Mach 0.1,
RK4 in float64, hyperdiffusion e-folding time 2 h at the largest degree.
"""
from __future__ import annotations

import math
import time
from functools import cached_property, partial

import numpy as np

from sciops.problems.base import Field, Param, Problem, Rung
from sciops.problems.lazy import lazy_module

torch = lazy_module("torch")
sw = lazy_module("sciops.solvers.shallow_water")
sw_diagnostics = lazy_module("sciops.solvers.sw_diagnostics")
residual = lazy_module("sciops.solvers.residual")
ic = lazy_module("sciops.solvers.sw_initial")
stepping = lazy_module("sciops.solvers.exponential_stepping")
sphere = lazy_module("sciops.solvers.sphere_grid")

INITIAL_CONDITIONS = ("random", "galewsky")
DEFAULT_AMPLITUDE = {"random": 0.1, "galewsky": 120.0}
DTYPES = ("float64", "float32")
# the solver's (sphere_grid.GRIDS, sw_initial.BALANCES), kept here so that listing the problems does not
# import the solver (sciops.problems.lazy); a test checks that they agree
GRIDS = ("equiangular", "legendre-gauss")
BALANCES = ("nonlinear", "linear")
SPEED_FACTOR = 4.0        # max |V| ~ this x the rms wind of a random state
GALEWSKY_U_MAX = 80.0
INPUTS, OUTPUTS = ("phi0", "u0", "v0"), ("phi", "u", "v")
MAX_MACH = 0.25  # random states: larger Mach numbers give a negative geopotential somewhere (docstring)
MIN_LADDER_NLAT = 8  # the coarsest grid the ladder offers


class ShallowWater(Problem):
    """Rotating shallow water on the sphere: initial (phi, u, v) -> hourly trajectory."""

    name = "shallow-water"
    has_residual = True
    operator_params = ("record_every", "records", "hyperdiffusion_time")
    geometry = "sphere"
    PARAMS = (
        Param("initial_condition", "random", str, "initial-state family", choices=INITIAL_CONDITIONS),
        Param("amplitude", None, float, "random: Mach number rms|V|/sqrt(gH) (0.1); galewsky: perturbation "
              "height in m (120)", min=0.0, max=1e4, optional=True),
        Param("grid", "legendre-gauss", str, "torch-harmonics grid", choices=GRIDS),
        Param("nlat", 32, int, "latitudes", min=4, max=1024),
        Param("nlon", None, int, "longitudes (auto: 2 nlat)", min=4, max=4096, optional=True),
        Param("lmax", None, int, "spectral truncation (auto: nlat on legendre-gauss, (nlat+1)//2 on equiangular)",
              min=2, max=1024, optional=True),
        Param("record_every", 3600.0, float, "seconds between records", min=1.0, max=1e7),
        Param("records", 24, int, "number of records after the input state", min=1, max=10_000),
        Param("dt", None, float, "time step in s (auto: 0.8 of the estimated stability limit)", min=1e-3, max=1e6,
              optional=True),
        Param("stepper", "rk4", str, "Lawson RK4 or integrating-factor AB3", choices=("rk4", "ab3")),
        Param("dtype", "float64", str, "solver precision", choices=DTYPES),
        Param("peak_degree", 8.0, float, "random: degree of the energy-spectrum peak", min=1.0, max=512.0),
        Param("balance", "nonlinear", str, "random: balance equation of the geopotential",
              choices=BALANCES),
        Param("hyperdiffusion_time", 7200.0, float, "e-folding time (s) of the largest degree", min=1.0, max=1e9),
    )

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        self.nlon = 2 * p["nlat"] if p["nlon"] is None else p["nlon"]
        self.lmax = sphere.check_grid(p["nlat"], self.nlon, p["grid"], p["lmax"])
        self.amplitude = DEFAULT_AMPLITUDE[p["initial_condition"]] if p["amplitude"] is None else p["amplitude"]
        if p["initial_condition"] == "random" and not 0 < self.amplitude <= MAX_MACH:
            raise ValueError(f"{self.name}: amplitude={self.amplitude!r} is the Mach number of random states; expected "
                             f"0 < amplitude <= {MAX_MACH} (stronger balanced states have a negative geopotential)")
        self.dt = self._time_step()
        self.time_steps = p["records"]
        lats, weights = (x.numpy() for x in sphere.quadrature(p["nlat"], p["grid"]))
        self.grid = {"t": p["record_every"] * np.arange(1, p["records"] + 1), "lat": np.degrees(lats),
                     "lon": 360.0 * np.arange(self.nlon) / self.nlon}
        self.grid_units = {"t": "s", "lat": "degrees_north", "lon": "degrees_east"}
        self.grid_attrs = {"lat": {"quadrature_weights": weights * (2 * math.pi / self.nlon)}}
        units = {"phi": "m2 s-2", "u": "m s-1", "v": "m s-1"}
        what = {"phi": "geopotential g h", "u": "eastward wind", "v": "northward wind"}
        self.fields = {f"{k}0": Field(("lat", "lon"), units[k], "input", f"initial {what[k]}") for k in OUTPUTS}
        self.fields.update({k: Field(("t", "lat", "lon"), units[k], "output", f"{what[k]} at t = record_every .. "
                                     f"records x record_every after the input") for k in OUTPUTS})

    # --- time step -----------------------------------------------------------------------------------
    def speed_estimate(self) -> float:
        """Gravity-wave speed + wind bound (m/s) used for the time step (module docstring)."""
        c = math.sqrt(9.80616 * sw.MEAN_DEPTH)
        wind = SPEED_FACTOR * self.amplitude * c if self.params["initial_condition"] == "random" \
            else 1.25 * GALEWSKY_U_MAX
        return 1.05 * c + wind

    def time_step_limit(self) -> float:
        k = math.sqrt((self.lmax - 1) * self.lmax) / 6.37122e6
        return stepping.IMAGINARY_STABILITY[self.params["stepper"]] / (self.speed_estimate() * k)

    def _time_step(self) -> float:
        p, limit = self.params, self.time_step_limit()
        if p["dt"] is not None:
            if p["dt"] > limit:
                raise ValueError(f"{self.name}: dt={p['dt']:g} s is unstable for the {p['stepper']} stepper at lmax "
                                 f"{self.lmax}: the estimated fastest waves ({self.speed_estimate():.4g} m/s) need dt <= "
                                 f"{limit:.4g} s; expected dt <= {limit:.4g}, or leave dt unset")
            if abs(p["record_every"] / p["dt"] - round(p["record_every"] / p["dt"])) > 1e-9 * p["record_every"] / p["dt"]:
                raise ValueError(f"{self.name}: dt={p['dt']:g} s does not divide record_every={p['record_every']:g} s; "
                                 f"expected record_every / dt to be an integer")
            return p["dt"]
        dt = sw.SAFETY * limit
        return p["record_every"] / math.ceil(p["record_every"] / dt * (1 - 1e-12))

    @property
    def solver_info(self):
        p = self.params
        return {"name": "shallow-water-spectral-transform", "library": "torch-harmonics 0.8.0",
                "stepper": {"rk4": "lawson_rk4", "ab3": "lawson_ab3"}[p["stepper"]], "dt": self.dt, "grid": p["grid"],
                "nlat": p["nlat"], "nlon": self.nlon, "lmax": self.lmax, "dtype": p["dtype"],
                "hyperdiffusion_time": p["hyperdiffusion_time"], "hyperdiffusion_order": 4,
                "radius": 6.37122e6, "omega": 7.292e-5, "gravity": 9.80616, "mean_depth": sw.MEAN_DEPTH,
                "amplitude": self.amplitude, "time_limit_estimate": self.time_step_limit()}

    @cached_property
    def solver(self) -> sw.ShallowWaterSphere:
        p = self.params
        return sw.ShallowWaterSphere(p["nlat"], self.nlon, p["grid"], self.lmax, dtype=getattr(torch, p["dtype"]),
                                  hyperdiffusion_time=p["hyperdiffusion_time"])

    # --- sampling ------------------------------------------------------------------------------------
    def _state_one(self, rng: np.random.Generator) -> torch.Tensor:
        p, s = self.params, self.solver
        if p["initial_condition"] == "random":
            return ic.random_balanced(s, rng, 1, mach=self.amplitude, peak_degree=p["peak_degree"],
                                      balance=p["balance"])[0]
        return ic.galewsky(s, h_hat=self.amplitude, center_lon=float(rng.uniform(0, 2 * math.pi)))

    def _sample_one(self, rng):
        with torch.no_grad():
            grid = self.solver.to_grid(self._state_one(rng)).double().numpy()
        return {name: grid[i].astype(np.float32) for i, name in enumerate(INPUTS)}

    # --- solving -------------------------------------------------------------------------------------
    def check_input_shapes(self, shapes):
        grid = (self.params["nlat"], self.nlon)
        for k in INPUTS:
            shape = tuple(shapes[k])
            if shape[-2:] != grid or len(shape) not in (2, 3) or shape != tuple(shapes["phi0"]):
                raise ValueError(f"{self.name}.solve: {k} has shape {shape}; expected (batch, {grid[0]}, {grid[1]}) "
                                 f"or ({grid[0]}, {grid[1]}), the same for phi0, u0, v0")

    def _check_inputs(self, inputs) -> tuple[dict[str, np.ndarray], bool]:
        if not isinstance(inputs, dict) or set(inputs) != set(INPUTS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"{self.name}.solve expects a dict with keys {', '.join(INPUTS)}, got {got}")
        arrays = {k: np.asarray(inputs[k]) for k in INPUTS}
        self.check_input_shapes({k: a.shape for k, a in arrays.items()})
        shape = (self.params["nlat"], self.nlon)
        single = arrays["phi0"].ndim == 2
        for k, a in arrays.items():
            if not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"{self.name}.solve expects floating-point {k}, got {a.dtype}")
        batch = {k: a.reshape((-1,) + shape) for k, a in arrays.items()}
        for k, a in batch.items():
            finite = np.isfinite(a).reshape(len(a), -1).all(1)
            if not finite.all():
                raise ValueError(f"{self.name}.solve: {k} of sample {int(np.argmin(finite))} contains NaN or Inf")
        positive = (batch["phi0"] > 0).reshape(len(batch["phi0"]), -1).all(1)
        if not positive.all():
            raise ValueError(f"{self.name}.solve: phi0 of sample {int(np.argmin(positive))} is not positive everywhere; "
                             f"expected a geopotential g h > 0 (a positive fluid depth)")
        return batch, single

    def _solve(self, inputs, first_index: int = 0, on: ShallowWater | None = None, dt: float | None = None):
        batch, single = self._check_inputs(inputs)
        n, s = len(batch["phi0"]), self.solver
        if n == 0:
            empty = np.zeros((0, self.time_steps, self.params["nlat"], self.nlon), np.float32)
            return {k: empty.copy() for k in OUTPUTS}
        on = self if on is None else on
        solver, dt = on.solver, (on.dt if dt is None else dt)
        with torch.no_grad():
            state = s.from_grid(*(torch.as_tensor(batch[k], dtype=torch.float64) for k in INPUTS))
            try:
                traj = sw.simulate(solver, _transfer(state, solver), dt, list(self.grid["t"]),
                                stepper=self.params["stepper"], check_time_step=False).states
            except sw.BlowUpError as err:
                raise sw.BlowUpError(first_index + err.sample, err.time,
                                  f"{err.reason} (solve of sample {first_index + err.sample}; dt = {dt:.4g} s: set a "
                                  f"smaller dt or amplitude, or check the input)") from None
            grid = s.to_grid(_transfer(traj, s)).double().numpy()  # (n, T, 3, nlat, nlon)
        with np.errstate(over="ignore"):
            grid = grid.astype(np.float32)
        finite = np.isfinite(grid).reshape(n, self.time_steps, -1).all(-1)
        if not finite.all():
            i = int(np.argmin(finite.all(1)))
            raise sw.BlowUpError(first_index + i, float(self.grid["t"][int(np.argmin(finite[i]))]),
                              f"the state exceeds the float32 range of the stored fields (solve of sample "
                              f"{first_index + i}; check the input)")
        out = {k: grid[:, :, i] for i, k in enumerate(OUTPUTS)}
        return {k: v[0] for k, v in out.items()} if single else out

    def diagnostics(self, outputs: dict) -> dict[str, np.ndarray]:
        """Kinetic energy (the sum over degrees of ``sw_diagnostics.kinetic_energy_spectrum``), total
        energy (``sw_diagnostics.total_energy``) and mass (``sw_diagnostics.mass``, conserved by the
        solver to round-off) of output records {"phi", "u", "v"} (batch, T, nlat, nlon), each
        (batch, T): what ``sciops evaluate`` compares record by record along a surrogate's rollout
        (energy or mass drift shows an unstable rollout before its error does)."""
        s = self.solver
        state = s.from_grid(outputs["phi"], outputs["u"], outputs["v"])
        return {"kinetic_energy": sw_diagnostics.kinetic_energy_spectrum(s, state).sum(-1).cpu().numpy(),
                "total_energy": sw_diagnostics.total_energy(s, state).cpu().numpy(),
                "mass": sw_diagnostics.mass(s, state).cpu().numpy()}

    def record_residuals(self, initial, records) -> dict[str, np.ndarray]:
        """The Hermite residual (``solvers.residual``) of each record interval of trajectories {phi, u,
        v} (batch, T, nlat, nlon) from {phi, u, v} (batch, nlat, nlon), with the solver's tendency
        (hyperdiffusion included): {phi, u, v} (batch, T, nlat, nlon) float64."""
        s = self.solver
        grid = (np.concatenate([np.asarray(initial[k])[:, None], np.asarray(records[k])], 1) for k in OUTPUTS)
        with torch.no_grad():
            r = s.to_grid(residual.hermite_residual(s.from_grid(*grid), s.tendency, self.params["record_every"]))
        return {k: r[:, :, i].double().numpy() for i, k in enumerate(OUTPUTS)}

    def solve(self, inputs):
        """Trajectories {phi, u, v} (batch, T, nlat, nlon) float32 of inputs {phi0, u0, v0} (batch, nlat, nlon);
        see the module docstring."""
        return self._solve(inputs)

    def solve_with(self, inputs, *, on: ShallowWater | None = None, dt: float | None = None):
        """``solve`` by the same solver in another configuration: on the grid and truncation of ``on``
        (this problem at another nlat, from :meth:`coarser`; the input state truncated to its degrees
        and orders, each record zero-padded back) with time step ``dt`` (a divisor of record_every);
        None keeps the reference's (with ``on`` alone, its default time step). No stability check: a blow-up raises ``BlowUpError``."""
        if on is not None and (not isinstance(on, ShallowWater) or on.lmax > self.lmax):
            raise ValueError(f"{self.name}: on={on!r} is not valid; expected a shallow-water problem with lmax <= "
                             f"{self.lmax} (from coarser())")
        if dt is not None and not (dt > 0 and float(self.params["record_every"] / dt).is_integer()):
            raise ValueError(f"{self.name}: dt={dt!r} is not valid; expected a positive divisor of record_every="
                             f"{self.params['record_every']:g} s")
        return self._solve(inputs, on=on, dt=dt)

    def with_records(self, k: int) -> ShallowWater:
        """The same flow over k records (its time step does not depend on the horizon)."""
        return self.with_params(records=k)

    def coarser(self, nlat: int) -> ShallowWater:
        """This problem on ``nlat`` latitudes: nlon and lmax scaled with it (lmax the grid's default when
        unset), the given dt kept or that grid's default. ValueError when the grid is not valid."""
        p = self.params
        lmax = None if p["lmax"] is None else max(2, round(p["lmax"] * nlat / p["nlat"]))
        return self.with_params(nlat=nlat, nlon=max(4, round(self.nlon * nlat / p["nlat"])), lmax=lmax)

    # --- the solver ladder ---------------------------------------------------------------------------
    def ladder(self) -> list[Rung]:
        """Coarser grids and the largest stable dt, ordered by estimated cost (module docstring)."""
        rungs = [self._grid_rung(nlat) for nlat in self._coarse_nlats()] + self._time_step_rungs()
        return [rung for _, rung in sorted(rungs, key=lambda pair: pair[0])]

    def _coarse_nlats(self) -> list[int]:
        nlats, n = [], self.params["nlat"] // 2
        while n >= MIN_LADDER_NLAT:
            nlats.append(n)
            n //= 2
        return nlats

    def _relative_cost(self, problem: ShallowWater, dt: float) -> float:
        """Estimated cost against the reference: steps x nlat x nlon x lmax (the Legendre transforms')."""
        def cost(q, dt):
            return round(q.params["record_every"] / dt) * q.params["nlat"] * q.nlon * q.lmax
        return cost(problem, dt) / cost(self, self.dt)

    def _grid_rung(self, nlat: int) -> tuple[float, Rung]:
        try:
            coarse = self.coarser(nlat)
        except ValueError as err:
            return 0.0, Rung(f"solve {nlat}x{round(self.nlon * nlat / self.params['nlat'])}", None, str(err))
        coarse.solver  # noqa: B018 (build the transforms now, not in the rung's first timed call)
        label = f"solve {nlat}x{coarse.nlon} (lmax {coarse.lmax})"
        return self._relative_cost(coarse, coarse.dt), Rung(label, partial(self.solve_with, on=coarse))

    def _time_step_rungs(self) -> list[tuple[float, Rung]]:
        """The largest whole fraction of record_every within the estimated stability limit, when it
        takes fewer steps than the reference."""
        every = self.params["record_every"]
        steps = round(every / self.dt)
        fewest = math.ceil(every / self.time_step_limit() * (1 - 1e-12))
        if fewest >= steps:
            return []
        label = f"dt {every / fewest:.4g} s (stability limit)"
        return [(fewest / steps, Rung(label, partial(self.solve_with, dt=every / fewest)))]

    def generate(self, n, seed, start=0):
        inputs = self.sample_inputs(n, seed, start)
        t0 = time.perf_counter()
        outputs = self._solve(inputs, first_index=start)
        return inputs, outputs, time.perf_counter() - t0


def _transfer(state: torch.Tensor, solver: sw.ShallowWaterSphere) -> torch.Tensor:
    """Spectral states (..., lmax, mmax) on ``solver``'s truncation: the orthonormal coefficients
    are the same on every grid, so truncation drops degrees and orders, padding adds zeros."""
    lmax, mmax = state.shape[-2:]
    if (lmax, mmax) == (solver.lmax, solver.mmax):
        return state
    out = state.new_zeros(state.shape[:-2] + (solver.lmax, solver.mmax))
    lo, mo = min(lmax, solver.lmax), min(mmax, solver.mmax)
    out[..., :lo, :mo] = state[..., :lo, :mo]
    return out
