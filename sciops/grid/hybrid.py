"""Error-controlled rollouts: a trajectory surrogate that estimates its own per-record error and hands
over to its solver.

Estimators (per record k of a rollout, computed from the surrogate's own records, no ground truth)
    * ``"defect"`` (short-solve defect): d_k = relative L2 between the surrogate's record k and a cheap
      rung of the solver ladder advanced one record interval from record k - 1; D_k = sum of d_j since
      the last solver record (or the start). The rung is the cheapest whose one-record error (from true
      states of the validation trajectories) is at most ``RUNG_FRACTION`` x the surrogate's
      first-record error, else the reference one-record solve.
    * ``"residual"`` (navier-stokes only): r_k = ||R||_{H^-1} / ||w_k||_{H^-1} of the trapezoidal PDE
      residual between records k - 1 and k with the solver's spectral operators (the Spectral-Refiner's
      residual, :mod:`sciops.workflows.refine`), accumulated the same way. Cheap (a few FFTs), but it
      measures the time sampling as well as the model where records are coarse in time.
    Calibration (:func:`calibrate`, ``sciops calibrate RUN``) runs the surrogate on the run's
    validation trajectories (the last n_val rows of its training file), fits log e = a + b log D by
    least squares, shifts a up by the largest residual of the fit (so the estimate bounds every
    validation record's error), and stores the estimator with the higher Spearman correlation (or
    the one asked for) in the run spec (``error_estimator``).

Hybrid marching (:func:`march`, ``Surrogate.solve(x, tol=..., steps=...)``)
    The surrogate predicts a window of T records from the last accepted state (segment); each record's
    calibrated estimate exp(a + margin) D^b is checked in turn: a record whose estimate exceeds ``tol``
    is replaced by the solver (the cheapest ladder rung whose one-record error is at most
    ``SOLVER_FRACTION`` x tol, else the reference), D is reset, and the surrogate restarts from that
    state. The solver starts from the last *solver* state (the anchor: the input or the last solver
    record), re-solving every interval since: advanced from the last accepted surrogate record instead
    (measured on navier-stokes), the surrogate's error is carried into the solver's records and tol
    is missed (0.70 at tol 0.3). So a hand-over costs the intervals since the anchor
    (``solver_intervals``, ``solver_work_share``); the accepted records between stay the surrogate's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from sciops.losses import LpLoss, loss_options
from sciops.runs.input_summary import counted_not_warned

ESTIMATORS = ("defect", "residual")
RUNG_FRACTION = 0.25
SOLVER_FRACTION = 0.1
H_MINUS1_ALPHA = 10 ** -1.5  # as sciops.workflows.refine
CALIBRATE_COMMAND = "sciops calibrate {run}"


@dataclass
class HybridResult:
    """A hybrid rollout: ``records`` as ``problem.solve`` returns them, with ``steps`` records;
    ``solver`` (batch, steps) True where a record is the solver's; ``estimates`` (batch, steps) the
    calibrated error estimate of each surrogate record (NaN for solver records, the estimate that
    triggered them is not kept); ``seconds`` the wall time; ``solver_intervals`` (batch,) the
    one-record solves spent (a hand-over re-solves every interval since the last solver record)."""

    records: object
    solver: np.ndarray
    estimates: np.ndarray
    seconds: float
    solver_intervals: np.ndarray

    @property
    def solver_work_share(self) -> float:
        """One-record solves spent per record returned: the solver's share of the work."""
        return float(np.mean(self.solver_intervals) / self.solver.shape[-1]) if self.solver.size else 0.0

    @property
    def solver_record_share(self) -> float:
        return float(self.solver.mean()) if self.solver.size else 0.0


def is_trajectory(problem, outputs: list[str]) -> bool:
    return "t" in problem.fields[outputs[0]].dims


