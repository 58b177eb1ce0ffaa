"""The ``particles`` problem: Lagrangian particle trajectories from the MLS-MPM solver (GNS datasets).

A sample is one scene (``sciops.solvers.mpm.scenes``) drawn at random from its seed: the family
``scene`` (falling_blocks, colliding_spheres, dam_break, column_collapse, or ``mesh``: the body in
the file ``mesh`` dropped at a random position), its bodies' sizes, positions and velocities, and
``n_particles`` particles drawn uniformly inside the bodies (shared among bodies in proportion to
their volumes). ``material`` is one of the four MPM materials for every body, or ``mixed``: each
body draws its own. The unit box [0, 1]^dim (vertical axis last, gravity 9.81 m/s^2) has
``boundary`` walls ("slip" or "sticky"); the grid has ``grid`` cells per side (default 64 in 2D,
32 in 3D).

Fields (SI units; P = n_particles, T = frames, channel = the dim coordinates):

* inputs ``position0`` (particle, channel) m, ``velocity0`` (particle, channel) m/s,
  ``particle_type`` (particle,) the material index into ``sciops.solvers.mpm.KINDS`` (0 elastic,
  1 fluid, 2 sand, 3 plasticine), ``volume`` (particle,) m^dim (the particle's share of its
  body, so its mass is density x volume);
* output ``position`` (t, particle, channel) m: frames t_k = k stride dt, k = 0 .. T-1. Unlike
  the grid problems the first frame IS the input state (the DeepMind GNS layout, positions
  (T, P, dim) with the initial frame), so a dataset holds positions (N_traj, T, P, dim);
* diagnostics ``velocity_mean``, ``velocity_std``, ``acceleration_mean``, ``acceleration_std``
  (channel,): per-trajectory statistics in the GNS convention, velocities and accelerations as
  finite differences of the frames, v_k = x_k - x_{k-1} and a_k = v_k - v_{k-1} in m per frame
  (per frame^2), not divided by the frame interval, over all frames and particles
  (``sciops.solvers.mpm.gns_statistics``).

The per-dataset GNS metadata (bounds, frame interval dt, default connectivity radius, dim,
sequence length) is the problem's ``solver_info``, stored in every dataset's root ``solver``
attribute; ``sciops.datasets.particles.gns_metadata(path)`` assembles the GNS ``metadata.json``
dict with the statistics pooled over the trajectories, and ``export_paraview`` writes a trajectory
for ParaView. ``connectivity_radius`` defaults to dx (0.0156 m at the 2D default, the GNS
datasets use 0.015 in a unit box).

Backend: ``backend`` picks the solver's step (``sciops.solvers.mpm.backends``): ``warp`` (compiled
kernels) or ``torch`` (the reference); unset, the fastest installed one that serves ``dtype`` is
chosen when the problem is built and stored in its parameters, so a dataset records the backend
that wrote it and its ``solve`` reruns that backend (a backend that is not installed is refused).
The backends agree to rounding (the same trajectories in the float64 default up to ~1e-14 m).

Time step: ``dt`` defaults to the largest step the solver's elastic-wave check accepts for the
materials in use (``sciops.solvers.mpm.stable_time_step``); a larger one is refused by ``get``.
``solve`` is a pure function of the inputs; a trajectory that becomes unstable raises
``MPMStabilityError`` (a ValueError) naming the sample.

Ladder (``ladder()``): the same MPM on coarser grids (half and a quarter of the cells per side, at
least 8), each with the largest stable step that divides the frame interval, so the frames fall at
the same times.
"""
from __future__ import annotations

import time

import numpy as np

from sciops.problems.base import Field, Param, Problem, Rung
from sciops.problems.lazy import lazy_module

torch = lazy_module("torch")
mpm = lazy_module("sciops.solvers.mpm")

# the solver's names (mpm.KINDS, mpm.FAMILIES, mpm.BACKENDS), kept here so that listing the problems
# does not import the solver (sciops.problems.lazy); a test checks that they agree
KINDS = ("elastic", "fluid", "sand", "plasticine")
MATERIALS = KINDS + ("mixed",)
SCENES = ("falling_blocks", "colliding_spheres", "dam_break", "column_collapse", "mesh")
BACKENDS = ("warp", "torch")
DTYPES = ("float64", "float32")
DEFAULT_GRID = {2: 64, 3: 32}
SINGLE_THREAD_MAX_PARTICLES = 20_000  # small scenes run faster on one torch thread (no intra-op split)


