"""Check a trained operator against its own reference solver.

``evaluate(surrogate, fresh=N)`` draws N samples with a base seed whose per-sample seeds are
disjoint from every seed of the training file (checked, not assumed), runs the reference solver
and the surrogate on them, and reports per-sample relative L2 and H1 errors, the max pointwise
error, the solver's and the surrogate's seconds per sample and their ratio (the speedup).
``evaluate(surrogate, data=FILE)`` does the same on a stored dataset, using the solver time the
file recorded. Surrogate time is measured after one warm-up call, on batches, on the surrogate's
device, and includes normalisation and host/device copies.

Trajectory problems (an output field with a ``t`` dim, e.g. ``navier-stokes``: w (N, T, y, x)):
a sample is a whole trajectory, so the seconds per sample are seconds per trajectory; ``rel_l2``
and ``rel_h1`` are the relative Bochner errors L2(0, T; L2) and L2(0, T; H1) of the whole
trajectory (``sciops.losses`` with ``spatial_dims``), ``max_abs`` / ``rel_max`` are over all
records, and ``report["per_time"]`` adds the relative L2 error at each recorded time (mean,
median, max over samples, with ``report["times"]``), which shows how errors grow along a rollout.
H1 norms use the problem's domain size (periodic grids: n times the spacing).

Inverse problems whose output is a ground-truth image (``radar``: the reflectivity magnitude |x|,
max 1) define ``problem.baselines(outputs)`` -> {method: (images, seconds per sample)}, the
classical reconstructions of the same samples (for ``radar`` the reference solve and Kirchhoff
migration, from the measurements). Their solver time is that of the "reference" reconstruction
(not of the forward simulation that generated the data), so it is known only with ``fresh=N``
(NaN with ``data=FILE``). With ``fresh=N`` the report then adds ``report["images"]``:
PSNR and SSIM (``sciops.image_metrics``, data range 1) and the normalised error
||pred - truth|| / ||truth|| of the surrogate and of each baseline against the ground truth, with
seconds per sample (the surrogate's from the stored first-stage input, the baselines' from the
measurements). Stored datasets hold no measurements in their outputs, so ``data=FILE`` skips it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from sciops.datasets.progress import Progress
from sciops.grid.baseline import baseline_outputs
from sciops.grid.error_estimator import is_trajectory
from sciops.ladder import batch_seconds, measure_ladder, single_seconds, speed_report
from sciops.losses import LpLoss, SobolevLoss, loss_options
from sciops.reporting import public, summary_stats  # noqa: F401  (public: part of the report API)
from sciops.runs.input_summary import counted_not_warned


def _as_channels(fields, names: list[str], problem) -> torch.Tensor:
    """Fields (batch, [time,] *space[, C]) stacked channel-first: (batch, channels, [time,] *space)."""
    fields = fields if isinstance(fields, dict) else {names[0]: fields}
    parts = [torch.as_tensor(np.asarray(fields[k], dtype=np.float32)) for k in names]
    return torch.cat([p.movedim(-1, 1) if "channel" in problem.fields[k].dims else p.unsqueeze(1)
                      for p, k in zip(parts, names)], dim=1)


def output_layout(problem, name: str) -> tuple[bool, tuple[float, ...] | float]:
    """Whether output field ``name`` has a time axis, and its spatial extent for H^s norms
    (periodic: n times the grid spacing per dim; bounded: the unit box, as in training)."""
    dims = problem.fields[name].dims
    space = [d for d in dims if d not in ("t", "channel")]
    extent: tuple[float, ...] | float = 1.0
    if problem.geometry == "periodic" and all(d in problem.grid and len(problem.grid[d]) > 1 for d in space):
        extent = tuple(float(len(problem.grid[d]) * (problem.grid[d][1] - problem.grid[d][0])) for d in space)
    return "t" in dims, extent


def error_metrics(pred: torch.Tensor, ref: torch.Tensor, geometry: str, *, spatial_dims: int | None = None,
                  extent: tuple[float, ...] | float = 1.0, grid: str | None = None) -> dict[str, np.ndarray]:
    """Per-sample errors of channel-first tensors (batch, C, *space), or of trajectories
    (batch, C, T, *space) with ``spatial_dims`` set: then Bochner L2(0, T; X) errors. ``grid``:
    the grid type on the sphere."""
    kw = dict(geometry=geometry, reduction="none", spatial_dims=spatial_dims, extent=extent, grid=grid)
    l2 = LpLoss(2, **kw)(pred, ref)
    h1 = SobolevLoss(1, **kw)(pred, ref)
    max_abs = (pred - ref).abs().flatten(1).max(1).values
    rel_max = max_abs / ref.abs().flatten(1).max(1).values.clamp_min(1e-30)
    return {"rel_l2": l2.numpy(), "rel_h1": h1.numpy(), "max_abs": max_abs.numpy(), "rel_max": rel_max.numpy()}


def per_time_errors(pred: torch.Tensor, ref: torch.Tensor, geometry: str, *,
                    extent: tuple[float, ...] | float = 1.0, grid: str | None = None) -> np.ndarray:
    """Relative L2 error of each record: (batch, T) for trajectories (batch, C, T, *space)."""
    loss = LpLoss(2, geometry=geometry, reduction="none", extent=extent, grid=grid)
    return torch.stack([loss(pred[:, :, t], ref[:, :, t]) for t in range(pred.shape[2])], dim=1).numpy()


def image_comparison(problem, outputs: dict, pred: np.ndarray, surrogate_seconds: float, name: str) -> dict:
    """PSNR, SSIM, normalised error and seconds per sample of the surrogate's images ``pred`` and of
    ``problem.baselines(outputs)`` against the ground truth ``outputs[name]``."""
    from sciops.image_metrics import SSIM_MIN_SIDE, nrmse, psnr, ssim

    truth = np.asarray(outputs[name], dtype=np.float64)
    fits = min(truth.shape[1:]) >= SSIM_MIN_SIDE  # else SSIM is undefined (NaN): its window does not fit
    candidates = {"surrogate": (pred, surrogate_seconds), **problem.baselines(outputs)}
    table = {}
    for method, (images, seconds) in candidates.items():
        images = np.asarray(images, dtype=np.float64)
        table[method] = {"psnr": float(np.mean(psnr(images, truth))),
                         "ssim": float(np.mean(ssim(images, truth))) if fits else float("nan"),
                         "nrmse": float(np.mean(nrmse(images, truth))), "seconds_per_sample": float(seconds)}
    return table


def check_same_geometry(data_problem, problem, path) -> None:
    """ValueError unless the data come from the run's problem, with the same operator parameters
    (``Problem.operator_params``: viscosity, recorded times, ...), on the same kind of grid (the
    resolution may differ: operators that serve other resolutions are checked by the surrogate)."""
    if data_problem.name != problem.name:
        raise ValueError(f"{path} holds {data_problem.name} data, but the run was trained on {problem.name}")
    problem.check_same_operator(data_problem.params, problem.params, path)
    ours, theirs = loss_options(problem), loss_options(data_problem)
    if ours != theirs:
        data_grid, run_grid = (", ".join(f"{k} {v}" for k, v in o.items()) for o in (theirs, ours))
        raise ValueError(f"{path} is on a grid with {data_grid}, but the run was trained on {run_grid}; "
                         "expected data on the run's grid type")


def evaluate(surrogate, *, fresh: int | None = None, data: str | Path | None = None, batch: int = 25,
             progress_enabled: bool | None = None, tol: float | None = None, ladder: bool = True,
             steps: int | None = None) -> dict:
    """Errors and speedup of ``surrogate`` against its reference solver (see module docstring);
    with ``tol``, also its certified answers (``report["certified"]``, see
    :func:`sciops.grid.certified.certified_report`). The share of inputs outside the training inputs'
    summary is reported (``out_of_distribution_share``) instead of warned about on every call.
    ``ladder=False`` leaves out the solver ladder (errors only, no equal-accuracy speedup). On a
    trajectory run ``tol`` runs the hybrid rollout over ``steps`` records (default the horizon) instead
    (``report["hybrid"]``, see :func:`sciops.grid.hybrid.hybrid_report`)."""
    with counted_not_warned():
        return _evaluate(surrogate, fresh, data, batch, progress_enabled, tol, ladder, steps)


def _evaluate(surrogate, fresh, data, batch, progress_enabled, tol, with_ladder, steps) -> dict:
    if (fresh is None) == (data is None):
        raise ValueError("evaluate needs exactly one of fresh=N or data=FILE")
    problem = surrogate.problem
    hybrid_tol = tol if tol is not None and is_trajectory(problem, surrogate.outputs) else None
    if hybrid_tol is not None:
        from sciops.grid.error_estimator import calibration_of, rollout_problem
        from sciops.grid.hybrid import check_steps, check_tol

        check_tol(tol)
        calibration_of(surrogate)
        if steps is not None:  # a rollout the solver refuses, refused before any work
            rollout_problem(problem, check_steps(steps))
        tol = None  # the trajectory's --tol is the hybrid rollout's, not a certification
    if tol is not None:
        from sciops.grid.certified import certified_problems, check_tol

        if not problem.certified:
            raise ValueError(f"--tol: problem {problem.name} has no certified error bound; problems with one: "
                             f"{', '.join(certified_problems())}")
        check_tol(tol, "--tol")
    spec = surrogate.spec
    if fresh is not None:
        if fresh < 1:
            raise ValueError(f"fresh must be >= 1, got {fresh}")
        if not problem.has_solver:
            problem.sample_inputs(fresh, 0)  # raises its one-line error: no solver, and what to do instead
        seed = spec.fresh_seed(fresh)
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
        check_same_geometry(ds.problem, problem, data)
        x, y = ds.get_batch(list(range(ds.n_samples)))
        inputs, outputs = ds.split_fields(x, ds.input_fields), ds.split_fields(y, ds.output_fields)
        n = ds.n_samples
        solve_seconds = float(ds.attrs.get("solve_seconds", float("nan")))
        source = {"data": str(data), "seed": int(ds.attrs["seed"])}
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    surrogate_per_sample = batch_seconds(surrogate.solve, model_inputs, surrogate.device)
    surrogate_batch1 = single_seconds(surrogate.solve, model_inputs, surrogate.device)
    pred = surrogate.solve(model_inputs)
    ndim = surrogate.ndim
    trajectory, extent = output_layout(problem, surrogate.outputs[0])
    ref_t = _as_channels(outputs, surrogate.outputs, problem)
    grid = loss_options(problem).get("grid")

    def metrics(answers, fields=surrogate.outputs, reference=ref_t):
        return error_metrics(_as_channels(answers, fields, problem), reference, problem.geometry,
                             spatial_dims=ndim if trajectory else None, extent=extent, grid=grid)

    errors = metrics(pred)
    solver_per_sample = solve_seconds / n
    images = None
    if hasattr(problem, "baselines"):
        # an inverse problem: the solver a reconstruction replaces is the classical "reference"
        # reconstruction, not the forward simulation whose time generate() and datasets record
        solver_per_sample = float("nan")
        if fresh is not None and len(surrogate.outputs) == 1:
            images = image_comparison(problem, outputs, pred, surrogate_per_sample, surrogate.outputs[0])
            solver_per_sample = images["reference"]["seconds_per_sample"]
    solver_batch1 = _reference_batch1(problem, model_inputs)
    if math.isnan(solver_per_sample):
        solver_batch1 = float("nan")  # not comparable either (an inverse problem's forward simulation)
    report = {
        "operator": spec.operator.name,
        "problem": {"name": spec.problem.name, "params": spec.problem.params},
        "samples": n,
        "source": source,
        "resolution": list(next(iter(outputs.values())).shape[1:][-ndim:]),
        "trained_resolution": spec.data.resolution,
        "metrics": {name: summary_stats(v) for name, v in errors.items()},
        "solver_seconds_per_sample": solver_per_sample,
        "surrogate_seconds_per_sample": surrogate_per_sample,
        "solver_seconds_per_sample_batch1": solver_batch1,
        "surrogate_seconds_per_sample_batch1": surrogate_batch1,
        "device": str(surrogate.device),
    }
    forward = None if hasattr(problem, "baselines") else problem.solve  # the solve the rungs are skipped against
    report["ladder"] = (measure_ladder(problem.ladder(), model_inputs, lambda out: float(metrics(out)["rel_l2"].mean()),
                                       solver_per_sample, forward) if with_ladder else None)
    report["accuracy_cost"] = {"metric": "mean relative L2 error", "unit": "trajectory" if trajectory else "sample",
                               "surrogate_error": float(errors["rel_l2"].mean()),
                               "surrogate_seconds": [surrogate_per_sample, surrogate_batch1]}
    report.update(speed_report(report["ladder"] or [], float(errors["rel_l2"].mean()),
                               (surrogate_per_sample, surrogate_batch1), (solver_per_sample, solver_batch1)))
    if not with_ladder:
        for suffix in ("", "_batch1"):
            report[f"speedup_equal_accuracy{suffix}_note"] = "left out (--no-ladder)"
    report.update(_baseline_and_fields(problem, spec, inputs, outputs, pred, surrogate.outputs, metrics))
    if images is not None:
        report["images"] = images
    if spec.input_summary and len(surrogate.inputs) == 1:
        report["out_of_distribution_share"] = float(np.mean(surrogate.out_of_distribution(model_inputs)))
    if tol is not None:
        from sciops.grid.certified import certified_report

        report["certified"] = certified_report(surrogate, model_inputs, outputs[surrogate.outputs[0]], tol)
    order = np.argsort(errors["rel_l2"])
    median_sample = int(order[len(order) // 2])
    report["_arrays"] = {"inputs": {k: v[median_sample] for k, v in inputs.items()},
                         "reference": {k: v[median_sample] for k, v in outputs.items()},
                         "prediction": {k: (pred[k] if isinstance(pred, dict) else pred)[median_sample]
                                        for k in surrogate.outputs},
                         "index": median_sample, "rel_l2": float(errors["rel_l2"][median_sample]),
                         "extent": extent}
    if problem.geometry == "sphere":  # the figure's axes: latitude (first row first) and longitude in degrees
        report["_arrays"]["lonlat"] = [float(problem.grid["lat"][0]), float(problem.grid["lat"][-1])]
    dims = problem.fields[surrogate.outputs[0]].dims
    if len(dims) == 3 and all(problem.grid_units.get(d) == "m" for d in dims):  # a volume in metres (radar)
        report["_arrays"]["volume_axes"] = {d: [float(problem.grid[d][0]), float(problem.grid[d][-1])] for d in dims}
    if trajectory:
        per_time = per_time_errors(_as_channels(pred, surrogate.outputs, problem), ref_t, problem.geometry,
                                   extent=extent, grid=grid)
        times = problem.grid.get("t")
        times = list(map(float, times)) if times is not None and len(times) == per_time.shape[1] \
            else list(range(1, per_time.shape[1] + 1))
        report["times"] = times
        report["time_steps"] = len(times)
        report["per_time"] = {"rel_l2": summary_stats(per_time, axis=0)}
        report["_arrays"]["times"] = times
        report["_arrays"]["per_time_rel_l2"] = per_time[median_sample]
        if hasattr(problem, "diagnostics"):
            report["diagnostics"] = diagnostic_ratios(problem, pred, outputs)
        if hybrid_tol is not None:
            from sciops.grid.hybrid import hybrid_report

            report.update(hybrid_report(surrogate, inputs, outputs, pred, hybrid_tol, steps,
                                        reference_seconds=solver_per_sample, ladder=with_ladder,
                                        progress=progress_enabled))
    return report


def _reference_batch1(problem, inputs) -> float:
    """Seconds per sample of the reference solver called on one sample at a time (NaN without a solver)."""
    try:
        return single_seconds(problem.solve, inputs)
    except (ValueError, NotImplementedError):
        return float("nan")


def _baseline_and_fields(problem, spec, inputs, outputs, pred, fields, metrics) -> dict:
    """The trivial baseline's errors, and with several output fields each field's errors, the
    surrogate's and the baseline's."""
    answer, what = baseline_outputs(problem, spec, inputs, outputs, fields)
    out = {"baseline": {"description": what}}
    if answer is not None:
        out["baseline"]["rel_l2"] = summary_stats(metrics(answer)["rel_l2"])
    if len(fields) > 1:
        per_field = {}
        for name in fields:
            reference = _as_channels(outputs, [name], problem)
            one = {"rel_l2": summary_stats(metrics(pred, [name], reference)["rel_l2"])}
            if answer is not None:
                one["baseline_rel_l2"] = summary_stats(metrics(answer, [name], reference)["rel_l2"])
            per_field[name] = one
        out["fields"] = per_field
    return out


def diagnostic_ratios(problem, pred: dict, reference: dict) -> dict:
    """Per recorded time, the mean over samples of surrogate / reference for each scalar of
    ``problem.diagnostics`` (e.g. energies), and the reference's mean."""
    ours, theirs = problem.diagnostics(pred), problem.diagnostics(reference)
    return {name: {"ratio": (ours[name] / theirs[name]).mean(0).tolist(), "reference": theirs[name].mean(0).tolist()}
            for name in theirs}


