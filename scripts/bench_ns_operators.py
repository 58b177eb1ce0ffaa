"""Benchmark: trajectory operators on Navier-Stokes 2D, all on the same data and budget, measured in
one run (issue 3): FNO-2D rollout, FNO-3D, T1, the spatiotemporal FNO (+ Spectral-Refiner
fine-tuning) and SpecBoost, against the reference solver.

Data (the sciops ``navier-stokes`` problem, FNO initial condition and forcing): viscosity
``--viscosity``, stored at ``--resolution``^2 and solved at ``--solve-resolution``^2, the input a
segment of ``--input-steps`` records (1: the state w0 alone) and the output the ``--time-steps``
records after it, ``--record-every`` apart. ``--n-train`` training + ``--n-val`` validation samples
and ``--n-test`` test samples, drawn with disjoint per-sample seeds (checked).

Models, trained with the sciops trainer (``sciops.training.train``: AdamW, one-cycle, peak learning
rate ``LR`` per model) for the same ``--epochs`` and ``--batch-size`` on the same samples;
validation selects the kept weights:
  fno-rollout  FNO-2D one-step map rolled out over the T records (loss through the whole rollout);
  fno3d        FNO-3D over (t, y, x);
  t1           T1 at the FNO-2D's width (so its seconds per epoch compare at equal width), gain ``T1_GAIN``;
  st-fno       the spatiotemporal FNO (modes ``--st-fno-modes``), trained with the relative Bochner L2(0,T;L2) loss, then
               fine-tuned with Spectral-Refiner (``sciops.workflows.refine.refine``, the code of ``sciops
               finetune``) on ``--refine-samples`` fresh unlabeled inputs; both are tested;
  specboost    a second operator on the residual of the ``--specboost-base`` run (trained for the
               same epochs again), served as one surrogate.
Operators default to their registry hyperparameters; the other models use the relative H1 loss
(the trainer's default), st-fno the Bochner L2 loss, as in its paper.

Printed per model: test relative L2(0,T;L2) (Bochner) and H1 errors, the relative L2 error of the
last record, parameters, training seconds per epoch (validation excluded), inference seconds per
trajectory (``sciops.grid.evaluation.evaluate`` on the test file: batches, best of 3, after a warm-up),
and the speedup over the solver for the same horizon (the T records from the last input state):
  vs solve   the reference solver at the dataset's solve resolution, timed here on
             every test input (one process, the problem's own thread setting);
  vs equal   the coarsest solver grid (from ``--solver-grids``, each solved from the input
             truncated to that grid, the records interpolated back) whose Bochner error against the
             test data is no worse than the surrogate's: the honest figure. When even the coarsest
             grid tried is as accurate as the surrogate it is that grid's figure with a "<=" (the
             true speedup is smaller still).
Then the issue's goals: T1 / FNO-2D seconds per epoch at equal width (goal: T1 at least 3x faster),
the fine-tuning's effect on the spatiotemporal FNO's error (goal: lower), and the speedups
(goals: 100x vs the solve resolution, 10x vs the equally accurate grid).

Run:  python scripts/bench_ns_operators.py                    (the issue's setting: 64^2, 1000 / 200, T = 10)
      python scripts/bench_ns_operators.py --resolution 32 --n-train 200 --n-test 40 --epochs 5   (smaller)
``--workdir DIR --reuse`` reuses the data and finished runs of an earlier call in DIR (same settings).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_line  # scripts/machine.py

MODELS = ("fno-rollout", "fno3d", "t1", "st-fno", "specboost")
# Learning rates (one-cycle peak) from short development runs on 32^2 data (64 trajectories, 6 epochs):
# fno3d validation L2 0.35 at 5e-3, 0.27 at 1e-2, 0.32 at 2e-2; fno-rollout 0.24 at 5e-3, 0.28 at 1e-2.
# SpecBoost's second model takes its base's.
LR = {"fno-rollout": 5e-3, "fno3d": 1e-2, "t1": 5e-3, "st-fno": 1e-2}
# T1's initialisation gain: with the variance-preserving gain 1 its random initial output has a
# relative H1 error ~5 and a short run spends its epochs shrinking it (validation L2 0.92 after 6
# epochs in the run above); gain 0.3 gave 0.32 in the same run.
T1_GAIN = 0.3
LABELS = {"fno-rollout": "FNO-2D rollout", "fno3d": "FNO-3D", "t1": "T1", "st-fno": "spatiotemporal FNO",
          "st-fno+refiner": "  + Spectral-Refiner", "specboost": "SpecBoost"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viscosity", type=float, default=1e-3)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--solve-resolution", type=int, default=None, help="default: --resolution")
    p.add_argument("--time-steps", type=int, default=10, help="output records T after the input")
    p.add_argument("--record-every", type=float, default=1.0)
    p.add_argument("--input-steps", type=int, default=10, help="records in the input segment (st-fno needs >= 2)")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=None, help="learning rate of every model (default: LR per model)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    p.add_argument("--specboost-base", default="fno3d", choices=("fno-rollout", "fno3d", "st-fno"))
    p.add_argument("--fno-width", type=int, default=32, help="width of FNO-2D and of T1")
    p.add_argument("--refine-samples", type=int, default=64)
    p.add_argument("--refine-iterations", type=int, default=30, help="L-BFGS iterations of the fine-tuning")
    p.add_argument("--st-fno-modes", default=None,
                   help="kept (t, y, x) modes of st-fno, e.g. 8,6,6 (default: the operator's)")
    p.add_argument("--solver-grids", default="8,12,16,24,32,48",
                   help="coarser solver grids tried for the equal-accuracy speedup (those below the solve grid)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training and inference")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="folder for data and runs (default: a new temporary folder)")
    p.add_argument("--json", help="results file (default docs/benchmarks/bench_ns_operators.json)")
    p.add_argument("--reuse", action="store_true", help="reuse data and finished runs of an earlier call in --workdir")
    args = p.parse_args(argv)
    args.solve_resolution = args.solve_resolution or args.resolution
    args.models = [m for m in args.models.split(",") if m]
    bad = [m for m in args.models if m not in MODELS]
    if bad or not args.models:
        p.error(f"--models: {bad[0] if bad else 'nothing'} given; choose from {', '.join(MODELS)}")
    if "specboost" in args.models and args.specboost_base not in args.models:
        p.error(f"specboost boosts the {args.specboost_base} run: add it to --models or choose --specboost-base")
    if "st-fno" in args.models and args.input_steps < 2:
        p.error("st-fno maps an input segment: --input-steps must be >= 2")
    args.solver_grids = sorted(int(g) for g in args.solver_grids.split(",") if g)
    args.st_fno_modes = [int(m) for m in args.st_fno_modes.split(",")] if args.st_fno_modes else None
    return args



def problem_params(args) -> dict:
    return dict(viscosity=args.viscosity, resolution=args.resolution, solve_resolution=args.solve_resolution,
                t_final=args.time_steps * args.record_every, record_every=args.record_every,
                input_steps=args.input_steps)


def make_data(problem, args, workdir: Path) -> tuple[Path, Path]:
    """(training file with train + validation samples, test file), disjoint sample seeds."""
    from sciops.datasets import generate
    from sciops.problems import sample_seed

    n = args.n_train + args.n_val
    seeds = (args.seed, args.seed + 1)
    used = [{sample_seed(s, i) for i in range(k)} for s, k in zip(seeds, (n, args.n_test))]
    if used[0] & used[1]:
        raise RuntimeError("sample seeds of the training and test sets overlap")
    train_path, test_path = workdir / "ns_train.h5", workdir / "ns_test.h5"
    for path, seed, count in ((train_path, seeds[0], n), (test_path, seeds[1], args.n_test)):
        if not (args.reuse and path.is_file()):
            generate(problem, count, path, seed=seed, progress=False, overwrite=True)
    return train_path, test_path


def model_settings(name: str, args, workdir: Path) -> tuple[str, dict, str, float]:
    """(operator, hyperparameters, training loss, learning rate)."""
    lr = args.lr or LR.get(name) or LR[args.specboost_base]
    if name == "fno-rollout":
        return name, {"width": args.fno_width}, "h1", lr
    if name == "t1":
        return name, {"width": args.fno_width, "resolution": args.resolution, "gain": T1_GAIN}, "h1", lr
    if name == "st-fno":  # the relative Bochner L2(0,T;L2) loss on trajectories
        return name, ({"modes": args.st_fno_modes} if args.st_fno_modes else {}), "l2", lr
    if name == "specboost":
        return name, {"base": str(workdir / args.specboost_base)}, "h1", lr
    return name, {}, "h1", lr


def train_model(name: str, train_path: Path, args, workdir: Path) -> dict:
    from sciops.grid.trainer import train
    from sciops.training import TrainConfig

    operator, hp, loss, lr = model_settings(name, args, workdir)
    run_dir = workdir / name
    config_path = run_dir / "config.json"
    if args.reuse and config_path.is_file() and "history" in json.loads(config_path.read_text()):
        return json.loads(config_path.read_text())["history"]
    if run_dir.exists():  # an unfinished run of an earlier call
        import shutil

        shutil.rmtree(run_dir)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, loss=loss, lr=lr, n_train=args.n_train,
                      val_fraction=args.n_val / (args.n_train + args.n_val), seed=args.seed, device="cpu")
    return train(operator, train_path, run_dir, hparams=hp, config=cfg, progress=False)


def refine_model(problem, train_path: Path, args, workdir: Path) -> dict:
    """Spectral-Refiner on the st-fno run, as ``sciops finetune`` does it; its summary or the refusal."""
    import sciops
    from sciops.datasets import open_dataset
    from sciops.workflows.refine import refine

    out = workdir / "st-fno-refined"
    summary_path = out / "config.json"
    if args.reuse and summary_path.is_file():
        return json.loads(summary_path.read_text())["refined"]
    if out.exists():
        import shutil

        shutil.rmtree(out)
    surrogate = sciops.load(workdir / "st-fno", device="cpu")
    with open_dataset(train_path) as ds:
        x, y = ds.get_batch(list(range(min(8, ds.n_samples))))
    seed = surrogate.spec.fresh_seed(args.refine_samples) + 1  # as sciops finetune: unused seeds
    inputs = torch.as_tensor(problem.sample_inputs(args.refine_samples, seed))
    try:
        return refine(workdir / "st-fno", out, inputs=inputs, reference=(x[:, 0, -1], y[:, 0]),
                      iterations=args.refine_iterations, device="cpu", progress=False)
    except ValueError as err:
        return {"refused": str(err)}


def solver_errors(problem, test_path: Path, args) -> dict:
    """Seconds per trajectory and Bochner relative L2 error vs the test data of the reference solver
    at the solve resolution and at each coarser grid of ``--solver-grids``."""
    from sciops import problems
    from sciops.datasets import open_dataset
    from sciops.grid.evaluation import error_metrics
    from sciops.solvers.navier_stokes import BlowUpError
    from sciops.solvers.spectral import fourier_resample

    with open_dataset(test_path) as ds:
        x, y = ds.get_batch(list(range(ds.n_samples)))  # the samples the surrogates' errors are over
    start = x[:, 0, -1].numpy() if x.dim() == 5 else x[:, 0].numpy()  # the last input state
    reference = y
    out = {}
    grids = [g for g in args.solver_grids if g < args.solve_resolution] + [args.solve_resolution]
    for n in grids:
        # grids at least the stored one solve the stored state (interpolated up by the problem); coarser
        # ones its truncation to n x n, their records interpolated back to the stored grid
        stored = min(n, args.resolution)
        params = dict(problem.params, resolution=stored, solve_resolution=n, input_steps=1,
                      resolution_check="on" if n == args.solve_resolution else "off")
        coarse = problems.get("navier-stokes", **params)
        w0 = fourier_resample(start, n) if stored != args.resolution else start
        t0 = time.perf_counter()
        try:
            w = coarse.solve(w0.astype(np.float32))
        except BlowUpError as err:
            out[n] = {"seconds": float("nan"), "rel_l2": float("inf"), "note": str(err).splitlines()[0]}
            continue
        seconds = (time.perf_counter() - t0) / len(w0)
        pred = torch.as_tensor(fourier_resample(w, args.resolution) if stored != args.resolution else w).unsqueeze(1)
        l2 = error_metrics(pred, reference, "periodic", spatial_dims=2)["rel_l2"]
        out[n] = {"seconds": seconds, "rel_l2": float(np.mean(l2))}
    return out


def evaluate_run(run_dir: Path, test_path: Path) -> dict:
    import sciops
    from sciops.grid.evaluation import evaluate

    surrogate = sciops.load(run_dir, device="cpu")
    report = evaluate(surrogate, data=test_path, progress_enabled=False)
    return {"rel_l2": report["metrics"]["rel_l2"]["mean"], "rel_h1": report["metrics"]["rel_h1"]["mean"],
            "last": report["per_time"]["rel_l2"]["mean"][-1], "per_record": float(np.mean(report["per_time"]["rel_l2"]["mean"])),
            "seconds": report["surrogate_seconds_per_sample"],
            "params": sum(p.numel() * (2 if p.is_complex() else 1) for p in surrogate.model.parameters())}


def equal_accuracy(solver: dict, error: float, solve_resolution: int) -> tuple[int, bool]:
    """The coarsest grid whose error is no worse than ``error``, and whether it is the coarsest tried
    (then the equal-accuracy grid may be coarser still)."""
    ok = [n for n, s in solver.items() if s["rel_l2"] <= error]
    if not ok:
        return solve_resolution, False  # nothing coarser is as accurate: the solve grid (error ~0 by definition)
    n = min(ok)
    return n, n == min(solver)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from sciops import problems

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_ns_operators_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    problem = problems.get("navier-stokes", **problem_params(args))
    t0 = time.perf_counter()
    train_path, test_path = make_data(problem, args, workdir)
    print(f"data: {args.n_train + args.n_val} + {args.n_test} trajectories in {time.perf_counter() - t0:.0f} s "
          f"({workdir})", flush=True)

    results, histories = {}, {}
    order = [m for m in MODELS if m in args.models]
    if "specboost" in order:  # after its base
        order.remove("specboost")
        order.append("specboost")
    for name in order:
        t0 = time.perf_counter()
        histories[name] = train_model(name, train_path, args, workdir)
        results[name] = evaluate_run(workdir / name, test_path)
        r = results[name]
        print(f"{name}: test rel L2(0,T;L2) {r['rel_l2']:.4f}, {histories[name]['seconds_per_epoch']:.2f} s/epoch, "
              f"{r['seconds'] * 1e3:.2f} ms/trajectory ({time.perf_counter() - t0:.0f} s)", flush=True)
        if name == "st-fno":
            refined = refine_model(problem, train_path, args, workdir)
            histories["st-fno+refiner"] = refined
            if "refused" in refined:
                print(f"st-fno fine-tuning refused: {refined['refused']}", flush=True)
            else:
                results["st-fno+refiner"] = evaluate_run(workdir / "st-fno-refined", test_path)
                print(f"st-fno + refiner: H^-1 residual {refined['relative_residual_before']:.4g} -> "
                      f"{refined['relative_residual_after']:.4g}, test rel L2(0,T;L2) "
                      f"{results['st-fno+refiner']['rel_l2']:.4f} ({refined['seconds']:.0f} s)", flush=True)

    solver = solver_errors(problem, test_path, args)
    solve_seconds = solver[args.solve_resolution]["seconds"]

    print(f"\nNavier-Stokes nu={args.viscosity:g}, stored {args.resolution}^2, solved {args.solve_resolution}^2, "
          f"{args.input_steps} input record(s) -> T={args.time_steps} records every {args.record_every:g}; "
          f"{args.n_train} train / {args.n_val} val / {args.n_test} test trajectories, {args.epochs} epochs, "
          f"batch {args.batch_size}, AdamW + one-cycle, {args.threads} torch thread(s)")
    print("\n  rel L2, rel H1: Bochner L2(0,T;L2) and L2(0,T;H1) relative errors of whole trajectories; L2/rec: "
          "relative L2 per record, averaged over records; L2 @T: of the last record (test means)")
    print(f"\n  {'model':<22} {'params':>10} {'rel L2':>7} {'rel H1':>7} {'L2/rec':>7} {'L2 @T':>7} {'s/epoch':>8} "
          f"{'ms/traj':>8} {'vs solve':>9} {'vs equal':>14}")
    from results import Results

    res = Results("bench_ns_operators", settings={k: v for k, v in vars(args).items() if k != "workdir"})
    models = res.table("models", ["model", "parameters", "rel. L2(0,T;L2)", "rel. L2(0,T;H1)", "rel. L2 per record",
                                  "rel. L2 last record", "s / epoch", "ms / trajectory",
                                  f"speedup vs {args.solve_resolution}^2 solver", "vs equally accurate grid"],
                       title=f"Navier-Stokes nu={args.viscosity:g}, stored {args.resolution}^2, solved "
                             f"{args.solve_resolution}^2, {args.input_steps} input record(s) -> T={args.time_steps}; "
                             f"{args.n_train} train / {args.n_test} test, {args.epochs} epochs")
    for name, r in results.items():
        n, floor = equal_accuracy(solver, r["rel_l2"], args.solve_resolution)
        equal = solver[n]["seconds"] / r["seconds"]
        epoch = histories[name]["seconds_per_epoch"] if "seconds_per_epoch" in histories[name] else float("nan")
        print(f"  {LABELS[name]:<22} {r['params']:>10,} {r['rel_l2']:>7.4f} {r['rel_h1']:>7.4f} {r['per_record']:>7.4f} "
              f"{r['last']:>7.4f} {epoch:>8.2f} {r['seconds'] * 1e3:>8.2f} {solve_seconds / r['seconds']:>8.1f}x "
              f"{('<=' if floor else '') + f'{equal:.2g}x':>9} @{n}^2")
        models.add([LABELS[name].strip(), r["params"], r["rel_l2"], r["rel_h1"], r["per_record"], r["last"], epoch,
                    r["seconds"] * 1e3, f"{solve_seconds / r['seconds']:.1f}x",
                    f"{'<=' if floor else ''}{equal:.2g}x ({n}^2)"])
    ladder = res.table("solver", ["grid", "ms / trajectory", "rel. L2(0,T;L2) vs data", "note"],
                       title="Solver for the same T records, per trajectory")
    print("\n  solver (same T records from the last input state, interpolated to the stored grid):")
    for n, s in solver.items():
        print(f"    {n:>4}^2: {s['seconds'] * 1e3:8.2f} ms/trajectory, rel L2(0,T;L2) vs data {s['rel_l2']:.3g}"
              + (f" ({s['note']})" if "note" in s else ""))
        ladder.add([f"{n}^2", s["seconds"] * 1e3, s["rel_l2"], s.get("note", "")])

    print("\ngoals:")
    if "t1" in histories and "fno-rollout" in histories:
        ratio = histories["fno-rollout"]["seconds_per_epoch"] / histories["t1"]["seconds_per_epoch"]
        print(f"  T1 vs FNO-2D seconds per epoch at width {args.fno_width}: T1 {ratio:.2f}x faster "
              f"(goal >= 3x: {'met' if ratio >= 3 else 'not met'})")
    if "st-fno" in results:
        refined = histories.get("st-fno+refiner", {})
        if "st-fno+refiner" in results:
            a, b = results["st-fno"]["rel_l2"], results["st-fno+refiner"]["rel_l2"]
            print(f"  Spectral-Refiner on the spatiotemporal FNO: test rel L2 {a:.5f} -> {b:.5f} ({100 * (b / a - 1):+.1f} %) "
                  f"(goal lower: {'met' if b < a else 'not met'})")
        elif "refused" in refined:
            print(f"  Spectral-Refiner on the spatiotemporal FNO: refused ({refined['refused']}) - not met")
    best = max(results, key=lambda k: solve_seconds / results[k]["seconds"])
    speed = solve_seconds / results[best]["seconds"]
    print(f"  speedup vs the solver at {args.solve_resolution}^2: best {speed:.1f}x ({LABELS[best].strip()}) "
          f"(goal 100x: {'met' if speed >= 100 else 'not met'})")
    honest = {k: solver[equal_accuracy(solver, r["rel_l2"], args.solve_resolution)[0]]["seconds"] / r["seconds"]
              for k, r in results.items()}
    best = max(honest, key=honest.get)
    print(f"  speedup vs the coarsest equally accurate solver grid: best {honest[best]:.1f}x ({LABELS[best].strip()}) "
          f"(goal 10x: {'met' if honest[best] >= 10 else 'not met'})")
    print(f"\n{machine_line()}")
    print(f"total wall time {time.perf_counter() - t_start:.0f} s; runs in {workdir}")
    res.note(f"total wall time {time.perf_counter() - t_start:.0f} s")
    res.write(args.json)


if __name__ == "__main__":
    main()
