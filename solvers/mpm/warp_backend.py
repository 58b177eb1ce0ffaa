"""The compiled MLS-MPM step: NVIDIA Warp kernels for P2G, the grid update and G2P with the materials.

The same physics as the torch reference (``transfers``, ``materials``, ``solver``), one thread per
particle or node: ``p2g`` scatters mass and APIC momentum with atomic adds, ``grid`` divides by
mass, adds gravity, applies the walls and records the largest speed (and any non-finite value) for
the stability check, ``g2p`` gathers v and C, moves the particle, clamps it into the box (or counts
it out, ``boundary="none"``), updates F and runs the constitutive model of its material (fixed
corotated, fluid, Drucker-Prager sand, von Mises plasticine), leaving the Kirchhoff stress for the
next step. Kernels are built per (dim, dtype) and read and write the state's torch tensors in place
(``wp.from_torch``, no copies), on CPU or CUDA. The 3D rotation of the elastic model is the scaled
Newton iteration of ``materials.polar_rotation`` (the SVD for inverted particles); 3x3 SVDs (sand,
plasticine) are Warp's ``svd3`` in float64 also for float32 particles, as its float32 version is
off by ~1e-3 on random F. Results agree with the torch backend to rounding. The CPU launch runs
the particles in order, so a CPU run is bit-reproducible; CUDA atomics add in varying order.
Local variables that loops change are declared ``int(0)``, as Warp's code generation requires.

Why Warp: of the compiled options tried (numba ``@njit``, warp-lang, ``torch.compile`` of the
torch transfers), numba was the fastest on CPU but its CUDA target is a separate package with
separately written kernels; Warp runs one kernel source on CPU and CUDA above Taichi's speed, is
the library of NCLaw and warp-mpm, actively maintained, with svd3 and atomics built in (its CPU
launches are single-threaded); ``torch.compile`` was slower and paid a long first compile. So Warp
is the compiled backend. The measurements are on the documentation's particles benchmark page
(docs/benchmarks/particles.md).
"""
# ruff: noqa: UP018

import contextlib
import functools
import math

import numpy as np
import torch

from sciops.solvers.mpm import materials as M
from sciops.solvers.mpm.backends import _warp
from sciops.solvers.mpm.transfers import GHOST

KIND_ID = {k: i for i, k in enumerate(M.KINDS)}
BOUNDARY_ID = {"slip": 0, "sticky": 1, "none": 2}


