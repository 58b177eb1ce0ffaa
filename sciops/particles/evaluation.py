"""Check a trained particle operator (GIOROM) against the MLS-MPM simulator: rollout error and speedup.

``evaluate(surrogate, fresh=N)`` draws N new trajectories of the run's ``particles`` problem with a
base seed whose sample seeds are disjoint from the training file's (``RunSpec.fresh_seed``,
as for grid operators) and simulates them; ``evaluate(surrogate, data=FILE)`` takes the
trajectories of a stored ``particles`` dataset instead, with the solver time the file recorded.
The surrogate starts from each trajectory's first H + 1 frames (H = the stepper's history) and
rolls out the remaining S = T - H - 1 frames autoregressively, every point of the cloud (sparse
stepper plus kernel reconstruction).

Reported (positions in m, errors in m^2):

* ``metrics.position_mse``: per trajectory, the mean over the S frames, particles and coordinates
  of the squared position error (mean, median, max over trajectories); ``final_position_mse`` the
  same at the last frame; ``constant_velocity_mse`` the error of extrapolating the last input
  velocity, x_{H+s} = x_H + s (x_H - x_{H-1}), the floor a learned stepper should beat;
* ``per_step``: the position MSE at each rollout frame s = 1 .. S (mean, median, max over
  trajectories, and the constant-velocity mean), and ``growth_per_step``, the geometric mean
  factor by which the mean MSE grows per frame, (MSE_S / MSE_1)^(1 / (S - 1));
* speed: ``solver_seconds_per_trajectory`` is the simulator's time for the same S frames (its time
  for the T - 1 frame intervals of the trajectory times S / (T - 1)), ``surrogate_seconds_per_trajectory``
  the surrogate's wall time for the S-frame rollout (after one warm-up call, on its device, with
  neighbour searches and reconstruction), and ``speedup`` their ratio. Beside it always the speedup at
  equal accuracy (``sciops.ladder``): with ``fresh=N`` the problem's ladder (the same MPM on coarser
  grids) simulates the same initial states, is scored by the same position MSE over the S frames and
  timed per trajectory (scaled by S / (T - 1) as the reference), and ``speedup_equal_accuracy`` is the
  surrogate's time against the cheapest equally accurate solve; stored data hold no initial states
  of the simulator's form, so ``data=FILE`` says there is no such figure.

:func:`markdown`, :func:`summary_line` and :func:`plot` (MSE against frame, and the last frame of
the median trajectory with both point clouds) format the report; ``sciops evaluate`` calls them
through ``sciops.kinds``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from sciops.datasets.progress import Progress
from sciops.ladder import measure_ladder, speed_report
from sciops.reporting import speed_text, summary_stats

MAX_TABLE_ROWS = 20  # rows of the per-step table in the markdown report


def _fresh_trajectories(surrogate, n: int, progress_enabled: bool | None):
    problem = surrogate.problem
    seed = surrogate.spec.fresh_seed(n)
    positions, types, seconds, initial = [], [], 0.0, []
    bar = Progress(n, desc="reference simulations", unit="simulation", mode=progress_enabled)
    for i in range(n):
        inputs, outputs, solve_seconds = problem.generate(1, seed, start=i)
        positions.append(outputs["position"][0])
        types.append(inputs["particle_type"][0].astype(np.int64))
        initial.append(inputs)
        seconds += solve_seconds
        bar.update(1)
    bar.close()
    states = {k: np.concatenate([s[k] for s in initial]) for k in initial[0]}
    return np.stack(positions), np.stack(types), seconds, {"fresh": n, "seed": seed}, states


def _stored_trajectories(surrogate, data):
    from sciops.datasets.particles import read_trajectories

    positions, types, attrs = read_trajectories(data)
    surrogate.problem.check_same_operator(attrs["problem_params"], surrogate.spec.problem.params, data)
    source = {"data": str(data), "seed": int(attrs["seed"])}
    return positions, types, float(attrs.get("solve_seconds", float("nan"))), source, None


def evaluate(surrogate, *, fresh: int | None = None, data: str | Path | None = None,
             progress_enabled: bool | None = None) -> dict:
    """Rollout errors and speedup of a ParticleSurrogate against the simulator (module docstring)."""
    if (fresh is None) == (data is None):
        raise ValueError("evaluate needs exactly one of fresh=N or data=FILE")
    if fresh is not None and fresh < 1:
        raise ValueError(f"fresh must be >= 1, got {fresh}")
    spec = surrogate.spec
    positions, types, solve_seconds, source, states = (_fresh_trajectories(surrogate, fresh, progress_enabled)
                                                       if fresh is not None else _stored_trajectories(surrogate, data))
    N, T, P, _ = positions.shape
    H = surrogate.stepper.history
    steps = T - H - 1
    if steps < 1:
        raise ValueError(f"trajectories of {T} frames leave nothing to roll out after the {H + 1} input frames")

    def start(n):
        return {"positions": positions[n, :H + 1], "particle_type": types[n]}

    surrogate.rollout(start(0), 1)  # warm-up
    preds, seconds = [], 0.0
    for n in range(N):
        t0 = time.perf_counter()
        preds.append(surrogate.rollout(start(n), steps))
        seconds += time.perf_counter() - t0
    pred, truth = np.stack(preds).astype(np.float64), positions[:, H + 1:].astype(np.float64)
    err = ((pred - truth) ** 2).mean((2, 3))                                        # (N, S)
    k = np.arange(1, steps + 1)[None, :, None, None]
    last, velocity = positions[:, H:H + 1], positions[:, H:H + 1] - positions[:, H - 1:H]
    cv = (((last + k * velocity) - truth) ** 2).mean((2, 3))                       # (N, S)
    mean_curve = err.mean(0)
    growth = (float((mean_curve[-1] / mean_curve[0]) ** (1.0 / (steps - 1)))
              if steps > 1 and mean_curve[0] > 0 else float("nan"))
    solver = solve_seconds / N * steps / (T - 1)
    surrogate_seconds = seconds / N
    frame_dt = float(surrogate.problem.grid["t"][1])  # the trajectories have T >= H + 2 frames
    report = {
        "operator": spec.operator.name,
        "problem": {"name": spec.problem.name, "params": spec.problem.params},
        "samples": N,
        "source": source,
        "particles": P,
        "frames": T,
        "input_frames": H + 1,
        "rollout_steps": steps,
        "n_sparse": min(surrogate.n_sparse, P),
        "bounds": np.asarray(surrogate.problem.bounds).tolist(),
        "metrics": {"position_mse": summary_stats(err.mean(1)),
                    "final_position_mse": summary_stats(err[:, -1]),
                    "constant_velocity_mse": summary_stats(cv.mean(1))},
        "per_step": {"position_mse": summary_stats(err, axis=0), "constant_velocity_mse": cv.mean(0).tolist()},
        "times": [float(s * frame_dt) for s in range(1, steps + 1)],
        "growth_per_step": growth,
        "solver_seconds_per_trajectory": solver,
        "surrogate_seconds_per_trajectory": surrogate_seconds,
        "speedup": solver / surrogate_seconds,
        "device": str(surrogate.device),
    }
    report.update(_equal_accuracy(surrogate.problem, states, truth, H, (T - 1), float(err.mean()), surrogate_seconds,
                                  solver))
    report["accuracy_cost"] = {"metric": "position MSE (m^2)", "unit": "trajectory",
                               "surrogate_error": float(err.mean()), "surrogate_seconds": [surrogate_seconds] * 2}
    median = int(np.argsort(err.mean(1))[N // 2])
    report["_arrays"] = {"index": median, "reference": truth[median], "prediction": pred[median],
                         "inputs": positions[median, :H + 1], "particle_type": types[median]}
    return report


def _equal_accuracy(problem, states, truth, H: int, intervals: int, error: float, surrogate_seconds: float,
                    solver_seconds: float) -> dict:
    """The ladder's points and the speedups beside the nominal one (module docstring)."""
    if states is None:
        out = speed_report([], error, (surrogate_seconds,) * 2, (solver_seconds,) * 2)
        for suffix in ("", "_batch1"):
            out[f"speedup_equal_accuracy{suffix}_note"] = "stored data: evaluate with --fresh N to measure the ladder"
        return {"ladder": None, **out}
    steps = truth.shape[1]

    def position_mse(out):
        return float(((np.asarray(out, np.float64)[:, H + 1:] - truth) ** 2).mean())

    scale = steps / intervals  # the rung simulates every frame interval; the rollout replaces S of them
    ladder = measure_ladder(problem.ladder(), states, position_mse, solver_seconds / scale)
    for point in ladder:
        for key in ("seconds_per_sample", "seconds_per_sample_batch1"):
            if point[key] is not None:
                point[key] *= scale
    return {"ladder": ladder, **speed_report(ladder, error, (surrogate_seconds,) * 2, (solver_seconds,) * 2)}