def spearman(x, y) -> float:
    """Rank correlation of two flat arrays (average ranks for ties)."""
    from scipy.stats import spearmanr

    x, y = np.ravel(x), np.ravel(y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def record_errors(problem, pred: dict, ref: dict) -> np.ndarray:
    """Relative L2 (the problem's geometry, all output fields together as evaluation's per-record
    error) of states {output: (B, *space)}: (B,)."""
    from sciops.grid.evaluation import output_layout

    names = problem.output_fields
    _, extent = output_layout(problem, names[0])

    def stack(d):
        return torch.stack([torch.as_tensor(np.asarray(d[k], np.float64)) for k in names], 1)

    return LpLoss(2, reduction="none", extent=extent, **loss_options(problem))(stack(pred), stack(ref)).numpy()


# ------------------------------------------------------------------------------------- states
class Stepper:
    """One record interval of a problem: states {output name: (B, *space)} in and out, by the
    reference (``solve``) or a rung of the one-record problem's ladder (``rung(label)``)."""

    def __init__(self, problem):
        self.problem = problem
        self.one = problem.with_records(1)
        self.ins, self.outs = problem.input_fields, problem.output_fields
        self.rungs = {r.label: r for r in self.one.ladder() if r.solve is not None}

    def _call(self, solve, states: dict) -> dict:
        inputs = {i: np.asarray(states[o], np.float32) for i, o in zip(self.ins, self.outs)}
        out = solve(inputs if len(inputs) > 1 else inputs[self.ins[0]])
        out = out if isinstance(out, dict) else {self.outs[0]: out}
        return {k: np.asarray(v)[:, 0] for k, v in out.items()}

    def advance(self, states: dict, label: str = "reference") -> dict:
        solve = self.one.solve if label == "reference" else self.rungs[label].solve
        return self._call(solve, states)


def states_of(problem, fields: dict, role: str, k: int | None = None) -> dict:
    """{output name: (B, *space)}: the last state of inputs (role "input"; a segment's last record) or
    record k of outputs."""
    if role == "input":
        segment = getattr(problem, "input_steps", 1) > 1
        return {o: np.asarray(fields[i])[:, -1] if segment else np.asarray(fields[i])
                for i, o in zip(problem.input_fields, problem.output_fields)}
    return {o: np.asarray(fields[o])[:, k] for o in problem.output_fields}


def residuals(problem, prev: dict, cur: dict) -> np.ndarray:
    """The relative H^-1 trapezoidal residual between consecutive navier-stokes records (B,)."""
    from sciops.solvers import spectral
    from sciops.solvers.navier_stokes import NavierStokes2D

    p = problem.params
    w = torch.stack([torch.as_tensor(np.asarray(prev["w"], np.float64)),
                     torch.as_tensor(np.asarray(cur["w"], np.float64))], 1)
    n = w.shape[-1]
    eq = NavierStokes2D(n, p["viscosity"], forcing=p["forcing"], length=problem.length, drag=problem.drag,
                        dtype=torch.float64)
    w_hat = eq.to_spectral(w)
    rhs = eq.explicit_terms(w_hat) + eq.implicit_terms(w_hat)
    r_hat = (w_hat[:, 1] - w_hat[:, 0]) / p["record_every"] - 0.5 * (rhs[:, 1] + rhs[:, 0])
    ky, kx = spectral.wavenumbers(n, eq.length, dtype=torch.float64)
    weight = 1.0 / (H_MINUS1_ALPHA + kx ** 2 + ky ** 2)
    weight[0, 0] = 0.0  # the conserved mean

    def norm(z):  # up to the same constant for both: rfft half-plane, enough for a ratio
        return (weight * z.abs() ** 2).sum((-2, -1)).sqrt()

    return (norm(r_hat) / norm(w_hat[:, 1]).clamp_min(1e-300)).numpy()


def indicators(estimator: str, stepper: Stepper, rung: str, start: dict, pred: dict) -> np.ndarray:
    """Per-record indicators (B, T) of surrogate records ``pred`` {output: (B, T, *space)} rolled out
    from ``start`` {output: (B, *space)}, all records in one batched call."""
    names = stepper.outs
    n, t = np.asarray(pred[names[0]]).shape[:2]
    prev = {k: np.concatenate([np.asarray(start[k])[:, None], np.asarray(pred[k])[:, :-1]], 1).reshape(
        (n * t,) + np.shape(start[k])[1:]) for k in names}
    cur = {k: np.asarray(pred[k]).reshape((n * t,) + np.shape(start[k])[1:]) for k in names}
    if estimator == "residual":
        return residuals(stepper.problem, prev, cur).reshape(n, t)
    return record_errors(stepper.problem, cur, stepper.advance(prev, rung)).reshape(n, t)


def _fit(indicator: np.ndarray, errors: np.ndarray) -> dict:
    """log e = a + b log D on records with D > 0; ``margin`` the largest residual above the fit."""
    acc = np.cumsum(indicator, 1).ravel()
    e = errors.ravel()
    keep = (acc > 0) & (e > 0)
    x, y = np.log(acc[keep]), np.log(e[keep])
    b, a = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(y.mean()))
    margin = float(max(0.0, (y - (a + b * x)).max()))
    return {"a": float(a), "b": float(b), "margin": margin, "spearman": spearman(acc, e)}