def markdown(report: dict, title: str = "Evaluation") -> str:
    m = report["metrics"]
    trajectory = "per_time" in report
    unit, units = ("trajectory", "trajectories") if trajectory else ("sample", "samples")
    labels = {"rel_l2": "rel_l2 (L2(0,T;L2))", "rel_h1": "rel_h1 (L2(0,T;H1))"} if trajectory else {}
    rows = "\n".join(f"| {labels.get(name, name)} | {v['mean']:.4g} | {v['median']:.4g} | {v['max']:.4g} |"
                     for name, v in m.items())
    text = (f"# {title}\n\n"
            f"Operator `{report['operator']}` on problem `{report['problem']['name']}` "
            f"({json.dumps(report['problem']['params'])}), {report['samples']} {units} at "
            f"resolution {report['resolution']}"
            + (f" with {report['time_steps']} records" if trajectory else "")
            + f" ({json.dumps(report['source'])}).\n\n"
            f"| error | mean | median | max |\n|---|---|---|---|\n{rows}\n\n")
    if trajectory:
        per = report["per_time"]["rel_l2"]
        lines = "\n".join(f"| {t:.4g} | {a:.4g} | {b:.4g} | {c:.4g} |"
                           for t, a, b, c in zip(report["times"], per["mean"], per["median"], per["max"]))
        text += f"Relative L2 error per recorded time:\n\n| t | mean | median | max |\n|---|---|---|---|\n{lines}\n\n"
    if "diagnostics" in report:
        names = list(report["diagnostics"])
        lines = "\n".join(f"| {t:.4g} | " + " | ".join(f"{report['diagnostics'][n]['ratio'][i]:.4g}" for n in names) + " |"
                          for i, t in enumerate(report["times"]))
        text += (f"Surrogate / reference per recorded time (sample means):\n\n| t | {' | '.join(names)} |\n"
                 f"|---|{'---|' * len(names)}\n{lines}\n\n")
    if "images" in report:
        rows = "\n".join(f"| {k} | {v['psnr']:.2f} | {v['ssim']:.3f} | {v['nrmse']:.3f} | {v['seconds_per_sample']:.3g} |"
                         for k, v in report["images"].items())
        text += ("Against the ground truth:\n\n| method | PSNR dB | SSIM | normalised error | s/sample |\n"
                 f"|---|---|---|---|---|\n{rows}\n\n")
    text += f"Speed on {report['device']}: {speed_sentence(report, unit)}.\n"
    if report.get("ladder"):
        rows = "\n".join(f"| {r['label']} | " + (f"{r['error']:.4g} | {r['seconds_per_sample'] * 1e3:.3g} | "
                                                 f"{r['seconds_per_sample_batch1'] * 1e3:.3g} |" if r["error"] is not None
                                                 else f"- | - | - | {r['note']}")
                          for r in report["ladder"])
        text += ("\nThe solver's ladder (cheaper configurations of the reference solver, on the same inputs):\n\n"
                 f"| rung | error | ms/{unit} | ms/{unit} at batch 1 |\n|---|---|---|---|\n{rows}\n")
    if "baseline" in report:
        b = report["baseline"]
        text += (f"\nTrivial baseline, {b['description']}: relative L2 {b['rel_l2']['mean']:.4g}.\n" if "rel_l2" in b
                 else f"\nTrivial baseline: none ({b['description']}).\n")
    for name, v in report.get("fields", {}).items():
        text += (f"\nField {name}: relative L2 {v['rel_l2']['mean']:.4g}"
                 + (f" (baseline {v['baseline_rel_l2']['mean']:.4g})" if "baseline_rel_l2" in v else "") + ".")
    if "fields" in report:
        text += "\n"
    if "out_of_distribution_share" in report:
        text += f"\nInputs outside the training inputs' range: {report['out_of_distribution_share']:.1%}.\n"
    if "certified" in report:
        from sciops.grid.certified import certified_text

        text += f"\nCertified answers: {certified_text(report['certified'])}.\n"
    return text


