"""The per-record error estimator of a trajectory surrogate: indicators computed from its own records
with the solver's operators, and their calibration against the true errors of validation
trajectories (``sciops calibrate RUN``); what error-controlled rollouts (:mod:`sciops.grid.hybrid`)
hand over on.

Estimators (per record k of a rollout, computed from the surrogate's own records, no ground truth)
    * ``"residual"`` (problems with ``has_residual``: navier-stokes, shallow-water): r_k = ||R_k|| /
      ||u_k|| (relative L2 in the problem's geometry) of the Hermite residual of the record interval
      in the problem's equations (``Problem.record_residuals``, ``solvers.residual``): three
      evaluations of the solver's tendency per record, O(dt^5) for exact records, so the time
      sampling of coarse records does not mask the surrogate's defect (the trapezoidal residual in
      H^-1 it replaced, the Spectral-Refiner's, ranked the errors of a 3-record navier-stokes run at
      Spearman 0.67; this one at 0.97).
    * ``"defect"`` (short-solve defect, every trajectory problem with a solver): d_k = relative L2
      between the surrogate's record k and a cheap rung of the solver ladder advanced one record
      interval from record k - 1. The rung is the cheapest whose one-record error (from true states
      of the validation trajectories) is at most ``RUNG_FRACTION`` x the surrogate's first-record
      error (the next such where the states fail its checks), else the reference one-record solve: an
      accurate indicator, but it costs a solve.
    D_k = L_k D_{k-1} + d_k since the last solver record (or the start; D = 0 there), the indicators
    carried from record to record as the error is (e_k <= L_k e_{k-1} + d_k, L_k the flow's
    amplification of an error over one record interval): L_k = L, the median amplification measured
    on the validation trajectories (the reference solver's advance of the surrogate's record k - 1
    against the true record k, over the error of record k - 1), for records within the horizon the
    calibration saw, max(L, 1) past it, where a contraction was never measured (:func:`carried`).

Calibration (:func:`calibrate`, ``sciops calibrate RUN``)
    runs the surrogate on the run's validation trajectories (the last n_val rows of its training file),
    measures L, fits log e = a + b log D by least squares with b at least 1, shifts a up by the largest
    residual of the fit (so the estimate bounds every validation record's error), and stores in the run
    spec (``error_estimator``) the estimator asked for or, by default, the better ranking one (Spearman
    correlation with the errors), the defect where the two are within ``SPEARMAN_TIE``; but the
    residual where no rung cheaper than the reference serves the defect (which would then cost the
    solve it saves) and the residual ranks the errors at all (Spearman > 0), with L and the
    cost of each against the surrogate's and the reference solver's record. The defect of the first
    record after a solver record is that record's error (up to the rung's), so its calibration
    carries over to states unlike the validation ones by construction; the residual's relation to
    the error is calibrated on the validation states only: on navier-stokes at nu = 1e-4 over 4x the
    horizon (a faster flow than any validation state), with the indicators summed, the residual let
    a hybrid reach 0.485 at tol 0.48 and 0.248 at tol 0.24, the defect 0.472 and 0.0002
    (scripts/bench_hybrid.py; carried at L, the residual met both, 0.415 and 0.0002, by a margin
    nothing calibrated). Within the horizon a flow can damp the surrogate's errors (L = 0.84 on
    navier-stokes at nu = 1e-4, whose summed indicators ranked the fresh errors there at Spearman
    0.74; carried at L, 0.85), but past it the amplification measured on the surrogate's own rollout
    is 1.06: carried at L there too, an estimate calibrated within the horizon was exceeded 1.5x
    past it; at max(L, 1), not (0.67x the worst ratio within it). The slope is held at 1 or more for
    the same reason: in an early run (the indicators summed) the free slope 0.5 let a 20-record
    hybrid there reach 0.71 at tol 0.48; held at 1, 0.485.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from sciops.ladder import call_and_seconds
from sciops.losses import LpLoss, loss_options

ESTIMATORS = ("defect", "residual")
RUNG_FRACTION = 0.25
SPEARMAN_TIE = 0.01
FEW_RECORDS = 20  # a Spearman on fewer records is said to rest on few points
CALIBRATE_COMMAND = "sciops calibrate {run}"


def is_trajectory(problem, outputs: list[str]) -> bool:
    return "t" in problem.fields[outputs[0]].dims


def spearman(x, y) -> float:
    """Rank correlation of two flat arrays (average ranks for ties)."""
    from scipy.stats import spearmanr

    x, y = np.ravel(x), np.ravel(y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def ranking(indicator: np.ndarray, errors: np.ndarray) -> dict:
    """How an accumulated indicator (B, T) ranks the true per-record errors (B, T): Spearman over all
    records (``indicator``), the median over records of the ranking across samples (``within_record``,
    NaN below 3 samples), and the ranking by the record number alone (``record_number``: errors that
    grow along a rollout are ranked by any growing quantity; what the indicator adds is the gap to it
    and the ranking within a record); ``spread`` the median over records of the errors' coefficient of
    variation across samples (where the samples' errors barely differ, no ranking within a record
    means much); ``points`` the number of records ranked."""
    number = np.broadcast_to(np.arange(errors.shape[1]), errors.shape)
    within = [spearman(indicator[:, k], errors[:, k]) for k in range(errors.shape[1])]
    return {"indicator": spearman(indicator, errors), "record_number": spearman(number, errors),
            "within_record": float(np.nanmedian(within)) if not np.all(np.isnan(within)) else float("nan"),
            "spread": float(np.median(errors.std(0) / errors.mean(0))), "points": int(errors.size)}


def rollout_problem(problem, steps: int):
    """``problem`` over ``steps`` records, or the one-line refusal naming ``steps``."""
    try:
        return problem.with_records(steps)
    except ValueError as err:
        raise ValueError(f"steps={steps}: the solver refuses a rollout that long ({str(err).splitlines()[0]})") from None


def record_errors(problem, pred: dict, ref: dict) -> np.ndarray:
    """Relative L2 (the problem's geometry, all output fields together as evaluation's per-record
    error) of states {output: (B, *space)}: (B,)."""
    from sciops.grid.evaluation import output_layout

    names = problem.output_fields
    _, extent = output_layout(problem, names[0])

    def stack(d):
        return torch.stack([torch.as_tensor(np.asarray(d[k], np.float64)) for k in names], 1)

    return LpLoss(2, reduction="none", extent=extent, **loss_options(problem))(stack(pred), stack(ref)).numpy()


def trajectory_errors(problem, pred: dict, ref: dict) -> np.ndarray:
    """Per-record relative L2 (B, T) of trajectories {output: (B, T, *space)}."""
    t = np.shape(ref[problem.output_fields[0]])[1]
    return np.stack([record_errors(problem, states_of(problem, pred, "output", k),
                                   states_of(problem, ref, "output", k)) for k in range(t)], 1)


# ------------------------------------------------------------------------------------- states
class Stepper:
    """A few record intervals of a problem: states {output name: (B, *space)} in, their next
    ``records`` records {output name: (B, records, *space)} out, by the reference solver or a rung of
    the shortened problem's ladder, configured for ``horizon`` records (default the problem's): a
    rollout beyond the training horizon reaches states its time step was not chosen for."""

    def __init__(self, problem, horizon: int | None = None):
        self.problem = problem
        self.base = problem
        if horizon is not None and horizon > problem.time_steps:
            self.base = rollout_problem(problem, horizon)
        self.ins, self.outs = problem.input_fields, problem.output_fields
        self._cache = {}

    def solvers(self, records: int) -> dict:
        """{label: solve} of the reference and the ladder's rungs over ``records`` intervals."""
        if records not in self._cache:
            short = self.base.with_records(records)
            self._cache[records] = {"reference": short.solve,
                                    **{r.label: r.solve for r in short.ladder() if r.solve is not None}}
        return self._cache[records]

    def advance(self, states: dict, labels: tuple[str, ...] = ("reference",), records: int = 1) -> dict:
        """By the first of ``labels`` (rungs, "reference") that this horizon's ladder has and whose own
        checks accept the states; the last one's refusal is raised."""
        solvers = self.solvers(records)
        inputs = {i: np.asarray(states[o], np.float32) for i, o in zip(self.ins, self.outs)}
        inputs = inputs if len(inputs) > 1 else inputs[self.ins[0]]
        usable = [label for label in labels if label in solvers] or ["reference"]
        for label in usable:
            try:
                out = solvers[label](inputs)
                break
            except ValueError:
                if label == usable[-1]:
                    raise
        return {k: np.asarray(v) for k, v in (out if isinstance(out, dict) else {self.outs[0]: out}).items()}