def _timed(fn, *args, repeat: int = 2) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


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
    if estimator == "residual" and problem.name != "navier-stokes":
        raise ValueError(f"calibrate: the residual estimator is for navier-stokes, not {problem.name}")
    stepper = Stepper(problem)
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    n = len(next(iter(inputs.values())))
    pred, surrogate_seconds = _timed(surrogate.solve, model_inputs)
    pred = pred if isinstance(pred, dict) else {surrogate.outputs[0]: pred}
    t = problem.time_steps
    start = states_of(problem, inputs, "input")
    errors = np.stack([record_errors(problem, states_of(problem, pred, "output", k),
                                     states_of(problem, outputs, "output", k)) for k in range(t)], 1)
    # the rungs' one-record errors from true states (the first record of each validation trajectory)
    first = states_of(problem, outputs, "output", 0)
    rung_errors, rung_seconds = {}, {}
    for label in ["reference"] + list(stepper.rungs):
        try:
            out, seconds = _timed(stepper.advance, start, label, repeat=1)
        except ValueError:  # a rung the flow leaves the stability limit of is no rung here
            continue
        rung_errors[label], rung_seconds[label] = float(record_errors(problem, out, first).mean()), seconds / n
    target = RUNG_FRACTION * float(errors[:, 0].mean())
    fits = [lb for lb in stepper.rungs if lb in rung_errors and rung_errors[lb] <= target]
    rung = min(fits, key=rung_seconds.get) if fits else "reference"
    found = {"defect": indicators("defect", stepper, rung, start, pred)}
    if problem.name == "navier-stokes":
        found["residual"] = indicators("residual", stepper, rung, start, pred)
    fitted = {name: _fit(ind, errors) for name, ind in found.items()}
    seconds = {"surrogate_record": surrogate_seconds / (n * t),
               "defect_record": rung_seconds[rung],
               "residual_record": _timed(residuals, problem, start, first)[1] / n if "residual" in found else None}
    if estimator == "auto":
        estimator = max(fitted, key=lambda k: -1 if math.isnan(fitted[k]["spearman"]) else fitted[k]["spearman"])
    chosen = fitted[estimator]
    if not chosen["b"] > 0 or not chosen["spearman"] > 0:  # the estimate would fall as the indicator grows
        raise ValueError(f"calibrate: the {estimator} indicator does not rank the errors of these {n} validation "
                         f"trajectories (Spearman {chosen['spearman']:.3g}, slope {chosen['b']:.3g}); train the run "
                         f"further or calibrate on more trajectories (--data FILE, --n-val)")
    return {"estimator": estimator, **{k: fitted[estimator][k] for k in ("a", "b", "margin")},
            "rung": rung, "spearman": {k: v["spearman"] for k, v in fitted.items()},
            "rung_errors": rung_errors, "seconds": seconds, "n_val": n, "time_steps": t}