def speed_sentence(report: dict, unit: str) -> str:
    """The times, the nominal speedup and beside it the one at equal accuracy (or why there is none),
    at the evaluation batch and at batch 1; in words when an equally accurate solve is faster."""
    solver, surrogate = report["solver_seconds_per_sample"], report["surrogate_seconds_per_sample"]
    text = (f"solver {solver * 1e3:.3g} ms/{unit}, " if math.isfinite(solver) else
            "solver time unknown (the data record none comparable; evaluate with --fresh N), ")
    text += f"surrogate {surrogate * 1e3:.3g} ms/{unit}"
    parts = []
    for suffix, where in (("", f"batch {report['samples']}"), ("_batch1", "batch 1")):
        value = report.get(f"speedup_equal_accuracy{suffix}")
        note = report.get(f"speedup_equal_accuracy{suffix}_note", "")
        nominal = report.get(f"speedup{suffix}", float("nan"))
        if value is None:
            parts.append(f"at {where}: speedup {nominal:.3g}x nominal, no equal-accuracy figure ({note})")
            continue
        verdict = " - an equally accurate solve is faster" if value < 1 else ""
        parts.append(f"at {where}: speedup {nominal:.3g}x nominal, {value:.3g}x at equal accuracy ({note}){verdict}")
    baseline = report.get("baseline", {}).get("rel_l2")
    if baseline is not None and report["metrics"]["rel_l2"]["mean"] >= baseline["mean"]:
        parts.append(f"the surrogate is no more accurate than the trivial baseline ({baseline['mean']:.3g}): "
                     f"no speedup means anything")
    return text + "; " + "; ".join(parts)


