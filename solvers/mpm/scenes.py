"""MPM scenes: bodies in a box, their particles, and the scene families used by the datasets.

A :class:`Scene` is the box ``bounds`` (d, 2) (walls "slip" or "sticky", or "none"), a grid
spacing ``dx``, a list of materials, and bodies (a shape, a material id, an initial velocity).
``scene.particles(spacing=.. | n=.., rng=..)`` samples the bodies into particle arrays
(``bodies.sample``; with ``n`` the particles are shared among the bodies in proportion to their
volumes, so every particle carries about the same volume), ``scene.solver(dt)`` builds the
:class:`~sciops.solvers.mpm.solver.MPMSolver` (dt defaults to its largest stable step) and
``scene.simulate(frames, stride, ...)`` runs both.

Families (``FAMILIES``; each takes ``dim`` and an optional numpy Generator ``rng``: None gives the
deterministic mid-range scene, a Generator a random one; all in the unit box [0, 1]^d, vertical
axis last):

* ``falling_blocks``: ``count`` boxes of sides 0.1-0.25 m in separate columns of the box, bottoms
  at 0.3-0.6 m, initial velocities up to 1 m/s per component.
* ``colliding_spheres``: two spheres (disks in 2D) of radius 0.08-0.13 m flying towards each other
  at 1-3 m/s each, centres at heights 0.35-0.65 m.
* ``dam_break``: a fluid column of width 0.2-0.4 m and height 0.3-0.6 m against the wall x = 0.
* ``column_collapse``: a granular column of width ``width`` (0.1-0.2 m) and height
  ``aspect_ratio`` x width (aspect 0.5-2.0) against the wall x = 0.
* ``mesh_body``: the body read by meshio from ``path`` scaled to fit in 0.4 m and dropped from
  the box centre.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sciops.solvers.mpm.bodies import Box, MeshShape, Shape, Sphere, sample
from sciops.solvers.mpm.materials import Material, material
from sciops.solvers.mpm.solver import MPMSolver, MPMState, stable_time_step


@dataclass
class Body:
    shape: Shape
    material: int = 0               # index into the scene's materials
    velocity: np.ndarray | None = None  # (d,) m/s, default at rest


@dataclass
class Scene:
    bounds: np.ndarray
    dx: float
    materials: list[Material]
    bodies: list[Body] = field(default_factory=list)
    boundary: str = "slip"
    gravity: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(np.asarray(self.bounds).shape[0])

    def particles(self, *, spacing: float | None = None, n: int | None = None,
                  rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Particle arrays of all bodies: ``x`` (P, d), ``v`` (P, d), ``material`` (P,) int64 and
        ``volume`` (P,) m^d. Default: the lattice of spacing dx / 2 (2^d particles per cell)."""
        if not self.bodies:
            raise ValueError("the scene has no bodies; expected at least one body")
        if spacing is None and n is None:
            spacing = self.dx / 2
        counts = [None] * len(self.bodies)
        if n is not None:
            vols = np.array([b.shape.volume for b in self.bodies])
            if int(n) < len(self.bodies):
                raise ValueError(f"n={n} particles for {len(self.bodies)} bodies; expected at least one per body")
            share = vols / vols.sum() * (int(n) - len(self.bodies))
            counts = 1 + np.floor(share).astype(int)
            extra = int(n) - counts.sum()
            counts[np.argsort(-(share - np.floor(share)))[:extra]] += 1  # largest remainders
        parts = []
        for body, count in zip(self.bodies, counts):
            if body.shape.dim != self.dim:
                raise ValueError(f"a {body.shape.dim}D body in a {self.dim}D scene; expected {self.dim}D bodies")
            x, vol = sample(body.shape, spacing=spacing, n=None if count is None else int(count), rng=rng)
            v = np.zeros(self.dim) if body.velocity is None else np.asarray(body.velocity, dtype=np.float64)
            parts.append((x, np.broadcast_to(v, x.shape), np.full(len(x), body.material, np.int64), vol))
        return {k: np.concatenate([p[i] for p in parts]) for i, k in enumerate(("x", "v", "material", "volume"))}

    def solver(self, dt: float | None = None, *, device=None, dtype=torch.float64, backend=None) -> MPMSolver:
        if dt is None:
            dt = stable_time_step(self.materials, self.dx)
        return MPMSolver(self.bounds, self.dx, dt, self.materials, gravity=self.gravity, boundary=self.boundary,
                         device=device, dtype=dtype, backend=backend)

    def initial_state(self, solver: MPMSolver, **sampling) -> MPMState:
        p = self.particles(**sampling)
        return solver.state(p["x"], p["v"], p["material"], p["volume"])

    def simulate(self, frames: int, stride: int = 1, *, dt: float | None = None, device=None,
                 dtype=torch.float64, backend=None, **sampling):
        """(positions (frames, P, d) numpy, the particle dict) of a run from the sampled bodies."""
        solver = self.solver(dt, device=device, dtype=dtype, backend=backend)
        p = self.particles(**sampling)
        state = solver.state(p["x"], p["v"], p["material"], p["volume"])
        return solver.run(state, frames, stride).cpu().numpy(), p


