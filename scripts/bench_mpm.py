"""MLS-MPM simulator throughput: sciops (warp and torch backends) against Taichi's CPU backend on the same scene.

The peer is the 88-line MLS-MPM of Hu et al. (2018) as the Taichi examples write it (quadratic
B-splines, APIC, fixed corotated elasticity, walls 3 cells in), written here dimension-generic for
2D and 3D. Both simulate the same elastic block (E = 1e5 Pa, nu = 0.2, rho = 1000 kg/m^3) of P
random particles falling in the unit box at the same dt and grid spacing, on the same number of
CPU threads; the figure is particle-steps per second after a warm-up (Taichi's and Warp's JIT
compilation and torch's first calls excluded), and the ratio sciops / Taichi measured in the same
run. Every run is repeated on ``--scaling-threads`` threads to print the 1 -> N scaling (Warp's CPU
launches are serial, so its backend does not scale). As a check that the runs are the same
computation, the script prints the largest particle distance from the sciops torch float64 run
after the check steps (symplectic Euler everywhere; they differ only in float rounding).

If Taichi is not installed (``pip install taichi``; the ``bench`` extra), a naive numpy
reference with a Python loop over particles takes its place.

    python scripts/bench_mpm.py                 # 2D: 8192 particles on 128^2; 3D: 32768 on 64^3
    python scripts/bench_mpm.py --threads 2 --scaling-threads 0 --seconds 5
    python scripts/bench_mpm.py --device cuda   # on a GPU: sciops on CUDA against Taichi's CUDA backend
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sciops.solvers import mpm

E, NU, RHO, GRAVITY = 1e5, 0.2, 1000.0, 9.81
WALL = 3  # grid cells, as in the 88-line example


def initial_block(dim: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random particles in a block and an affine velocity field (shear, stretch, rotation) so that
    the elastic stress, not only gravity, drives the checked steps."""
    lo = np.full(dim, 0.35)
    lo[-1] = 0.45
    x = lo + 0.3 * np.random.default_rng(seed).random((n, dim))
    A = np.zeros((dim, dim))
    A[0, -1], A[-1, 0], A[0, 0] = 1.0, -0.5, 0.3
    return x, (x - x.mean(0)) @ A.T


# --------------------------------------------------------------------------------------------- sciops
def run_sciops(x0, v0, n_grid: int, dt: float, seconds: float, threads: int, check: int, dtype, backend,
               device="cpu"):
    torch.set_num_threads(threads)
    dim, n = x0.shape[1], x0.shape[0]
    dx = 1.0 / n_grid
    bounds = [[WALL * dx, 1 - WALL * dx]] * dim
    solver = mpm.MPMSolver(bounds, dx, dt, [mpm.material("elastic", youngs_modulus=E, poisson_ratio=NU, density=RHO)],
                           boundary="slip", dtype=dtype, backend=backend, device=device)
    state = solver.state(x0, v0, volumes=np.full(n, (0.5 * dx) ** dim))
    return _timed(lambda: solver.step(state), seconds, lambda: state.x.double().cpu().numpy().copy(), check)


def _timed(step, seconds: float, positions, check_steps: int):
    """Positions after ``check_steps`` steps (also the warm-up), then steps and seconds of a timed run."""
    for _ in range(check_steps):
        step()
    x_check = positions()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        step()
        steps += 1
    return x_check, steps, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- taichi