def calibration_of(surrogate, run: str = "RUN") -> dict:
    """The stored calibration, or the one-line refusal naming the command that makes it."""
    cal = getattr(surrogate.spec, "error_estimator", None)
    if not cal:
        raise ValueError(f"this run has no error-estimator calibration; calibrate it with "
                         f"`{CALIBRATE_COMMAND.format(run=run)}`")
    return cal


def check_tol(tol) -> float:
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r} is not valid; expected a relative error > 0")
    return float(tol)


def solver_rung(cal: dict, tol: float) -> str:
    """The cheapest rung whose one-record error is at most SOLVER_FRACTION x tol, else the reference."""
    errors = cal.get("rung_errors", {})
    fits = [lb for lb, e in errors.items() if lb != "reference" and e <= SOLVER_FRACTION * tol]
    return fits[0] if fits else "reference"  # rung_errors keeps the ladder's order, cheapest first


# ------------------------------------------------------------------------------------- marching
def march(surrogate, inputs, *, tol: float | None = None, steps: int | None = None,
          batch_size: int = 64) -> HybridResult:
    """The hybrid rollout of ``inputs`` over ``steps`` records (default the training horizon T);
    ``tol=None`` is the surrogate alone, rolled out autoregressively (module docstring)."""
    problem = surrogate.problem
    if not is_trajectory(problem, surrogate.outputs):
        raise ValueError("steps= and tol= for rollouts take trajectory operators; "
                         f"{problem.name} has no recorded times")
    t = problem.time_steps
    steps = t if steps is None else steps
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps={steps!r} is not valid; expected a positive number of records")
    cal = None
    if tol is not None:
        tol = check_tol(tol)
        cal = calibration_of(surrogate)
    fields = problem.as_field_dict(inputs, "input")
    fields = {k: np.asarray(v) for k, v in fields.items()}
    single = fields[problem.input_fields[0]].ndim == len(problem.fields[problem.input_fields[0]].dims)
    if single:
        fields = {k: v[None] for k, v in fields.items()}
    stepper = Stepper(problem)
    n = len(fields[problem.input_fields[0]])
    t0 = time.perf_counter()
    outs = problem.output_fields
    records = {o: [] for o in outs}
    solver = np.zeros((n, steps), bool)
    estimates = np.full((n, steps), np.nan)
    work = np.zeros(n, int)
    with counted_not_warned():  # states the rollout reaches may leave the training inputs' range
        for s in range(n):
            _march_one(surrogate, stepper, fields, s, cal, tol, steps, records, solver, estimates, work, batch_size)
    out = {o: np.stack(v).astype(np.float32) for o, v in records.items()}
    if single:
        out, solver, estimates, work = {k: v[0] for k, v in out.items()}, solver[0], estimates[0], work[0]
    return HybridResult(out if len(out) > 1 else out[outs[0]], solver, estimates, time.perf_counter() - t0, work)


