"""Initial bodies of MPM scenes: shapes and their sampling into particles.

Shapes (2D or 3D, metres): :class:`Box`, :class:`Sphere` (a disk in 2D) and :class:`MeshShape`,
any mesh or point cloud that meshio reads:

* volume cells (tetrahedra in 3D; triangles or quads in 2D): particles are drawn uniformly in the
  cells (cell chosen with probability proportional to its volume, then a uniform barycentric point);
* a closed surface (triangles or quads in 3D; line segments in 2D): a point is inside when its
  generalised winding number (sum of signed solid angles, Jacobson et al. 2013) exceeds 1/2, so
  lattice or rejection sampling works as for the analytic shapes;
* points only (a point cloud, or vertex cells): the points themselves are the particles, each with
  the volume h^d, h the mean nearest-neighbour distance (scipy cKDTree).

2D meshes are read from the first two coordinates (a third coordinate must be constant).

Sampling (:func:`sample`): ``spacing=h`` puts particles on the cell-centred lattice of spacing h
inside the shape, each with volume h^d (the usual MPM initialisation, h = dx / 2); ``n=N`` with a
numpy Generator draws N points uniformly inside (rejection sampling in the bounding box), each with
volume shape.volume / N (the random initialisation of the GNS datasets). An empty result is a
ValueError.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

MAX_REJECTION_ROUNDS = 1000
_WINDING_CHUNK = 2**22  # points x faces evaluated at once


class Shape:
    """A region of R^d: bounding box ``lo``, ``hi`` (d,), ``volume`` (m^d) and ``contains``."""

    dim: int
    lo: np.ndarray
    hi: np.ndarray
    volume: float

    def contains(self, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def translated(self, offset) -> "Shape":
        raise NotImplementedError


def _vector(name: str, value, dim: int | None = None) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.size not in ((2, 3) if dim is None else (dim,)) or not np.isfinite(v).all():
        want = "2 or 3" if dim is None else str(dim)
        raise ValueError(f"{name}={np.asarray(value).tolist()} is not valid; expected {want} finite coordinates")
    return v


class Box(Shape):
    """The axis-aligned box [lo, hi]."""

    def __init__(self, lo, hi) -> None:
        self.lo, self.hi = _vector("lo", lo), _vector("hi", hi, len(_vector("lo", lo)))
        if not (self.hi > self.lo).all():
            raise ValueError(f"box lo={self.lo.tolist()} hi={self.hi.tolist()} is empty; expected lo < hi on every axis")
        self.dim = len(self.lo)
        self.volume = float(np.prod(self.hi - self.lo))

    def contains(self, points):
        return ((points >= self.lo) & (points <= self.hi)).all(-1)

    def translated(self, offset):
        return Box(self.lo + offset, self.hi + offset)


class Sphere(Shape):
    """The ball |x - center| <= radius (a disk in 2D)."""

    def __init__(self, center, radius: float) -> None:
        self.center = _vector("center", center)
        self.radius = float(radius)
        if not (self.radius > 0 and math.isfinite(self.radius)):
            raise ValueError(f"sphere radius={radius!r} is not valid; expected a finite radius > 0")
        self.dim = len(self.center)
        self.lo, self.hi = self.center - self.radius, self.center + self.radius
        self.volume = math.pi * self.radius ** 2 if self.dim == 2 else 4.0 / 3.0 * math.pi * self.radius ** 3

    def contains(self, points):
        return ((points - self.center) ** 2).sum(-1) <= self.radius ** 2

    def translated(self, offset):
        return Sphere(self.center + offset, self.radius)


# ------------------------------------------------------------------------------------------- meshes
_VOLUME_CELLS = {2: ("triangle", "quad"), 3: ("tetra",)}
_SURFACE_CELLS = {2: ("line",), 3: ("triangle", "quad")}


def _simplices(cells, kinds) -> np.ndarray:
    """Simplices (triangles from quads split in two) of the cell blocks of the given kinds."""
    out = []
    for block in cells:
        if block.type not in kinds:
            continue
        data = np.asarray(block.data)
        out.append(np.concatenate([data[:, [0, 1, 2]], data[:, [0, 2, 3]]]) if block.type == "quad" else data)
    return np.concatenate(out) if out else np.zeros((0, 0), np.int64)


class MeshShape(Shape):
    """A body read by meshio from ``path`` (or a ``meshio.Mesh``), scaled then translated."""

    def __init__(self, source, dim: int = 3, scale: float = 1.0, offset=None) -> None:
        import meshio

        if dim not in (2, 3):
            raise ValueError(f"dim={dim!r} is not valid; expected 2 or 3")
        if isinstance(source, meshio.Mesh):
            mesh, name = source, "the mesh"
        else:
            path = Path(os.fspath(source))
            if not path.is_file():
                raise FileNotFoundError(f"mesh file {path} does not exist")
            try:
                mesh = meshio.read(path)
            except Exception as exc:  # meshio raises ReadError, KeyError, ValueError ... by format
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ValueError(f"cannot read mesh {path} with meshio ({reason}); expected a mesh or point-cloud "
                                 f"file meshio reads (.vtu, .vtk, .msh, .obj, .stl, .ply, .off, .xdmf, ...)") from None
            name = str(path)
        pts = np.asarray(mesh.points, dtype=np.float64)
        if pts.ndim != 2 or len(pts) == 0 or pts.shape[1] < dim:
            raise ValueError(f"{name} has no points in {dim}D (points of shape {pts.shape}); expected a non-empty body")
        if dim == 2 and pts.shape[1] > 2:
            if np.ptp(pts[:, 2]) > 1e-9 * max(np.ptp(pts[:, :2]), 1.0):
                raise ValueError(f"{name} is not planar (its third coordinate varies); expected a 2D mesh")
        pts = pts[:, :dim] * float(scale) + (np.zeros(dim) if offset is None else _vector("offset", offset, dim))
        self.dim, self.name, self.points = dim, name, pts
        self.volume_cells = _simplices(mesh.cells, _VOLUME_CELLS[dim])
        self.faces = _simplices(mesh.cells, _SURFACE_CELLS[dim]) if not self.volume_cells.size else self.volume_cells[:0]
        if self.volume_cells.size:
            self.mode = "volume"
            self.cell_volumes = _simplex_volumes(pts[self.volume_cells])
            used = np.unique(self.volume_cells)
            self.lo, self.hi = pts[used].min(0), pts[used].max(0)
            self.volume = float(self.cell_volumes.sum())
        elif self.faces.size:
            self.mode = "surface"
            used = np.unique(self.faces)
            self.lo, self.hi = pts[used].min(0), pts[used].max(0)
            self.volume = float(np.prod(self.hi - self.lo)) * float(self._inside_fraction())
        else:
            self.mode = "points"
            self.lo, self.hi = pts.min(0), pts.max(0)
            self.volume = float(len(pts)) * _point_spacing(pts) ** dim
        if not self.volume > 0:
            raise ValueError(f"{name} encloses no volume ({self.mode} body); expected a non-empty {dim}D body")

    def _inside_fraction(self, samples: int = 4096) -> float:
        rng = np.random.default_rng(0)
        return self.contains(self.lo + (self.hi - self.lo) * rng.random((samples, self.dim))).mean()

    def contains(self, points):
        if self.mode == "surface":
            return np.abs(winding_number(points, self.points, self.faces)) > 0.5
        if self.mode == "volume":
            return _in_simplices(points, self.points[self.volume_cells])
        raise ValueError(f"{self.name} is a point cloud; its points are the particles (no inside test)")


def _simplex_volumes(simplices: np.ndarray) -> np.ndarray:
    """Volumes of simplices (C, d + 1, d)."""
    edges = simplices[:, 1:] - simplices[:, :1]
    return np.abs(np.linalg.det(edges)) / math.factorial(simplices.shape[-1])


def _in_simplices(points: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Points (n, d) inside any simplex (C, d + 1, d), by barycentric coordinates (chunked)."""
    edges = simplices[:, 1:] - simplices[:, :1]
    keep = np.abs(np.linalg.det(edges)) > 0  # degenerate cells hold no volume
    simplices, edges = simplices[keep], edges[keep]
    inv = np.linalg.inv(edges.transpose(0, 2, 1))  # rel = sum_j lam_j e_j
    inside = np.zeros(len(points), bool)
    step = max(1, _WINDING_CHUNK // max(len(simplices), 1))
    for i in range(0, len(points), step):
        rel = points[i:i + step, None, :] - simplices[None, :, 0, :]
        lam = np.einsum("cij,ncj->nci", inv, rel)
        inside[i:i + step] = ((lam >= -1e-12).all(-1) & (lam.sum(-1) <= 1 + 1e-12)).any(-1)
    return inside


def winding_number(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of a closed curve (2D, segments) or surface (3D, triangles)
    around points (n, d): about +-1 inside, 0 outside (Jacobson, Kavan, Sorkine-Hornung 2013)."""
    out = np.zeros(len(points))
    step = max(1, _WINDING_CHUNK // max(len(faces), 1))
    tri = vertices[faces]  # (F, k, d)
    for i in range(0, len(points), step):
        rel = tri[None] - points[i:i + step, None, None, :]  # (n, F, k, d)
        if points.shape[1] == 2:
            a, b = rel[:, :, 0], rel[:, :, 1]
            angle = np.arctan2(a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0], (a * b).sum(-1))
            out[i:i + step] = angle.sum(-1) / (2 * np.pi)
        else:
            a, b, c = rel[:, :, 0], rel[:, :, 1], rel[:, :, 2]
            la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))
            det = (a * np.cross(b, c)).sum(-1)
            den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
            out[i:i + step] = 2 * np.arctan2(det, den).sum(-1) / (4 * np.pi)
    return out


def _point_spacing(points: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    if len(points) < 2:
        raise ValueError("a point cloud needs at least 2 points to estimate its particle volume")
    dist, _ = cKDTree(points).query(points, k=2)
    return float(np.mean(dist[:, 1]))


# ------------------------------------------------------------------------------------------- sampling
def sample(shape: Shape, *, spacing: float | None = None, n: int | None = None,
           rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Particles (P, d) and their volumes (P,) filling ``shape``: a lattice of ``spacing`` or ``n``
    uniform random points drawn with ``rng`` (see the module docstring)."""
    if (spacing is None) == (n is None):
        raise ValueError("pass exactly one of spacing (lattice) or n (random points)")
    if isinstance(shape, MeshShape) and shape.mode == "points":
        pts = shape.points
        if n is not None and n < len(pts):
            pts = pts[np.sort((rng or np.random.default_rng(0)).choice(len(pts), n, replace=False))]
        return pts.copy(), np.full(len(pts), shape.volume / len(pts))
    if spacing is not None:
        h = float(spacing)
        if not (h > 0 and math.isfinite(h)):
            raise ValueError(f"spacing={spacing!r} is not valid; expected a finite spacing > 0")
        counts = np.maximum(np.floor((shape.hi - shape.lo) / h + 1e-9).astype(int), 1)
        if np.prod(counts.astype(float)) > 5e7:
            raise ValueError(f"spacing={h:g} gives {np.prod(counts.astype(float)):.3g} lattice points; expected at most 5e7")
        start = shape.lo + 0.5 * ((shape.hi - shape.lo) - (counts - 1) * h)  # centred in the bounding box
        axes = [start[a] + h * np.arange(counts[a]) for a in range(shape.dim)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, shape.dim)
        pts = grid[shape.contains(grid)]
        if len(pts) == 0:
            raise ValueError(f"the body ({type(shape).__name__}, volume {shape.volume:.3g}) holds no particle at "
                             f"spacing {h:g}; expected a body larger than the particle spacing")
        return pts, np.full(len(pts), h ** shape.dim)
    n = int(n)
    if n < 1:
        raise ValueError(f"n={n} particles for a body; expected n >= 1 (an empty body)")
    rng = rng if rng is not None else np.random.default_rng(0)
    if isinstance(shape, MeshShape) and shape.mode == "volume":
        cells = rng.choice(len(shape.cell_volumes), n, p=shape.cell_volumes / shape.cell_volumes.sum())
        bary = -np.log(rng.random((n, shape.dim + 1)))
        bary /= bary.sum(1, keepdims=True)
        pts = np.einsum("nk,nkd->nd", bary, shape.points[shape.volume_cells[cells]])
        return pts, np.full(n, shape.volume / n)
    chunks, found = [], 0
    for _ in range(MAX_REJECTION_ROUNDS):
        cand = shape.lo + (shape.hi - shape.lo) * rng.random((max(2 * (n - found), 64), shape.dim))
        keep = cand[shape.contains(cand)]
        chunks.append(keep)
        found += len(keep)
        if found >= n:
            return np.concatenate(chunks)[:n], np.full(n, shape.volume / n)
    raise ValueError(f"could not draw {n} points inside the body ({type(shape).__name__}); it fills too little of "
                     f"its bounding box")
