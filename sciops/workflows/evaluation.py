"""``sciops evaluate``: a run checked against its reference solver by its kind's evaluation, with the
report and figure written."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import sciops
from sciops import kinds
from sciops.files import atomic_write
from sciops.reporting import public


def evaluate_run(run_dir: str | Path, *, data: str | Path | None = None, fresh: int | None = None,
                 tol: float | None = None, report_path: str | Path | None = None, plot: str | Path | None = None,
                 device=None) -> str:
    """Evaluate on ``data`` or on ``fresh`` new samples (50 when neither is given); the summary line."""
    kind = kinds.of_run(run_dir)
    surrogate = sciops.load(run_dir, device=device)
    if surrogate.spec.history is None:  # written when training ends
        print(f"note: the training of {run_dir} has not finished (interrupted, or still running); its best "
              f"weights so far are evaluated", file=sys.stderr)
    fresh = None if data else (50 if fresh is None else fresh)
    if tol is not None and not surrogate.problem.certified:
        from sciops.grid.certified import certified_problems

        raise ValueError(f"--tol: problem {surrogate.problem.name} has no certified error bound; problems with one: "
                         f"{', '.join(certified_problems())}")
    report = kind.evaluate(surrogate, fresh=fresh, data=data, **({"tol": tol} if tol is not None else {}))
    if report_path:  # before the figure: the figures are the report's, a failed plot must not lose them
        text = (kind.markdown(report) if str(report_path).endswith(".md")
                else json.dumps(public(report), indent=2) + "\n")
        atomic_write(Path(report_path), lambda f: f.write(text.encode()))
    if plot:
        kind.plot(report, plot)
    return kind.summary_line(report)
