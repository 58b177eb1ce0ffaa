"""The ``darcy`` problem: -div(a grad u) = f on the unit square, u = 0 on the boundary.

Coefficient distributions (parameter ``coefficient``):

* ``"fno"``: the FNO benchmark. A Neumann Gaussian random field (alpha = 2, tau = 3) thresholded
  at zero: ``a_high`` (12) where the field is >= 0, else ``a_low`` (3; the FNO MATLAB demo used 4).
  Forcing 1.
* ``"multiphase"``: the DGNO multi-phase medium. The same kind of field evaluated at the centres of
  a coarse ``phase_cells`` x ``phase_cells`` partition and thresholded there, so ``a`` is piecewise
  constant on coarse cells with values ``a_low`` = 5 and ``a_high`` = 10. Forcing 10.
* ``"lognormal"``: a smooth coefficient ``exp(g)`` with ``g`` the same random field. Forcing 1.

Grid: the vertex grid x_j = j / (resolution - 1), boundary included, arrays ``(batch, y, x)``.
With ``subsample`` s > 1 each sample is drawn and solved on the fine grid of
(resolution - 1) s + 1 nodes and both a and u are restricted to the stored grid by injection
(the FNO data were solved at 421^2 and stored at 85^2: resolution=85, subsample=5).
``solve(a)`` on stored-grid inputs then interpolates a bilinearly to the fine grid; ``generate``
uses the exact fine coefficient. Nondimensional units.

Ladder (``ladder()``, what evaluation places a surrogate against): the same finite-difference solve
of the stored-grid coefficient on the stored grid and on each power-of-two refinement below the
reference's, with the direct and the multigrid linear solver.
"""
from __future__ import annotations

import numpy as np

from sciops.problems.base import Field, Param, Problem, Rung
from sciops.problems.lazy import lazy_module
from sciops.problems.random_fields import cosine_grf

fd_solver = lazy_module("sciops.solvers.darcy")

COEFFICIENTS = ("fno", "multiphase", "lognormal")
FACE_AVERAGES = ("harmonic", "arithmetic")  # the solver's (sciops.solvers.darcy), kept here so listing
LINEAR_SOLVERS = ("direct", "amg", "dst-cg")  # the problems does not import it
_DEFAULTS = {  # coefficient -> (a_low, a_high, forcing)
    "fno": (3.0, 12.0, 1.0),
    "multiphase": (5.0, 10.0, 10.0),
    "lognormal": (None, None, 1.0),
}
MAX_GRF_MODES = 128  # the alpha=2 spectrum has decayed by > 1e3 in amplitude past this


