"""``sciops demo``: the embedded default run, end to end.

1. Generate a Darcy dataset (FNO coefficients: thresholded GRF, 12/3, f = 1) as in the FNO
   paper: solved with the reference finite-difference solver on a fine 129 x 129 grid and stored
   at 33 x 33 (``subsample=4``).
2. Train an FNO on it (12 modes per side, width 32, 4 layers; H1 loss, AdamW, one-cycle
   schedule, 40 epochs).
3. Evaluate it against the solver on freshly sampled coefficients, at the training resolution
   and at 65 x 65 (zero-shot, the same weights, against the same 129 x 129 solves), and write
   ``report.md``, ``report.json``, ``figure.png`` and ``accuracy-cost.png`` (the surrogate on the
   solver's ladder: the equal-accuracy speedup is the headline figure) into the output folder. The evaluation also
   certifies the answers to a relative energy-norm error of 1e-3 (``sciops.grid.certified``): the
   bound's coverage and effectivity, the share the solver finishes, and the certified time.

Rerunning the demo in the same folder resumes: a complete dataset is reused, an interrupted
generation or training run continues where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from sciops import problems
from sciops.files import atomic_write


@dataclass(frozen=True)
class DemoSettings:
    resolution: int = 33
    subsample: int = 4
    n_train: int = 1000
    n_val: int = 100
    epochs: int = 40
    fresh: int = 100
    hparams: tuple = (("modes", 12), ("width", 32), ("layers", 4))
    batch_size: int = 32
    lr: float = 5e-3
    super_resolution: int = 65


CERTIFY_TOL = 1e-3  # the demo's certified answers: relative energy-norm error at most this

QUICK = DemoSettings(resolution=17, subsample=2, n_train=48, n_val=8, epochs=2, fresh=8,
                     hparams=(("modes", 4), ("width", 8), ("layers", 2)), super_resolution=33)


def run_demo(out: Path, *, quick: bool = False, progress: bool | None = None) -> dict:
    from sciops.datasets import generate
    from sciops.datasets.schema import DatasetExistsError
    from sciops.grid.evaluation import evaluate, markdown, public, summary_line
    from sciops.grid.figures import plot_comparison
    from sciops.grid.surrogate import Surrogate
    from sciops.grid.trainer import train
    from sciops.plotting import plot_accuracy_cost
    from sciops.training import TrainConfig

    s = QUICK if quick else DemoSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    problem = problems.get("darcy", resolution=s.resolution, subsample=s.subsample, coefficient="fno")
    data = out / "darcy.h5"
    print(f"[1/3] generating {s.n_train + s.n_val} Darcy samples (solved at {problem.solve_resolution}^2, "
          f"stored at {s.resolution}^2) -> {data}")
    t0 = time.perf_counter()
    try:
        generate(problem, s.n_train + s.n_val, data, seed=0, resume=True, progress=progress)
    except DatasetExistsError:  # the writer's advice (--overwrite) is not an option of demo
        raise ValueError(f"{out} holds the data of another demo (other settings: {'the full' if quick else 'a --quick'} "
                         "run?); choose another directory with -o, or remove it") from None
    t_generate = time.perf_counter() - t0

    run_dir = out / "run"
    print(f"[2/3] training FNO ({dict(s.hparams)}) for {s.epochs} epochs -> {run_dir}")
    config = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, loss="h1",
                         val_fraction=s.n_val / (s.n_train + s.n_val))
    t0 = time.perf_counter()
    summary = train("fno", data, run_dir, hparams=dict(s.hparams), config=config,
                    resume=True, progress=progress)
    t_train = time.perf_counter() - t0

    print(f"[3/3] evaluating against the solver on {s.fresh} fresh samples")
    surrogate = Surrogate.load(run_dir)
    report = evaluate(surrogate, fresh=s.fresh, progress_enabled=progress, tol=CERTIFY_TOL)
    plot_comparison(report, out / "figure.png")
    plot_accuracy_cost(report, out / "accuracy-cost.png")
    factor = (problem.solve_resolution - 1) // (s.super_resolution - 1)
    fine = problems.get("darcy", resolution=s.super_resolution, subsample=factor, coefficient="fno")
    a_fine, u_fine, _ = fine.generate(min(s.fresh, 20), seed=report["source"]["seed"])
    import torch

    from sciops.grid.evaluation import error_metrics
    from sciops.runs.input_summary import counted_not_warned

    with counted_not_warned():  # zero-shot on another grid: the report is about accuracy there
        fine_l2 = float(error_metrics(torch.as_tensor(surrogate.solve(a_fine))[:, None],
                                      torch.as_tensor(u_fine)[:, None], "bounded")["rel_l2"].mean())
    total = time.perf_counter() - t_start
    result = {**public(report), "training": summary,
              "zero_shot": {"resolution": s.super_resolution, "samples": len(a_fine), "rel_l2_mean": fine_l2},
              "timings": {"generate_s": t_generate, "train_s": t_train, "total_s": total}}
    text = markdown(report, "sciops demo: FNO surrogate for Darcy flow") + (
        f"\nSame weights at {s.super_resolution}x{s.super_resolution} (zero-shot): mean relative L2 {fine_l2:.4f} "
        f"on {len(a_fine)} fresh samples.\n\nTraining: {summary['epochs']} epochs, "
        f"{summary['seconds_per_epoch']:.2f} s/epoch, best epoch {summary['best_epoch']}.\n"
        f"Wall time: generate {t_generate:.1f} s, train {t_train:.1f} s, total {total:.1f} s.\n\n![figure](figure.png)\n\n![accuracy against cost](accuracy-cost.png)\n")
    atomic_write(out / "report.md", lambda f: f.write(text.encode()))
    atomic_write(out / "report.json", lambda f: f.write((json.dumps(result, indent=2) + "\n").encode()))
    print(f"\nsciops demo done in {total:.0f} s: {summary_line(report)}")
    print(f"zero-shot at {s.super_resolution}x{s.super_resolution}: relative L2 {fine_l2:.4f}")
    print(f"report: {out / 'report.md'}  figures: {out / 'figure.png'}, {out / 'accuracy-cost.png'}")
    return result