def _count(n: int) -> str:
    return f"{n} trajector{'y' if n == 1 else 'ies'}"


def _speed(report: dict) -> str:
    text = speed_text(report["solver_seconds_per_trajectory"], report["surrogate_seconds_per_trajectory"], "trajectory")
    value, note = report.get("speedup_equal_accuracy"), report.get("speedup_equal_accuracy_note", "")
    if value is None:
        return f"{text}; no equal-accuracy figure ({note})"
    return (f"{text} nominal, {value:.3g}x at equal accuracy ({note})"
            + (" - an equally accurate simulation is faster" if value < 1 else ""))


def markdown(report: dict, title: str = "Evaluation") -> str:
    m, per = report["metrics"], report["per_step"]
    labels = {"position_mse": f"position MSE over the {report['rollout_steps']}-frame rollout",
              "final_position_mse": "position MSE at the last frame",
              "constant_velocity_mse": "constant-velocity extrapolation, MSE over the rollout"}
    rows = "\n".join(f"| {labels[k]} | {v['mean']:.4g} | {v['median']:.4g} | {v['max']:.4g} |" for k, v in m.items())
    S = report["rollout_steps"]
    shown = sorted(set(np.linspace(0, S - 1, min(S, MAX_TABLE_ROWS)).round().astype(int).tolist()))
    lines = "\n".join(f"| {s + 1} | {report['times'][s]:.4g} | {per['position_mse']['mean'][s]:.4g} | "
                      f"{per['position_mse']['max'][s]:.4g} | {per['constant_velocity_mse'][s]:.4g} |" for s in shown)
    return (f"# {title}\n\n"
            f"Operator `{report['operator']}` on problem `{report['problem']['name']}` "
            f"({json.dumps(report['problem']['params'])}): {_count(report['samples'])} of "
            f"{report['particles']} particles ({report['n_sparse']} stepped, the rest reconstructed), rolled out "
            f"{S} frames from the first {report['input_frames']} ({json.dumps(report['source'])}).\n\n"
            f"| error (m^2) | mean | median | max |\n|---|---|---|---|\n{rows}\n\n"
            f"Position MSE per rollout frame (m^2; mean growth x{report['growth_per_step']:.3g} per frame):\n\n"
            f"| frame | t after the input (s) | mean | max | constant velocity |\n|---|---|---|---|---|\n{lines}\n\n"
            f"Speed against the reference simulator (MLS-MPM) for the same {S} frames: "
            f"{_speed(report)} on {report['device']}.\n")


