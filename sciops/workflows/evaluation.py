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
                 device=None, ladder: bool = True, steps: int | None = None) -> str:
    """Evaluate on ``data`` or on ``fresh`` new samples (50 when neither is given); the summary line.
    ``plot`` writes the kind's figure, and for grid runs with a ladder the accuracy-cost figure beside
    it (``<plot>-accuracy-cost.png``)."""
    from sciops.grid.error_estimator import is_trajectory

    kind = kinds.of_run(run_dir)
    surrogate = sciops.load(run_dir, device=device)
    if surrogate.spec.history is None:  # written when training ends
        print(f"note: the training of {run_dir} has not finished (interrupted, or still running); its best "
              f"weights so far are evaluated", file=sys.stderr)
    fresh = None if data else (50 if fresh is None else fresh)
    grid = kind is kinds.get("grid")
    if tol is not None and not grid:
        raise ValueError("--tol applies to grid runs (certified answers, error-controlled rollouts); particle runs "
                         "are compared with the simulator only")
    trajectory = grid and is_trajectory(surrogate.problem, surrogate.outputs)
    if steps is not None and (tol is None or not trajectory):
        raise ValueError("--steps applies to trajectory runs with --tol (the hybrid rollout's length)")
    if tol is not None and not trajectory and not surrogate.problem.certified:
        from sciops.grid.certified import certified_problems

        raise ValueError(f"--tol: problem {surrogate.problem.name} has no certified error bound; problems with one: "
                         f"{', '.join(certified_problems())}")
    options = {"tol": tol} if tol is not None else {}
    if steps is not None:
        options["steps"] = steps
    if not ladder:
        if not grid:
            raise ValueError("--no-ladder applies to grid runs; particle runs always measure their ladder")
        options["ladder"] = False
    report = kind.evaluate(surrogate, fresh=fresh, data=data, **options)
    if report_path:  # before the figure: the figures are the report's, a failed plot must not lose them
        text = (kind.markdown(report) if str(report_path).endswith(".md")
                else json.dumps(public(report), indent=2) + "\n")
        atomic_write(Path(report_path), lambda f: f.write(text.encode()))
    line = kind.summary_line(report)
    if plot:
        kind.plot(report, plot)
        if report.get("ladder"):
            from sciops.plotting import plot_accuracy_cost

            cost = Path(plot).with_name(f"{Path(plot).stem}-accuracy-cost.png")
            plot_accuracy_cost(report, cost)
            line += f"\nfigures: {plot}, {cost}"
    return line
