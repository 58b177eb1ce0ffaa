"""``sciops calibrate RUN``: the per-record error estimator of a trajectory run calibrated on its
validation trajectories (the last n_val rows of its training file) and stored in its config.json
(``error_estimator``; see :mod:`sciops.grid.error_estimator`)."""
from __future__ import annotations

from pathlib import Path

import sciops
from sciops.grid import error_estimator
from sciops.runs import storage


def validation_rows(surrogate, n_val: int | None = None) -> tuple[dict, dict]:
    """(inputs, outputs) in dict form of the last ``n_val`` (default the run's n_val) rows of the training file."""

    data = surrogate.spec.data
    if data is None or not data.path or not Path(data.path).is_file():
        where = data.path if data is not None and data.path else "(none recorded)"
        raise ValueError(f"calibrate needs the run's training file for its validation trajectories; {where} is not "
                         f"a file (pass --data FILE of the same operator)")
    return read_rows(data.path, data.n_val if n_val is None else n_val)


def read_rows(path, n: int) -> tuple[dict, dict]:
    from sciops.datasets import open_dataset

    ds = open_dataset(path, in_memory=False)
    if not 1 <= n <= ds.n_samples:
        raise ValueError(f"calibrate: {n} validation trajectories asked for, {path} holds {ds.n_samples}")
    x, y = ds.get_batch(list(range(ds.n_samples - n, ds.n_samples)))
    return ds.split_fields(x, ds.input_fields), ds.split_fields(y, ds.output_fields)


def calibrate_run(run_dir: str | Path, *, n_val: int | None = None, data: str | Path | None = None,
                  estimator: str = "auto") -> str:
    """Calibrate, store in the run's config.json, and return the summary line."""
    run_dir = storage.check_run_dir(run_dir)
    surrogate = sciops.load(run_dir, device="cpu")
    if data is not None:
        from sciops.datasets import open_dataset
        from sciops.grid.evaluation import check_same_geometry

        check_same_geometry(open_dataset(data, in_memory=False).problem, surrogate.problem, data)
        inputs, outputs = read_rows(data, n_val or surrogate.spec.data.n_val)
    else:
        inputs, outputs = validation_rows(surrogate, n_val)
    cal = error_estimator.calibrate(surrogate, inputs, outputs, estimator)
    spec = surrogate.spec
    spec.error_estimator = cal
    spec.save(run_dir)
    in_sample = 0 if data is not None else max(0, cal["n_val"] - spec.data.n_val)
    return summary(cal, run_dir) + cautions(cal, in_sample)


def cautions(cal: dict, in_sample: int) -> str:
    """What the user should know about the calibration set, or nothing."""
    notes = []
    if in_sample:
        notes.append(f"{in_sample} of the {cal['n_val']} trajectories are training ones: their errors are in-sample")
    if cal["n_val"] * cal["time_steps"] < error_estimator.FEW_RECORDS:
        notes.append(f"only {cal['n_val'] * cal['time_steps']} validation records: the fit and its Spearman rest on "
                     f"few points (--n-val, --data FILE for more)")
    return "".join(f"\nnote: {n}" for n in notes)


def summary(cal: dict, run_dir) -> str:
    s = cal["seconds"]
    others = ", ".join(f"{k} {v:.3f}" for k, v in cal["spearman"].items())
    costs = "; ".join(f"{k} {s[k] * 1e3:.3g} ms = {s[k] / s['surrogate']:.2g}x the surrogate's record, "
                      f"{s[k] / s['solver']:.2g}x the reference solver's" for k in cal["spearman"])
    trajectories = f"{cal['n_val']} validation trajector{'y' if cal['n_val'] == 1 else 'ies'}"
    return (f"calibrated {run_dir} on {trajectories} x {cal['time_steps']} records: "
            f"estimator {cal['estimator']} (Spearman {others}; defect rung {(cal['defect_rungs'] or ['reference'])[0]}"
            + ("; no rung cheaper than the reference is accurate enough for the defect, which would cost the solve "
               "it saves" if not cal["defect_rungs"] else "") + "), "
            f"estimate log e = {cal['a']:.3g} + {cal['margin']:.3g} (margin) + {cal['b']:.3g} log D"
            + (f" (fitted slope {cal['slope']:.3g}, held at 1)" if cal["slope"] < 1 else "") + f", where D is the "
            f"{cal['estimator']} indicator carried from record to record at the error amplification measured here, "
            f"L = {cal['amplification']:.3g} (taken as at least 1 past these {cal['time_steps']} records); cost per record: {costs}")