def _march_one(surrogate, stepper, fields, s, cal, tol, steps, records, solver, estimates, work, batch_size):
    """Sample s of :func:`march`: its records appended to ``records``, its flags and estimates set."""
    problem = stepper.problem
    t, k_in, outs = problem.time_steps, getattr(problem, "input_steps", 1), problem.output_fields
    # history of accepted states {output: (*space)}; a segment's K records for its input
    if k_in > 1:
        history = [{o: fields[i][s, j] for i, o in zip(problem.input_fields, outs)} for j in range(k_in)]
    else:
        history = [{o: fields[i][s] for i, o in zip(problem.input_fields, outs)}]
    start, done = history, []
    acc, anchor, anchor_state = 0.0, 0, history[-1]
    while len(done) < steps:
        last = (start + done)[-k_in:]
        x = {i: (np.stack([h[o] for h in last]) if k_in > 1 else last[0][o])[None]
             for i, o in zip(problem.input_fields, outs)}
        window = surrogate.solve(x if len(x) > 1 else next(iter(x.values())), batch_size)
        window = window if isinstance(window, dict) else {outs[0]: window}
        for j in range(t):
            r = len(done)
            if r == steps:
                break
            rec = {o: np.asarray(window[o])[0, j] for o in outs}
            if cal is None:
                done.append(rec)
                continue
            acc += float(_indicator(cal, stepper, (start + done)[-1], rec, r, s))
            est = math.exp(cal["a"] + cal["margin"]) * acc ** cal["b"] if acc > 0 else 0.0
            if est <= tol:
                estimates[s, r] = est
                done.append(rec)
                continue
            # the solver re-solves from the last solver state (the anchor): a state the surrogate
            # got wrong carries its error into every solve started from it
            # (the accepted records between stay the surrogate's: their estimates met tol)
            state, label = anchor_state, solver_rung(cal, tol)
            for i in range(anchor, r + 1):
                state = _advance(stepper, label, state, i, s)
            work[s] += r + 1 - anchor
            done.append(state)
            solver[s, r] = True
            acc, anchor, anchor_state = 0.0, r + 1, state
            break  # the surrogate restarts from the solver's state
    for o in outs:
        records[o].append(np.stack([d[o] for d in done]))


def _one(state: dict) -> dict:
    return {k: np.asarray(v)[None] for k, v in state.items()}


def _advance(stepper: Stepper, label: str, state: dict, record: int, sample: int) -> dict:
    try:
        return {k: v[0] for k, v in stepper.advance(_one(state), label).items()}
    except ValueError as err:
        raise ValueError(f"record {record + 1} of sample {sample}: the solver refused the last accepted state "
                         f"({str(err).splitlines()[0]})") from None


def _indicator(cal: dict, stepper: Stepper, prev: dict, rec: dict, record: int, sample: int) -> float:
    if not all(np.isfinite(v).all() for v in rec.values()):
        raise ValueError(f"record {record + 1} of sample {sample}: the surrogate's record contains NaN or Inf")
    if cal["estimator"] == "residual":
        return float(residuals(stepper.problem, _one(prev), _one(rec))[0])
    return float(record_errors(stepper.problem, _one(rec), {k: v[None] for k, v in
                                                            _advance(stepper, cal["rung"], prev, record, sample).items()})[0])


def hybrid_report(surrogate, inputs: dict, outputs: dict, pred, tol: float) -> dict:
    """evaluate's entries for a trajectory run with --tol: the hybrid rollout over the problem's horizon
    (``hybrid``) and the Spearman correlation of the calibrated indicator with the surrogate's true
    per-record errors on these trajectories (``estimator_spearman``)."""
    problem, cal = surrogate.problem, calibration_of(surrogate)
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    result = march(surrogate, model_inputs, tol=tol)
    t = problem.time_steps
    records = result.records if isinstance(result.records, dict) else {surrogate.outputs[0]: result.records}
    pred = pred if isinstance(pred, dict) else {surrogate.outputs[0]: pred}

    def errors(answer):
        return np.stack([record_errors(problem, states_of(problem, answer, "output", k),
                                       states_of(problem, outputs, "output", k)) for k in range(t)], 1)

    stepper = Stepper(problem)
    ind = np.cumsum(indicators(cal["estimator"], stepper, cal["rung"], states_of(problem, inputs, "input"), pred), 1)
    n = len(next(iter(inputs.values())))
    return {"hybrid": {"tol": tol, "max_record_error": float(errors(records).max()),
                       "solver_record_share": result.solver_record_share,
                       "solver_work_share": result.solver_work_share,
                       "seconds_per_trajectory": result.seconds / n, "estimator": cal["estimator"]},
            "estimator_spearman": spearman(ind, errors(pred))}
