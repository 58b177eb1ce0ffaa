"""Benchmark: one RK4-CN step of the sciops Navier-Stokes solver against torch-cfd and the FFT floor.

Times, on the same grid, batch, dtype and device (default 256^2, batch 8, float32, FNO forcing,
nu = 1e-3, dt = 1e-3):

  sciops     ``crank_nicolson_rk4(NavierStokes2D(...), dt)`` (the step ``simulate`` uses)
  torch-cfd  ``NavierStokes2DSpectral(step_fn=RK4CrankNicolsonStepper())`` (torch-cfd 0.2.6), if installed
  FFT floor  the transforms one RK4-CN step must perform: 5 stages x (inverse rfft2 of u, v,
             w_x, w_y and forward rfft2 of u w_x + v w_y), i.e. 20 inverse + 5 forward n x n
             real transforms per sample, timed as the same batched torch.fft calls

and prints the ratios sciops / torch-cfd (goal <= 0.8) and sciops / floor. The median of
``--repeats`` timings of ``--steps`` steps is reported. The inverse transforms are timed as
four (batch, n, n) calls, as the solver makes them (one (batch, 4, n, n) call is about twice
as slow on CPU).

    python scripts/bench_ns_solver.py [--n 256] [--batch 8] [--steps 20] [--device cpu] [--threads 2]
                                      [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from sciops.solvers.navier_stokes import NavierStokes2D
from sciops.solvers.time_stepping import crank_nicolson_rk4

CLOCK = time.perf_counter


def timed(fn, steps: int, repeats: int, device: torch.device) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs of ``steps`` calls (after a warm-up)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = CLOCK()
        for _ in range(steps):
            fn()
        sync()
        samples.append((CLOCK() - t0) / steps)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or process CPU time (steadier on a shared machine; CPU device only)")
    parser.add_argument("--json", help="results file (default docs/benchmarks/bench_ns_solver.json)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    n, batch, nu, dt = args.n, args.batch, 1e-3, 1e-3
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    w0 = torch.fft.irfft2(torch.fft.rfft2(w0) * (torch.fft.fftfreq(n).abs()[:, None] < 0.1)
                          * (torch.fft.rfftfreq(n)[None, :] < 0.1), s=(n, n)).to(dtype).to(device)
    where = device.type if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"NS 2D RK4-CN step, {n}^2, batch {batch}, {args.dtype}, device {where}, "
          f"{args.threads} threads, {args.clock} clock, torch {torch.__version__}, {platform.processor() or platform.machine()}")

    with torch.no_grad():
        eq = NavierStokes2D(n, nu, length=1.0, forcing="fno", dtype=dtype, device=device)
        step = crank_nicolson_rk4(eq, dt)
        state = {"w": eq.to_spectral(w0)}

        def ours():
            state["w"] = step(state["w"])
        t_ours = timed(ours, args.steps, args.repeats, device)

        m = n // 2 + 1
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        spec = torch.randn(4, batch, n, m, dtype=cdtype, device=device)
        phys = torch.randn(batch, n, n, dtype=dtype, device=device)

        def floor():
            for _ in range(5):
                for field in spec:
                    torch.fft.irfft2(field, s=(n, n))
                torch.fft.rfft2(phys)
        t_floor = timed(floor, args.steps, args.repeats, device)

        t_theirs = None
        try:
            from torch_cfd import forcings, grids
            from torch_cfd.spectral import NavierStokes2DSpectral, RK4CrankNicolsonStepper
        except ImportError:
            print("torch-cfd not installed: skipping the comparison (pip install torch-cfd==0.2.6)")
        else:
            old = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            try:
                grid = grids.Grid((n, n), domain=((0, 1), (0, 1)), device=device)
                forcing = forcings.SinCosForcing(grid=grid, scale=0.1, diam=1.0, wave_number=1, vorticity=True)
                ns = NavierStokes2DSpectral(viscosity=nu, grid=grid, smooth=True, forcing_fn=forcing,
                                            step_fn=RK4CrankNicolsonStepper()).to(device)
                theirs_state = {"w": torch.fft.rfft2(w0.transpose(-1, -2))}

                def theirs():
                    theirs_state["w"], _ = ns.step(theirs_state["w"], dt)
                t_theirs = timed(theirs, args.steps, args.repeats, device)
            finally:
                torch.set_default_dtype(old)

    print(f"  sciops     {1e3 * t_ours:9.3f} ms/step")
    if t_theirs is not None:
        print(f"  torch-cfd  {1e3 * t_theirs:9.3f} ms/step")
    print(f"  FFT floor  {1e3 * t_floor:9.3f} ms/step (20 inverse + 5 forward rfft2 per sample)")
    if t_theirs is not None:
        print(f"  ratio sciops / torch-cfd  {t_ours / t_theirs:6.3f}  (goal <= 0.8)")
        print(f"  ratio torch-cfd / floor   {t_theirs / t_floor:6.3f}")
    print(f"  ratio sciops / floor      {t_ours / t_floor:6.3f}")
    from results import Results

    res = Results("bench_ns_solver", settings=vars(args), extra_versions=("torch-cfd",))
    table = res.table("step", ["", "ms / step", "ratio"],
                      title=f"One RK4-CN step, {n}^2, batch {batch}, {args.dtype}, {args.threads} threads, "
                            f"{args.clock} clock, median of {args.repeats} x {args.steps} steps")
    table.add(["sciops crank_nicolson_rk4", 1e3 * t_ours,
               f"{t_ours / t_theirs:.2f}x torch-cfd" if t_theirs is not None else "torch-cfd not installed"])
    if t_theirs is not None:
        table.add(["torch-cfd RK4CrankNicolsonStepper", 1e3 * t_theirs, ""])
    table.add(["FFT floor (20 inverse + 5 forward rfft2 per sample)", 1e3 * t_floor,
               f"sciops {t_ours / t_floor:.2f}x the floor"
               + (f", torch-cfd {t_theirs / t_floor:.2f}x" if t_theirs is not None else "")])
    res.write(args.json)


if __name__ == "__main__":
    main()
