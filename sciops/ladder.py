"""The surrogate on its solver's accuracy-cost curve: timing, the ladder's points, the equal-accuracy speedup.

A problem's ladder (``Problem.ladder()``, :class:`sciops.problems.Rung`) lists cheaper
configurations of its own reference solver. :func:`measure_ladder` runs every rung on the inputs the
surrogate was evaluated on, scores it against the same reference outputs in the same metric (mean
relative L2, or L2(0, T; L2) for trajectories) and times it exactly as the surrogate
(:func:`batch_seconds`, :func:`single_seconds`: the same batch, one warm-up call on two samples, the best of up to three
repeats, and at batch 1 the same on single samples). A rung that blows up or that the problem refuses
is kept in the report with its note. A rung that costs more than the reference is skipped, and the
report says so: both timed alike on two samples after a warm-up where the caller passes the
reference's solve (a two-sample call carries the fixed costs of a call, which the batch amortises:
for a small trajectory problem they made cheap rungs look dearer than the batched reference), else
against the reference's time per sample with a margin of ``SKIP_FACTOR``.

:func:`equal_accuracy` answers the question a numerical analyst asks of a speedup: how long does the
cheapest solve that is at least as accurate as the surrogate take? On the ladder's lower envelope
(the rungs no cheaper rung beats in error), it interpolates log(cost) against log(error) between the
two rungs that bracket the surrogate's error. When no rung is as accurate, the reference is the
cheapest solve known to be, and the figure is an upper bound; when even the cheapest rung is more
accurate, the figure is an upper bound too. Each case comes with a note.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

MAX_REPEATS = 3
REPEAT_BUDGET = 10.0  # seconds: no further repeats once a measurement has taken this long
BATCH1_SAMPLES = 4    # single-sample calls timed for the batch-1 figures
SKIP_FACTOR = 2.0     # without the reference's solve: skip a rung whose estimate exceeds this x the reference's time


def first(inputs, k: int):
    """The first k samples of an array or of a dict of arrays."""
    return {n: v[:k] for n, v in inputs.items()} if isinstance(inputs, dict) else inputs[:k]


def count(inputs) -> int:
    return len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)


def _synchronize(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _best_time(call: Callable[[], object], device=None, first: float | None = None) -> float:
    """Best wall time of up to MAX_REPEATS calls (fewer once they have taken REPEAT_BUDGET seconds);
    ``first``: the time of a call already made, which counts as the first repeat."""
    best, spent = (math.inf, 0.0) if first is None else (first, first)
    for _ in range(MAX_REPEATS - (first is not None)):
        if spent > REPEAT_BUDGET:
            break
        _synchronize(device)
        t0 = time.perf_counter()
        call()
        _synchronize(device)
        elapsed = time.perf_counter() - t0
        best, spent = min(best, elapsed), spent + elapsed
    return best


def sample(inputs, i: int):
    """Sample i as a batch of one."""
    return {n: v[i:i + 1] for n, v in inputs.items()} if isinstance(inputs, dict) else inputs[i:i + 1]


def batch_seconds(solve: Callable, inputs, device=None, *, warm: bool = True) -> float:
    """Seconds per sample of ``solve`` on the whole batch: a warm-up call on two samples, then the
    best of repeats."""
    return answer_and_seconds(solve, inputs, device, warm=warm)[1]


def answer_and_seconds(solve: Callable, inputs, device=None, *, warm: bool = True) -> tuple[object, float]:
    """(answer, seconds per sample) of ``solve`` on the whole batch: a warm-up call on two samples,
    then the best of repeats, the call that gives the answer the first of them."""
    if warm:
        solve(first(inputs, 2))
    _synchronize(device)
    t0 = time.perf_counter()
    answer = solve(inputs)
    _synchronize(device)
    elapsed = time.perf_counter() - t0
    return answer, _best_time(lambda: solve(inputs), device, first=elapsed) / count(inputs)


def call_and_seconds(call: Callable[[], object], device=None) -> tuple[object, float]:
    """(answer, seconds) of a call that takes no batch to time per sample: the answer of a warm-up
    call, then the best of repeats, as the rungs are timed."""
    answer = call()
    return answer, _best_time(call, device)


def single_seconds(solve: Callable, inputs, device=None, *, warm: bool = True) -> float:
    """Seconds per sample of ``solve`` called on one sample at a time (the first BATCH1_SAMPLES)."""
    singles = [sample(inputs, i) for i in range(min(count(inputs), BATCH1_SAMPLES))]
    if warm:
        solve(singles[0])
    return _best_time(lambda: [solve(x) for x in singles], device) / len(singles)


def _estimate(solve: Callable, inputs) -> float:
    """Seconds per sample of a call on two samples after a warm-up call on them (the cost estimate
    that decides a skip; the warm-up pays one-time costs: imports, worker pools, plans)."""
    k = min(2, count(inputs))
    solve(first(inputs, k))
    t0 = time.perf_counter()
    solve(first(inputs, k))
    return (time.perf_counter() - t0) / k


def measure_ladder(rungs, inputs, error: Callable[[object], float], reference_seconds: float,
                   reference_solve: Callable | None = None) -> list[dict]:
    """One entry per rung: label, error (mean in the evaluation's metric), seconds per sample at the
    evaluation batch and at batch 1, and a note for rungs that were skipped, refused or blew up (the
    skip: module docstring)."""
    if reference_solve is not None:
        threshold = _estimate(reference_solve, inputs)
        against = f"the reference's {threshold * 1e3:.3g}, timed alike"
    else:
        threshold = SKIP_FACTOR * reference_seconds
        against = f"{SKIP_FACTOR:g}x the reference's {reference_seconds * 1e3:.3g} ms/sample"
    points = []
    for rung in rungs:
        point = {"label": rung.label, "error": None, "seconds_per_sample": None, "seconds_per_sample_batch1": None}
        if rung.solve is None:
            points.append({**point, "note": rung.note or "not runnable"})
            continue
        try:
            estimate = _estimate(rung.solve, inputs)
            if math.isfinite(threshold) and estimate > threshold:
                points.append({**point, "note": f"skipped: it costs more than the reference ({estimate * 1e3:.3g} "
                                                f"ms/sample on two samples against {against})"})
                continue
            outputs, batch = answer_and_seconds(rung.solve, inputs, warm=False)  # warmed up by the estimate
            one = single_seconds(rung.solve, inputs, warm=False)  # warmed up by the estimate
        except ValueError as exc:  # a blow-up (BlowUpError) or a refusal at solve time
            points.append({**point, "note": f"failed: {str(exc).splitlines()[0]}"})
            continue
        points.append({**point, "error": float(error(outputs)), "seconds_per_sample": batch,
                       "seconds_per_sample_batch1": one})
    return points


def _envelope(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """(cost, error, label) sorted by cost, keeping only points more accurate than every cheaper one."""
    front, best = [], math.inf
    for cost, err, label in sorted(points):
        if err < best:
            front.append((cost, err, label))
            best = err
    return front


def equal_accuracy(ladder: list[dict], surrogate_error: float, surrogate_seconds: float, reference_seconds: float,
                   key: str = "seconds_per_sample", what: str = "the surrogate") -> tuple[float | None, str]:
    """(speedup against the cheapest solve at least as accurate as the surrogate, note); see the
    module docstring. ``key`` picks the batch's or the batch-1 timings of the ladder; ``what`` names
    the answer in the notes (a hybrid rollout is not the surrogate)."""
    points = [(p[key], p["error"], p["label"]) for p in ladder
              if p.get("error") is not None and p.get(key) and math.isfinite(p["error"])]
    if not points:
        if not ladder:
            return None, "the problem's solver ladder has no rung for this configuration"
        return None, "no rung of the ladder ran"
    if not math.isfinite(surrogate_error):
        return None, f"{what}'s error is not finite"
    front = _envelope(points)
    as_accurate = [i for i, (_, err, _) in enumerate(front) if err <= surrogate_error]
    if not as_accurate:
        if not math.isfinite(reference_seconds):
            return None, (f"no rung is as accurate as {what} (the best, {front[-1][2]}, has error "
                          f"{front[-1][1]:.3g}) and the reference's time is not known")
        return reference_seconds / surrogate_seconds, (
            f"an upper bound: no rung is as accurate as {what} (the best, {front[-1][2]}, has error "
            f"{front[-1][1]:.3g}); against the reference")
    j = as_accurate[0]
    cost_j, err_j, label_j = front[j]
    if j == 0:
        return cost_j / surrogate_seconds, (f"an upper bound: the cheapest rung, {label_j}, is already more accurate "
                                            f"(error {err_j:.3g})" if err_j < surrogate_error else f"against {label_j}")
    cost_i, err_i, label_i = front[j - 1]
    if err_j <= 0:
        cost = cost_j
    else:  # log-log interpolation between the rungs that bracket the surrogate's error
        w = math.log(surrogate_error / err_i) / math.log(err_j / err_i)
        cost = math.exp(math.log(cost_i) + w * (math.log(cost_j) - math.log(cost_i)))
    return cost / surrogate_seconds, f"interpolated between {label_i} (error {err_i:.3g}) and {label_j} ({err_j:.3g})"


def speed_report(ladder: list[dict], surrogate_error: float, surrogate: tuple[float, float],
                 reference: tuple[float, float]) -> dict:
    """The report's speed entries: nominal and equal-accuracy speedups at the evaluation batch and at batch 1."""
    out = {}
    for suffix, i, key in (("", 0, "seconds_per_sample"), ("_batch1", 1, "seconds_per_sample_batch1")):
        nominal = reference[i] / surrogate[i] if math.isfinite(reference[i]) else float("nan")
        value, note = equal_accuracy(ladder, surrogate_error, surrogate[i], reference[i], key)
        out[f"speedup{suffix}"] = nominal
        out[f"speedup_equal_accuracy{suffix}"] = value
        out[f"speedup_equal_accuracy{suffix}_note"] = note
    return out


def mean_error(metric: Callable, reference) -> Callable[[object], float]:
    """The error function of :func:`measure_ladder`: the mean of ``metric(outputs, reference)`` over samples."""
    return lambda outputs: float(np.mean(metric(outputs, reference)))
