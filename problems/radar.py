"""The ``radar`` problem: 3D near-field MIMO radar imaging of extended targets.

Physics (``sciops.solvers.radar``): Born model y(f, t, r) = sum_v x_v exp(-j k (R_tv + R_vr)) /
(4 pi R_tv R_vr) for the reference cross-shaped array (12 transmitters, 13 receivers on the diagonals
of a 0.3 m aperture at z = 0; ``array="planar"``: 4 x 4 transmitters and 5 x 5 receivers), ``n_freqs``
frequencies uniform in [f_min, f_max] (fewer frequencies: the compressive setting), image grid
``nz`` x ``ny`` x ``nx`` voxels over x, y in [-extent_xy/2, extent_xy/2] m and z in [z_min, z_max] m.

Sample i (seed ``sample_seed(seed, i)``): a scene x from ``sciops.problems.radar_targets``
(random union of boxes, spheres, ellipsoids, thin plates and letters with random complex phase,
max |x| = 1), measurements y = A x + n with circular complex Gaussian noise n at ``snr_db``
(SNR = mean |A x|^2 / noise variance per sample; ``snr_db=None``: no noise), and the normalised
adjoint image A^H y / max |A^H y|. The forward and adjoint run in complex64 (relative error
~1e-5 against complex128, far below the 30 dB noise and the float32 storage).

Fields (complex values are stored as a trailing ``channel`` axis of size 2: real, imaginary;
HDF5 and xarray then hold plain float32, and the torch reader sees two channels):

* ``adjoint``       input       (z, y, x, 2)   normalised complex adjoint image (first stage of Deep2S)
* ``magnitude``     output      (z, y, x)      ground-truth |x| (the learning target)
* ``reflectivity``  diagnostic  (z, y, x, 2)   ground-truth complex x
* ``measurements``  diagnostic  (f, tx, rx, 2) noisy y

Grid coordinates: z, y, x (m), f (Hz), tx and rx (antenna indices; positions in ``solver_info``).

``solve(adjoint)`` is the classical reference reconstruction from the stored input: ``cg_iters``
conjugate-gradient steps on (A^H A + lam I) x = A^H y / c with lam = ``tikhonov`` ||A||^2, returned
as |x| / max |x| (float32, (batch, nz, ny, nx)). ``reconstruct(y, method)`` runs any classical
method of ``sciops.solvers.radar_recon`` on measurements; ``reconstruct(y, "pnp-learned",
denoiser=D)`` runs PnP-ADMM with a callable denoiser D(magnitude, sigma) (for example
``sciops.training.denoiser.LearnedDenoiser``).

Solver ladder (``ladder()``: cheaper configurations of the reference reconstruction, cheapest
first; each is ``solve_with`` and takes and returns what ``solve`` does)
    * ``"adjoint"``: |A^H y| / max, the input's magnitude (its cost, the adjoint itself, is already
      in the input; the same image as the "adjoint" baseline). CG's first iteration from x = 0 is a
      positive multiple of A^H y, so ``cg 1 iteration`` would be this image again at the cost of one
      normal-operator application: it is not a rung.
    * ``"cg k iterations"`` for k = 2, 5 below ``cg_iters``: the reference stopped early.
    Kirchhoff migration (and back-projection) needs the measurements, which are not among the
    inputs ``solve`` takes: it stays a baseline (``baselines``), not a rung.

Learned reconstruction (Deep2S): a surrogate trained on this problem (``sciops train unet``) takes
what ``solve`` takes, the stored adjoint input, and returns |x| like ``solve``. From measurements y:
``surrogate.solve(problem.first_stage(y))`` (first stage = the normalised adjoint as channels).
``baselines(outputs)`` gives the classical images ``sciops evaluate`` compares a surrogate with.
"""
from __future__ import annotations

import time
from functools import partial

import numpy as np

from sciops.problems.base import Field, Param, Problem, Rung, sample_seed
from sciops.problems.lazy import lazy_module

torch = lazy_module("torch")
R = lazy_module("sciops.solvers.radar")
RR = lazy_module("sciops.solvers.radar_recon")
targets = lazy_module("sciops.problems.radar_targets")

ARRAYS = ("cross", "planar")
METHODS = ("adjoint", "backprojection", "kirchhoff", "cgls", "pnp-tv", "pnp-sparsity")
LEARNED_METHODS = ("pnp-learned",)  # need a trained denoiser: reconstruct(y, "pnp-learned", denoiser=D)
# what ``baselines`` (and so ``sciops evaluate``) compares with; "adjoint" is |first stage| alone, its
# time the first stage's cost that a surrogate fed from measurements adds to its own
BASELINES = ("adjoint", "reference", "kirchhoff")
LADDER_CG_ITERS = (2, 5)  # the ladder's CG rungs (1 iteration is the adjoint rung: module docstring)