class Darcy(Problem):
    """Darcy flow -div(a grad u) = f on the unit square, u = 0 on the boundary, random a."""

    name = "darcy"
    operator_params = ("forcing",)
    geometry = "bounded"
    PARAMS = (
        Param("resolution", 64, int, "stored grid nodes per side", min=8, max=2049),
        Param("coefficient", "fno", str, "coefficient distribution", choices=COEFFICIENTS),
        Param("a_low", None, float, "low phase value (default 3 for fno, 5 for multiphase)", min=1e-6, optional=True),
        Param("a_high", None, float, "high phase value (default 12 for fno, 10 for multiphase)", min=1e-6, optional=True),
        Param("forcing", None, float, "constant source f (default 1; 10 for multiphase)", optional=True),
        Param("alpha", 2.0, float, "GRF smoothness exponent", min=0.5, max=10.0),
        Param("tau", 3.0, float, "GRF inverse length scale", min=0.1, max=100.0),
        Param("phase_cells", 29, int, "coarse cells per side of the multiphase medium", min=2, max=512),
        Param("subsample", 1, int, "solve on a grid this many times finer, store by injection", min=1, max=16),
        Param("averaging", "harmonic", str, "face averaging of a", choices=FACE_AVERAGES),
        Param("linear_solver", "direct", str, "sparse direct (SuperLU), algebraic multigrid, or DST-preconditioned "
              "CG with a certified stop", choices=LINEAR_SOLVERS),
    )

    size_params = ("subsample", "resolution")
    certified = True
    # above this face-coefficient contrast CG converges slowly; finish() uses the direct solve there
    CG_MAX_CONTRAST = 1e3

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        low, high, forcing = _DEFAULTS[p["coefficient"]]
        p["a_low"] = low if p["a_low"] is None else p["a_low"]
        p["a_high"] = high if p["a_high"] is None else p["a_high"]
        p["forcing"] = forcing if p["forcing"] is None else p["forcing"]
        n = p["resolution"]
        self.solve_resolution = (n - 1) * p["subsample"] + 1
        coords = np.linspace(0.0, 1.0, n)
        self.grid = {"y": coords, "x": coords.copy()}
        self.grid_units = {"y": "1", "x": "1"}
        self.fields = {
            "a": Field(("y", "x"), "1", "input", "diffusion coefficient"),
            "u": Field(("y", "x"), "1", "output", "solution (pressure)"),
        }

    @property
    def solver_info(self):
        p = self.params
        return {"name": "darcy-fd5", "averaging": p["averaging"], "linear_solver": p["linear_solver"],
                "solve_resolution": self.solve_resolution, "forcing": p["forcing"]}

    def peak_memory(self, batch_size: int) -> int:
        """Peak bytes of solving one batch: SuperLU's factors grow as m log2 m for m unknowns (peak RSS
        measured at 257^2-1025^2: 69-72 log2(m) bytes per node), pyamg's hierarchy as m (710-990 bytes
        per node), for each of the solver's concurrent threads; plus the batch's fine-grid arrays.
        ``scripts/bench_generation_memory.py`` compares it with measured batches."""
        nodes = self.solve_resolution ** 2
        if self.params["linear_solver"] == "dst-cg":  # vectorised over the batch: a dozen float64 arrays
            return int(16 * 8 * batch_size * nodes)
        per_solve = 80 * nodes * np.log2(max(nodes, 2)) if self.params["linear_solver"] == "direct" else 1100 * nodes
        return int(min(batch_size, fd_solver.default_workers()) * per_solve + 4 * 8 * batch_size * nodes)

    # --- sampling ---------------------------------------------------------------------------------
    def _coefficient(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        modes = min(self.solve_resolution, MAX_GRF_MODES)
        if p["coefficient"] == "multiphase":
            cells = p["phase_cells"]
            centres = (np.arange(cells) + 0.5) / cells
            g = cosine_grf(rng, centres, centres, alpha=p["alpha"], tau=p["tau"], modes=modes)
            phase = np.where(g >= 0, p["a_high"], p["a_low"])
            cell_of_node = np.minimum((np.linspace(0, 1, n) * cells).astype(int), cells - 1)
            return phase[np.ix_(cell_of_node, cell_of_node)]
        s = np.linspace(0.0, 1.0, n)
        g = cosine_grf(rng, s, s, alpha=p["alpha"], tau=p["tau"], modes=modes)
        if p["coefficient"] == "lognormal":
            return np.exp(g)
        return np.where(g >= 0, p["a_high"], p["a_low"])

    def _restrict(self, fine: np.ndarray) -> np.ndarray:
        s = self.params["subsample"]
        return fine[..., ::s, ::s]

    def _sample_one(self, rng):
        return self._restrict(self._coefficient(rng, self.solve_resolution)).astype(np.float32)

    def generate(self, n, seed, start=0):
        if self.params["subsample"] == 1:
            return super().generate(n, seed, start)
        import time

        from sciops.problems.base import sample_seed

        fine = np.stack([self._coefficient(np.random.default_rng(sample_seed(seed, start + i)), self.solve_resolution)
                         for i in range(n)])
        t0 = time.perf_counter()
        u = self._solve_fine(fine)
        seconds = time.perf_counter() - t0
        return self._restrict(fine).astype(np.float32), self._restrict(u).astype(np.float32), seconds

    # --- solving ----------------------------------------------------------------------------------
    def _solve_fine(self, a: np.ndarray) -> np.ndarray:
        p = self.params
        return fd_solver.solve_darcy(a, p["forcing"], averaging=p["averaging"], linear_solver=p["linear_solver"])

    def ladder(self) -> list[Rung]:
        """Cheaper solves of the stored-grid coefficient (interpolated bilinearly, as ``solve`` does):
        on the stored grid itself (subsample 1) and on each power-of-two refinement below the
        reference's subsample, each with the sparse direct solver and with algebraic multigrid; at the
        reference's own subsample, the linear solvers it does not use. Cheapest first."""
        p = self.params
        levels = sorted({1, p["subsample"], *(2 ** k for k in range(1, 5) if 2 ** k < p["subsample"])})
        rungs = []
        for s in levels:
            nodes = (p["resolution"] - 1) * s + 1
            for solver in ("direct", "amg"):
                if (s, solver) != (p["subsample"], p["linear_solver"]):
                    rungs.append(Rung(f"{solver} {nodes}^2", self.with_params(subsample=s, linear_solver=solver).solve))
        return rungs

    def check_input_shapes(self, shapes):
        shape = tuple(shapes["a"])
        if len(shape) not in (2, 3) or shape[-1] != shape[-2] or shape[-1] < 3:
            raise ValueError(f"darcy.solve expects a of shape (batch, n, n) or (n, n) with n >= 3, got {shape}")

    def solve(self, inputs):
        """u for a batch of coefficients ``a`` of shape (batch, n, n) (or (n, n)) on any vertex grid."""
        a = np.asarray(inputs, dtype=np.float64)
        self.check_input_shapes({"a": a.shape})
        s = self.params["subsample"]
        if s > 1:
            n = a.shape[-1]
            coarse, fine = np.linspace(0, 1, n), np.linspace(0, 1, (n - 1) * s + 1)
            yy, xx = np.meshgrid(fine, fine, indexing="ij")
            pts = np.stack([yy.ravel(), xx.ravel()], -1)
            batch = a.reshape(-1, n, n)
            from scipy.interpolate import RegularGridInterpolator

            a_fine = np.stack([RegularGridInterpolator((coarse, coarse), b)(pts).reshape(len(fine), len(fine))
                               for b in batch]).reshape(a.shape[:-2] + (len(fine), len(fine)))
            return self._restrict(self._solve_fine(a_fine)).astype(np.float32)
        return self._solve_fine(a).astype(np.float32)

    # --- certified answers -------------------------------------------------------------------------
    def _check_bound_inputs(self, inputs, outputs) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(inputs, dtype=np.float64)
        u = np.array(outputs, dtype=np.float64)  # a copy: the boundary is set on it
        if a.ndim == 2:
            a, u = a[None], u[None]
        if a.ndim != 3 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 3 or u.shape != a.shape:
            raise ValueError(f"darcy bounds need a and u of one shape (batch, n, n) with n >= 3, got {a.shape} "
                             f"and {u.shape}")
        u[:, [0, -1], :] = 0.0  # the boundary condition: the discrete solution space has u = 0 there
        u[:, :, [0, -1]] = 0.0
        return a, u

    def certify(self, inputs, outputs, tol: float | None = None):
        """Guaranteed bounds on ||u_h - u||_A / ||u_h||_A for approximations ``outputs`` of the
        solutions u_h of the 5-point system on the inputs' own grid (see
        :mod:`sciops.solvers.darcy_bounds`). The returned outputs take the boundary condition
        (u = 0 on the boundary); with ``tol``, samples whose bound exceeds it are improved by
        DST-preconditioned CG started from them, or by the direct solve where the face-coefficient
        contrast exceeds ``CG_MAX_CONTRAST`` (iterations -1). Outputs keep their dtype, and the
        bounds are those of the returned values."""
        from sciops.solvers.darcy_bounds import DarcyOperator, pcg

        if tol is not None and not (isinstance(tol, (int, float)) and not isinstance(tol, bool)
                                    and np.isfinite(tol) and tol > 0):
            raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
        a, u = self._check_bound_inputs(inputs, outputs)
        dtype = np.asarray(outputs).dtype if np.issubdtype(np.asarray(outputs).dtype, np.floating) else np.float64
        f, averaging = self.params["forcing"], self.params["averaging"]
        op = DarcyOperator(a, f, averaging)
        u = u.astype(dtype).astype(np.float64)
        bounds = op.certify(u[:, 1:-1, 1:-1])
        iterations = np.zeros(len(a), dtype=np.int64)
        todo = bounds > tol if tol is not None else np.zeros(len(a), dtype=bool)
        direct = todo & (op.a_max / op.a_min > self.CG_MAX_CONTRAST)
        cg = todo & ~direct
        if cg.any():
            u[cg], _, iterations[cg] = pcg(a[cg], f, x0=u[cg], tol=tol, averaging=averaging)
        if direct.any():
            u[direct] = fd_solver.solve_darcy(a[direct], f, averaging=averaging)
            iterations[direct] = -1
        if todo.any():  # the bounds of what is returned, after the cast to the outputs' dtype
            u[todo] = u[todo].astype(dtype)
            bounds[todo] = op.subset(np.flatnonzero(todo)).certify(u[todo][:, 1:-1, 1:-1])
        return u.astype(dtype).reshape(np.shape(outputs)), bounds, iterations

    def certified_error(self, inputs, outputs) -> np.ndarray:
        """||u_h - u||_A / ||u_h||_A against the direct solve u_h on the inputs' own grid."""
        from sciops.solvers.darcy_bounds import DarcyOperator

        a, u = self._check_bound_inputs(inputs, outputs)
        exact = fd_solver.solve_darcy(a, self.params["forcing"], averaging=self.params["averaging"])
        op = DarcyOperator(a, self.params["forcing"], self.params["averaging"])
        inner = (slice(None), slice(1, -1), slice(1, -1))
        return op.energy((exact - u)[inner]) / op.energy(exact[inner])
