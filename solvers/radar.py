"""Near-field MIMO radar: array geometries and the matrix-free 3D Born forward model.

Model (scalar Born approximation, free space, isotropic point antennas)

    y(f, t, r) = sum_v x_v exp(-j k (R_tv + R_vr)) / (4 pi R_tv R_vr),   k = 2 pi f / c,

with R_tv = |tx_t - v| and R_vr = |rx_r - v| in metres, c = 299 792 458 m/s, x the complex
reflectivity of the voxels v. The kernel is separable in the transmitter and the receiver,
A[(f, t, r), v] = G_t[f, t, v] G_r[f, r, v] with G_t = exp(-j k R_tv) / R_tv and
G_r = exp(-j k R_vr) / (4 pi R_vr), so for one frequency the sum over voxels is the matrix product
(G_t * x) @ G_r^T: the dense (F T R) x V matrix (1.15 GB in complex128 for the reference system at
15 frequencies) is never formed. Every operator here has that form,

    forward  y[b, f, t, r] = sum_v H_t[f, t, v] H_r[f, r, v] x[b, v]
    back     z[b, v]       = sum_{f, t, r} B_t[f, t, v] B_r[f, r, v] y[b, f, t, r]

and the adjoint is the "back" form with B = conj(H). Back-projection uses B = exp(+j k R)
(METHODS.md), Kirchhoff migration additionally the weighting
4 dz R_t dz R_r ((jk)^2 R_t R_r + jk (R_t + R_r) + 1) = [2 dzR_t (jk R_t + 1)] [2 dzR_r (jk R_r + 1)]
with dz R = (z_v - z_antenna) / R (the z derivative of the range: the obliquity factor), so it
is separable too (reconstructions: ``sciops.solvers.radar_recon``).

Chunking and memory
    The factors are evaluated on the fly for blocks of ``freq_chunk`` frequencies and
    ``voxel_chunk`` voxels; a block's workspace is at most about
    itemsize * freq_chunk * voxel_chunk * (5 (T + R) + 2 batch max(T, R)) bytes. Chunks are chosen
    so that the workspace plus the arrays in and out fit ``memory_budget`` bytes (default 512 MiB),
    with the workspace kept near ``BLOCK_TARGET`` (16 MiB) even when the budget allows more; the
    block work arrays are allocated once and reused, because fresh block-sized temporaries are new
    mmaps whose page faults cost as much as the arithmetic. A problem that cannot fit even with one
    frequency and 64 voxels per block is refused with a ``ValueError`` before anything is allocated
    (:meth:`MimoBorn.check_memory`). Results do not depend on the chunk sizes beyond rounding.

Uniform bands: the frequency recurrence
    On a uniform band k_i = k_0 + i dk every kernel except Kirchhoff's is amp(R) exp(s j k_i R), so
    a block's factors follow from two "seeds", the factor at k_0 and the step exp(s j dk R), by
    F[i + m] = F[i] step^m with m doubling: two complex exponentials per antenna and voxel instead
    of F, and log2(F) products per block (rounding: log2(F) products from an exact exponential;
    the tests check 40 frequencies against the direct Born sum to 1e-12 in complex128). Other bands
    evaluate every factor directly. With ``cache_factors=True`` the forward seeds (uniform band,
    itemsize 2 (T + R) V bytes, independent of F) or the forward factors (other bands, itemsize
    F (T + R) V) are kept after the first application and counted in the budget, which removes all
    trigonometry from later applications (iterative reconstructions).

Conventions
    Images are (batch, z, y, x) (or (z, y, x)) on the grid given by 1-D axes z, y, x (metres);
    measurements are (batch, F, T, R) (or (F, T, R)). The array looks towards +z: every voxel must
    lie strictly in front of (at larger z than) every antenna. Frequencies in Hz, positive and
    strictly increasing. Complex64 (float32 ranges) or complex128 (float64 ranges), on the device
    given (CPU or CUDA); inputs are moved to the operator's device and dtype.

Geometries
    :func:`cross_array` the reference system (METHODS.md): 12 transmitters evenly spaced on the
    diagonal from (-a/2, -a/2) to (a/2, a/2) and 13 receivers evenly spaced on the other diagonal,
    end points included, aperture a = 0.3 m at z = 0 (the receiver in the middle sits at the
    origin; no transmitter coincides with a receiver). :func:`planar_array` uniform n x n
    transmitter and m x m receiver grids over the aperture. :func:`load_array` reads coordinates
    from a file. :func:`reference_grid` the 25 x 25 x 49 image grid over x, y in [-0.15, 0.15] m,
    z in [0.35, 0.65] m; :func:`frequencies` a uniform band (4-16 GHz by default).

References
    Zhuge & Yarovoy, Three-dimensional near-field MIMO array imaging using range migration
    techniques, IEEE TIP 21 (2012). Manisali, Oral & Oktem, Efficient physics-based learned
    reconstruction methods for real-time 3D near-field MIMO radar imaging, DSP 144 (2024).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

C0 = 299_792_458.0  # speed of light in vacuum, m/s
DEFAULT_MEMORY_BUDGET = 512 * 2**20
_MIN_VOXEL_CHUNK = 64
BLOCK_TARGET = 16 * 2**20  # preferred block workspace (bytes) when the budget allows more
REFERENCE_APERTURE = 0.3
REFERENCE_BAND = (4e9, 16e9)


# --- geometry ------------------------------------------------------------------------------------
def cross_array(aperture: float = REFERENCE_APERTURE, n_tx: int = 12, n_rx: int = 13, z: float = 0.0):
    """(tx, rx) positions (n, 3) in metres of the cross-shaped array on the aperture's diagonals."""
    if aperture <= 0 or n_tx < 1 or n_rx < 1:
        raise ValueError(f"cross_array needs aperture > 0 and at least one antenna per diagonal, got "
                         f"aperture={aperture}, n_tx={n_tx}, n_rx={n_rx}")
    h = aperture / 2
    s_t = np.linspace(-h, h, n_tx) if n_tx > 1 else np.zeros(1)
    s_r = np.linspace(-h, h, n_rx) if n_rx > 1 else np.zeros(1)
    tx = np.stack([s_t, s_t, np.full(n_tx, z)], -1)
    rx = np.stack([s_r, -s_r, np.full(n_rx, z)], -1)
    return tx, rx


