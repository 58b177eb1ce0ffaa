"""Check a trained operator against its own reference solver.

``evaluate(surrogate, fresh=N)`` draws N samples with a base seed whose per-sample seeds are
disjoint from every seed of the training file (checked, not assumed), runs the reference solver
and the surrogate on them, and reports per-sample relative L2 and H1 errors, the max pointwise
error, the solver's and the surrogate's seconds per sample and their ratio (the speedup).
``evaluate(surrogate, data=FILE)`` does the same on a stored dataset, using the solver time the
file recorded. Surrogate time is measured after one warm-up call, on batches, on the surrogate's
device, and includes normalisation and host/device copies.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from sciops.losses import LpLoss, SobolevLoss
from sciops.problems import sample_seed
from sciops.datasets.progress import Progress

FRESH_SEED_OFFSET = 7_919  # base seed of fresh samples = training seed + offset (+1 until disjoint)


def fresh_seed(config: dict, n: int) -> int:
    """A base seed whose first n sample seeds share nothing with the training file's seeds."""
    data = config["data"]
    used = {sample_seed(data["seed"], i) for i in range(data["n_samples"])}
    seed = data["seed"] + FRESH_SEED_OFFSET
    while any(sample_seed(seed, i) in used for i in range(n)):
        seed += 1
    return seed


def _as_channels(fields, names: list[str], ndim: int) -> torch.Tensor:
    fields = fields if isinstance(fields, dict) else {names[0]: fields}
    return torch.stack([torch.as_tensor(np.asarray(fields[k], dtype=np.float32)) for k in names], dim=-ndim - 1)


def error_metrics(pred: torch.Tensor, ref: torch.Tensor, geometry: str) -> dict[str, np.ndarray]:
    """Per-sample errors of channel-first tensors (batch, C, *space)."""
    l2 = LpLoss(2, geometry=geometry, reduction="none")(pred, ref)
    h1 = SobolevLoss(1, geometry=geometry, reduction="none")(pred, ref)
    max_abs = (pred - ref).abs().flatten(1).max(1).values
    rel_max = max_abs / ref.abs().flatten(1).max(1).values.clamp_min(1e-30)
    return {"rel_l2": l2.numpy(), "rel_h1": h1.numpy(), "max_abs": max_abs.numpy(), "rel_max": rel_max.numpy()}


def _time_surrogate(surrogate, inputs, repeats: int = 3) -> float:
    def first(x, k):
        return {n: v[:k] for n, v in x.items()} if isinstance(x, dict) else x[:k]

    surrogate.solve(first(inputs, 2))  # warm-up: allocations, FFT plans
    best = float("inf")
    for _ in range(repeats):
        if surrogate.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        surrogate.solve(inputs)
        if surrogate.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def evaluate(surrogate, *, fresh: int | None = None, data: str | Path | None = None, batch: int = 25,
             progress_enabled: bool | None = None) -> dict:
    """Errors and speedup of ``surrogate`` against its reference solver (see module docstring)."""
    if (fresh is None) == (data is None):
        raise ValueError("evaluate needs exactly one of fresh=N or data=FILE")
    problem = surrogate.problem
    config = surrogate.config
    if fresh is not None:
        if fresh < 1:
            raise ValueError(f"fresh must be >= 1, got {fresh}")
        seed = fresh_seed(config, fresh)
        ins, outs, solve_seconds = [], [], 0.0
        bar = Progress(fresh, desc="reference solves", mode=progress_enabled)
        for start in range(0, fresh, batch):
            k = min(batch, fresh - start)
            i, o, seconds = problem.generate(k, seed, start)
            ins.append(problem.as_field_dict(i, "input"))
            outs.append(problem.as_field_dict(o, "output"))
            solve_seconds += seconds
            bar.update(k)
        bar.close()
        inputs = {k: np.concatenate([d[k] for d in ins]) for k in ins[0]}
        outputs = {k: np.concatenate([d[k] for d in outs]) for k in outs[0]}
        n, source = fresh, {"fresh": fresh, "seed": seed}
    else:
        from sciops.datasets import open_dataset

        ds = open_dataset(data, in_memory=True)
        x, y = ds.get_batch(list(range(ds.n_samples)))
        inputs = {k: x[:, c].numpy() for c, k in enumerate(ds.input_fields)}
        outputs = {k: y[:, c].numpy() for c, k in enumerate(ds.output_fields)}
        n = ds.n_samples
        solve_seconds = float(ds.attrs.get("solve_seconds", float("nan")))
        source = {"data": str(data), "seed": int(ds.attrs["seed"])}
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    surrogate_seconds = _time_surrogate(surrogate, model_inputs)
    pred = surrogate.solve(model_inputs)
    ndim = surrogate.ndim
    errors = error_metrics(_as_channels(pred, surrogate.outputs, ndim),
                           _as_channels(outputs, surrogate.outputs, ndim), problem.geometry)
    solver_per_sample = solve_seconds / n
    surrogate_per_sample = surrogate_seconds / n
    report = {
        "operator": config["operator"]["name"],
        "problem": config["problem"],
        "samples": n,
        "source": source,
        "resolution": list(next(iter(outputs.values())).shape[1:]),
        "trained_resolution": config["data"].get("resolution"),
        "metrics": {name: {"mean": float(v.mean()), "median": float(np.median(v)), "max": float(v.max())}
                    for name, v in errors.items()},
        "solver_seconds_per_sample": solver_per_sample,
        "surrogate_seconds_per_sample": surrogate_per_sample,
        "speedup": solver_per_sample / surrogate_per_sample,
        "device": str(surrogate.device),
    }
    order = np.argsort(errors["rel_l2"])
    median_sample = int(order[len(order) // 2])
    report["_arrays"] = {"inputs": {k: v[median_sample] for k, v in inputs.items()},
                         "reference": {k: v[median_sample] for k, v in outputs.items()},
                         "prediction": {k: (pred[k] if isinstance(pred, dict) else pred)[median_sample]
                                        for k in surrogate.outputs},
                         "index": median_sample, "rel_l2": float(errors["rel_l2"][median_sample])}
    return report


def public(report: dict) -> dict:
    """The report without its arrays, ready for JSON."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def markdown(report: dict, title: str = "Evaluation") -> str:
    m = report["metrics"]
    rows = "\n".join(f"| {name} | {v['mean']:.4g} | {v['median']:.4g} | {v['max']:.4g} |" for name, v in m.items())
    return (f"# {title}\n\n"
            f"Operator `{report['operator']}` on problem `{report['problem']['name']}` "
            f"({json.dumps(report['problem']['params'])}), {report['samples']} samples at "
            f"resolution {report['resolution']} ({json.dumps(report['source'])}).\n\n"
            f"| error | mean | median | max |\n|---|---|---|---|\n{rows}\n\n"
            f"Reference solver: {report['solver_seconds_per_sample'] * 1e3:.3g} ms/sample; "
            f"surrogate: {report['surrogate_seconds_per_sample'] * 1e3:.3g} ms/sample on {report['device']}; "
            f"speedup {report['speedup']:.3g}x.\n")


def summary_line(report: dict) -> str:
    m = report["metrics"]
    return (f"relative L2 {m['rel_l2']['mean']:.4f} (median {m['rel_l2']['median']:.4f}), "
            f"relative H1 {m['rel_h1']['mean']:.4f}, max error {m['max_abs']['max']:.3g}; "
            f"solver {report['solver_seconds_per_sample'] * 1e3:.3g} ms/sample, surrogate "
            f"{report['surrogate_seconds_per_sample'] * 1e3:.3g} ms/sample, speedup {report['speedup']:.3g}x")
