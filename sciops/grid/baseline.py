"""The trivial baseline every evaluation reports beside the surrogate: what knowing nothing scores.

* Trajectories (an output field with a ``t`` dim): persistence, every record equal to the input
  state (the input field named like the output plus ``0``, or the same name; for an input segment
  its last record). A surrogate that does not beat persistence has not learned the dynamics.
* Steady problems: the training mean, the mean output field over the training rows of the run's
  training file (``spec.data``); if that file is gone, the per-channel mean the run recorded in its
  normalisation statistics (a constant field). Operators that normalise themselves record no
  statistics; their baseline is then left out, and the report says why.

:func:`baseline_outputs` returns the baseline's outputs in the form ``problem.solve`` returns, or
``(None, reason)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MEAN_BATCH = 256  # training rows read at a time for the mean


def _persistence(problem, inputs: dict, output_fields: list[str], n_times: int):
    out = {}
    for name in output_fields:
        source = next((k for k in (f"{name}0", name) if k in inputs), None)
        if source is None:
            return None, f"no input field matches output {name!r} for persistence"
        state = np.asarray(inputs[source])
        if any(d in ("t", "t_in") for d in problem.fields[source].dims):  # an input segment: its last record
            state = state[:, -1]
        out[name] = np.repeat(state[:, None], n_times, axis=1)
    return out, "persistence (every record equals the input state)"


def _training_mean(spec, output_fields: list[str], shapes: dict):
    path = Path(spec.data.path) if spec.data is not None else None
    if path is not None and path.is_file():
        from sciops.datasets import open_dataset

        with open_dataset(path, in_memory=False) as ds:
            if all(ds.problem.field_shape(k) == shapes[k] for k in output_fields):
                rows = range(spec.data.n_train)
                total = {k: np.zeros(shapes[k]) for k in output_fields}
                for start in range(0, len(rows), MEAN_BATCH):
                    _, y = ds.get_batch(list(rows[start:start + MEAN_BATCH]))
                    for k, v in ds.split_fields(y, ds.output_fields).items():
                        if k in total:
                            total[k] += np.asarray(v, np.float64).sum(0)
                return {k: v / len(rows) for k, v in total.items()}, "the training mean (mean output field)"
    norm = spec.normalization
    identity = norm is None or (all(m == 0.0 for m in norm["out_mean"]) and all(s == 1.0 for s in norm["out_std"]))
    if identity or len(output_fields) != len(norm["out_mean"]):
        return None, "the training file is not at hand and the run records no output statistics"
    return ({k: np.full(shapes[k], norm["out_mean"][c]) for c, k in enumerate(output_fields)},
            "the training mean (per-channel mean, as a constant field)")


def baseline_outputs(problem, spec, inputs: dict, reference: dict, output_fields: list[str]):
    """(outputs, description) of the trivial baseline for these inputs, or (None, why not)."""
    n = len(next(iter(reference.values())))
    if any("t" in problem.fields[k].dims for k in output_fields):
        n_times = reference[output_fields[0]].shape[1]
        return _persistence(problem, inputs, output_fields, n_times)
    if any("channel" in problem.fields[k].dims for k in output_fields):
        return None, "no baseline for output fields with channels"
    mean, what = _training_mean(spec, output_fields, {k: reference[k].shape[1:] for k in output_fields})
    if mean is None:
        return None, what
    return {k: np.broadcast_to(v, (n, *v.shape)).astype(np.float32) for k, v in mean.items()}, what