def states_of(problem, fields: dict, role: str, k: int | None = None) -> dict:
    """{output name: (B, *space)}: the last state of inputs (role "input"; a segment's last record) or
    record k of outputs."""
    if role == "input":
        segment = getattr(problem, "input_steps", 1) > 1
        return {o: np.asarray(fields[i])[:, -1] if segment else np.asarray(fields[i])
                for i, o in zip(problem.input_fields, problem.output_fields)}
    return {o: np.asarray(fields[o])[:, k] for o in problem.output_fields}


def indicators(estimator: str, stepper: Stepper, rungs: tuple[str, ...], start: dict, pred: dict) -> np.ndarray:
    """Per-record indicators (B, T) of surrogate records ``pred`` {output: (B, T, *space)} rolled out
    from ``start`` {output: (B, *space)}, all records in one batched call; the defect's solve by the
    first of ``rungs`` whose checks pass, else the reference."""
    problem, names = stepper.problem, stepper.outs
    n, t = np.shape(pred[names[0]])[:2]

    def flat(d):
        return {k: np.asarray(v).reshape((n * t,) + np.shape(v)[2:]) for k, v in d.items()}

    cur = flat(pred)
    if estimator == "residual":
        res = flat(problem.record_residuals(start, pred))
        return record_errors(problem, {k: cur[k] + res[k] for k in names}, cur).reshape(n, t)
    prev = flat({k: np.concatenate([np.asarray(start[k])[:, None], np.asarray(pred[k])[:, :-1]], 1) for k in names})
    advanced = states_of(problem, stepper.advance(prev, (*rungs, "reference")), "output", 0)
    return record_errors(problem, cur, advanced).reshape(n, t)


