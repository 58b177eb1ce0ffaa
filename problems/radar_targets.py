"""Synthetic 3D extended radar targets: random unions of primitives with random complex phase.

The generator of the learned near-field MIMO imaging papers is unpublished; this one is designed
for this package. A scene is drawn from a numpy ``Generator`` (so it depends only on the sample
seed):

* ``n`` primitives, n uniform in [min_shapes, max_shapes], each of a kind drawn uniformly from
  ``KINDS``: ``box`` (rotated cuboid), ``sphere``, ``ellipsoid`` (rotated), ``plate`` (a thin
  rotated cuboid, one voxel layer thick along its normal, tilted at most 30 degrees from facing
  the array) and ``letter`` (a 5 x 7 bitmap glyph from ``GLYPHS``, one voxel layer thick, in a
  plane facing the array, rotated about z).
* Sizes: half-extents uniform in [size_min, size_max] metres (default 1.5 to 4.5 x/y voxels);
  centres uniform in the inner 70 % of the image box, so shapes stay mostly inside it.
* Reflectivity: each primitive gets an amplitude (1 for the first, uniform in [0.3, 1] for the
  others) and a uniform random phase in [0, 2 pi); later primitives overwrite earlier ones where
  they overlap (a union with occlusion of values). The scene is then divided by its largest
  magnitude, so max |x| = 1.
* Membership is tested at voxel centres; a primitive that covers no voxel centre sets the voxel
  nearest its centre, so every primitive is visible.

Arrays are (nz, ny, nx) complex128, on the grid of 1-D axes {"z", "y", "x"} in metres.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

KINDS = ("box", "sphere", "ellipsoid", "plate", "letter")

_GLYPH_ROWS = {  # 5 x 7 bitmaps, top row first
    "E": ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
    "F": ["11111", "10000", "10000", "11110", "10000", "10000", "10000"],
    "H": ["10001", "10001", "10001", "11111", "10001", "10001", "10001"],
    "L": ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
    "T": ["11111", "00100", "00100", "00100", "00100", "00100", "00100"],
    "X": ["10001", "10001", "01010", "00100", "01010", "10001", "10001"],
    "Z": ["11111", "00001", "00010", "00100", "01000", "10000", "11111"],
    "K": ["10001", "10010", "10100", "11000", "10100", "10010", "10001"],
    "A": ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
    "U": ["10001", "10001", "10001", "10001", "10001", "10001", "01110"],
}
GLYPHS = {k: np.array([[c == "1" for c in row] for row in rows]) for k, rows in _GLYPH_ROWS.items()}


def _voxel_centres(axes: dict) -> np.ndarray:
    zz, yy, xx = np.meshgrid(axes["z"], axes["y"], axes["x"], indexing="ij")
    return np.stack([xx, yy, zz], -1)  # (nz, ny, nx, 3) as (x, y, z)


def _spacing(a: np.ndarray) -> float:
    return float(np.min(np.diff(a))) if a.size > 1 else 1.0


def _tilt(rng: np.random.Generator, max_deg: float) -> Rotation:
    """A rotation about z (uniform) composed with a tilt of the normal of at most ``max_deg``."""
    axis = rng.normal(size=2)
    axis = np.r_[axis / np.linalg.norm(axis), 0.0]
    tilt = Rotation.from_rotvec(axis * np.deg2rad(rng.uniform(0, max_deg)))
    return tilt * Rotation.from_euler("z", rng.uniform(0, 2 * np.pi))


def primitive_mask(kind: str, rng: np.random.Generator, pts: np.ndarray, axes: dict, centre: np.ndarray,
                   half: np.ndarray) -> np.ndarray:
    """Boolean mask (nz, ny, nx) of one primitive of ``kind`` with half-extents ``half`` (3,) m."""
    dz = _spacing(axes["z"])
    if kind == "sphere":
        return np.linalg.norm(pts - centre, axis=-1) <= half[0]
    rot = Rotation.random(random_state=rng) if kind in ("box", "ellipsoid") else \
        _tilt(rng, 30.0 if kind == "plate" else 0.0)
    local = (pts - centre) @ rot.as_matrix()  # coordinates in the primitive's frame
    if kind == "box":
        return np.all(np.abs(local) <= half, axis=-1)
    if kind == "ellipsoid":
        return np.sum((local / half) ** 2, axis=-1) <= 1.0
    thin = np.abs(local[..., 2]) <= 0.5 * dz + 1e-12
    if kind == "plate":
        return thin & np.all(np.abs(local[..., :2]) <= half[:2], axis=-1)
    if kind == "letter":
        glyph = GLYPHS[sorted(GLYPHS)[rng.integers(len(GLYPHS))]]
        rows, cols = glyph.shape
        h = max(half[0], half[1]) * 1.5  # a glyph needs a few voxels per stroke to stay legible
        u = (local[..., 0] + h * cols / rows) / (2 * h * cols / rows)  # in [0, 1) across the glyph
        v = (h - local[..., 1]) / (2 * h)
        inside = thin & (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
        ci = np.clip((u * cols).astype(int), 0, cols - 1)
        ri = np.clip((v * rows).astype(int), 0, rows - 1)
        return inside & glyph[ri, ci]
    raise ValueError(f"unknown primitive kind {kind!r}; expected one of {', '.join(KINDS)}")


def random_scene(rng: np.random.Generator, axes: dict, *, min_shapes: int = 1, max_shapes: int = 4,
                 kinds: tuple[str, ...] = KINDS, size_min: float | None = None,
                 size_max: float | None = None) -> np.ndarray:
    """One complex reflectivity (nz, ny, nx) drawn as described in the module docstring."""
    pts = _voxel_centres(axes)
    lo = np.array([axes["x"][0], axes["y"][0], axes["z"][0]])
    hi = np.array([axes["x"][-1], axes["y"][-1], axes["z"][-1]])
    dxy = min(_spacing(axes["x"]), _spacing(axes["y"]))
    size_min = 1.5 * dxy if size_min is None else size_min
    size_max = 4.5 * dxy if size_max is None else size_max
    scene = np.zeros(pts.shape[:3], np.complex128)
    for i in range(int(rng.integers(min_shapes, max_shapes + 1))):
        kind = kinds[rng.integers(len(kinds))]
        centre = lo + (hi - lo) * rng.uniform(0.15, 0.85, 3)
        half = rng.uniform(size_min, size_max, 3)
        if kind == "sphere":
            half[:] = half[0]
        mask = primitive_mask(kind, rng, pts, axes, centre, half)
        if not mask.any():  # covers no voxel centre: set the one nearest its centre
            mask[np.unravel_index(np.argmin(np.linalg.norm(pts - centre, axis=-1)), mask.shape)] = True
        amplitude = 1.0 if i == 0 else rng.uniform(0.3, 1.0)
        scene[mask] = amplitude * np.exp(1j * rng.uniform(0, 2 * np.pi))
    return scene / np.abs(scene).max()