@functools.cache
def kernels(dim: int, double: bool):
    """The (p2g, grid, g2p) kernels for ``dim`` = 2 or 3 and float64 (``double``) or float32."""
    wp = _warp()
    scalar = wp.float64 if double else wp.float32
    vec = wp.types.vector(dim, scalar)
    mat = wp.types.matrix((dim, dim), scalar)
    wmat = wp.types.matrix((3, dim), scalar)
    vec3d, mat3d = wp.vec3d, wp.mat33d
    K = 3 if dim == 3 else 1
    fdim = float(dim)
    tiny = float(np.finfo(np.float64 if double else np.float32).tiny)
    min_sigma = M.MIN_SINGULAR_VALUE
    root = math.sqrt(2.0 / 3.0)
    newton_iterations = 12
    newton_tol = 8 * float(np.finfo(np.float64 if double else np.float32).eps)

    @wp.func
    def stencil(xp: vec, origin: vec, dx: scalar, s0: int, s1: int, s2: int):
        xi = (xp - origin) * (scalar(1.0) / dx)
        fx = vec()
        w = wmat()
        node = int(0)
        for a in range(dim):
            b = wp.floor(xi[a] - scalar(0.5))
            f = xi[a] - b
            fx[a] = f
            w[0, a] = scalar(0.5) * (scalar(1.5) - f) * (scalar(1.5) - f)
            w[1, a] = scalar(0.75) - (f - scalar(1.0)) * (f - scalar(1.0))
            w[2, a] = scalar(0.5) * (f - scalar(0.5)) * (f - scalar(0.5))
            stride = s0
            if a == 1:
                stride = s1
            if a == 2:
                stride = s2
            node += int(b) * stride
        return fx, w, node

    @wp.func
    def offset(i: int, j: int, k: int, fx: vec, w: wmat):
        d = vec()
        d[0] = scalar(i) - fx[0]
        d[1] = scalar(j) - fx[1]
        weight = w[i, 0] * w[j, 1]
        if wp.static(dim == 3):
            d[2] = scalar(k) - fx[2]
            weight = weight * w[k, 2]
        return d, weight

    @wp.func
    def rot2(angle: scalar):
        c = wp.cos(angle)
        s = wp.sin(angle)
        return mat(c, -s, s, c)

    @wp.func
    def svd(F: mat):
        """F = U diag(sigma) V^T, det U = det V = +1 (a reflection goes into a sigma)."""
        U = mat()
        sigma = vec()
        V = mat()
        if wp.static(dim == 2):
            e = scalar(0.5) * (F[0, 0] + F[1, 1])
            f = scalar(0.5) * (F[0, 0] - F[1, 1])
            g = scalar(0.5) * (F[1, 0] + F[0, 1])
            h = scalar(0.5) * (F[1, 0] - F[0, 1])
            q = wp.sqrt(e * e + h * h)
            r = wp.sqrt(f * f + g * g)
            a1 = wp.atan2(g, f)
            a2 = wp.atan2(h, e)
            U = rot2(scalar(0.5) * (a2 + a1))
            sigma = vec(q + r, q - r)
            V = wp.transpose(rot2(scalar(0.5) * (a2 - a1)))
        else:
            Fd = mat3d()
            for a in range(3):
                for b in range(3):
                    Fd[a, b] = wp.float64(F[a, b])
            Ud = mat3d()
            sd = vec3d()
            Vd = mat3d()
            wp.svd3(Fd, Ud, sd, Vd)
            for a in range(3):
                sigma[a] = scalar(sd[a])
                for b in range(3):
                    U[a, b] = scalar(Ud[a, b])
                    V[a, b] = scalar(Vd[a, b])
        return U, sigma, V

    @wp.func
    def rotation(F: mat):
        """R of the polar decomposition F = R S as ``materials.polar_rotation`` finds it."""
        if wp.static(dim == 2):
            c = F[0, 0] + F[1, 1]
            s = F[1, 0] - F[0, 1]
            r = wp.sqrt(c * c + s * s)
            if r == scalar(0.0):
                return wp.identity(n=2, dtype=scalar)
            return mat(c / r, -s / r, s / r, c / r)
        else:
            if wp.determinant(F) <= scalar(0.0):
                U, sigma, V = svd(F)
                return U @ wp.transpose(V)
            X = F
            it = int(0)
            while it < newton_iterations:
                inv_t = wp.transpose(wp.inverse(X))
                gamma = wp.sqrt(wp.sqrt(wp.ddot(inv_t, inv_t) / wp.ddot(X, X)))
                X_new = scalar(0.5) * (gamma * X + inv_t / gamma)
                change = scalar(0.0)
                for a in range(3):
                    for b in range(3):
                        change = wp.max(change, wp.abs(X_new[a, b] - X[a, b]))
                X = X_new
                it += 1
                if not change > scalar(newton_tol):
                    it = newton_iterations
            return X

    @wp.func
    def hencky(U: mat, V: mat, eps: vec, mu: scalar, lam: scalar):
        """(U diag(exp eps) V^T, U (2 mu eps + lam tr(eps) I) U^T)."""
        tr = scalar(0.0)
        for a in range(dim):
            tr += eps[a]
        stretch = vec()
        principal = vec()
        for a in range(dim):
            stretch[a] = wp.exp(eps[a])
            principal[a] = scalar(2.0) * mu * eps[a] + lam * tr
        return U @ wp.diag(stretch) @ wp.transpose(V), U @ wp.diag(principal) @ wp.transpose(U)

    @wp.func
    def constitutive(F: mat, kind: int, mu: scalar, lam: scalar, extra: scalar):
        """(projected F, Kirchhoff stress) of one particle (``materials``)."""
        eye = wp.identity(n=dim, dtype=scalar)
        J = wp.determinant(F)
        if kind == 1:
            return wp.pow(wp.max(J, scalar(1e-6)), scalar(1.0) / scalar(fdim)) * eye, lam * (J - scalar(1.0)) * J * eye
        if kind == 0:
            R = rotation(F)
            return F, scalar(2.0) * mu * (F - R) @ wp.transpose(F) + lam * (J - scalar(1.0)) * J * eye
        U, sigma, V = svd(F)
        eps = vec()
        tr = scalar(0.0)
        for a in range(dim):
            eps[a] = wp.log(wp.max(sigma[a], scalar(min_sigma)))
            tr += eps[a]
        dev = eps - (tr / scalar(fdim)) * vec(scalar(1.0))
        norm = wp.length(dev)
        safe = wp.max(norm, scalar(tiny))
        if kind == 2:
            dgamma = norm + (scalar(fdim) * lam + scalar(2.0) * mu) / (scalar(2.0) * mu) * tr * extra
            if tr > scalar(0.0) or norm == scalar(0.0):
                eps = vec()
            elif dgamma > scalar(0.0):
                eps = eps - (dgamma / safe) * dev
        else:
            dgamma = norm - scalar(root) * extra / (scalar(2.0) * mu)
            if dgamma > scalar(0.0):
                eps = eps - (dgamma / safe) * dev
        return hencky(U, V, eps, mu, lam)

    @wp.kernel(enable_backward=False, module="unique")
    def p2g(x: wp.array(dtype=vec), v: wp.array(dtype=vec), C: wp.array(dtype=mat), tau: wp.array(dtype=mat),
            mass: wp.array(dtype=scalar), volume: wp.array(dtype=scalar), origin: vec, dx: scalar,
            stress: scalar, s0: int, s1: int, s2: int, grid_m: wp.array(dtype=scalar), grid_mv: wp.array(dtype=vec)):
        p = wp.tid()
        fx, w, node = stencil(x[p], origin, dx, s0, s1, s2)
        m = mass[p]
        affine = m * C[p] - stress * volume[p] * tau[p]
        momentum = m * v[p]
        for i in range(3):
            for j in range(3):
                for k in range(K):
                    d, weight = offset(i, j, k, fx, w)
                    n = node + i * s0 + j * s1 + k * s2
                    wp.atomic_add(grid_mv, n, weight * (momentum + dx * (affine @ d)))
                    wp.atomic_add(grid_m, n, weight * m)

    @wp.kernel(enable_backward=False, module="unique")
    def grid(grid_m: wp.array(dtype=scalar), grid_mv: wp.array(dtype=vec), gravity: vec, dt: scalar,
             shape: wp.vec3i, cells: wp.vec3i, boundary: int, speed: wp.array(dtype=scalar),
             bad: wp.array(dtype=int)):
        n = wp.tid()
        m = grid_m[n]
        if not m > scalar(0.0):
            return
        g = grid_mv[n] / m + dt * gravity
        rest = n
        wall = int(0)
        for b in range(dim):
            a = dim - 1 - b
            index = rest % shape[a]
            rest = rest // shape[a]
            if index <= GHOST:
                wall = 1
                if boundary == 0:
                    g[a] = wp.max(g[a], scalar(0.0))
            if index >= GHOST + cells[a]:
                wall = 1
                if boundary == 0:
                    g[a] = wp.min(g[a], scalar(0.0))
        if boundary == 1 and wall == 1:
            g = vec()
        grid_mv[n] = g
        top = scalar(0.0)
        for a in range(dim):
            if not wp.isfinite(g[a]):
                wp.atomic_add(bad, 0, 1)
            top = wp.max(top, wp.abs(g[a]))
        wp.atomic_max(speed, 0, top)

    @wp.kernel(enable_backward=False, module="unique")
    def g2p(x: wp.array(dtype=vec), v: wp.array(dtype=vec), C: wp.array(dtype=mat), F: wp.array(dtype=mat),
            tau: wp.array(dtype=mat), material: wp.array(dtype=int), kinds: wp.array(dtype=int),
            mus: wp.array(dtype=scalar), lams: wp.array(dtype=scalar), extras: wp.array(dtype=scalar),
            grid_v: wp.array(dtype=vec), origin: vec, lo: vec, hi: vec, dx: scalar, dt: scalar,
            s0: int, s1: int, s2: int, clamp: int, bad: wp.array(dtype=int)):
        p = wp.tid()
        fx, w, node = stencil(x[p], origin, dx, s0, s1, s2)
        vp = vec()
        moment = mat()
        for i in range(3):
            for j in range(3):
                for k in range(K):
                    d, weight = offset(i, j, k, fx, w)
                    gv = weight * grid_v[node + i * s0 + j * s1 + k * s2]
                    vp += gv
                    moment += wp.outer(gv, d)
        Cp = (scalar(4.0) / dx) * moment
        xp = x[p] + dt * vp
        outside = int(0)
        for a in range(dim):
            if xp[a] < lo[a] or xp[a] > hi[a]:
                outside = 1
            if clamp == 1:
                xp[a] = wp.max(wp.min(xp[a], hi[a]), lo[a])
        if outside == 1 and clamp == 0:
            wp.atomic_add(bad, 1, 1)
        v[p] = vp
        C[p] = Cp
        x[p] = xp
        Fp = F[p]
        mid = material[p]
        Fn, taup = constitutive(Fp + dt * (Cp @ Fp), kinds[mid], mus[mid], lams[mid], extras[mid])
        F[p] = Fn
        tau[p] = taup

    return p2g, grid, g2p