def run_taichi(x0, v0, n_grid: int, dt: float, seconds: float, threads: int, check: int, device="cpu"):
    import taichi as ti

    ti.init(arch=ti.cuda if device == "cuda" else ti.cpu, cpu_max_num_threads=threads, default_fp=ti.f32,
            log_level=ti.WARN)
    dim, n = x0.shape[1], x0.shape[0]
    dx, inv_dx = 1.0 / n_grid, float(n_grid)
    p_vol = (0.5 * dx) ** dim
    p_mass = p_vol * RHO
    mu, lam = E / (2 * (1 + NU)), E * NU / ((1 + NU) * (1 - 2 * NU))
    x = ti.Vector.field(dim, float, n)
    v = ti.Vector.field(dim, float, n)
    C = ti.Matrix.field(dim, dim, float, n)
    F = ti.Matrix.field(dim, dim, float, n)
    grid_v = ti.Vector.field(dim, float, (n_grid + 1,) * dim)
    grid_m = ti.field(float, (n_grid + 1,) * dim)
    stencil = (3,) * dim

    @ti.kernel
    def substep():
        for I in ti.grouped(grid_m):
            grid_v[I] = ti.Vector.zero(float, dim)
            grid_m[I] = 0.0
        for p in x:
            base = ti.cast(x[p] * inv_dx - 0.5, ti.i32)
            fx = x[p] * inv_dx - ti.cast(base, float)
            w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
            U, sig, V = ti.svd(F[p])
            J = F[p].determinant()
            tau = 2 * mu * (F[p] - U @ V.transpose()) @ F[p].transpose() + \
                ti.Matrix.identity(float, dim) * lam * J * (J - 1)
            affine = (-dt * p_vol * 4 * inv_dx * inv_dx) * tau + p_mass * C[p]
            for off in ti.static(ti.grouped(ti.ndrange(*stencil))):
                dpos = (ti.cast(off, float) - fx) * dx
                weight = 1.0
                for d in ti.static(range(dim)):
                    weight *= w[off[d]][d]
                grid_v[base + off] += weight * (p_mass * v[p] + affine @ dpos)
                grid_m[base + off] += weight * p_mass
        for I in ti.grouped(grid_m):
            if grid_m[I] > 0:
                grid_v[I] /= grid_m[I]
                grid_v[I][dim - 1] -= dt * GRAVITY
                for d in ti.static(range(dim)):
                    if I[d] <= WALL and grid_v[I][d] < 0:
                        grid_v[I][d] = 0.0
                    if I[d] >= n_grid - WALL and grid_v[I][d] > 0:
                        grid_v[I][d] = 0.0
        for p in x:
            base = ti.cast(x[p] * inv_dx - 0.5, ti.i32)
            fx = x[p] * inv_dx - ti.cast(base, float)
            w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
            new_v = ti.Vector.zero(float, dim)
            new_C = ti.Matrix.zero(float, dim, dim)
            for off in ti.static(ti.grouped(ti.ndrange(*stencil))):
                dpos = (ti.cast(off, float) - fx) * dx
                weight = 1.0
                for d in ti.static(range(dim)):
                    weight *= w[off[d]][d]
                new_v += weight * grid_v[base + off]
                new_C += 4 * inv_dx * inv_dx * weight * grid_v[base + off].outer_product(dpos)
            v[p], C[p] = new_v, new_C
            x[p] += dt * new_v
            F[p] = (ti.Matrix.identity(float, dim) + dt * new_C) @ F[p]

    x.from_numpy(x0.astype(np.float32))
    v.from_numpy(v0.astype(np.float32))
    F.from_numpy(np.broadcast_to(np.eye(dim, dtype=np.float32), (n, dim, dim)).copy())

    def step():
        substep()
        ti.sync()

    out = _timed(step, seconds, lambda: x.to_numpy().astype(np.float64), check)
    ti.reset()
    return out


