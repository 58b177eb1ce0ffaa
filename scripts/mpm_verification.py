"""Print the MLS-MPM verification figures (the quantities tests/solvers/test_mpm.py bounds).

* free fall: largest distance of any particle from the symplectic-Euler parabola after 60 steps;
* momentum: largest drift of total momentum through a mixed-material collision (no gravity, no
  walls), relative to sum m |v|;
* elastic bar: period of the fundamental free-free longitudinal mode against 2 L / sqrt(E / rho);
* sand column collapse (friction angle 25 deg, sticky floor, 1.5 s): normalised runout
  (L_f - L_0) / L_0 for aspect ratios a = 0.5, 1, 2, beside the experimental 1.2 a (a < ~1.8,
  Lajeunesse et al. 2005, Lube et al. 2005), at two resolutions, and a = 1 at 35 deg.

    python scripts/mpm_verification.py
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from sciops.solvers import mpm


def box_scene(dim, lo, hi, dx, kind=None, boundary="none", gravity=True):
    g = None if gravity else np.zeros(dim)  # None: the solver's default, -9.81 m/s^2 along the last axis
    m = kind or mpm.material("elastic")
    return mpm.Scene(np.array([[0.0, 1.0]] * dim), dx, [m], [mpm.Body(mpm.Box(lo, hi))], boundary=boundary, gravity=g)


def free_fall(dim):
    scene = box_scene(dim, np.full(dim, 0.6), np.full(dim, 0.7), 1 / 32)
    solver = scene.solver()
    state = scene.initial_state(solver)
    x0 = state.x.numpy().copy()
    n = 60
    for _ in range(n):
        solver.step(state)
    g = solver.gravity.numpy()
    return np.abs(state.x.numpy() - (x0 + 0.5 * n * (n + 1) * solver.dt ** 2 * g)).max()


def momentum(dim):
    materials = [mpm.material(k) for k in mpm.KINDS]
    bodies = []
    for k, (cx, vx) in enumerate([(0.38, 2.0), (0.62, -1.0)]):
        c = np.full(dim, 0.5)
        c[0], c[-1] = cx, 0.5 + 0.03 * (1 - 2 * k)
        v = np.zeros(dim)
        v[0] = vx
        bodies.append(mpm.Body(mpm.Sphere(c, 0.1), 0, v))
    scene = mpm.Scene(np.array([[0.0, 1.0]] * dim), 1 / 32, materials, bodies, boundary="none", gravity=np.zeros(dim))
    p = scene.particles()
    solver = scene.solver()
    state = solver.state(p["x"], p["v"], np.arange(len(p["x"])) % 4, p["volume"])
    p0 = state.momentum.clone()
    for _ in range(60):
        solver.step(state)
    return float((state.momentum - p0).abs().max() / (state.mass[:, None] * state.v.abs()).sum())


def bar_period(dim, dx, thick):
    m = mpm.material("elastic", youngs_modulus=1e5, poisson_ratio=0.0, density=1000.0)
    L = 0.5
    lo, hi = np.full(dim, 0.5 - thick * dx / 2), np.full(dim, 0.5 + thick * dx / 2)
    lo[0], hi[0] = 0.25, 0.25 + L
    scene = box_scene(dim, lo, hi, dx, m, gravity=False)
    p = scene.particles()
    mode = np.cos(np.pi * (p["x"][:, 0] - 0.25) / L)
    v = np.zeros_like(p["x"])
    v[:, 0] = 0.05 * mode
    solver = scene.solver()
    state = solver.state(p["x"], v, p["material"], p["volume"])
    exact = 2 * L / math.sqrt(m.youngs_modulus / m.density)
    n = int(2 * exact / solver.dt) + 1
    amp = np.empty(n)
    for i in range(n):
        solver.step(state)
        amp[i] = ((state.x[:, 0].numpy() - p["x"][:, 0]) * mode).sum() / (mode ** 2).sum()
    t = solver.dt * np.arange(1, n + 1)
    i = np.nonzero(np.sign(amp[1:]) != np.sign(amp[:-1]))[0]
    crossings = t[i] - amp[i] * (t[i + 1] - t[i]) / (amp[i + 1] - amp[i])
    return 2 * np.mean(np.diff(crossings)) / exact - 1


def runout(aspect, dx, width=0.15, seconds=1.5, friction_angle=25.0):
    sand = mpm.material("sand", friction_angle=friction_angle)
    scene = mpm.column_collapse(2, sand, aspect_ratio=aspect, width=width, dx=dx)
    scene.boundary = "sticky"
    solver = scene.solver()
    state = scene.initial_state(solver)
    for _ in range(int(seconds / solver.dt)):
        solver.step(state)
    kinetic = float((0.5 * state.mass * (state.v ** 2).sum(1)).sum())
    return (float(state.x[:, 0].max()) - width) / width, float(state.x[:, 1].max()) / (aspect * width), kinetic


def main():
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for dim in (2, 3):
        print(f"free fall {dim}D: max |x - discrete parabola| after 60 steps = {free_fall(dim):.2e} m")
    for dim in (2, 3):
        print(f"momentum {dim}D: max drift / sum m|v| through a 4-material collision, 60 steps = {momentum(dim):.2e}")
    for dim, dx, thick in ((2, 1 / 64, 4), (2, 1 / 128, 8), (3, 1 / 32, 2)):
        print(f"elastic bar {dim}D dx=1/{round(1 / dx)}: period / (2 L / c) - 1 = {bar_period(dim, dx, thick):+.2%}")
    print("sand column collapse 2D, width 0.15 m, friction 25 deg, sticky floor, after 1.5 s:")
    for dx in (1 / 64, 1 / 128):
        for a in (0.5, 1.0, 2.0):
            r, h, k = runout(a, dx)
            print(f"  dx=1/{round(1 / dx)} a={a}: runout (L_f - L_0)/L_0 = {r:.2f} (experiments 1.2 a = {1.2 * a:.2f}), "
                  f"final height / H_0 = {h:.2f}, kinetic energy {k:.1e} J/m")
    r, h, _ = runout(1.0, 1 / 64, friction_angle=35.0)
    print(f"  dx=1/64 a=1.0 friction angle 35 deg: runout = {r:.2f}, final height / H_0 = {h:.2f}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