def planar_array(n_tx: int = 4, n_rx: int = 5, aperture: float = REFERENCE_APERTURE, z: float = 0.0):
    """(tx, rx) of uniform planar arrays: an n_tx x n_tx and an n_rx x n_rx grid over the aperture."""
    if aperture <= 0 or n_tx < 1 or n_rx < 1:
        raise ValueError(f"planar_array needs aperture > 0 and n_tx, n_rx >= 1, got aperture={aperture}, "
                         f"n_tx={n_tx}, n_rx={n_rx}")

    def grid(n):
        s = np.linspace(-aperture / 2, aperture / 2, n) if n > 1 else np.zeros(1)
        yy, xx = np.meshgrid(s, s, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel(), np.full(n * n, z)], -1)

    return grid(n_tx), grid(n_rx)


def load_array(path: str | os.PathLike):
    """(tx, rx) from a file: ``.npz`` with arrays ``tx`` and ``rx`` of shape (n, 3), or a text file
    with one antenna per line, ``tx x y z`` or ``rx x y z`` (metres; commas or blanks; ``#`` comments)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"antenna file {path!r} does not exist")
    if path.endswith(".npz"):
        with np.load(path) as data:
            missing = {"tx", "rx"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: expected arrays 'tx' and 'rx' of shape (n, 3); missing {sorted(missing)}")
            return _positions("tx", data["tx"]), _positions("rx", data["rx"])
    rows = {"tx": [], "rx": []}
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split("#")[0].replace(",", " ").split()
            if not parts:
                continue
            if len(parts) != 4 or parts[0].lower() not in rows:
                raise ValueError(f"{path}:{lineno}: expected 'tx x y z' or 'rx x y z', got {line.strip()!r}")
            try:
                rows[parts[0].lower()].append([float(v) for v in parts[1:]])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: coordinates must be numbers, got {line.strip()!r}") from None
    return _positions("tx", np.array(rows["tx"])), _positions("rx", np.array(rows["rx"]))


def frequencies(f_min: float = REFERENCE_BAND[0], f_max: float = REFERENCE_BAND[1], n: int = 15) -> np.ndarray:
    """``n`` uniformly spaced frequencies in Hz from f_min to f_max (f_min alone when n = 1)."""
    if n < 1:
        raise ValueError(f"the number of frequencies must be >= 1, got {n}")
    return _frequencies(np.linspace(f_min, f_max, n) if n > 1 else np.array([float(f_min)]))


def reference_grid(nz: int = 49, ny: int = 25, nx: int = 25, *, extent_xy: float = 0.3,
                   z_range: tuple[float, float] = (0.35, 0.65)) -> dict[str, np.ndarray]:
    """Image axes {"z", "y", "x"} (metres): x, y in [-extent/2, extent/2], z in z_range, end points included."""
    h = extent_xy / 2
    return {"z": np.linspace(*z_range, nz), "y": np.linspace(-h, h, ny), "x": np.linspace(-h, h, nx)}


def _positions(name: str, pos) -> np.ndarray:
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
        raise ValueError(f"{name} positions must have shape (n, 3) with n >= 1, got {pos.shape}")
    if not np.isfinite(pos).all():
        raise ValueError(f"{name} positions contain NaN or Inf")
    return pos


def _frequencies(freqs) -> np.ndarray:
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim != 1 or f.size < 1:
        raise ValueError(f"frequencies must be a non-empty 1-D array in Hz, got shape {f.shape}")
    if not np.isfinite(f).all() or (f <= 0).any():
        raise ValueError(f"frequencies must be finite and positive (Hz), got min {np.nanmin(f)!r}")
    if (np.diff(f) <= 0).any():
        i = int(np.argmax(np.diff(f) <= 0))
        raise ValueError(f"frequencies must be strictly increasing; f[{i}]={f[i]:g} Hz >= f[{i + 1}]={f[i + 1]:g} Hz")
    return f


def _axis(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size < 1 or not np.isfinite(a).all():
        raise ValueError(f"image axis {name} must be a non-empty finite 1-D array (metres), got shape {a.shape}")
    if a.size > 1 and (np.diff(a) <= 0).any():
        raise ValueError(f"image axis {name} must be strictly increasing")
    return a


def _uniform_step(values: np.ndarray) -> float | None:
    """The spacing of increasing ``values`` if it is uniform to 1e-12 of the largest, else None."""
    if len(values) < 2:
        return None
    step = (values[-1] - values[0]) / (len(values) - 1)
    return float(step) if np.abs(np.diff(values) - step).max() <= 1e-12 * values[-1] else None


def factor_cache_bytes(freqs, n_tx: int, n_rx: int, n_voxels: int, dtype: torch.dtype = torch.complex128) -> int:
    """Bytes that ``MimoBorn(..., cache_factors=True)`` keeps: the seeds (first factor and frequency
    step, two planes) on a uniform band, the factors at every frequency otherwise."""
    planes = 2 if _uniform_step(np.asarray(freqs, dtype=np.float64)) is not None else len(freqs)
    return dtype.itemsize * planes * (n_tx + n_rx) * n_voxels


# --- operator --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunks:
    freq: int
    voxel: int


class MimoBorn:
    """The Born operator A of a MIMO array on a 3D voxel grid, applied matrix-free (see module docstring).

    ``tx`` (T, 3), ``rx`` (R, 3) antenna positions (m); ``freqs`` (F,) Hz; ``grid`` a dict with 1-D
    axes "z", "y", "x" (m). ``memory_budget`` bytes bounds the working memory of one application
    (including its input and output); ``freq_chunk`` / ``voxel_chunk`` force the block sizes.
    """

    def __init__(self, tx, rx, freqs, grid: dict, *, dtype: torch.dtype = torch.complex128,
                 device: str | torch.device = "cpu", memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 freq_chunk: int | None = None, voxel_chunk: int | None = None, cache_factors: bool = False) -> None:
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        if not isinstance(grid, dict) or set(grid) != {"z", "y", "x"}:
            raise ValueError(f"grid must be a dict with 1-D axes 'z', 'y', 'x' (metres), got {grid!r:.80}")
        self.tx, self.rx = _positions("tx", tx), _positions("rx", rx)
        self.freqs = _frequencies(freqs)
        self.axes = {k: _axis(k, grid[k]) for k in ("z", "y", "x")}
        front = max(self.tx[:, 2].max(), self.rx[:, 2].max())
        if self.axes["z"][0] <= front:
            raise ValueError(f"the image grid starts at z={self.axes['z'][0]:g} m, at or behind the array "
                             f"(antennas up to z={front:g} m); the array looks towards +z, so every voxel needs "
                             f"z > {front:g} m")
        for name, value in (("memory_budget", memory_budget), ("freq_chunk", freq_chunk), ("voxel_chunk", voxel_chunk)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.dtype = dtype
        self.real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        self.device = torch.device(device)
        self.memory_budget = int(memory_budget)
        self._forced = (freq_chunk, voxel_chunk)
        self.cache_factors = bool(cache_factors)
        self._cache: dict = {}
        self._work: dict[str, torch.Tensor] = {}  # reused block work arrays (_scratch)
        self._cache_chunks: Chunks | None = None  # the blocking the cached factors belong to
        self.check_memory(1)
        self._tx = torch.as_tensor(self.tx, dtype=self.real_dtype, device=self.device)
        self._rx = torch.as_tensor(self.rx, dtype=self.real_dtype, device=self.device)
        self._k = torch.as_tensor(2 * math.pi * self.freqs / C0, dtype=self.real_dtype, device=self.device)
        self._dk = _uniform_step(2 * math.pi * self.freqs / C0)  # None unless the band is uniform
        self._ax = {k: torch.as_tensor(v, dtype=self.real_dtype, device=self.device) for k, v in self.axes.items()}

    # --- shapes -----------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(len(self.axes[k]) for k in ("z", "y", "x"))

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (len(self.freqs), len(self.tx), len(self.rx))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    def dense_bytes(self) -> int:
        """Bytes the dense matrix would take (for comparison; never allocated here)."""
        return int(np.prod(self.data_shape)) * self.n_voxels * self.itemsize

    # --- memory planning --------------------------------------------------------------------------
    def _block_bytes(self, batch: int, fc: int, vc: int) -> int:
        f, t, r = self.data_shape
        # per side: phase, cos, sin and two scaled copies (real) plus the complex factor; then the
        # (batch, Fc, T, Vc) product and its weighted copy
        return self.itemsize * fc * vc * (5 * (t + r) + 2 * batch * max(t, r)) + 8 * self.itemsize * vc

    def _io_bytes(self, batch: int) -> int:
        io = self.itemsize * batch * (2 * self.n_voxels + 2 * int(np.prod(self.data_shape)))
        return io + (self.cache_bytes() if self.cache_factors else 0)

    def cache_bytes(self) -> int:
        """Bytes of the cached transmit and receive factors (``cache_factors=True``)."""
        return factor_cache_bytes(self.freqs, len(self.tx), len(self.rx), self.n_voxels, self.dtype)

    def check_memory(self, batch: int) -> Chunks:
        """Block sizes for a batch of ``batch``; ValueError if it cannot fit ``memory_budget``."""
        n_f, v = len(self.freqs), self.n_voxels
        fc_forced, vc_forced = self._forced
        io = self._io_bytes(batch)
        smallest_vc = min(v, vc_forced or _MIN_VOXEL_CHUNK)
        need = io + self._block_bytes(batch, min(n_f, fc_forced or 1), smallest_vc)
        if need > self.memory_budget:
            raise ValueError(f"a {'x'.join(map(str, self.image_shape))} grid with {'x'.join(map(str, self.data_shape))} "
                             f"measurements and batch {batch} needs at least {need / 2**20:.1f} MiB; the memory "
                             f"budget is {self.memory_budget / 2**20:.1f} MiB (raise memory_budget, or use a "
                             f"smaller grid or batch)")
        free = self.memory_budget - io
        fc = min(n_f, fc_forced) if fc_forced else n_f
        if vc_forced:
            vc = min(v, vc_forced)
            if not fc_forced:
                while fc > 1 and self._block_bytes(batch, fc, vc) > free:
                    fc = (fc + 1) // 2
            return Chunks(fc, vc)
        target = min(free, BLOCK_TARGET)  # blocks beyond a few MiB only add page faults (fresh mmaps)
        while True:
            vc = min(v, max(1, target // self._block_bytes(batch, fc, 1)))
            if vc >= min(v, _MIN_VOXEL_CHUNK) or fc == 1 or fc_forced:
                return Chunks(fc, int(vc))
            fc = (fc + 1) // 2

    # --- factors ----------------------------------------------------------------------------------
    def _voxels(self, lo: int, hi: int) -> torch.Tensor:
        """(hi - lo, 3) xyz coordinates of the flat voxel indices lo..hi-1 ((z, y, x) C order)."""
        nz, ny, nx = self.image_shape
        idx = torch.arange(lo, hi, device=self.device)
        iz, rem = idx // (ny * nx), idx % (ny * nx)
        return torch.stack([self._ax["x"][rem % nx], self._ax["y"][rem // nx], self._ax["z"][iz]], -1)

    @staticmethod
    def _amplitude_and_sign(kind: str, dist: torch.Tensor) -> tuple[torch.Tensor | float, float]:
        """amp(R) and s of the kernels amp(R) exp(s j k R) (all but Kirchhoff's)."""
        sign = -1.0 if kind.startswith("forward") else 1.0
        if kind == "backprojection":
            return 1.0, sign
        if kind in ("forward_t", "adjoint_t"):
            return 1.0 / dist, sign
        if kind in ("forward_r", "adjoint_r"):
            return 1.0 / (4 * math.pi * dist), sign
        raise ValueError(f"unknown kernel {kind!r}")

    def _factor(self, kind: str, k: torch.Tensor, ant: torch.Tensor, vox: torch.Tensor) -> torch.Tensor:
        """(Fc, N, Vc) complex factor of one side (transmit or receive) of a kernel, evaluated directly."""
        dist = torch.linalg.vector_norm(ant[:, None, :] - vox[None], dim=-1)  # (N, Vc)
        phase = k[:, None, None] * dist[None]  # (Fc, N, Vc)
        cos, sin = torch.cos(phase), torch.sin(phase)  # cos/sin then complex(): ~3x faster than torch.polar
        if kind == "kirchhoff":
            w = 2 * (vox[None, :, 2] - ant[:, None, 2]) / dist  # 2 dzR, dzR the z derivative of the range
            # 2 dzR (1 + jkR) exp(jkR) = 2 dzR [(cos - kR sin) + j (sin + kR cos)]
            return torch.complex(w * (cos - phase * sin), w * (sin + phase * cos))
        amp, sign = self._amplitude_and_sign(kind, dist)
        return torch.complex(amp * cos, (sign * amp) * sin)

    def _seeds(self, kind: str, ant: torch.Tensor, vox: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, Vc) factor at the band's first wavenumber k0 and the step exp(s j dk R) that moves it
        one frequency up (uniform bands; kernels of the form amp(R) exp(s j k R))."""
        dist = torch.linalg.vector_norm(ant[:, None, :] - vox[None], dim=-1)
        amp, sign = self._amplitude_and_sign(kind, dist)
        phase0, dphase = self._k[0] * dist, self._dk * dist
        base = torch.complex(amp * torch.cos(phase0), (sign * amp) * torch.sin(phase0))
        return base, torch.complex(torch.cos(dphase), sign * torch.sin(dphase))

    @staticmethod
    def _expand(seeds: tuple[torch.Tensor, torch.Tensor], flo: int, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` (Fc, N, Vc) with the factor at frequencies flo .. flo + Fc - 1 from the seeds:
        F[i + m] = F[i] step^m with m doubling, so each entry is log2(flo + Fc) rounded products
        away from a directly evaluated exponential, and the block costs log2 products, no trigonometry."""
        base, step = seeds
        power, e = None, flo  # step^flo by binary exponentiation
        while e:
            if e & 1:
                power = step if power is None else power * step
            e >>= 1
            if e:
                step = step * step
        step = seeds[1]
        if power is None:
            out[0].copy_(base)
        else:
            torch.mul(base, power, out=out[0])
        n, done = out.shape[0], 1
        while done < n:
            m = min(done, n - done)
            torch.mul(out[:m], step, out=out[done:done + m])
            done += m
            if done < n:
                step = step * step
        return out

    # --- application ------------------------------------------------------------------------------
    def _checked(self, v, shape: tuple, what: str, layout: str) -> tuple[torch.Tensor, bool]:
        """``v`` of shape ``shape`` or (batch, *shape) as (batch, *shape) on the operator's device and
        dtype, and whether it came batched; ValueError on another shape or non-finite entries."""
        v = torch.as_tensor(v)
        batched = v.ndim == 4
        if v.shape[-3:] != shape or v.ndim not in (3, 4):
            raise ValueError(f"{what} must have shape {layout}(batch, {', '.join(map(str, shape))}) or "
                             f"{shape}, got {tuple(v.shape)}")
        v = v.to(device=self.device, dtype=self.dtype)
        bad = ~torch.isfinite(torch.view_as_real(v)).all(-1)
        if bad.any():
            raise ValueError(f"{what} contain{'s' if what == 'image' else ''} NaN or Inf ({int(bad.sum())} of "
                             f"{bad.numel()} entries); expected finite complex values")
        return v.reshape(-1, *shape), batched

    def _image_in(self, x) -> tuple[torch.Tensor, bool]:
        x, batched = self._checked(x, self.image_shape, "image", "")
        return x.reshape(-1, self.n_voxels), batched

    def _data_in(self, y) -> tuple[torch.Tensor, bool]:
        return self._checked(y, self.data_shape, "measurements", "(batch, F, T, R) = ")

    def forward(self, x) -> torch.Tensor:
        """y = A x: image (batch, nz, ny, nx) -> measurements (batch, F, T, R)."""
        x, batched = self._image_in(x)
        y = self._apply_forward(x, "forward_t", "forward_r")
        return y if batched else y[0]

    __call__ = forward

    def adjoint(self, y) -> torch.Tensor:
        """A^H y: measurements (batch, F, T, R) -> image (batch, nz, ny, nx)."""
        return self.back(y, "adjoint")

    def back(self, y, kernel: str = "adjoint") -> torch.Tensor:
        """sum_{f,t,r} B_t B_r y for ``kernel`` in adjoint, backprojection, kirchhoff."""
        if kernel not in ("adjoint", "backprojection", "kirchhoff"):
            raise ValueError(f"kernel must be one of adjoint, backprojection, kirchhoff, got {kernel!r}")
        y, batched = self._data_in(y)
        if kernel == "adjoint" and self.cache_factors:
            # A^H y = conj(sum H_t H_r conj(y)): reuses the cached forward factors, conjugating
            # only the small y and x instead of the factors
            x = torch.conj_physical(self._apply_back(torch.conj_physical(y), "forward_t", "forward_r"))
        else:
            kinds = ("adjoint_t", "adjoint_r") if kernel == "adjoint" else (kernel, kernel)
            x = self._apply_back(y, *kinds)
        x = x.reshape(-1, *self.image_shape)
        return x if batched else x[0]

    def normal(self, x) -> torch.Tensor:
        """A^H A x."""
        return self.adjoint(self.forward(x))

    def _blocks(self, batch: int):
        ch = self.check_memory(batch)
        if self.cache_factors and ch != self._cache_chunks:
            self._cache.clear()  # blocks changed (another batch size): the cache holds one blocking
            self._cache_chunks = ch
        n_f, v = len(self.freqs), self.n_voxels
        for vlo in range(0, v, ch.voxel):
            vhi = min(v, vlo + ch.voxel)
            vox = self._voxels(vlo, vhi)
            for flo in range(0, n_f, ch.freq):
                yield vlo, vhi, vox, flo, min(n_f, flo + ch.freq)

    def _scratch(self, name: str, shape: tuple) -> torch.Tensor:
        """A reused work array of ``shape``: fresh block-sized temporaries are new mmaps whose page
        faults can cost as much as the arithmetic."""
        n = math.prod(shape)
        buf = self._work.get(name)
        if buf is None or buf.numel() < n:
            buf = self._work[name] = torch.empty(n, dtype=self.dtype, device=self.device)
        return buf[:n].view(shape)

    def _pair(self, kt: str, kr: str, vlo: int, flo: int, fhi: int, vox: torch.Tensor):
        """(transmit, receive) factors of one block, from the seeds on a uniform band (Kirchhoff's
        weight is not a pure exponential in k: evaluated directly). With ``cache_factors`` the forward
        seeds (uniform band) or the forward factors (other bands) are kept per block."""
        k = self._k[flo:fhi]
        cache = self.cache_factors and kt == "forward_t"
        if self._dk is None or kt == "kirchhoff":
            key = (vlo, flo, fhi, vox.shape[0])
            if cache and key in self._cache:
                return self._cache[key]
            pair = self._factor(kt, k, self._tx, vox), self._factor(kr, k, self._rx, vox)
            if cache:
                self._cache[key] = pair
            return pair
        key = (vlo, vox.shape[0])
        seeds = self._cache.get(key) if cache else None
        if seeds is None:
            seeds = (self._seeds(kt, self._tx, vox), self._seeds(kr, self._rx, vox))
            if cache:
                self._cache[key] = seeds
        return (self._expand(seeds[0], flo, self._scratch("t", (len(k), len(self.tx), len(vox)))),
                self._expand(seeds[1], flo, self._scratch("r", (len(k), len(self.rx), len(vox)))))

    def _apply_forward(self, x: torch.Tensor, kt: str, kr: str) -> torch.Tensor:
        b = x.shape[0]
        y = torch.zeros((b, *self.data_shape), dtype=self.dtype, device=self.device)
        for vlo, vhi, vox, flo, fhi in self._blocks(b):
            ht, hr = self._pair(kt, kr, vlo, flo, fhi, vox)  # (Fc, T, Vc), (Fc, R, Vc)
            fc, t = ht.shape[:2]
            w = torch.mul(ht[:, None], x[None, :, None, vlo:vhi], out=self._scratch("w", (fc, b, t, vhi - vlo)))
            yb = torch.bmm(w.view(fc, b * t, -1), hr.transpose(1, 2), out=self._scratch("y", (fc, b * t, hr.shape[1])))
            y[:, flo:fhi] += yb.view(fc, b, t, -1).transpose(0, 1)  # (Fc, B T, Vc) @ (Fc, Vc, R)
        return y

    def _apply_back(self, y: torch.Tensor, kt: str, kr: str) -> torch.Tensor:
        b = y.shape[0]
        x = torch.zeros((b, self.n_voxels), dtype=self.dtype, device=self.device)
        for vlo, vhi, vox, flo, fhi in self._blocks(b):
            bt, br = self._pair(kt, kr, vlo, flo, fhi, vox)  # (Fc, T, Vc), (Fc, R, Vc)
            fc, t = bt.shape[:2]
            yb = y[:, flo:fhi].transpose(0, 1).reshape(fc, b * t, -1)  # (Fc, B T, R)
            z = torch.bmm(yb, br, out=self._scratch("w", (fc, b * t, vhi - vlo))).view(fc, b, t, -1)  # (Fc, B, T, Vc)
            x[:, vlo:vhi] += z.mul_(bt[:, None]).sum(dim=(0, 2))
        return x

    def __repr__(self) -> str:
        return (f"MimoBorn(T={len(self.tx)}, R={len(self.rx)}, F={len(self.freqs)} "
                f"[{self.freqs[0] / 1e9:g}-{self.freqs[-1] / 1e9:g} GHz], grid={self.image_shape}, "
                f"{str(self.dtype).replace('torch.', '')}, {self.device})")


def reference_operator(n_freqs: int = 15, *, dtype: torch.dtype = torch.complex128, device="cpu",
                       grid_shape: tuple[int, int, int] = (49, 25, 25), **kwargs) -> MimoBorn:
    """The METHODS.md reference system: cross array, 4-16 GHz, 25 x 25 x 49 grid (z, y, x)."""
    tx, rx = cross_array()
    return MimoBorn(tx, rx, frequencies(n=n_freqs), reference_grid(*grid_shape), dtype=dtype, device=device, **kwargs)
