"""Error-controlled rollouts: a trajectory surrogate that estimates its own per-record error and hands
over to its solver.

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
    D_k = sum of the indicators since the last solver record (or the start).
    Calibration (:func:`calibrate`, ``sciops calibrate RUN``) runs the surrogate on the run's
    validation trajectories (the last n_val rows of its training file), fits log e = a + b log D by
    least squares with b at least 1, shifts a up by the largest residual of the fit (so the estimate
    bounds every validation record's error), and stores in the run spec (``error_estimator``) the
    estimator asked for or, by default, the better ranking one (Spearman correlation with the errors),
    the defect where the two are within ``SPEARMAN_TIE``, with the cost of each against the
    surrogate's and the reference solver's record. The defect of the first record after a solver
    record is that record's error (up to the rung's), so its calibration carries over to states
    unlike the validation ones better than the residual's: on navier-stokes at nu = 1e-4 over 4x the
    horizon (a faster flow than any validation state) the residual let a hybrid reach 0.485 at tol
    0.48 and 0.248 at tol 0.24, the defect 0.472 and 0.0002 (scripts/bench_hybrid.py). The slope is
    held at 1 or more because within the training horizon a surrogate's errors can level off (it was
    trained on those records) while past it they compound: the Gronwall bound e_k <= sum_j L^(k-j) d_j
    (L >= 1 the growth of a record interval) is at least linear in D. On navier-stokes at nu = 1e-4
    the free slope 0.5 let a 20-record hybrid reach 0.71 at tol 0.48; held at 1, 0.485.

Hybrid marching (:func:`march`, ``Surrogate.solve(x, tol=..., steps=...)``)
    All samples march together: the surrogate predicts a window of T records from each sample's last
    accepted state (segment), the window's indicators come in one batched call, and each sample
    accepts its records up to the first whose calibrated estimate exp(a + margin) D^b exceeds ``tol``.
    That record is the solver's (the cheapest ladder rung whose one-record error is at most
    ``SOLVER_FRACTION`` x tol and whose checks pass, else the reference; the solvers are configured
    for the whole rollout, whose flow may be faster than the training horizon's), D is reset, and
    the surrogate restarts from it.
    The solver starts from the last *solver* state (the anchor: the input or the last solver record)
    and re-solves every interval since, the hand-overs of all samples in one batched solve per
    interval; the states it passes on the way replace the surrogate's accepted records (they cost
    nothing more and are the solver's). Advanced from the last accepted surrogate record instead
    (measured on navier-stokes), the surrogate's error is carried into the solver's records and tol
    is missed (0.70 at tol 0.3). So the hybrid saves solver work only after its last hand-over: it
    is the surrogate's answer, certified record by record, until the estimate says otherwise.
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
SPEARMAN_TIE = 0.01
CALIBRATE_COMMAND = "sciops calibrate {run}"


@dataclass
class HybridResult:
    """A hybrid rollout: ``records`` as ``problem.solve`` returns them, with ``steps`` records;
    ``solver`` (batch, steps) True where a record is the solver's; ``estimates`` (batch, steps) the
    calibrated error estimate of each surrogate record (NaN for solver records); ``seconds`` the wall
    time."""

    records: object
    solver: np.ndarray
    estimates: np.ndarray
    seconds: float

    @property
    def solver_record_share(self) -> float:
        """The share of the records (and of the one-record solves) that are the solver's."""
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
            try:
                self.base = problem.with_records(horizon)
            except ValueError as err:
                raise ValueError(f"steps={horizon}: the solver refuses a rollout that long from these states "
                                 f"({err})") from None
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
def _fit(indicator: np.ndarray, errors: np.ndarray) -> dict:
    """log e = a + b log D on records with D > 0, b at least 1; ``slope`` the unconstrained fit's,
    ``margin`` the largest residual above the fit (module docstring)."""
    acc = np.cumsum(indicator, 1).ravel()
    e = errors.ravel()
    keep = (acc > 0) & (e > 0)
    x, y = np.log(acc[keep]), np.log(e[keep])
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    b = max(slope, 1.0)
    a = float(np.mean(y - b * x))
    margin = float(max(0.0, (y - (a + b * x)).max()))
    return {"a": a, "b": b, "slope": slope, "margin": margin, "spearman": spearman(acc, e)}


def _timed(fn, *args, repeat: int = 2) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