class WarpStepper:
    """One solver's kernels, grid buffers and material tables; ``to_grid`` then ``to_particles``
    advance a state by one step in place."""

    def __init__(self, solver) -> None:
        wp = _warp()
        self.wp = wp
        self.solver = solver
        grid, dim = solver.grid, solver.dim
        self.double = solver.dtype == torch.float64
        self.p2g, self.grid_kernel, self.g2p = kernels(dim, self.double)
        self.device = wp.device_from_torch(solver.device)
        scalar = wp.float64 if self.double else wp.float32
        self.vec = wp.types.vector(dim, scalar)
        self.mat = wp.types.matrix((dim, dim), scalar)
        self.scalar = scalar
        strides = grid.strides.tolist() + [0] * (3 - dim)
        self.strides = [int(s) for s in strides]
        pad = lambda values, fill: [int(c) for c in values] + [fill] * (3 - dim)  # noqa: E731
        self.shape = wp.vec3i(*pad(grid.shape, 1))
        self.cells = wp.vec3i(*pad([c - 1 - 2 * GHOST for c in grid.shape], 0))
        as_vec = lambda t: self.vec(*[float(c) for c in t.tolist()])  # noqa: E731
        self.origin, self.lo, self.hi = as_vec(grid.origin), as_vec(grid.lo), as_vec(grid.hi)
        self.gravity = as_vec(solver.gravity)
        mats = solver.materials
        opts = dict(device=self.device)
        self.kinds = wp.array([KIND_ID[m.kind] for m in mats], dtype=int, **opts)
        self.mus = wp.array([m.mu for m in mats], dtype=scalar, **opts)
        self.lams = wp.array([m.lam for m in mats], dtype=scalar, **opts)
        self.extras = wp.array([m.alpha if m.kind == "sand" else m.yield_stress for m in mats], dtype=scalar, **opts)
        self.grid_m = wp.zeros(grid.n_nodes, dtype=scalar, **opts)
        self.grid_mv = wp.zeros(grid.n_nodes, dtype=self.vec, **opts)
        self.speed = wp.zeros(1, dtype=scalar, **opts)
        self.bad = wp.zeros(2, dtype=int, **opts)
        self._views = (None, None)

    def _launches(self, s):
        """The recorded (p2g, grid, g2p) launches on the state's tensors (made contiguous), rebuilt
        only when a tensor was replaced."""
        for name in ("x", "v", "C", "F", "tau", "mass", "volume"):
            if not getattr(s, name).is_contiguous():
                setattr(s, name, getattr(s, name).contiguous())
        tensors = (s.x, s.v, s.C, s.F, s.tau, s.mass, s.volume, s.material)
        key, launches = self._views
        if key is not None and all(a is b for a, b in zip(key, tensors)):
            return launches
        wp, solver = self.wp, self.solver
        material = s.material.to(torch.int32).contiguous()
        x, v = (wp.from_torch(t, dtype=self.vec) for t in tensors[:2])
        C, F, tau = (wp.from_torch(t, dtype=self.mat) for t in tensors[2:5])
        mass, volume = (wp.from_torch(t, dtype=self.scalar) for t in tensors[5:7])
        ids = wp.from_torch(material, dtype=wp.int32)
        s0, s1, s2 = self.strides
        n, dx, dt = s.x.shape[0], solver.dx, solver.dt
        record = dict(device=self.device, record_cmd=True)
        launches = (
            wp.launch(self.p2g, n, inputs=[x, v, C, tau, mass, volume, self.origin, dx, dt * 4.0 / dx ** 2, s0, s1, s2,
                                           self.grid_m, self.grid_mv], **record),
            wp.launch(self.grid_kernel, self.grid_m.shape[0],
                      inputs=[self.grid_m, self.grid_mv, self.gravity, dt, self.shape, self.cells,
                              BOUNDARY_ID[solver.boundary], self.speed, self.bad], **record),
            wp.launch(self.g2p, n, inputs=[x, v, C, F, tau, ids, self.kinds, self.mus, self.lams, self.extras,
                                           self.grid_mv, self.origin, self.lo, self.hi, dx, dt, s0, s1, s2,
                                           int(solver.boundary != "none"), self.bad], **record),
            material)
        self._views = (tensors, launches)
        return launches

    def to_grid(self, s) -> tuple[float, int]:
        """P2G and the grid update; (largest grid speed component, count of non-finite grid values)."""
        p2g, grid, _, _ = self._launches(s)
        with self._stream():
            self.grid_m.zero_()
            self.grid_mv.zero_()
            self.speed.zero_()
            self.bad.zero_()
            p2g.launch()
            grid.launch()
            speed, bad = self.speed.numpy(), self.bad.numpy()
        return float(speed[0]), int(bad[0])

    def to_particles(self, s) -> int:
        """G2P, the move, the walls and the materials; the count of particles that left the box
        (``boundary="none"``, else 0)."""
        _, _, g2p, _ = self._launches(s)
        with self._stream():
            g2p.launch()
            return 0 if self.solver.boundary != "none" else int(self.bad.numpy()[1])

    def _stream(self):
        if self.solver.device.type != "cuda":
            return contextlib.nullcontext()
        return self.wp.ScopedStream(self.wp.stream_from_torch(self.solver.device))
