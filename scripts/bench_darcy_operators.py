"""Benchmark: FNO, MgNO, label-free DGNO and a supervised MultiONet on two Darcy datasets, and the
DGNO inverse problem, all measured in one run on the same data (issue 5).

Datasets (generated here with the sciops Darcy solver, ``--resolution`` nodes per side):
  multiphase  the DGNO setting: a in {5, 10} piecewise constant on 29 x 29 cells, f = 10;
  fno         the FNO setting: thresholded Gaussian random field, a in {3, 12}, f = 1.
Each has ``--n-train`` training, ``--n-val`` validation and ``--n-test`` test samples drawn with
three different base seeds (disjoint per-sample seeds, checked).

Models, trained with the sciops trainer (AdamW, one-cycle schedule) on the same training samples,
for the same number of epochs and the same batch size:
  fno         FNO, width 32, 4 layers, modes (6, 7) (as in scripts/bench_fno.py), relative H1 loss, lr 5e-3;
  mgno        MgNO, 4 layers, 5 levels, a 17^2 bias function per layer (``bias_grid``), its width
              chosen so that its parameter count is the closest to the FNO's (printed; within
              10 %), relative L2 + H1 loss ("l2+h1"), lr 1e-2. At 64^2 the plain MgNO (constant
              bias, H1 loss) kept a near-constant offset in short runs (H1 barely sees offsets):
              the bias function and the L2 term remove it;
  dgno        DGNO trained WITHOUT labels: weak-form physics of -div(a grad u) = f plus the
              reconstruction of a (the input), never u; hyperparameters ``DGNO_LABEL_FREE``;
  multionet   the same DGNO architecture trained on labels only (supervised relative L2 of u,
              no physics, no KL, deterministic encoder): the "supervised MultiONet" of the paper.
The trainer keeps the best checkpoint by validation error, which uses labels; to keep the
label-free run label-free, every model is evaluated here with its LAST-epoch weights instead.

Printed per model: test relative L2 and H1 errors (sciops.losses, bounded grid), parameters,
training seconds per epoch (median-free mean over epochs, validation excluded). Then the ratios of
the issue's goals: MgNO / FNO error on both datasets (goal < 1) and label-free DGNO / supervised
FNO error on multiphase (goal <= 3).

Inverse problem (multiphase, the label-free DGNO): ``--inverse`` fresh coefficients; for each, 100
observations of the reference u at random interior nodes with Gaussian noise at 25 dB SNR
(noise std^2 = mean(u_obs^2) / 10^2.5), inverted with ``sciops.workflows.inverse.invert`` (``model_error``
the DGNO's last-epoch validation error of u by default, ``--model-error``; aggregate latent
prior, multi-start MAP, the default pCN sampler). Printed: mean relative L2 error of the posterior mean
of a, the share of grid points whose true a lies within 2 posterior standard deviations of the
posterior mean, and seconds per inversion. These are the uncalibrated bands of the default sampler;
the calibrated bands of ``sciops invert`` (issue 25) are measured by scripts/bench_inverse.py.

Run:  python scripts/bench_darcy_operators.py --resolution 64 --epochs 20
      python scripts/bench_darcy_operators.py --resolution 29 --n-train 200 --epochs 3 --inverse 2  (smoke test)
``--jobs 2`` trains the two datasets in two processes (one thread each unless ``--threads``).
``--workdir DIR --reuse`` reuses the data and finished runs of an earlier call in DIR (same settings).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_line  # scripts/machine.py

FNO = dict(width=32, layers=4, modes=[6, 7])
FNO_LR = 5e-3
MGNO = dict(layers=4, levels=5, bias_grid=17)
MGNO_LR = 1e-2
MGNO_LOSS = "l2+h1"
# the label-free DGNO (see sciops.operators.dgno); encoder_resolution is set to the data resolution
DGNO_LABEL_FREE = dict(latent=128, width=100, layers=5, inner=4, centres=100, quad_radial=4, quad_angular=8,
                       constitutive_form="resistivity", constitutive_weight=1.0)
DGNO_LR = 2e-3
# the supervised MultiONet: the same encoder and decoders, labels only
MULTIONET = dict(DGNO_LABEL_FREE, generative=False, pde_weight=0.0, data_weight=0.0, kl_weight=0.0,
                 supervised_weight=1.0)
MULTIONET_LR = 2e-3
MODELS = ("fno", "mgno", "dgno", "multionet")
DATASETS = ("multiphase", "fno")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of multiphase,fno")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of fno,mgno,dgno,multionet")
    p.add_argument("--inverse", type=int, default=20, help="fresh coefficients for the inverse problem (0: skip)")
    p.add_argument("--observations", type=int, default=100)
    p.add_argument("--snr-db", type=float, default=25.0)
    p.add_argument("--residual-std", default="0", help="sigma_r of sciops.workflows.inverse.invert: a number or auto")
    p.add_argument("--model-error", default="validation", help="model_error of sciops.workflows.inverse.invert: a number, "
                   "or validation (the DGNO's last-epoch validation relative L2 error of u)")
    p.add_argument("--jobs", type=int, default=1, help="datasets trained in parallel processes")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (default: torch's "
                   "choice with --jobs 1, else 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="folder for data and runs (default: a new temporary folder)")
    p.add_argument("--reuse", action="store_true", help="reuse the data and finished runs of an earlier call "
                   "with the same --workdir and settings (e.g. to rerun the inverse problem with other options)")
    args = p.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.models = [m for m in args.models.split(",") if m]
    for name, values, allowed in (("datasets", args.datasets, DATASETS), ("models", args.models, MODELS)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            p.error(f"--{name}: {bad[0] if bad else 'nothing'} given; choose from {', '.join(allowed)}")
    if args.inverse and ("dgno" not in args.models or "multiphase" not in args.datasets):
        p.error("--inverse needs the dgno model and the multiphase dataset (or pass --inverse 0)")
    return args


def problem_for(dataset: str, resolution: int):
    from sciops import problems

    return problems.get("darcy", coefficient=dataset, resolution=resolution)



def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


def matched_mgno_width(target: int) -> tuple[int, int]:
    """The MgNO width whose parameter count is closest to ``target``: (width, parameters)."""
    from sciops.operators import build

    best = None
    for width in range(8, 65):
        count = parameter_count(build("mgno", in_channels=1, out_channels=1, ndim=2, geometry="bounded",
                                      width=width, **MGNO))
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (width, count)
    return best


def model_settings(name: str, args, fno_params: int) -> tuple[str, dict, float, str]:
    """(operator name, hyperparameters, learning rate, training loss) of a benchmark model."""
    if name == "fno":
        return "fno", dict(FNO), FNO_LR, "h1"
    if name == "mgno":
        width, _ = matched_mgno_width(fno_params)
        return "mgno", dict(MGNO, width=width), MGNO_LR, MGNO_LOSS
    hp = dict(DGNO_LABEL_FREE if name == "dgno" else MULTIONET, encoder_resolution=args.resolution)
    return "dgno", hp, DGNO_LR if name == "dgno" else MULTIONET_LR, "h1"


def make_data(dataset: str, args, workdir: Path) -> tuple[Path, Path]:
    """(training file with train + validation samples, test file)."""
    from sciops.datasets import generate
    from sciops.problems import sample_seed

    problem = problem_for(dataset, args.resolution)
    n = args.n_train + args.n_val
    seeds = [args.seed, args.seed + 1, args.seed + 2]  # train+val, test, inverse
    used = [{sample_seed(s, i) for i in range(k)} for s, k in zip(seeds, (n, args.n_test, args.inverse))]
    if len(set.union(*used)) != sum(map(len, used)):
        raise RuntimeError("sample seeds of the training, test and inverse sets overlap")
    train_path, test_path = workdir / f"{dataset}_train.h5", workdir / f"{dataset}_test.h5"
    generate(problem, n, train_path, seed=seeds[0], progress=False, overwrite=True)
    generate(problem, args.n_test, test_path, seed=seeds[1], progress=False, overwrite=True)
    return train_path, test_path


def last_epoch_surrogate(run_dir: Path):
    """The trained model with the weights of its last epoch (not the validation-selected ones)."""
    import sciops
    from sciops.runs import storage as ckpt

    surrogate = sciops.load(run_dir, device="cpu")
    surrogate.model.load_state_dict(ckpt.load_tensors(run_dir / ckpt.STATE, map_location="cpu")["model"])
    surrogate.model.eval()
    return surrogate


@torch.no_grad()
def test_errors(model: torch.nn.Module, test_path: Path) -> tuple[float, float]:
    from sciops.datasets import open_dataset
    from sciops.losses import make_loss

    ds = open_dataset(test_path)
    l2, h1 = make_loss("l2", geometry="bounded"), make_loss("h1", geometry="bounded")
    totals, n = np.zeros(2), 0
    for start in range(0, ds.n_samples, 50):
        x, y = ds.get_batch(list(range(start, min(start + 50, ds.n_samples))))
        pred = model(x)
        totals += len(x) * np.array([l2(pred, y).item(), h1(pred, y).item()])
        n += len(x)
    return tuple(totals / n)


def run_dataset(dataset: str, args, workdir: str) -> dict:
    """Generate one dataset, train and test every model on it; returns {model: result}."""
    from sciops.grid.trainer import train
    from sciops.training import TrainConfig

    if args.threads or args.jobs > 1:
        torch.set_num_threads(args.threads or 1)
    workdir = Path(workdir)
    t0 = time.perf_counter()
    if args.reuse and (workdir / f"{dataset}_test.h5").is_file():
        train_path, test_path = workdir / f"{dataset}_train.h5", workdir / f"{dataset}_test.h5"
    else:
        train_path, test_path = make_data(dataset, args, workdir)
    print(f"[{dataset}] data generated in {time.perf_counter() - t0:.1f} s", flush=True)
    from sciops.operators import build

    fno_params = parameter_count(build("fno", in_channels=1, out_channels=1, ndim=2, geometry="bounded", **FNO))
    results = {}
    for name in args.models:
        operator, hp, lr, loss = model_settings(name, args, fno_params)
        run_dir = workdir / f"{dataset}_{name}"
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=lr, loss=loss,
                             n_train=args.n_train, val_fraction=args.n_val / (args.n_train + args.n_val),
                             seed=args.seed, device="cpu")
        t0 = time.perf_counter()
        if args.reuse and (run_dir / "config.json").is_file() and "history" in json.loads(
                (run_dir / "config.json").read_text()):
            summary = json.loads((run_dir / "config.json").read_text())["history"]  # trained by an earlier call
        else:
            summary = train(operator, train_path, run_dir, hparams=hp, config=config, progress=False)
        wall = time.perf_counter() - t0
        surrogate = last_epoch_surrogate(run_dir)
        l2, h1 = test_errors(surrogate.model, test_path)
        # the supervised MultiONet carries the flux and coefficient decoders of the DGNO unused: not counted
        unused = ("operator.s_net.", "operator.a_net.") if name == "multionet" else ()
        params = sum(p.numel() * (2 if p.is_complex() else 1) for n, p in surrogate.model.named_parameters()
                     if not n.startswith(unused))
        results[name] = dict(l2=l2, h1=h1, params=params, lr=lr, hp=hp,
                             seconds_per_epoch=summary["seconds_per_epoch"], wall=wall, run_dir=str(run_dir))
        print(f"[{dataset}] {name:>9}: test rel L2 {l2:.4f}, rel H1 {h1:.4f}, {results[name]['params']:,} "
              f"parameters, {summary['seconds_per_epoch']:.2f} s/epoch ({wall:.0f} s with validation)", flush=True)
    return results


def run_inverse(run_dir: str, args) -> dict:
    """Invert ``args.inverse`` fresh multiphase coefficients with the label-free DGNO of ``run_dir``."""
    from sciops.workflows.inverse import invert

    surrogate = last_epoch_surrogate(Path(run_dir))
    problem = surrogate.problem
    a, u = problem.generate(args.inverse, args.seed + 2)[:2]
    n = args.resolution
    rng = np.random.default_rng(args.seed)
    interior = np.arange(n * n).reshape(n, n)[1:-1, 1:-1].ravel()
    residual_std = args.residual_std if args.residual_std == "auto" else float(args.residual_std)
    # the model's own error enters the likelihood: its last-epoch validation error of u (labels used
    # for calibration only, after the label-free training)
    history = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
    model_error = history[-1]["val"]["l2"] if args.model_error == "validation" else float(args.model_error)
    errors, coverage, seconds = [], [], []
    for i in range(args.inverse):
        iy, ix = np.unravel_index(rng.choice(interior, args.observations, replace=False), (n, n))
        points = np.stack([ix / (n - 1), iy / (n - 1)], -1)
        clean = u[i][iy, ix].astype(np.float64)
        values = clean + np.sqrt(np.mean(clean ** 2) / 10 ** (args.snr_db / 10)) * rng.standard_normal(len(clean))
        result = invert(surrogate, points, values, snr_db=args.snr_db, residual_std=residual_std,
                        model_error=model_error, seed=i)
        errors.append(np.linalg.norm(result.a_mean - a[i]) / np.linalg.norm(a[i]))
        coverage.append(np.mean(np.abs(result.a_mean - a[i]) <= 2.0 * result.a_std))
        seconds.append(result.seconds)
    return dict(error=float(np.mean(errors)), error_max=float(np.max(errors)), coverage=float(np.mean(coverage)),
                seconds=float(np.mean(seconds)), model_error=model_error)


def main(argv=None):
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_darcy_operators_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(min(args.jobs, len(args.datasets)),
                                                    mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {d: pool.submit(run_dataset, d, args, str(workdir)) for d in args.datasets}
            results = {d: f.result() for d, f in futures.items()}
    else:
        results = {d: run_dataset(d, args, str(workdir)) for d in args.datasets}
    inverse = None
    if args.inverse:
        if args.threads:
            torch.set_num_threads(args.threads)
        inverse = run_inverse(results["multiphase"]["dgno"]["run_dir"], args)

    print(f"\nDarcy {args.resolution}^2, {args.n_train} train / {args.n_val} val / {args.n_test} test samples, "
          f"{args.epochs} epochs, batch {args.batch_size}, last-epoch weights, AdamW + one-cycle")
    for dataset, models in results.items():
        print(f"\n{dataset}:\n  {'model':<24} {'parameters':>10} {'s/epoch':>8} {'rel L2':>8} {'rel H1':>8}  lr")
        for name, r in models.items():
            label = {"fno": "FNO", "mgno": f"MgNO (width {r['hp'].get('width')})", "dgno": "DGNO, no labels",
                     "multionet": "MultiONet, supervised"}[name]
            print(f"  {label:<24} {r['params']:>10,} {r['seconds_per_epoch']:>8.2f} {r['l2']:>8.4f} {r['h1']:>8.4f}  "
                  f"{r['lr']:g}")
    print("\nratios (test relative L2, same data and epochs):")
    for dataset, models in results.items():
        if "fno" in models and "mgno" in models:
            ratio = models["mgno"]["l2"] / models["fno"]["l2"]
            print(f"  MgNO / FNO on {dataset}: {ratio:.2f} (goal < 1: {'met' if ratio < 1 else 'not met'}; "
                  f"parameters {models['mgno']['params']:,} vs {models['fno']['params']:,}, "
                  f"{models['mgno']['params'] / models['fno']['params'] - 1:+.1%})")
    mp = results.get("multiphase", {})
    if "fno" in mp and "dgno" in mp:
        ratio = mp["dgno"]["l2"] / mp["fno"]["l2"]
        print(f"  DGNO without labels / supervised FNO on multiphase: {ratio:.2f} "
              f"(goal <= 3: {'met' if ratio <= 3 else 'not met'})")
    if "multionet" in mp and "dgno" in mp:
        print(f"  DGNO without labels / supervised MultiONet on multiphase: "
              f"{mp['dgno']['l2'] / mp['multionet']['l2']:.2f}")
    if inverse:
        print(f"\ninverse problem (multiphase, label-free DGNO, {args.inverse} fresh coefficients, "
              f"{args.observations} observations of u at {args.snr_db:g} dB SNR, residual_std={args.residual_std}, "
              f"model_error={inverse['model_error']:.4g}):\n"
              f"  relative L2 error of the posterior mean of a: mean {inverse['error']:.4f}, max "
              f"{inverse['error_max']:.4f}\n"
              f"  true a within 2 posterior std of the mean: {inverse['coverage']:.1%} of grid points\n"
              f"  seconds per inversion: {inverse['seconds']:.2f}")
    threads = args.threads or (1 if args.jobs > 1 else torch.get_num_threads())
    print(f"\n{machine_line()}; {min(args.jobs, len(args.datasets))} training process(es) with {threads} "
          "torch thread(s) each")
    print(f"total wall time {time.perf_counter() - t_start:.0f} s; runs in {workdir}")


if __name__ == "__main__":
    main()