def _choose(fitted: dict) -> str:
    """The best ranking estimator; the defect where it is within SPEARMAN_TIE of the best."""
    rho = {k: (-1.0 if math.isnan(v["spearman"]) else v["spearman"]) for k, v in fitted.items()}
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
    pred, surrogate_seconds = _timed(surrogate.solve, model_inputs)
    pred = pred if isinstance(pred, dict) else {surrogate.outputs[0]: pred}
    start = states_of(problem, inputs, "input")
    errors = trajectory_errors(problem, pred, outputs)
    # the rungs' one-record errors from true states (the first record of each validation trajectory)
    first = states_of(problem, outputs, "output", 0)
    rung_errors, rung_seconds = {}, {}
    for label in stepper.solvers(1):
        try:
            out, seconds = _timed(stepper.advance, start, (label,), repeat=1)
        except ValueError:  # a rung the flow leaves the stability limit of is no rung here
            continue
        out = states_of(problem, out, "output", 0)
        rung_errors[label], rung_seconds[label] = float(record_errors(problem, out, first).mean()), seconds / n
    target = RUNG_FRACTION * float(errors[:, 0].mean())
    fits = sorted((lb for lb in rung_errors if lb != "reference" and rung_errors[lb] <= target), key=rung_seconds.get)
    rung = fits[0] if fits else "reference"
    found, seconds = {}, {"surrogate": surrogate_seconds / (n * t), "solver": rung_seconds["reference"]}
    for name in ESTIMATORS if problem.has_residual else ("defect",):
        found[name], spent = _timed(indicators, name, stepper, tuple(fits), start, pred)
        seconds[name] = spent / (n * t)
    fitted = {name: _fit(ind, errors) for name, ind in found.items()}
    estimator = _choose(fitted) if estimator == "auto" else estimator
    chosen = fitted[estimator]
    if not chosen["slope"] > 0 or not chosen["spearman"] > 0:  # the errors do not grow with the indicator
        raise ValueError(f"calibrate: the {estimator} indicator does not rank the errors of these {n} validation "
                         f"trajectories (Spearman {chosen['spearman']:.3g}, slope {chosen['slope']:.3g}); train the "
                         f"run further or calibrate on more trajectories (--data FILE, --n-val)")
    return {"estimator": estimator, **{k: chosen[k] for k in ("a", "b", "slope", "margin")},
            "rung": rung, "defect_rungs": fits, "spearman": {k: v["spearman"] for k, v in fitted.items()},
            "rung_errors": rung_errors, "seconds": seconds, "n_val": n, "time_steps": t}


def calibration_of(surrogate, run: str = "RUN") -> dict:
    """The stored calibration, or the one-line refusal naming the command that makes it."""
    cal = getattr(surrogate.spec, "error_estimator", None)
    if not cal:
        raise ValueError(f"this run has no error-estimator calibration; calibrate it with "
                         f"`{CALIBRATE_COMMAND.format(run=run)}`")
    if set(cal.get("seconds", {})) & {"defect_record", "residual_record"}:
        raise ValueError(f"this run's error-estimator calibration predates the current estimators; calibrate it "
                         f"again with `{CALIBRATE_COMMAND.format(run=run)}`")
    return cal


def check_tol(tol) -> float:
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r} is not valid; expected a relative error > 0")
    return float(tol)


def check_steps(steps) -> int:
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps={steps!r} is not valid; expected a positive number of records")
    return steps


def defect_rungs(cal: dict) -> tuple[str, ...]:
    """The rungs accurate enough for the defect, cheapest first: past the training horizon the
    cheapest may be refused by the longer flow's checks (a coarse grid), and the next one serves."""
    return tuple(cal.get("defect_rungs", [cal["rung"]]))


def solver_rungs(cal: dict, tol: float) -> tuple[str, ...]:
    """The rungs whose one-record error is at most SOLVER_FRACTION x tol, cheapest first (the order
    rung_errors keeps), then the reference: the hand-over takes the first one the states pass."""
    errors = cal.get("rung_errors", {})
    return (*(lb for lb, e in errors.items() if lb != "reference" and e <= SOLVER_FRACTION * tol), "reference")


