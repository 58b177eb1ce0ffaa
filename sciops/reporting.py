"""What every kind's evaluation report shares: summary statistics, the speed sentence, the JSON form."""
from __future__ import annotations

import math

import numpy as np


def summary_stats(v: np.ndarray, axis=None) -> dict:
    """Mean, median and max of ``v`` (over ``axis``; all entries by default), as JSON values."""

    def out(x):
        return x.tolist() if isinstance(x, np.ndarray) else float(x)

    return {"mean": out(v.mean(axis)), "median": out(np.median(v, axis)), "max": out(v.max(axis))}


def speed_text(solver_seconds: float, surrogate_seconds: float, unit: str) -> str:
    """"solver .. ms/unit, surrogate .. ms/unit, speedup ..x"; a NaN solver time (not recorded, or
    not comparable) is said to be unknown."""
    surrogate = f"surrogate {surrogate_seconds * 1e3:.3g} ms/{unit}"
    if math.isnan(solver_seconds):
        return f"{surrogate}, speedup unknown (the data record no solver time comparable to it; evaluate with --fresh N)"
    return f"solver {solver_seconds * 1e3:.3g} ms/{unit}, {surrogate}, speedup {solver_seconds / surrogate_seconds:.3g}x"


def public(report: dict) -> dict:
    """The report without its arrays, ready for JSON."""
    return {k: v for k, v in report.items() if not k.startswith("_")}