def complex_to_channels(z: np.ndarray) -> np.ndarray:
    """(..., ) complex -> (..., 2) float32 (real, imaginary)."""
    return np.stack([z.real, z.imag], -1).astype(np.float32)


def channels_to_complex(a: np.ndarray) -> np.ndarray:
    """(..., 2) real/imaginary channels -> (...) complex64; complex input is returned as complex64."""
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return a.astype(np.complex64)
    if a.shape[-1] != 2:
        raise ValueError(f"complex data must be complex or have a trailing axis of size 2 (real, imag), got {a.shape}")
    return (a[..., 0] + 1j * a[..., 1]).astype(np.complex64)


class Radar(Problem):
    """Near-field MIMO radar imaging: reflectivity magnitude from the normalised adjoint image."""

    name = "radar"
    operator_params = ("array", "n_freqs", "f_min", "f_max", "extent_xy", "z_min", "z_max")
    geometry = "bounded"
    PARAMS = (
        Param("nz", 49, int, "image voxels along z (range)", min=2, max=1024),
        Param("ny", 25, int, "image voxels along y", min=2, max=1024),
        Param("nx", 25, int, "image voxels along x", min=2, max=1024),
        Param("extent_xy", 0.3, float, "image width in x and y (m)", min=1e-3, max=100.0),
        Param("z_min", 0.35, float, "nearest image plane (m, in front of the array at z = 0)", min=1e-3, max=100.0),
        Param("z_max", 0.65, float, "farthest image plane (m)", min=1e-3, max=100.0),
        Param("array", "cross", str, "antenna array", choices=ARRAYS),
        Param("n_freqs", 15, int, "number of frequencies (compressive when small)", min=1, max=1024),
        Param("f_min", 4e9, float, "lowest frequency (Hz)", min=1e6, max=1e13),
        Param("f_max", 16e9, float, "highest frequency (Hz)", min=1e6, max=1e13),
        Param("snr_db", 30.0, float, "measurement SNR in dB (none: noiseless)", min=-30.0, max=300.0, optional=True),
        Param("min_shapes", 1, int, "fewest primitives per scene", min=1, max=64),
        Param("max_shapes", 4, int, "most primitives per scene", min=1, max=64),
        Param("cg_iters", 10, int, "CG iterations of the reference reconstruction", min=1, max=1000),
        Param("tikhonov", 1e-2, float, "Tikhonov weight of the reference reconstruction, relative to ||A||^2",
              min=0.0, max=1e6),
        Param("memory_mib", 512, int, "memory budget of one operator application (MiB)", min=1, max=2**20),
    )

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if p["n_freqs"] > 1 and not p["f_max"] > p["f_min"]:
            raise ValueError(f"radar: f_max={p['f_max']!r} must exceed f_min={p['f_min']!r} when n_freqs > 1")
        if not p["z_max"] > p["z_min"]:
            raise ValueError(f"radar: z_max={p['z_max']!r} must exceed z_min={p['z_min']!r}")
        if p["min_shapes"] > p["max_shapes"]:
            raise ValueError(f"radar: min_shapes={p['min_shapes']} must not exceed max_shapes={p['max_shapes']}")
        self.tx, self.rx = R.cross_array() if p["array"] == "cross" else R.planar_array(4, 5)
        self.freqs = R.frequencies(p["f_min"], p["f_max"], p["n_freqs"])
        self.axes = R.reference_grid(p["nz"], p["ny"], p["nx"], extent_xy=p["extent_xy"],
                                     z_range=(p["z_min"], p["z_max"]))
        self.grid = {**self.axes, "f": self.freqs, "tx": np.arange(len(self.tx), dtype=float),
                     "rx": np.arange(len(self.rx), dtype=float)}
        self.grid_units = {"z": "m", "y": "m", "x": "m", "f": "Hz", "tx": "1", "rx": "1"}
        self.fields = {
            "adjoint": Field(("z", "y", "x"), "1", "input", "A^H y / max|A^H y| (channel: real, imaginary)"),
            "magnitude": Field(("z", "y", "x"), "1", "output", "ground-truth reflectivity magnitude |x| (max 1)"),
            "reflectivity": Field(("z", "y", "x"), "1", "diagnostic", "ground-truth complex reflectivity x "
                                  "(channel: real, imaginary)"),
            "measurements": Field(("f", "tx", "rx"), "m-2", "diagnostic", "noisy measurements y "
                                  "(channel: real, imaginary)"),
        }
        self._ops: dict = {}
        self._norm_sq: float | None = None
        self.operator()  # validates the geometry and the memory budget now (ValueError)

    def operator(self, dtype: torch.dtype | None = None, device="cpu") -> R.MimoBorn:
        """The problem's Born operator (built once per dtype, complex64 by default, and device)."""
        dtype = torch.complex64 if dtype is None else dtype
        key = (dtype, str(device))
        if key not in self._ops:
            self._ops[key] = R.MimoBorn(self.tx, self.rx, self.freqs, self.axes, dtype=dtype, device=device,
                                        memory_budget=self.params["memory_mib"] * 2**20,
                                        cache_factors=self._cache_fits(dtype))
        return self._ops[key]

    def _cache_fits(self, dtype) -> bool:
        """Cache the operator's factors (faster iterations) when they take at most half the budget."""
        cache = R.factor_cache_bytes(self.freqs, len(self.tx), len(self.rx),
                                     int(np.prod([len(a) for a in self.axes.values()])), dtype)
        return cache <= self.params["memory_mib"] * 2**19

    def norm_sq(self) -> float:
        if self._norm_sq is None:
            self._norm_sq = RR.operator_norm_sq(self.operator())
        return self._norm_sq

    @property
    def solver_info(self):
        return {"name": "mimo-born", "tx": np.round(self.tx, 9).tolist(), "rx": np.round(self.rx, 9).tolist(), "dtype": "complex64",
                "reference_reconstruction": f"cg-normal ({self.params['cg_iters']} iterations, "
                                            f"tikhonov {self.params['tikhonov']} ||A||^2)"}

    # --- sampling ---------------------------------------------------------------------------------
    def scene(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        return targets.random_scene(rng, self.axes, min_shapes=p["min_shapes"], max_shapes=p["max_shapes"])

    def simulate(self, scenes: np.ndarray, rngs) -> np.ndarray:
        """Noisy measurements (batch, F, T, R) complex64 of scenes (batch, nz, ny, nx)."""
        op = self.operator()
        # one sample at a time: BLAS blocking depends on the batch, and sample i must not depend on
        # the batch it was generated in
        y = np.stack([op.forward(s).numpy() for s in scenes]) if len(scenes) else np.zeros((0, *op.data_shape), np.complex64)
        snr = self.params["snr_db"]
        if snr is None:
            return y
        out = np.empty_like(y)
        for i, (yi, rng) in enumerate(zip(y, rngs)):
            sigma = np.sqrt(np.mean(np.abs(yi) ** 2) / 10 ** (snr / 10) / 2)
            out[i] = yi + sigma * (rng.standard_normal(yi.shape) + 1j * rng.standard_normal(yi.shape))
        return out

    def normalised_adjoint(self, y: np.ndarray) -> np.ndarray:
        """A^H y / max |A^H y| per sample, complex64 (batch, nz, ny, nx)."""
        op = self.operator()
        z = np.stack([op.adjoint(s).numpy() for s in y]) if len(y) else np.zeros((0, *op.image_shape), np.complex64)
        return _peak_normalised(z)

    def first_stage(self, measurements) -> np.ndarray:
        """The stored ``adjoint`` input computed from measurements (batch, F, T, R, 2) or complex
        (batch, F, T, R): (batch, nz, ny, nx, 2) float32, what ``solve`` and a surrogate take."""
        y = channels_to_complex(measurements)
        batched = y.ndim == 4
        y = y if batched else y[None]
        out = complex_to_channels(self.normalised_adjoint(y))
        return out if batched else out[0]

    def baselines(self, outputs: dict, methods=BASELINES) -> dict[str, tuple[np.ndarray, float]]:
        """Classical reconstructions of the scenes behind ``outputs`` (a ``generate`` output dict:
        needs ``measurements``): {method: (|x| / max (batch, nz, ny, nx), seconds per scene)}.
        "reference" is ``solve`` on the first stage (whose time is included), the others
        ``reconstruct``; each is timed one scene at a time."""
        y = outputs["measurements"]
        out = {}
        for method in methods:
            images, t0 = [], time.perf_counter()
            for yi in y:
                images.append(self.solve(self.first_stage(yi)) if method == "reference" else self.reconstruct(yi, method))
            out[method] = (np.stack(images), (time.perf_counter() - t0) / max(len(y), 1))
        return out

    def generate(self, n, seed, start=0):
        if n < 0 or start < 0:
            raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
        rngs = [np.random.default_rng(sample_seed(seed, start + i)) for i in range(n)]
        scenes = np.stack([self.scene(g) for g in rngs]) if n else np.zeros((0, *self.operator().image_shape), complex)
        t0 = time.perf_counter()
        y = self.simulate(scenes, rngs)
        adj = self.normalised_adjoint(y)
        seconds = time.perf_counter() - t0
        inputs = {"adjoint": complex_to_channels(adj)}
        outputs = {"magnitude": np.abs(scenes).astype(np.float32), "reflectivity": complex_to_channels(scenes),
                   "measurements": complex_to_channels(y)}
        return inputs, outputs, seconds

    def sample_inputs(self, n, seed, start=0):
        return self.generate(n, seed, start)[0]["adjoint"]

    # --- reconstruction ---------------------------------------------------------------------------
    def check_input_shapes(self, shapes):
        image = tuple(self.params[k] for k in ("nz", "ny", "nx"))
        shape = tuple(shapes["adjoint"])
        channels = shape[-4:] == image + (2,) and len(shape) in (4, 5)
        complex_numbers = shape[-3:] == image and len(shape) in (3, 4)  # the image as complex numbers
        if not (channels or complex_numbers):
            raise ValueError(f"radar.solve expects the adjoint image of shape (batch, {', '.join(map(str, image))}, 2) "
                             f"or complex (batch, {', '.join(map(str, image))}), got {shape}")

    def solve(self, inputs):
        """Reference reconstruction |x| / max |x| (batch, nz, ny, nx) float32 from the normalised adjoint
        image (batch, nz, ny, nx, 2) (or complex (batch, nz, ny, nx)); see the module docstring."""
        return self.solve_with(inputs)

    def solve_with(self, inputs, *, cg_iters: int | None = None):
        """``solve`` with ``cg_iters`` CG iterations instead of the reference's (0: the adjoint image
        alone, |A^H y| / max |A^H y|); what the ladder's rungs run."""
        iters = self.params["cg_iters"] if cg_iters is None else cg_iters
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
            raise ValueError(f"radar: cg_iters={cg_iters!r} is not valid; expected an integer >= 0")
        if isinstance(inputs, dict):
            inputs = inputs["adjoint"]
        self.check_input_shapes({"adjoint": np.shape(inputs)})
        b = channels_to_complex(inputs)
        if iters == 0:
            return _normalised_magnitude(b)
        x = RR.cg_normal(self.operator(), b, tikhonov=self.params["tikhonov"] * self.norm_sq(), iters=iters)
        return _normalised_magnitude(x.numpy())

    def ladder(self) -> list[Rung]:
        """The adjoint image alone, then CG with 2 and 5 iterations where fewer than the reference's
        (module docstring)."""
        rungs = [Rung("adjoint", partial(self.solve_with, cg_iters=0))]
        rungs += [Rung(f"cg {k} iterations", partial(self.solve_with, cg_iters=k))
                  for k in LADDER_CG_ITERS if k < self.params["cg_iters"]]
        return rungs

    def reconstruct(self, measurements, method: str = "kirchhoff", **kwargs) -> np.ndarray:
        """|x| / max |x| (batch, nz, ny, nx) float32 by a classical ``method`` (one of ``METHODS``)
        from measurements (batch, F, T, R, 2) or complex (batch, F, T, R)."""
        if method not in METHODS + LEARNED_METHODS:
            raise ValueError(f"radar: unknown reconstruction {method!r}; expected one of "
                             f"{', '.join(METHODS + LEARNED_METHODS)}")
        if (method == "pnp-learned") != callable(kwargs.get("denoiser")):
            raise ValueError("radar: a callable denoiser=D(magnitude, sigma) goes with method 'pnp-learned' only")
        y = channels_to_complex(measurements)
        op = self.operator()
        if method == "adjoint":
            x = op.adjoint(y)
        elif method in ("backprojection", "kirchhoff"):
            x = op.back(y, method)
        elif method == "cgls":
            kwargs.setdefault("iters", self.params["cg_iters"])
            kwargs.setdefault("tikhonov", self.params["tikhonov"] * self.norm_sq())
            x = RR.cgls(op, y, **kwargs)[0]
        else:
            prox = kwargs.pop("denoiser") if method == "pnp-learned" else method.split("-")[1]
            x = RR.pnp_admm(op, y, prox=prox, norm_sq=self.norm_sq(), **kwargs)
        return _normalised_magnitude(x.numpy())


def _peak_normalised(z: np.ndarray) -> np.ndarray:
    """(batch, nz, ny, nx) divided by each sample's largest magnitude (all-zero samples unchanged)."""
    peak = np.abs(z).reshape(len(z), -1).max(1)
    return z / np.where(peak > 0, peak, 1)[:, None, None, None]


def _normalised_magnitude(x: np.ndarray) -> np.ndarray:
    m = np.abs(x)
    batched = m.ndim == 4
    m = _peak_normalised(m.reshape(-1, *m.shape[-3:]))
    return (m if batched else m[0]).astype(np.float32)