# ------------------------------------------------------------------------------------- marching
class _Rollouts:
    """The records of n samples as they are accepted: ``seq[o]`` (n, K + steps, *space) holds each
    sample's K input states, then its records; ``filled`` counts each sample's records so far."""

    def __init__(self, problem, fields: dict, steps: int):
        self.problem, self.steps = problem, steps
        self.k = getattr(problem, "input_steps", 1)
        self.outs = problem.output_fields
        self.seq = {}
        for i, o in zip(problem.input_fields, self.outs):
            start = fields[i] if self.k > 1 else fields[i][:, None]
            self.seq[o] = np.zeros((len(start), self.k + steps) + start.shape[2:], np.float32)
            self.seq[o][:, :self.k] = start
        n = len(self.seq[self.outs[0]])
        self.filled = np.zeros(n, int)
        self.solver = np.zeros((n, steps), bool)
        self.estimates = np.full((n, steps), np.nan)

    def active(self) -> np.ndarray:
        return np.flatnonzero(self.filled < self.steps)

    def last(self, samples: np.ndarray, records_back: int = 0) -> dict:
        """The state ``records_back`` records before each sample's last accepted one {o: (m, *space)}."""
        pos = self.k - 1 + self.filled[samples] - records_back
        return {o: v[samples, pos] for o, v in self.seq.items()}

    def model_inputs(self, samples: np.ndarray):
        """What the surrogate takes for the next window: each sample's last K accepted states."""
        pos = self.filled[samples][:, None] + np.arange(self.k)
        x = {i: self.seq[o][samples[:, None], pos] for i, o in zip(self.problem.input_fields, self.outs)}
        x = x if self.k > 1 else {i: v[:, 0] for i, v in x.items()}
        return x if len(x) > 1 else next(iter(x.values()))

    def accept(self, sample: int, window: dict, row: int, count: int) -> None:
        f = self.filled[sample]
        for o in self.outs:
            self.seq[o][sample, self.k + f:self.k + f + count] = window[o][row, :count]
        self.filled[sample] += count

    def records(self) -> dict:
        return {o: v[:, self.k:] for o, v in self.seq.items()}


def march(surrogate, inputs, *, tol: float | None = None, steps: int | None = None,
          batch_size: int = 64) -> HybridResult:
    """The hybrid rollout of ``inputs`` over ``steps`` records (default the training horizon T);
    ``tol=None`` is the surrogate alone, rolled out autoregressively (module docstring)."""
    problem = surrogate.problem
    if not is_trajectory(problem, surrogate.outputs):
        raise ValueError("steps= and tol= for rollouts take trajectory operators; "
                         f"{problem.name} has no recorded times")
    steps = check_steps(problem.time_steps if steps is None else steps)
    cal = None if tol is None else calibration_of(surrogate)
    tol = None if tol is None else check_tol(tol)
    fields = {k: np.asarray(v) for k, v in problem.as_field_dict(inputs, "input").items()}
    first = problem.input_fields[0]
    single = fields[first].ndim == len(problem.fields[first].dims)
    if single:
        fields = {k: v[None] for k, v in fields.items()}
    t0 = time.perf_counter()
    rolls = _Rollouts(problem, fields, steps)
    marcher = _Marcher(surrogate, rolls, cal, tol, batch_size)
    with counted_not_warned():  # states the rollout reaches may leave the training inputs' range
        while (active := rolls.active()).size:
            marcher.window(active)
    out, solver, estimates = rolls.records(), rolls.solver, rolls.estimates
    if single:
        out, solver, estimates = {k: v[0] for k, v in out.items()}, solver[0], estimates[0]
    return HybridResult(out if len(out) > 1 else out[rolls.outs[0]], solver, estimates, time.perf_counter() - t0)