# ------------------------------------------------------------------------------------------ families
def _unit_box(dim: int) -> np.ndarray:
    if dim not in (2, 3):
        raise ValueError(f"dim={dim!r} is not valid; expected 2 or 3")
    return np.array([[0.0, 1.0]] * dim)


def _draw(rng, lo: float, hi: float, size=None):
    """Uniform in [lo, hi] from rng, or the midpoint when rng is None."""
    if rng is None:
        return np.full(size, 0.5 * (lo + hi)) if size is not None else 0.5 * (lo + hi)
    return rng.uniform(lo, hi, size)


def _materials(kind) -> list[Material]:
    return [kind] if isinstance(kind, Material) else [material(kind)]


def falling_blocks(dim: int = 2, kind="elastic", rng=None, *, count: int = 2, dx: float = 1 / 64) -> Scene:
    bounds = _unit_box(dim)
    bodies = []
    width = 1.0 / count
    for k in range(count):
        side = _draw(rng, 0.1, min(0.25, 0.9 * width), dim)
        lo = np.empty(dim)
        lo[0] = k * width + _draw(rng, 0.02, 0.98 * width - side[0] - 0.02) if width - side[0] > 0.05 else k * width
        lo[1:-1] = _draw(rng, 0.05, 0.95 - side[1:-1], dim - 2) if dim == 3 else lo[1:-1]
        lo[-1] = _draw(rng, 0.3, 0.6)
        velocity = _draw(rng, -1.0, 1.0, dim) if rng is not None else np.zeros(dim)
        bodies.append(Body(Box(lo, lo + side), 0, velocity))
    return Scene(bounds, dx, _materials(kind), bodies)


def colliding_spheres(dim: int = 2, kind="elastic", rng=None, *, dx: float = 1 / 64) -> Scene:
    bounds = _unit_box(dim)
    bodies = []
    for side in (-1, 1):
        r = _draw(rng, 0.08, 0.13)
        centre = np.full(dim, 0.5)
        centre[0] = 0.5 + side * _draw(rng, 0.2, 0.3)
        centre[-1] = _draw(rng, 0.35, 0.65)
        velocity = np.zeros(dim)
        velocity[0] = -side * _draw(rng, 1.0, 3.0)
        bodies.append(Body(Sphere(centre, r), 0, velocity))
    return Scene(bounds, dx, _materials(kind), bodies)


def dam_break(dim: int = 2, kind="fluid", rng=None, *, dx: float = 1 / 64) -> Scene:
    bounds = _unit_box(dim)
    hi = np.empty(dim)
    hi[0] = _draw(rng, 0.2, 0.4)
    hi[1:-1] = _draw(rng, 0.3, 1.0) if dim == 3 else hi[1:-1]
    hi[-1] = _draw(rng, 0.3, 0.6)
    return Scene(bounds, dx, _materials(kind), [Body(Box(np.zeros(dim), hi))])


def column_collapse(dim: int = 2, kind="sand", rng=None, *, aspect_ratio: float | None = None,
                    width: float | None = None, dx: float = 1 / 64) -> Scene:
    bounds = _unit_box(dim)
    w = _draw(rng, 0.1, 0.2) if width is None else float(width)
    a = _draw(rng, 0.5, 2.0) if aspect_ratio is None else float(aspect_ratio)
    hi = np.full(dim, w)
    hi[-1] = a * w
    if dim == 3:
        hi[1] = 1.0  # a slab across the box: the plane-strain collapse of the experiments
    return Scene(bounds, dx, _materials(kind), [Body(Box(np.zeros(dim), hi))])


def mesh_body(path, dim: int = 3, kind="elastic", rng=None, *, size: float = 0.4, dx: float = 1 / 64) -> Scene:
    bounds = _unit_box(dim)
    raw = MeshShape(path, dim)
    scale = size / float(np.max(raw.hi - raw.lo))
    centre = np.full(dim, 0.5)
    if rng is not None:
        centre[:-1] += rng.uniform(-0.2, 0.2, dim - 1)
    shape = MeshShape(path, dim, scale=scale, offset=centre - scale * 0.5 * (raw.lo + raw.hi))
    return Scene(bounds, dx, _materials(kind), [Body(shape)])


FAMILIES = {
    "falling_blocks": falling_blocks,
    "colliding_spheres": colliding_spheres,
    "dam_break": dam_break,
    "column_collapse": column_collapse,
}
