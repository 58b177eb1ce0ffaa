"""Certified surrogate answers: a guaranteed error bound per sample, and a tolerance met by the solver.

``surrogate.solve(a, return_estimate=True)`` returns ``(u, bounds)`` and ``surrogate.solve(a,
tol=1e-3)`` returns answers whose bound is at most ``tol``; both go through :func:`certify`, which
asks the surrogate's problem (``problem.certify``, for problems with ``certified = True``: darcy)
for bounds on the surrogate's outputs and, where a bound exceeds ``tol``, for the reference
solver to finish the solve from them. :class:`Certified` is the whole answer: outputs, bounds,
solver iterations, which samples the solver refined, which inputs lie outside the training
inputs (``sciops.runs.input_summary``; the bound does not depend on it) and the seconds spent.

For Darcy the bound is on the relative energy-norm error against the solution of the reference
5-point system on the input's own grid (:mod:`sciops.solvers.darcy_bounds`); the gap between that
grid and a finer configured reference (``subsample``) is the discretisation error, which
``sciops evaluate`` reports separately.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Certified:
    outputs: np.ndarray  # (batch, *space), the certified answers
    bounds: np.ndarray  # (batch,) guaranteed bounds on each answer's relative error
    iterations: np.ndarray  # (batch,) solver iterations per sample (0: the surrogate's answer as is; -1: direct)
    refined: np.ndarray  # (batch,) bool, samples the solver improved
    out_of_distribution: np.ndarray  # (batch,) bool, inputs outside the training inputs' summary
    seconds: float  # wall time of the surrogate call, the bounds and the refinement together


def certified_problems() -> list[str]:
    from sciops import problems

    return [name for name in problems.names() if getattr(problems.problem_class(name), "certified", False)]


def check_tol(tol, option: str = "tol") -> float:
    """``tol`` if it is a finite number > 0, else a ValueError naming ``option``."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"{option} must be a finite number > 0, got {tol!r}")
    return float(tol)


def certify(surrogate, inputs, tol: float | None = None, batch_size: int = 64, strict: bool = False) -> Certified:
    """The surrogate's answers for ``inputs`` (numpy, one field) with guaranteed bounds, refined by
    the reference solver where a bound exceeds ``tol``."""
    problem = surrogate.problem
    if not problem.certified:
        raise ValueError(f"problem {problem.name} has no certified error bound; problems "
                         f"with one: {', '.join(certified_problems())}")
    if tol is not None:
        check_tol(tol)
    t0 = time.perf_counter()
    predicted = surrogate._predict(inputs, batch_size, strict)
    outputs, bounds, iterations = problem.certify(inputs, predicted, tol)
    seconds = time.perf_counter() - t0
    ood = surrogate.out_of_distribution(inputs)  # a bool for one sample, as the outputs are one sample
    if np.ndim(ood) == 0:
        bounds, iterations = bounds[0], iterations[0]
    return Certified(outputs, bounds, iterations, np.asarray(iterations) != 0, ood, seconds)


def certified_report(surrogate, inputs: np.ndarray, reference: np.ndarray, tol: float) -> dict:
    """What ``sciops evaluate --tol`` reports for inputs (batch, *space) with reference outputs.

    * ``coverage``: the share of the surrogate's own answers whose bound is at least their true
      error (against an exact solve on the same grid, in the same norm): 1 for a guaranteed bound;
    * ``effectivity``: bound / true error (min, median, max), how tight the bound is;
    * ``refined_share``, ``iterations`` and ``max_bound`` of the answers certified to ``tol``, and
      ``max_true_error`` of them;
    * seconds per sample of the certified surrogate, of DST-CG from zero to the same certified
      tolerance, and of the direct solve on the input grid;
    * ``discretisation_gap``: the relative L2 distance between the direct solve on the input grid
      and the reference outputs (a finer configured solve): what no bound on the input grid sees.
    """
    import torch

    from sciops.losses import LpLoss
    from sciops.solvers.darcy import solve_darcy
    from sciops.solvers.darcy_bounds import pcg

    problem = surrogate.problem
    n = len(inputs)
    plain = certify(surrogate, inputs)
    true = problem.certified_error(inputs, plain.outputs)
    with np.errstate(divide="ignore", invalid="ignore"):
        effectivity = plain.bounds / true
    answer = certify(surrogate, inputs, tol)
    f, averaging = problem.params["forcing"], problem.params["averaging"]
    t0 = time.perf_counter()
    pcg(np.asarray(inputs, dtype=np.float64), f, tol=tol, averaging=averaging)
    cg_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    direct = solve_darcy(np.asarray(inputs, dtype=np.float64), f, averaging=averaging)
    direct_seconds = time.perf_counter() - t0
    gap = LpLoss(reduction="none")(torch.as_tensor(direct), torch.as_tensor(np.asarray(reference, np.float64))).numpy()
    finite = effectivity[np.isfinite(effectivity)]
    return {
        "tol": tol,
        "norm": "relative energy norm of the 5-point system on the input grid",
        "coverage": float(np.mean(plain.bounds >= true * (1 - 1e-9))),
        "effectivity": {"min": float(finite.min()), "median": float(np.median(finite)), "max": float(finite.max())}
        if finite.size else None,
        "bound_median": float(np.median(plain.bounds)),
        "refined_share": float(answer.refined.mean()),
        "iterations_mean": float(np.mean(np.maximum(answer.iterations, 0))),
        "direct_share": float(np.mean(answer.iterations < 0)),
        "max_bound": float(answer.bounds.max()),
        "max_true_error": float(problem.certified_error(inputs, answer.outputs).max()),
        "out_of_distribution_share": float(plain.out_of_distribution.mean()),
        "seconds_per_sample": {"certified_surrogate": answer.seconds / n, "dst_cg_from_zero": cg_seconds / n,
                               "direct": direct_seconds / n},
        "discretisation_gap": {"median": float(np.median(gap)), "max": float(gap.max())},
    }


def certified_text(c: dict) -> str:
    """One line for the summary of ``sciops evaluate --tol`` and the demo."""
    s = c["seconds_per_sample"]
    eff = c["effectivity"]
    tightness = (f"effectivity median {eff['median']:.2f} (max {eff['max']:.2f})" if eff else
                 "every bound infinite (the answers are further off than their own energy)")
    return (f"certified to {c['tol']:g} ({c['norm']}): the bound covers the true error in {c['coverage']:.0%} of "
            f"samples, {tightness}; {c['refined_share']:.0%} finished by the solver ({c['iterations_mean']:.1f} CG "
            f"iterations on average), max bound {c['max_bound']:.2g}; {s['certified_surrogate'] * 1e3:.3g} ms/sample, "
            f"a speedup of {s['dst_cg_from_zero'] / s['certified_surrogate']:.2f}x against DST-CG from zero to the "
            f"same bound ({s['dst_cg_from_zero'] * 1e3:.3g} ms) and {s['direct'] / s['certified_surrogate']:.2f}x "
            f"against the direct solve ({s['direct'] * 1e3:.3g} ms); grid discretisation gap to the reference "
            f"{c['discretisation_gap']['median']:.3g} (median rel. L2)")
