"""Benchmark: what serving costs beyond the model (issue 19, "Serving speed").

For each grid operator, a tiny run is trained here (one epoch on a few generated samples of a small
configuration of its problem: the weights do not change the timing) and loaded with ``sciops.load``.
At batch 1 and batch 64 it prints the bare model forward (``surrogate.model`` on a ready float32
tensor, no_grad), the surrogate call on numpy input (checks, conversions, out-of-distribution
summary, output back to numpy) and their ratio. Then, per problem, the reference ``problem.solve``
and each rung of ``problem.ladder()`` timed the same way, with the surrogate's speedup over each
(the fastest operator of that problem in the table); problems whose ladder is still empty say so.

Timing: the best of repeated calls after one warm-up call (forward and surrogate called in turn), with torch's threads set once at
the start (``--threads``; the surrogate never changes them). Small models on small grids are the
hardest case for the ratio: the forward is shortest there. ``--compile`` also loads each run with
``compile=True`` and prints the first call (the compilation) and the compiled batch-1 call.

Run:  python scripts/bench_serving.py                          (all operators, a few minutes on 2 cores)
      python scripts/bench_serving.py --operators fno --compile
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
from machine import machine_line

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.grid.trainer import train
from sciops.runs.input_summary import counted_not_warned
from sciops.training import TrainConfig

NS = ("navier-stokes", dict(resolution=16, solve_resolution=32, t_final=0.5, record_every=0.25))
# operator: (problem, its small parameters, small hyperparameters)
CASES = {
    "fno": ("darcy", dict(resolution=33), dict(modes=8, width=16, layers=3, projection=32)),
    "mgno": ("darcy", dict(resolution=33), dict(width=6, layers=2, levels=3)),
    "dgno": ("darcy", dict(resolution=33), dict(latent=16, width=32, layers=3, inner=2, encoder_channels=8,
                                                centres=48, quad_radial=4, quad_angular=8, data_points=256)),
    "fno-rollout": (*NS, dict(modes=6, width=12, layers=2)),
    "fno3d": (*NS, dict(modes=[2, 6, 6], width=8, layers=2)),
    "st-fno": (NS[0], {**NS[1], "input_steps": 2}, dict(modes=[2, 6, 6], width=8, layers=2, projection=16)),
    "t1": (*NS, dict(modes=6, width=12, layers=2, resolution=16)),
    "sfno": ("shallow-water", dict(nlat=12, records=2, record_every=1800.0),
             dict(modes=8, width=12, layers=2, projection=16)),
    "unet": ("radar", dict(nz=12, ny=9, nx=9, n_freqs=4), dict(width=4, levels=2)),
}
SKIPPED = {"specboost": "wraps a trained base run (a second stage), timed through its base operator"}
BATCHES = (1, 64)


def seconds(*fns, budget: float = 0.5, most: int = 50) -> list[float]:
    """Best-of seconds of each ``fn()`` after one warm-up call, the functions called in turn, until
    ``budget`` s or ``most`` rounds. The minimum, not the median: on a shared machine other work only
    adds to a call, and the ratio of two minima is the least noisy figure of what a call costs."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < most and (len(times[0]) < 3 or time.perf_counter() - start < budget):
        for fn, spent in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return [min(t) for t in times]


def label(operator: str) -> str:
    """The problem's name, with the parameters that differ from its first case's (st-fno's input segment)."""
    name, params, _ = CASES[operator]
    first = next(p for n, p, _ in CASES.values() if n == name)
    return name + "".join(f" {k}={v}" for k, v in params.items() if first.get(k) != v)


def trained(operator: str, root: Path, samples: int) -> tuple[Path, object]:
    name, params, hparams = CASES[operator]
    problem = problems.get(name, **params)
    data = root / f"{label(operator).replace(' ', '_')}.h5"
    if not data.exists():
        generate(problem, samples, data, seed=1, progress=False)
    run = root / operator
    train(operator, data, run, hparams=hparams, config=TrainConfig(epochs=1, batch_size=8, seed=0), progress=False)
    return run, problem


def model_input(surrogate, inputs) -> torch.Tensor:
    """What the surrogate hands its model: channel-first float32 on its device."""
    return surrogate._to_tensor(inputs)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--operators", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--samples", type=int, default=16, help="generated training samples per problem")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads, set once (default: torch's)")
    ap.add_argument("--compile", action="store_true", help="also time sciops.load(run, compile=True)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    print(f"torch threads {torch.get_num_threads()}; times are best-of-repeats, ms per call\n")
    for name, why in SKIPPED.items():
        print(f"{name}: skipped ({why})")
    print(f"{'operator':12} {'problem':29} {'batch':>5} {'forward':>10} {'surrogate':>10} {'ratio':>6}")
    fastest: dict[str, dict[int, tuple[float, str]]] = {}
    problem_of: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), counted_not_warned():
        warnings.simplefilter("ignore", UserWarning)  # torch's, for operators inductor cannot fuse
        for operator in args.operators:
            run, problem = trained(operator, Path(tmp), args.samples)
            key = label(operator)
            problem_of[key] = problem
            surrogate = sciops.load(run, device="cpu")
            inputs = problem.sample_inputs(max(BATCHES), seed=7)
            for batch in BATCHES:
                a = _take(inputs, batch)
                x = model_input(surrogate, a)
                forward, served = seconds(lambda: _forward(surrogate.model, x),
                                          lambda: surrogate.solve(a, batch_size=max(BATCHES)), budget=1.0)
                print(f"{operator:12} {key:29} {batch:5d} {forward * 1e3:10.3f} {served * 1e3:10.3f} "
                      f"{served / forward:6.2f}")
                best = fastest.setdefault(key, {})
                if batch not in best or served < best[batch][0]:
                    best[batch] = (served, operator)
            if args.compile:
                compiled = sciops.load(run, device="cpu", compile=True)
                one = _take(inputs, 1)
                t0 = time.perf_counter()
                compiled.solve(one)
                warm = time.perf_counter() - t0
                print(f"{operator:12} compile=True: first call (compilation) {warm:.1f} s, then batch 1 "
                      f"{seconds(lambda: compiled.solve(one))[0] * 1e3:.3f} ms")
        print(f"\n{'problem':29} {'solver':32} {'batch':>5} {'ms/call':>10} {'surrogate speedup':>18}")
        for name, problem in problem_of.items():
            ladder = problem.ladder()
            if not ladder:
                print(f"{name:29} (ladder empty: problem.ladder() declares no rungs for this configuration)")
            inputs = problem.sample_inputs(max(BATCHES), seed=7)
            solvers = [("reference", problem.solve)] + [(f"rung {r.label}", r.solve) for r in ladder]
            notes = {f"rung {r.label}": r.note for r in ladder}
            for solver, solve in solvers:
                if solve is None:
                    print(f"{name:29} {solver:32} (not run: {notes[solver]})")
                    continue
                for batch in BATCHES:
                    cost = seconds(lambda: solve(_take(inputs, batch)), budget=1.0, most=5)[0]
                    served, operator = fastest[name][batch]
                    print(f"{name:29} {solver:32} {batch:5d} {cost * 1e3:10.3f} {cost / served:11.3g}x {operator}")


def _forward(model, x):
    with torch.no_grad():
        return model(x)


def _take(inputs, n: int):
    return {k: v[:n] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[:n]


if __name__ == "__main__":
    main()