class Particles(Problem):
    """MLS-MPM particle trajectories of random scenes: initial particles -> positions over time."""

    name = "particles"
    geometry = "bounded"
    data_kind = "particles"
    PARAMS = (
        Param("dim", 2, int, "space dimension", choices=(2, 3)),
        Param("scene", "falling_blocks", str, "scene family", choices=SCENES),
        Param("material", "elastic", str, "material of every body, or mixed (each body draws one)", choices=MATERIALS),
        Param("n_particles", 1000, int, "particles per trajectory", min=8, max=2_000_000),
        Param("frames", 50, int, "stored frames T (the first is the initial state)", min=3, max=100_000),
        Param("stride", 10, int, "solver steps between stored frames", min=1, max=100_000),
        Param("grid", None, int, "grid cells per side of the unit box (auto: 64 in 2D, 32 in 3D)", min=8, max=1024,
              optional=True),
        Param("dt", None, float, "solver time step in s (auto: the largest stable step)", min=1e-8, max=1.0,
              optional=True),
        Param("boundary", "slip", str, "box walls", choices=("slip", "sticky")),
        Param("blocks", 2, int, "bodies of the falling_blocks scene", min=1, max=8),
        Param("mesh", None, str, "mesh or point-cloud file of the mesh scene (any format meshio reads)",
              optional=True),
        Param("connectivity_radius", None, float, "GNS graph radius in m (auto: dx)", min=1e-6, max=1.0,
              optional=True),
        Param("dtype", "float64", str, "solver precision", choices=DTYPES),
        Param("backend", None, str, "solver backend (auto: the fastest installed)", choices=BACKENDS,
              optional=True),
    )
    # any setting but the backend changes the trajectories a learned stepper reproduces (scene,
    # material, resolution, ...); the backends agree to rounding
    operator_params = tuple(p.name for p in PARAMS if p.name != "backend")

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        try:
            p["backend"] = mpm.backends.resolve(p["backend"], getattr(torch, p["dtype"]), torch.device("cpu"))
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from None
        dim = p["dim"]
        self.cells = DEFAULT_GRID[dim] if p["grid"] is None else p["grid"]
        self.dx = 1.0 / self.cells
        self.kinds = list(mpm.KINDS) if p["material"] == "mixed" else [p["material"]]
        self.materials = [mpm.material(k) for k in self.kinds]
        limit = mpm.stable_time_step(self.materials, self.dx)
        if p["dt"] is not None and p["dt"] > limit:
            raise ValueError(f"{self.name}: dt={p['dt']:g} is beyond the stability limit of {', '.join(self.kinds)} at "
                             f"grid={self.cells}; expected dt <= {limit:.4g} s (or leave dt unset)")
        self.dt = limit if p["dt"] is None else p["dt"]
        if (p["scene"] == "mesh") != (p["mesh"] is not None):
            raise ValueError(f"{self.name}: parameter mesh={p['mesh']!r} goes with scene=mesh and only with it; "
                             f"expected a mesh file for scene=mesh, none otherwise")
        if p["mesh"] is not None:
            mpm.MeshShape(p["mesh"], dim)  # unreadable, empty or non-planar meshes fail here, before any work
        self.bounds = np.array([[0.0, 1.0]] * dim)
        self.radius = self.dx if p["connectivity_radius"] is None else p["connectivity_radius"]
        T = p["frames"]
        self.grid = {"t": np.arange(T) * p["stride"] * self.dt, "particle": np.arange(p["n_particles"], dtype=float)}
        self.grid_units = {"t": "s", "particle": "1"}
        self.fields = {
            "position0": Field(("particle",), "m", "input", "initial particle positions (channel = coordinate)"),
            "velocity0": Field(("particle",), "m/s", "input", "initial particle velocities"),
            "particle_type": Field(("particle",), "1", "input",
                                   "material index: " + ", ".join(f"{i} {k}" for i, k in enumerate(mpm.KINDS))),
            "volume": Field(("particle",), f"m^{dim}", "input", "initial particle volume"),
            "position": Field(("t", "particle"), "m", "output", "particle positions; frame 0 is the input state"),
            "velocity_mean": Field((), "m/frame", "diagnostic", "mean of x_k - x_(k-1) over frames and particles"),
            "velocity_std": Field((), "m/frame", "diagnostic", "std of x_k - x_(k-1) over frames and particles"),
            "acceleration_mean": Field((), "m/frame^2", "diagnostic", "mean of v_k - v_(k-1)"),
            "acceleration_std": Field((), "m/frame^2", "diagnostic", "std of v_k - v_(k-1)"),
        }

    @property
    def solver_info(self):
        p = self.params
        return {"name": "mls-mpm", "dt": self.dt, "dx": self.dx, "grid": self.cells, "stride": p["stride"],
                "boundary": p["boundary"], "gravity": -mpm.solver.GRAVITY, "dtype": p["dtype"], "backend": p["backend"],
                "materials": {k: vars(m) for k, m in zip(self.kinds, self.materials)},
                # the GNS metadata (statistics: the diagnostic fields, pooled by gns_metadata)
                "bounds": self.bounds.tolist(), "sequence_length": p["frames"], "dim": p["dim"],
                "frame_dt": self.dt * p["stride"], "default_connectivity_radius": self.radius}

    # --- sampling -------------------------------------------------------------------------------------
    def _scene(self, rng: np.random.Generator) -> mpm.Scene:
        p = self.params
        dim, kind = p["dim"], self.materials[0]
        if p["scene"] == "mesh":
            scene = mpm.mesh_body(p["mesh"], dim, kind, rng, dx=self.dx)
        elif p["scene"] == "falling_blocks":
            scene = mpm.falling_blocks(dim, kind, rng, count=p["blocks"], dx=self.dx)
        else:
            scene = mpm.FAMILIES[p["scene"]](dim, kind, rng, dx=self.dx)
        scene.materials = self.materials
        for body in scene.bodies:
            body.material = int(rng.integers(len(self.kinds))) if len(self.kinds) > 1 else 0
        scene.boundary = p["boundary"]
        return scene

    def _sample_one(self, rng):
        scene = self._scene(rng)
        part = scene.particles(n=self.params["n_particles"], rng=rng)
        kind_index = np.array([mpm.KINDS.index(k) for k in self.kinds])[part["material"]]
        return {"position0": part["x"].astype(np.float32), "velocity0": part["v"].astype(np.float32),
                "particle_type": kind_index.astype(np.float32), "volume": part["volume"].astype(np.float32)}

    # --- solving --------------------------------------------------------------------------------------
    def _check_inputs(self, inputs) -> tuple[dict[str, np.ndarray], bool]:
        """The inputs as (batch, P, ...) arrays, and whether they were one sample without the batch axis."""
        if not isinstance(inputs, dict):
            raise ValueError(f"{self.name}.solve expects a dict with {', '.join(self.input_fields)}")
        missing = [k for k in self.input_fields if k not in inputs]
        if missing:
            raise ValueError(f"{self.name}.solve: input {missing[0]!r} is missing; expected {', '.join(self.input_fields)}")
        x = np.asarray(inputs["position0"])
        single = x.ndim == 2
        out = {k: np.asarray(inputs[k])[None] if single else np.asarray(inputs[k]) for k in self.input_fields}
        n, dim = out["position0"].shape[0], self.params["dim"]
        if out["position0"].ndim != 3 or out["position0"].shape[2] != dim:
            raise ValueError(f"{self.name}.solve expects position0 of shape (batch, P, {dim}), got {x.shape}")
        P = out["position0"].shape[1]
        for k, shape in (("velocity0", (n, P, dim)), ("particle_type", (n, P)), ("volume", (n, P))):
            if out[k].shape != shape:
                raise ValueError(f"{self.name}.solve: {k} has shape {out[k].shape}; expected {shape}")
        types = out["particle_type"]
        allowed = [mpm.KINDS.index(k) for k in self.kinds]
        if not np.isin(types, allowed).all():
            raise ValueError(f"{self.name}.solve: particle_type holds values outside {allowed} (materials "
                             f"{', '.join(self.kinds)} of this problem)")
        return out, single

    def _solve(self, inputs, first_index: int = 0):
        batch, single = self._check_inputs(inputs)
        p = self.params
        solver = mpm.MPMSolver(self.bounds, self.dx, self.dt, self.materials, boundary=p["boundary"],
                               dtype=getattr(torch, p["dtype"]), backend=p["backend"])
        to_material = np.zeros(len(mpm.KINDS), np.int64)  # particle_type -> index into self.materials
        to_material[[mpm.KINDS.index(k) for k in self.kinds]] = np.arange(len(self.kinds))
        threads = torch.get_num_threads()
        if batch["position0"].shape[1] <= SINGLE_THREAD_MAX_PARTICLES:
            torch.set_num_threads(1)
        out = []
        try:
            for i in range(len(batch["position0"])):
                ids = to_material[batch["particle_type"][i].astype(np.int64)]
                try:
                    state = solver.state(batch["position0"][i].astype(np.float64), batch["velocity0"][i].astype(np.float64),
                                         ids, batch["volume"][i].astype(np.float64))
                    out.append(solver.run(state, p["frames"], p["stride"]).cpu().numpy().astype(np.float32))
                except ValueError as err:
                    raise type(err)(f"{self.name}: sample {first_index + i}: {err}") from None
        finally:
            torch.set_num_threads(threads)
        positions = np.stack(out)
        return positions[0] if single else positions

    def ladder(self) -> list[Rung]:
        """Coarser MPM grids recording the same frames (module docstring), cheapest first."""
        frame_dt = self.dt * self.params["stride"]
        rungs = []
        for cells in (self.cells // 4, self.cells // 2):
            if cells < 8:
                continue
            limit = self.with_params(grid=cells, dt=None).dt
            stride = int(np.ceil(frame_dt / limit * (1 - 1e-12)))
            try:
                coarse = self.with_params(grid=cells, dt=frame_dt / stride, stride=stride)
            except ValueError as exc:
                rungs.append(Rung(f"grid {cells}", None, f"refused: {exc}"))
                continue
            rungs.append(Rung(f"grid {cells} (stride {stride})", coarse.solve))
        return rungs

    def solve(self, inputs):
        """Positions (batch, T, P, dim) float32 of the inputs dict (position0, velocity0, particle_type,
        volume: (batch, P, ...) or one sample without the batch axis)."""
        return self._solve(inputs)

    def generate(self, n, seed, start=0):
        """Inputs, outputs (position plus the diagnostic statistics) and solver seconds."""
        inputs = self.sample_inputs(n, seed, start)
        t0 = time.perf_counter()
        positions = self._solve(inputs, first_index=start)
        seconds = time.perf_counter() - t0
        return inputs, {"position": positions, **mpm.gns_statistics(positions)}, seconds


__all__ = ["Particles"]