class _Marcher:
    """One window of :func:`march` at a time for the samples still marching."""

    def __init__(self, surrogate, rolls: _Rollouts, cal: dict | None, tol: float | None, batch_size: int):
        self.surrogate, self.rolls, self.cal, self.tol, self.batch_size = surrogate, rolls, cal, tol, batch_size
        self.stepper = Stepper(rolls.problem, rolls.steps) if cal is not None else None
        n = len(rolls.filled)
        self.acc = np.zeros(n)           # D of each sample since its anchor
        self.anchor = np.zeros(n, int)   # records before each sample's last solver state

    def window(self, active: np.ndarray) -> None:
        rolls, outs = self.rolls, self.rolls.outs
        window = self.surrogate.solve(rolls.model_inputs(active), self.batch_size)
        window = {o: np.asarray(v) for o, v in (window if isinstance(window, dict) else {outs[0]: window}).items()}
        take = np.minimum(window[outs[0]].shape[1], rolls.steps - rolls.filled[active])
        if self.cal is None:
            for row, s in enumerate(active):
                rolls.accept(s, window, row, take[row])
            return
        self._check_finite(window, active)
        cal = self.cal
        ind = indicators(cal["estimator"], self.stepper, defect_rungs(cal), rolls.last(active), window)
        acc = self.acc[active, None] + np.cumsum(ind, 1)
        with np.errstate(divide="ignore"):
            est = np.where(acc > 0, np.exp(cal["a"] + cal["margin"]) * acc ** cal["b"], 0.0)
        handed = []
        for row, s in enumerate(active):
            over = np.flatnonzero(est[row, :take[row]] > self.tol)
            count = over[0] if over.size else take[row]
            f = rolls.filled[s]
            rolls.estimates[s, f:f + count] = est[row, :count]
            self.acc[s] = acc[row, count - 1] if count else self.acc[s]
            rolls.accept(s, window, row, count)
            if over.size:
                handed.append(s)
        if handed:
            self._hand_over(np.array(handed))

    def _check_finite(self, window: dict, active: np.ndarray) -> None:
        bad = ~np.all([np.isfinite(v.reshape(v.shape[:2] + (-1,))).all(-1) for v in window.values()], 0)
        if bad.any():
            row, j = np.argwhere(bad)[0]
            raise ValueError(f"record {self.rolls.filled[active[row]] + j + 1} of sample {active[row]}: the surrogate's "
                             f"record contains NaN or Inf")

    def _hand_over(self, samples: np.ndarray) -> None:
        """The solver's record next for each of ``samples``: re-solved from the anchor, one batched solve
        per number of intervals; the states on the way replace the accepted records since the anchor."""
        rolls, labels = self.rolls, solver_rungs(self.cal, self.tol)
        anchor, target = self.anchor[samples], rolls.filled[samples]  # record `target` is the solver's
        counts, k = target - anchor + 1, rolls.k
        for count in np.unique(counts):
            rows = samples[counts == count]
            start = {o: v[rows, k - 1 + self.anchor[rows]] for o, v in rolls.seq.items()}
            solved = self._advance(start, labels, int(count), rows)
            span = self.anchor[rows][:, None] + np.arange(count)  # the records re-solved, (rows, count)
            for o in rolls.outs:
                rolls.seq[o][rows[:, None], k + span] = solved[o]
            rolls.solver[rows[:, None], span] = True
            rolls.estimates[rows[:, None], span] = np.nan
        rolls.filled[samples] = target + 1
        self.acc[samples], self.anchor[samples] = 0.0, target + 1

    def _advance(self, state: dict, labels: tuple[str, ...], records: int, samples: np.ndarray) -> dict:
        try:
            return self.stepper.advance(state, labels, records)
        except ValueError as err:
            row = getattr(err, "sample", 0) if len(samples) > 1 else 0
            last = self.rolls.filled[samples[row]]
            raise ValueError(f"records {last - records + 2}-{last + 1} of sample {samples[row]}: the solver refused "
                             f"the last solver state ({str(err).splitlines()[0]})") from None


def hybrid_report(surrogate, inputs: dict, outputs: dict, pred, tol: float, steps: int | None = None) -> dict:
    """evaluate's entries for a trajectory run with --tol: the hybrid rollout over ``steps`` records
    (default the problem's horizon; longer ones against the reference solved here) beside the
    surrogate alone and the reference solver (``hybrid``), and the Spearman correlation of the
    calibrated indicator with the surrogate's true per-record errors on these trajectories
    (``estimator_spearman``)."""
    problem, cal = surrogate.problem, calibration_of(surrogate)
    t = problem.time_steps
    steps = check_steps(t if steps is None else steps)
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    n = len(next(iter(inputs.values())))
    pred = pred if isinstance(pred, dict) else {surrogate.outputs[0]: pred}
    ind = np.cumsum(indicators(cal["estimator"], Stepper(problem), defect_rungs(cal), states_of(problem, inputs, "input"),
                               pred), 1)
    rho = spearman(ind, trajectory_errors(problem, pred, outputs))
    t0 = time.perf_counter()
    if steps != t:
        if getattr(problem, "input_steps", 1) > 1:
            raise ValueError(f"--steps {steps}: the run's inputs are {problem.input_steps}-record segments; "
                             f"longer rollouts are checked from single states only (expected --steps {t})")
        outputs = problem.with_records(steps).solve(model_inputs)
        outputs = outputs if isinstance(outputs, dict) else {surrogate.outputs[0]: outputs}
    solver_seconds = time.perf_counter() - t0

    def max_error(result):
        records = result.records if isinstance(result.records, dict) else {surrogate.outputs[0]: result.records}
        return float(trajectory_errors(problem, records, outputs).max())

    alone, result = march(surrogate, model_inputs, steps=steps), march(surrogate, model_inputs, tol=tol, steps=steps)
    report = {"tol": tol, "steps": steps, "max_record_error": max_error(result),
              "surrogate_max_record_error": max_error(alone), "solver_record_share": result.solver_record_share,
              "seconds_per_trajectory": result.seconds / n, "surrogate_seconds_per_trajectory": alone.seconds / n,
              "estimator": cal["estimator"]}
    if steps != t:
        report["solver_seconds_per_trajectory"] = solver_seconds / n
    return {"hybrid": report, "estimator_spearman": rho}