def summary_line(report: dict) -> str:
    m = report["metrics"]
    return (f"position MSE over {report['rollout_steps']} frames {m['position_mse']['mean']:.3g} m^2 (median "
            f"{m['position_mse']['median']:.3g}, last frame {m['final_position_mse']['mean']:.3g}, constant velocity "
            f"{m['constant_velocity_mse']['mean']:.3g}), growth x{report['growth_per_step']:.3g} per frame; "
            f"{_speed(report)}")


def plot(report: dict, path: str | Path) -> Path:
    """PNG: position MSE against rollout frame, and the last frame of the median trajectory (the
    reference and predicted clouds; 3D clouds seen along the second axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciops.plotting import save_figure

    arrays, per = report["_arrays"], report["per_step"]
    frames = np.arange(1, report["rollout_steps"] + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.semilogy(frames, per["position_mse"]["mean"], "o-", label=f"{report['operator']} (mean)")
    left.semilogy(frames, per["position_mse"]["max"], ":", color="C0", label=f"{report['operator']} (max)")
    left.semilogy(frames, per["constant_velocity_mse"], "s--", color="C1", label="constant velocity (mean)")
    left.set_xlabel("rollout frame")
    left.set_ylabel("position MSE (m$^2$)")
    left.set_title(f"{_count(report['samples'])}, {report['particles']} particles", fontsize=10)
    left.legend(fontsize=8)
    ref, pred = arrays["reference"][-1], arrays["prediction"][-1]
    axes = (0, ref.shape[1] - 1)  # horizontal and vertical axes
    right.scatter(ref[:, axes[0]], ref[:, axes[1]], s=4, c="0.5", label="MLS-MPM")
    right.scatter(pred[:, axes[0]], pred[:, axes[1]], s=4, c="C3", alpha=0.6, label=report["operator"])
    # the clouds' extent with a margin, inside the box
    both = np.concatenate([ref, pred])[:, list(axes)]
    lo, hi = both.min(0), both.max(0)
    pad = 0.1 * float((hi - lo).max()) + 1e-6
    bounds = np.asarray(report["bounds"])[list(axes)]
    lo, hi = np.maximum(lo - pad, bounds[:, 0]), np.minimum(hi + pad, bounds[:, 1])
    right.set_xlim(lo[0], hi[0])
    right.set_ylim(lo[1], hi[1])
    right.set_aspect("equal")
    right.set_title(f"trajectory {arrays['index']} (median error), frame {report['rollout_steps']} of the rollout",
                    fontsize=10)
    right.legend(fontsize=8, markerscale=3)
    return save_figure(fig, path)