def summary_line(report: dict) -> str:
    m = report["metrics"]
    trajectory = "per_time" in report
    unit = "trajectory" if trajectory else "sample"
    l2 = "relative L2(0,T;L2)" if trajectory else "relative L2"
    h1 = "relative L2(0,T;H1)" if trajectory else "relative H1"
    text = (f"{l2} {m['rel_l2']['mean']:.4f} (median {m['rel_l2']['median']:.4f}), "
            f"{h1} {m['rel_h1']['mean']:.4f}, max error {m['max_abs']['max']:.3g}; ")
    if trajectory:
        per = report["per_time"]["rel_l2"]["mean"]
        text += f"relative L2 at t = {report['times'][0]:.3g} / {report['times'][-1]:.3g}: {per[0]:.4f} / {per[-1]:.4f}; "
    if "baseline" in report and "rel_l2" in report["baseline"]:
        text += f"trivial baseline {report['baseline']['rel_l2']['mean']:.4f}; "
    for name, v in report.get("fields", {}).items():
        text += f"{name} {v['rel_l2']['mean']:.4f}" + (f" (baseline {v['baseline_rel_l2']['mean']:.4f})"
                                                     if "baseline_rel_l2" in v else "") + "; "
    text += speed_sentence(report, unit)
    if "certified" in report:
        from sciops.grid.certified import certified_text

        text += "\n" + certified_text(report["certified"])
    if "hybrid" in report:
        from sciops.grid.hybrid import hybrid_text

        text += "\n" + hybrid_text(report)
    for method, v in report.get("images", {}).items():  # one line per reconstruction against the ground truth
        text += (f"\n{method}: PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}, normalised error {v['nrmse']:.3f}, "
                 f"{v['seconds_per_sample'] * 1e3:.3g} ms/sample")
    return text
