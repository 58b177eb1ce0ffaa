"""Error-controlled rollouts: a trajectory surrogate that estimates its own per-record error
(:mod:`sciops.grid.error_estimator`) and hands over to its solver.

Hybrid marching (:func:`march`, ``Surrogate.solve(x, tol=..., steps=...)``)
    All samples march together: the surrogate predicts a window of T records from each sample's last
    accepted state (segment), the window's indicators come in one batched call, and each sample
    accepts its records up to the first whose calibrated estimate exp(a + margin) D^b exceeds ``tol``
    (D the indicators carried since the sample's last solver record, :func:`carried`).
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
import numbers
import time
from dataclasses import dataclass

import numpy as np

from sciops.datasets.progress import Progress
from sciops.grid.error_estimator import (
    FEW_RECORDS,
    Stepper,
    calibration_of,
    carried,
    defect_rungs,
    indicators,
    is_trajectory,
    ranking,
    rollout_problem,
    states_of,
    trajectory_errors,
)
from sciops.ladder import answer_and_seconds, equal_accuracy, measure_ladder
from sciops.runs.input_summary import counted_not_warned

SOLVER_FRACTION = 0.1


@dataclass(repr=False)
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

    def __repr__(self) -> str:
        return (f"HybridResult(solver records {self.solver.shape}: {self.solver_record_share:.1%}, "
                f"{self.seconds:.3g} s)")


def check_tol(tol) -> float:
    """numpy scalars pass; bools do not."""
    if not (isinstance(tol, numbers.Real) and not isinstance(tol, bool) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r} is not valid; expected a finite relative error > 0")
    return float(tol)


def check_steps(steps) -> int:
    if not (isinstance(steps, numbers.Integral) and not isinstance(steps, bool) and steps >= 1):
        raise ValueError(f"steps={steps!r} is not valid; expected a positive number of records")
    return int(steps)


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
        acc = carried(self._indicators(window, active), cal, rolls.filled[active], self.acc[active])
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

    def _indicators(self, window: dict, active: np.ndarray) -> np.ndarray:
        """The window's indicators; a state the defect's solver refuses is named by record and sample."""
        try:
            return indicators(self.cal["estimator"], self.stepper, defect_rungs(self.cal), self.rolls.last(active),
                              window)
        except ValueError as err:
            if getattr(err, "sample", None) is None:  # not a per-sample refusal of the solver
                raise
            row, j = divmod(err.sample, np.shape(next(iter(window.values())))[1])  # flat index: row-major
            raise ValueError(f"record {self.rolls.filled[active[row]] + j + 1} of sample {active[row]}: the solver "
                             f"refused the state the record is checked from ({str(err).splitlines()[0]})") from None

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


def hybrid_report(surrogate, inputs: dict, outputs: dict, pred, tol: float, steps: int | None = None, *,
                  reference_seconds: float = float("nan"), ladder: bool = True, progress: bool | None = None) -> dict:
    """evaluate's entries for a trajectory run with --tol: the hybrid rollout over ``steps`` records
    (default the problem's horizon; longer ones against the reference solved here) beside the
    surrogate alone, the reference solver and, with ``ladder``, the equally accurate solve of the
    ladder over the same records, all timed as the ladder's rungs (``hybrid``); the calibrated
    indicator's ranking of the surrogate's true per-record errors (:func:`ranking`) over the horizon
    and along the surrogate alone's ``steps`` records (``hybrid["ranking"]``), and the first's
    Spearman (``estimator_spearman``). ``reference_seconds``: the reference solver's time per
    trajectory over the horizon (the evaluation's own). ``progress``: one line per stage done, as
    :class:`~sciops.datasets.progress.Progress` (None: a bar on a terminal, lines otherwise)."""
    problem, cal = surrogate.problem, calibration_of(surrogate)
    t = problem.time_steps
    steps = check_steps(t if steps is None else steps)
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    start = states_of(problem, inputs, "input")

    def as_dict(records):
        return records if isinstance(records, dict) else {surrogate.outputs[0]: records}

    def ranked(stepper, records, reference):
        ind = carried(indicators(cal["estimator"], stepper, defect_rungs(cal), start, records), cal)
        return ranking(ind, trajectory_errors(problem, records, reference))

    ranks = {"horizon": ranked(Stepper(problem), as_dict(pred), outputs)}
    solver_problem = problem
    if steps != t and getattr(problem, "input_steps", 1) > 1:
        raise ValueError(f"--steps {steps}: the run's inputs are {problem.input_steps}-record segments; "
                         f"longer rollouts are checked from single states only (expected --steps {t})")
    stages = (steps != t) + 2 + bool(ladder)  # the longer reference, the surrogate alone, the hybrid, the ladder
    bar = Progress(stages, desc=f"hybrid at tol {tol:g} over {steps} records", unit="stage", mode=progress)

    def stage(done: str) -> None:
        bar.set_postfix_str(f"{done} done")
        bar.update(1)

    if steps != t:
        solver_problem = rollout_problem(problem, steps)
        outputs, reference_seconds = answer_and_seconds(lambda x: as_dict(solver_problem.solve(x)), model_inputs)
        stage("reference")
    alone, alone_seconds = answer_and_seconds(lambda x: march(surrogate, x, steps=steps), model_inputs)
    stage("surrogate alone")
    result, seconds = answer_and_seconds(lambda x: march(surrogate, x, tol=tol, steps=steps), model_inputs)
    stage("hybrid")
    errors, alone_errors = (trajectory_errors(problem, as_dict(r.records), outputs) for r in (result, alone))
    report = {"tol": tol, "steps": steps, "max_record_error": float(errors.max()),
              "surrogate_max_record_error": float(alone_errors.max()), "solver_record_share": result.solver_record_share,
              "seconds_per_trajectory": seconds, "surrogate_seconds_per_trajectory": alone_seconds,
              "solver_seconds_per_trajectory": reference_seconds, "estimator": cal["estimator"],
              # per record, the largest over the trajectories; the solver's share of the trajectories
              "record_errors": errors.max(0).tolist(), "surrogate_record_errors": alone_errors.max(0).tolist(),
              "solver_records": result.solver.mean(0).tolist()}
    if steps != t:  # along the rollout the hybrid marches, past the horizon the calibration saw
        ranks["rollout"] = ranked(Stepper(problem, steps), as_dict(alone.records), outputs)
    report["ranking"] = ranks
    if ladder:  # the solver's own answer at the hybrid's accuracy, in the hybrid's metric
        report["ladder"] = measure_ladder(
            solver_problem.ladder(), model_inputs,
            lambda answer: float(trajectory_errors(problem, as_dict(answer), outputs).max()), reference_seconds,
            solver_problem.solve)
        report["speedup_equal_accuracy"], report["speedup_equal_accuracy_note"] = equal_accuracy(
            report["ladder"], report["max_record_error"], seconds, reference_seconds, what="the hybrid")
        stage("ladder")
    else:
        report["ladder"], report["speedup_equal_accuracy"] = None, None
        report["speedup_equal_accuracy_note"] = "left out (--no-ladder)"
    bar.close()
    if hasattr(problem, "diagnostics"):  # the invariants along the whole rollout, against the reference's
        from sciops.grid.evaluation import diagnostic_ratios

        report["diagnostics"] = diagnostic_ratios(problem, as_dict(result.records), outputs)
        report["surrogate_diagnostics"] = diagnostic_ratios(problem, as_dict(alone.records), outputs)
    return {"hybrid": report, "estimator_spearman": ranks["horizon"]["indicator"]}


def _ranking_detail(r: dict) -> str:
    few = f"; only {r['points']} points" if r["points"] < FEW_RECORDS else ""
    within = "n/a (fewer than 3 samples)" if math.isnan(r["within_record"]) else f"{r['within_record']:.3f}"
    return f"the record number alone {r['record_number']:.3f}, across samples within a record {within}{few}"


def hybrid_text(report: dict) -> str:
    """evaluate's summary line of :func:`hybrid_report`'s entries."""
    h = report["hybrid"]
    solver_s = h["solver_seconds_per_trajectory"]
    solver = "" if not math.isfinite(solver_s) else f", the solver alone {solver_s * 1e3:.3g} ms"
    if math.isfinite(solver_s) and h["seconds_per_trajectory"] > solver_s:
        solver += ": the solver alone is faster at this tolerance"
    text = (f"hybrid at tol {h['tol']:g} over {h['steps']} records: max record error {h['max_record_error']:.3g} "
            f"(surrogate alone {h['surrogate_max_record_error']:.3g}), solver records {h['solver_record_share']:.1%}, "
            f"{h['seconds_per_trajectory'] * 1e3:.3g} ms/trajectory (surrogate alone "
            f"{h['surrogate_seconds_per_trajectory'] * 1e3:.3g} ms{solver})")
    value, note = h["speedup_equal_accuracy"], h["speedup_equal_accuracy_note"]
    faster = "" if value is None or value >= 1 else f", the solve {1 / value:.2g}x faster"
    text += f"; against the equally accurate solve: {'n/a' if value is None else f'{value:.2g}x'}{faster} ({note})"
    spans = {"horizon": "the horizon", "rollout": f"the surrogate alone's {h['steps']} records"}
    text += f"; {h['estimator']} estimator Spearman " + ", ".join(
        f"{r['indicator']:.3f} over {spans[span]} ({_ranking_detail(r)})" for span, r in h["ranking"].items())
    if "diagnostics" in h:  # the invariants at the last record, against the reference's
        text += "; at the last record, against the solver: " + ", ".join(
            f"{name.replace('_', ' ')} {v['ratio'][-1]:.4g} (surrogate alone "
            f"{h['surrogate_diagnostics'][name]['ratio'][-1]:.4g})" for name, v in h["diagnostics"].items())
    return text