# ------------------------------------------------------------------------------------- calibration
def carried(indicator: np.ndarray, cal: dict, first=0, prior=0.0) -> np.ndarray:
    """D (B, T) of indicators (B, T) whose first column is record ``first`` (0-based, an int or one per
    row) of the rollout, carried on from D = ``prior`` before it at the amplification of calibration
    ``cal`` (module docstring; 1, the plain sum, for calibrations stored before it was measured)."""
    amplification, horizon = cal.get("amplification", 1.0), cal["time_steps"]
    record = np.reshape(first, (-1, 1)) + np.arange(indicator.shape[1])
    factor = np.broadcast_to(np.where(record < horizon, amplification, max(amplification, 1.0)), indicator.shape)
    out = np.empty(indicator.shape)
    acc = np.broadcast_to(np.asarray(prior, float), indicator.shape[:1])
    for k in range(indicator.shape[1]):
        acc = factor[:, k] * acc + indicator[:, k]
        out[:, k] = acc
    return out


def amplification(problem, advanced: dict, outputs: dict, errors: np.ndarray) -> float:
    """L: the median over records k >= 1 of the error of ``advanced`` (the reference solver's advance of
    the surrogate's record k - 1, {output: (B, T, *space)}) against the true record k over the error of
    record k - 1 (``errors`` (B, T)); 1 where there is no such pair."""
    t = errors.shape[1]
    if t < 2:
        return 1.0
    carried_error = np.stack([record_errors(problem, states_of(problem, advanced, "output", k - 1),
                                            states_of(problem, outputs, "output", k)) for k in range(1, t)], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = carried_error / errors[:, :-1]
    ratio = ratio[np.isfinite(ratio)]
    return float(np.median(ratio)) if ratio.size else 1.0


def _fit(acc: np.ndarray, errors: np.ndarray) -> dict:
    """log e = a + b log D on records with D > 0, b at least 1; ``slope`` the unconstrained fit's,
    ``margin`` the largest residual above the fit (module docstring)."""
    acc = acc.ravel()
    e = errors.ravel()
    keep = (acc > 0) & (e > 0)
    x, y = np.log(acc[keep]), np.log(e[keep])
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    b = max(slope, 1.0)
    a = float(np.mean(y - b * x))
    margin = float(max(0.0, (y - (a + b * x)).max()))
    return {"a": a, "b": b, "slope": slope, "margin": margin, "spearman": spearman(acc, e)}


def _choose(fitted: dict, defect_rungs: list[str]) -> str:
    """The best ranking estimator; the defect where it is within SPEARMAN_TIE of the best. Without a
    rung cheaper than the reference (``defect_rungs`` empty) the defect is the reference's own record,
    the solve it would save: then the residual, where it ranks the errors at all."""
    rho = {k: (-1.0 if math.isnan(v["spearman"]) else v["spearman"]) for k, v in fitted.items()}
    if not defect_rungs and rho.get("residual", -1.0) > 0:
        return "residual"
    return "defect" if rho["defect"] >= max(rho.values()) - SPEARMAN_TIE else max(rho, key=rho.get)


def calibrate(surrogate, inputs: dict, outputs: dict, estimator: str = "auto") -> dict:
    """The estimator calibration of ``surrogate`` on validation trajectories ``inputs`` (as
    ``problem.solve`` takes, dict form) and ``outputs`` (dict form): what the run spec stores as
    ``error_estimator`` (see the module docstring)."""
    problem = surrogate.problem
    if not is_trajectory(problem, surrogate.outputs):
        raise ValueError(f"calibrate: {problem.name} is not a trajectory problem; the error estimator serves "
                         f"trajectory surrogates")
    if estimator not in ("auto",) + ESTIMATORS:
        raise ValueError(f"calibrate: estimator={estimator!r} is not valid; expected auto, {', '.join(ESTIMATORS)}")
    if estimator == "residual" and not problem.has_residual:
        raise ValueError(f"calibrate: {problem.name} has no record residual; expected --estimator defect or auto")
    stepper = Stepper(problem)
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    n, t = len(next(iter(inputs.values()))), problem.time_steps
    pred, surrogate_seconds = call_and_seconds(lambda: surrogate.solve(model_inputs))
    pred = pred if isinstance(pred, dict) else {surrogate.outputs[0]: pred}
    start = states_of(problem, inputs, "input")
    errors = trajectory_errors(problem, pred, outputs)
    # the rungs' one-record errors from true states (the first record of each validation trajectory)
    first = states_of(problem, outputs, "output", 0)
    rung_errors, rung_seconds = {}, {}
    for label in stepper.solvers(1):
        try:
            out, seconds = call_and_seconds(lambda: stepper.advance(start, (label,)))
        except ValueError:  # a rung the flow leaves the stability limit of is no rung here
            continue
        out = states_of(problem, out, "output", 0)
        rung_errors[label], rung_seconds[label] = float(record_errors(problem, out, first).mean()), seconds / n
    target = RUNG_FRACTION * float(errors[:, 0].mean())
    fits = sorted((lb for lb in rung_errors if lb != "reference" and rung_errors[lb] <= target), key=rung_seconds.get)
    # a reference record from each surrogate record, all n x t at once: the yardstick of the indicators'
    # cost (timed in their batch) and the advance L is measured from
    flat_pred = {k: v.reshape((n * t,) + v.shape[2:]) for k, v in pred.items()}
    advanced, solver_seconds = call_and_seconds(lambda: stepper.advance(flat_pred))
    advanced = {k: v.reshape((n, t) + v.shape[1:]) for k, v in states_of(problem, advanced, "output", 0).items()}
    cal = {"amplification": amplification(problem, advanced, outputs, errors), "time_steps": t}
    found, seconds = {}, {"surrogate": surrogate_seconds / (n * t), "solver": solver_seconds / (n * t)}
    for name in ESTIMATORS if problem.has_residual else ("defect",):
        found[name], spent = call_and_seconds(lambda: indicators(name, stepper, tuple(fits), start, pred))
        seconds[name] = spent / (n * t)
    fitted = {name: _fit(carried(ind, cal), errors) for name, ind in found.items()}
    estimator = _choose(fitted, fits) if estimator == "auto" else estimator
    chosen = fitted[estimator]
    if not chosen["slope"] > 0 or not chosen["spearman"] > 0:  # the errors do not grow with the indicator
        raise ValueError(f"calibrate: the {estimator} indicator does not rank the errors of these {n} validation "
                         f"trajectories (Spearman {chosen['spearman']:.3g}, slope {chosen['slope']:.3g}); train the "
                         f"run further or calibrate on more trajectories (--data FILE, --n-val)")
    return {"estimator": estimator, **{k: chosen[k] for k in ("a", "b", "slope", "margin")},
            "amplification": cal["amplification"], "defect_rungs": fits,
            "spearman": {k: v["spearman"] for k, v in fitted.items()}, "rung_errors": rung_errors,
            "seconds": seconds, "n_val": n, "time_steps": t}


def calibration_of(surrogate, run: str | None = None) -> dict:
    """The stored calibration, or the one-line refusal naming the command that makes it (for ``run``,
    by default the surrogate's run directory)."""
    run = run or getattr(surrogate, "run_dir", None) or "RUN"
    cal = getattr(surrogate.spec, "error_estimator", None)
    if not cal:
        raise ValueError(f"this run has no error-estimator calibration; calibrate it with "
                         f"`{CALIBRATE_COMMAND.format(run=run)}`")
    if "slope" not in cal:  # fitted before the slope was held at 1 or more, or before the current indicators
        raise ValueError(f"this run's error-estimator calibration predates the current estimators; calibrate it "
                         f"again with `{CALIBRATE_COMMAND.format(run=run)}`")
    return cal


def defect_rungs(cal: dict) -> tuple[str, ...]:
    """The rungs accurate enough for the defect, cheapest first: past the training horizon the
    cheapest may be refused by the longer flow's checks (a coarse grid), and the next one serves."""
    return tuple(cal["defect_rungs"])


