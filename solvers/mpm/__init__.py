"""MLS-MPM (moving least squares material point method) with APIC transfers, 2D and 3D.

Modules: ``transfers`` (grid, B-spline stencils, P2G / G2P), ``materials`` (fixed corotated elastic,
weakly compressible fluid, Drucker-Prager sand, von Mises plasticine), ``solver`` (the time stepper
and its stability checks), ``backends`` (which step runs it: ``"warp"``, compiled kernels on CPU and
CUDA in ``warp_backend``, or ``"torch"``, the reference of ``transfers`` and ``materials``),
``bodies`` (shapes, meshio meshes and point clouds, particle sampling), ``scenes`` (bodies in a box
and the scene families of the ``particles`` problem), ``statistics`` (GNS velocity / acceleration
statistics of trajectories).

Quick use::

    from sciops.solvers import mpm
    scene = mpm.column_collapse(dim=2, aspect_ratio=1.0)
    positions, particles = scene.simulate(frames=50, stride=20)   # (50, P, 2) numpy
"""
from sciops.solvers.mpm import backends
from sciops.solvers.mpm.backends import BACKENDS
from sciops.solvers.mpm.bodies import Box, MeshShape, Sphere, sample, winding_number
from sciops.solvers.mpm.materials import KINDS, Material, material
from sciops.solvers.mpm.scenes import (
    FAMILIES,
    Body,
    Scene,
    colliding_spheres,
    column_collapse,
    dam_break,
    falling_blocks,
    mesh_body,
)
from sciops.solvers.mpm.solver import (
    BOUNDARIES,
    MAX_COURANT,
    MAX_WAVE_COURANT,
    MPMSolver,
    MPMStabilityError,
    MPMState,
    stable_time_step,
)
from sciops.solvers.mpm.statistics import gns_statistics

__all__ = [
    "BACKENDS", "BOUNDARIES", "Body", "Box", "FAMILIES", "KINDS", "MAX_COURANT", "MAX_WAVE_COURANT", "MPMSolver",
    "MPMStabilityError", "MPMState", "Material", "MeshShape", "Scene", "Sphere", "colliding_spheres",
    "column_collapse", "dam_break", "falling_blocks", "gns_statistics", "material", "mesh_body", "sample",
    "backends", "stable_time_step", "winding_number",
]
