"""Benchmark: sciops FNO against neuraloperator 2.0.0's FNO on the same Darcy data, on CPU.

Both models see the same data (FNO-type two-phase Darcy, default 33 x 33, 1000 training and 200
test samples generated here with the sciops solver), the same normalisation, batch size,
epochs, optimiser (AdamW, one-cycle schedule), training loss (relative H1) and test metric
(relative L2), through one training loop written below; only the model differs. Printed: seconds
per epoch (median over epochs), test relative L2, parameter counts, and the ratios.

Modes: neuraloperator's ``n_modes=(12, 12)`` keeps 12 frequencies in y (6 positive, 6 negative)
and 12 // 2 + 1 = 7 in x (real FFT). sciops counts modes per side, so the same retained spectrum
is ``modes=(6, 7)``. ``--nop-modes`` sets the neuraloperator value and sciops follows.

Run:  pip install -e ".[bench]"  &&  python scripts/bench_fno.py   (about 5 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=33)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--nop-modes", type=int, default=12, help="neuraloperator n_modes per dimension")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="existing sciops Darcy dataset to use (default: generate one)")
    p.add_argument("--json", help="results file (default docs/benchmarks/bench_fno.json)")
    return p.parse_args()


def load_data(args):
    from sciops import problems
    from sciops.datasets import generate, open_dataset

    path = args.data
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="bench_fno_"), "darcy.h5")
        problem = problems.get("darcy", resolution=args.resolution, coefficient="fno")
        generate(problem, args.n_train + args.n_test, path, seed=args.seed, progress=False)
    ds = open_dataset(path, in_memory=True)
    x, y = ds.get_batch(list(range(ds.n_samples)))
    n = args.n_train
    return x[:n], y[:n], x[n:n + args.n_test], y[n:n + args.n_test]


def build_models(args):
    from neuralop.models import FNO as NeuralopFNO

    from sciops.operators.fno import FNO

    m = args.nop_modes
    ours = FNO(1, 1, modes=(m // 2, m // 2 + 1), width=args.width, layers=args.layers, geometry="bounded")
    theirs = NeuralopFNO(n_modes=(m, m), in_channels=1, out_channels=1, hidden_channels=args.width,
                         n_layers=args.layers)
    return {"sciops": ours, "neuraloperator": theirs}


def train_and_test(model, data, args):
    from sciops.losses import LpLoss, SobolevLoss

    x_train, y_train, x_test, y_test = data
    xm, xs, ym, ys = x_train.mean(), x_train.std(), y_train.mean(), y_train.std()
    loss_fn, metric = SobolevLoss(1.0), LpLoss(2.0)
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2,
                                                div_factor=10.0, final_div_factor=100.0)
    gen = torch.Generator().manual_seed(args.seed)
    epoch_seconds = []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        for idx in torch.randperm(len(x_train), generator=gen).split(args.batch_size):
            opt.zero_grad(set_to_none=True)
            pred = model((x_train[idx] - xm) / xs) * ys + ym
            loss_fn(pred, y_train[idx]).backward()
            opt.step()
            sched.step()
        epoch_seconds.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model((x_test[i:i + 100] - xm) / xs) * ys + ym for i in range(0, len(x_test), 100)])
    return statistics.median(epoch_seconds), metric(pred, y_test).item()


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    data = load_data(args)
    models = build_models(args)
    results = {}
    for name, model in models.items():
        params = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
        seconds, error = train_and_test(model, data, args)
        results[name] = (seconds, error, params)
        print(f"{name:>15}: {seconds:.3f} s/epoch, test relative L2 {error:.4f}, {params} parameters", flush=True)
    (s_ours, e_ours, _), (s_theirs, e_theirs, _) = results["sciops"], results["neuraloperator"]
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"setup: Darcy {args.resolution}^2, {args.n_train} train / {args.n_test} test, {args.epochs} epochs, "
          f"batch {args.batch_size}, width {args.width}, {args.layers} layers, neuraloperator n_modes="
          f"({args.nop_modes}, {args.nop_modes}) = sciops modes ({args.nop_modes // 2}, {args.nop_modes // 2 + 1})")
    print(f"speed ratio (neuraloperator s/epoch / sciops s/epoch): {s_theirs / s_ours:.2f}x")
    print(f"error ratio (sciops / neuraloperator test relative L2): {e_ours / e_theirs:.2f}")
    from results import Results

    res = Results("bench_fno", settings=vars(args), extra_versions=("neuraloperator",))
    table = res.table("fno", ["model", "s / epoch", "test relative L2", "parameters"],
                      title=f"Darcy {args.resolution}^2, {args.n_train} train / {args.n_test} test, {args.epochs} epochs")
    for name, (seconds, error, params) in results.items():
        table.add([name, seconds, error, params])
    table.add(["ratio", f"{s_theirs / s_ours:.2f}x faster", f"{e_ours / e_theirs:.2f}x the error", ""])
    res.note(f"neuraloperator n_modes=({args.nop_modes}, {args.nop_modes}) = sciops modes "
             f"({args.nop_modes // 2}, {args.nop_modes // 2 + 1}); same data, loss, optimiser and schedule")
    res.write(args.json)


if __name__ == "__main__":
    main()