# ---------------------------------------------------------------------------------- naive reference
def run_naive(x0, v0, n_grid: int, dt: float, seconds: float, threads: int, check: int, device="cpu"):
    """The same step with a Python loop over particles (numpy per particle): the fallback peer."""
    dim, n = x0.shape[1], x0.shape[0]
    dx, inv_dx = 1.0 / n_grid, float(n_grid)
    p_vol = (0.5 * dx) ** dim
    p_mass = p_vol * RHO
    mu, lam = E / (2 * (1 + NU)), E * NU / ((1 + NU) * (1 - 2 * NU))
    x, v = x0.copy(), v0.copy()
    C, F = np.zeros((n, dim, dim)), np.broadcast_to(np.eye(dim), (n, dim, dim)).copy()
    offsets = np.array(np.meshgrid(*[range(3)] * dim, indexing="ij")).reshape(dim, -1).T

    def step():
        gv = np.zeros((n_grid + 1,) * dim + (dim,))
        gm = np.zeros((n_grid + 1,) * dim)
        for p in range(n):
            base = (x[p] * inv_dx - 0.5).astype(int)
            fx = x[p] * inv_dx - base
            w = np.array([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2])
            U, sig, Vt = np.linalg.svd(F[p])
            if np.linalg.det(U @ Vt) < 0:
                U[:, -1] *= -1
            J = np.linalg.det(F[p])
            tau = 2 * mu * (F[p] - U @ Vt) @ F[p].T + np.eye(dim) * lam * J * (J - 1)
            affine = -dt * p_vol * 4 * inv_dx ** 2 * tau + p_mass * C[p]
            for off in offsets:
                dpos = (off - fx) * dx
                weight = np.prod(w[off, range(dim)])
                node = tuple(base + off)
                gv[node] += weight * (p_mass * v[p] + affine @ dpos)
                gm[node] += weight * p_mass
        mask = gm > 0
        gv[mask] /= gm[mask][:, None]
        gv[mask, dim - 1] -= dt * GRAVITY
        for d in range(dim):
            idx = [slice(None)] * dim
            idx[d] = slice(0, WALL + 1)
            gv[tuple(idx) + (d,)] = np.maximum(gv[tuple(idx) + (d,)], 0)
            idx[d] = slice(n_grid - WALL, None)
            gv[tuple(idx) + (d,)] = np.minimum(gv[tuple(idx) + (d,)], 0)
        for p in range(n):
            base = (x[p] * inv_dx - 0.5).astype(int)
            fx = x[p] * inv_dx - base
            w = np.array([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2])
            nv, nC = np.zeros(dim), np.zeros((dim, dim))
            for off in offsets:
                dpos = (off - fx) * dx
                weight = np.prod(w[off, range(dim)])
                g = gv[tuple(base + off)]
                nv += weight * g
                nC += 4 * inv_dx ** 2 * weight * np.outer(g, dpos)
            v[p], C[p] = nv, nC
            x[p] += dt * nv
            F[p] = (np.eye(dim) + dt * nC) @ F[p]

    return _timed(step, seconds, lambda: x.copy(), check)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for every solver (default 1)")
    ap.add_argument("--scaling-threads", type=int, default=2,
                    help="also run every solver on this many threads and print the scaling (0: skip)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per run")
    ap.add_argument("--check-steps", type=int, default=100, help="steps compared between the solvers (and warm-up)")
    ap.add_argument("--dt", type=float, default=2e-4)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="sciops and Taichi on CPU or CUDA")
    args = ap.parse_args()
    try:
        import taichi

        peer, peer_name = run_taichi, "taichi " + ".".join(map(str, taichi.__version__)) + f" {args.device} f32"
        check = args.check_steps
    except ImportError:
        peer, peer_name = run_naive, "naive numpy loop over particles"
        check = 1
    backends = mpm.backends.usable(torch.float32, torch.device(args.device))
    warp = "installed" if "warp" in mpm.backends.installed() else "not installed"
    print(f"MLS-MPM throughput, elastic block, dt={args.dt:g} s, torch {torch.__version__}, sciops backends on "
          f"{args.device}: {', '.join(backends)} (warp-lang {warp}); peer: {peer_name}")
    thread_counts = [args.threads] + ([args.scaling_threads] if args.scaling_threads > 0 else [])
    print(f"{'case':<20}{'solver':<28}{'threads':>8}{'steps':>7}{'s':>8}{'particle-steps/s':>18}"
          f"{'max |x - x_f64|':>17}")
    for dim, n, n_grid in ((2, 8192, 128), (3, 32768, 64)):
        x0, v0 = initial_block(dim, n)
        case = f"{dim}D P={n} {n_grid}^{dim}"
        runs = {}
        for backend in ("torch",) + tuple(b for b in backends if b != "torch"):
            for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
                runs[f"sciops {backend} {name}"] = (lambda threads, b=backend, d=dtype: run_sciops(
                    x0, v0, n_grid, args.dt, args.seconds, threads, check, d, b, args.device))
        runs[peer_name] = lambda threads: peer(x0, v0, n_grid, args.dt, args.seconds, threads, check, args.device)
        rates, reference = {}, None
        for threads in thread_counts:
            for label, fn in runs.items():
                x_check, steps, elapsed = fn(threads)
                reference = x_check if reference is None else reference
                rates[label, threads] = n * steps / elapsed
                print(f"{case:<20}{label:<28}{threads:>8}{steps:>7}{elapsed:>8.2f}{rates[label, threads]:>18.4g}"
                      f"{np.abs(x_check - reference).max():>17.3g}")
        for threads in thread_counts:
            for label in runs:
                if label != peer_name:
                    print(f"{case:<20}ratio {label} / {peer_name.split()[0]}, {threads} thread(s): "
                          f"{rates[label, threads] / rates[peer_name, threads]:.3g}")
        if len(thread_counts) == 2:
            for label in runs:
                print(f"{case:<20}scaling {thread_counts[0]} -> {thread_counts[1]} threads, {label}: "
                      f"{rates[label, thread_counts[1]] / rates[label, thread_counts[0]]:.3g}x")
    print(f"(max |x - x_f64|: largest particle distance in m from the sciops torch float64 run after {check} steps)")


if __name__ == "__main__":
    main()
