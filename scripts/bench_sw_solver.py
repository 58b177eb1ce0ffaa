"""Benchmark: the sciops shallow-water solver against torch-harmonics' example ShallowWaterSolver.

Both integrate the Galewsky jet (sciops' balanced initial state, handed to both) for one simulated
day on the same grid, truncation and hyperdiffusion (default 128x256 Legendre-Gauss, lmax 128), so
they discretise the same ODE and differ only by their time stepping. Each is timed over the whole
day and compared with a fine-step reference (sciops Lawson RK4 at a third of its default step: its
error is 3^4 = 81x below the default's). Errors are relative L2 norms on the grid of the vorticity
and of the geopotential anomaly Phi - mean(Phi).

Time steps: each scheme at 0.8 of its stability limit for the initial state
(``stable_time_step``: gravity-wave speed + max wind at the largest degree), shortened to divide an
hour: the anchor's AB3 at the AB3 limit, sciops' RK4 at the RK4 limit, and sciops' AB3 at the
anchor's step. Goal: sciops at equal or lower error in equal or lower time.

    python scripts/bench_sw_solver.py                  # 128x256, one day (about 20 min on 2 cores)
    python scripts/bench_sw_solver.py --agreement      # the test docstring's 64x128 figures (1 and 5 days)

Prints one line per run and the sciops / anchor ratios.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
from torch_harmonics.examples import ShallowWaterSolver

from sciops.solvers import sw_initial as ic
from sciops.solvers.shallow_water import ShallowWaterSphere, simulate, stable_time_step

HOUR, DAY = 3600.0, 86400.0


def anchor_run(solver: ShallowWaterSphere, x0: torch.Tensor, dt: float, seconds: float):
    """The torch-harmonics example solver from sciops' state x0 (3, lmax, mmax); returns (state, s)."""
    anchor = ShallowWaterSolver(solver.nlat, solver.nlon, dt, grid=solver.grid)
    if anchor.lmax != solver.lmax:
        raise SystemExit(f"the anchor's lmax {anchor.lmax} differs from sciops' {solver.lmax}; use legendre-gauss")
    pad = anchor.mmax - solver.mmax  # its mmax = nlon // 2 + 1 holds orders m >= lmax, always zero
    start = torch.nn.functional.pad(x0, (0, pad))
    t0 = time.perf_counter()
    out = anchor.timestep(start, round(seconds / dt))
    return out[..., :solver.mmax], time.perf_counter() - t0


def sciops_run(solver, x0, dt, seconds, stepper):
    t0 = time.perf_counter()
    out = simulate(solver, x0[None], dt, [seconds], stepper=stepper).states[0, 0]
    return out, time.perf_counter() - t0


def errors(solver, state, ref):
    a, b = solver.to_grid(state), solver.to_grid(ref)
    va, vb = solver.vorticity_divergence_grid(state)[0], solver.vorticity_divergence_grid(ref)[0]
    anomaly = b[0] - b[0].mean()
    return (float(torch.linalg.norm(va - vb) / torch.linalg.norm(vb)),
            float(torch.linalg.norm(a[0] - b[0]) / torch.linalg.norm(anomaly)))


def benchmark(nlat: int, nlon: int, grid: str, days: float) -> None:
    solver = ShallowWaterSphere(nlat, nlon, grid)
    x0 = ic.galewsky(solver)
    seconds = days * DAY
    dt_ab3 = stable_time_step(solver, x0[None], "ab3", record_every=HOUR)
    dt_rk4 = stable_time_step(solver, x0[None], "rk4", record_every=HOUR)
    dt_ref = dt_rk4 / 3
    print(f"Galewsky jet, {nlat}x{nlon} {grid} (lmax {solver.lmax}), {days:g} simulated day(s), float64, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"reference: sciops rk4 dt {dt_ref:.2f} s ...", flush=True)
    ref, ref_s = sciops_run(solver, x0, dt_ref, seconds, "rk4")
    print(f"  ({ref_s:.1f} s)")
    rows = []
    for name, stepper, dt in (("torch-harmonics example (AB3)", None, dt_ab3), ("sciops rk4", "rk4", dt_rk4),
                              ("sciops ab3", "ab3", dt_ab3)):
        if stepper is None:
            out, sec = anchor_run(solver, x0, dt, seconds)
            evals = round(seconds / dt)
        else:
            out, sec = sciops_run(solver, x0, dt, seconds, stepper)
            evals = round(seconds / dt) * (4 if stepper == "rk4" else 1) + (8 if stepper == "ab3" else 0)
        ev, ep = errors(solver, out, ref)
        rows.append((name, dt, evals, sec, ev, ep))
        print(f"{name:32s} dt {dt:7.2f} s  {evals:5d} evaluations  {sec:7.1f} s  vorticity error {ev:.2e}  "
              f"geopotential error {ep:.2e}", flush=True)
    base = rows[0]
    for name, _, _, sec, ev, ep in rows[1:]:
        print(f"{name} / anchor: time {sec / base[3]:.2f}x, vorticity error {ev / base[4]:.3g}x, "
              f"geopotential error {ep / base[5]:.3g}x")


def agreement() -> None:
    """sciops RK4 (300 s) vs the anchor (150 s) from the same Galewsky state, 64x128 Legendre-Gauss."""
    solver = ShallowWaterSphere(64, 128, "legendre-gauss")
    x0 = ic.galewsky(solver)
    mine = simulate(solver, x0[None], 300.0, [DAY, 5 * DAY]).states[0]
    for i, days in enumerate((1, 5)):
        theirs, _ = anchor_run(solver, x0, 150.0, days * DAY)
        ev, ep = errors(solver, theirs, mine[i])
        print(f"Galewsky 64x128 legendre-gauss, day {days}: sciops rk4 300 s vs torch-harmonics example 150 s: "
              f"relative difference vorticity {ev:.2e}, geopotential anomaly {ep:.2e}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nlat", type=int, default=128)
    p.add_argument("--nlon", type=int, default=256)
    p.add_argument("--grid", default="legendre-gauss")
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--agreement", action="store_true", help="print the 64x128 agreement figures instead")
    a = p.parse_args()
    if a.agreement:
        agreement()
    else:
        benchmark(a.nlat, a.nlon, a.grid, a.days)


if __name__ == "__main__":
    main()
