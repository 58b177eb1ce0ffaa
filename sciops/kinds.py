"""Data kinds: which package trains, serves and evaluates a dataset or a run directory.

A problem declares the kind of its data in ``Problem.data_kind``: ``grid`` (fields on a grid,
:mod:`sciops.grid`) or ``particles`` (Lagrangian particle trajectories, :mod:`sciops.particles`).
Each kind is a package that exports the same names, the :class:`Kind` protocol; it is imported on
first use, so the command line starts without torch. A new kind is one package and one entry in
``KINDS``. The CLI and ``sciops.load`` dispatch through :func:`of_operator`, :func:`for_training`
and :func:`of_run` instead of testing names.

Every kind's ``train(operator, data, run_dir, *, hparams, config, resume, progress, force)``
returns the same summary dict (``epochs``, ``best_epoch``, ``best_val``, ``seconds_per_epoch``,
...); its ``evaluate(surrogate, *, fresh=N | data=FILE)`` returns a report that its ``markdown``,
``summary_line`` and ``plot(report, path)`` take, and whose keys starting with ``_`` are arrays
(``sciops.reporting.public`` drops them).
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

KINDS: dict[str, str] = {"grid": "sciops.grid", "particles": "sciops.particles"}


class Kind(Protocol):
    """What the package of a kind exports."""

    DESCRIPTION: str
    DISTRIBUTED: bool  # whether `sciops train --nproc N` can run it
    Config: type       # the training settings ([training] table, CLI options)
    Surrogate: Any     # with .load(path, device=None, compile=False)
    operator_names: Callable[[], list[str]]
    hyperparameters: Callable[[str], dict]
    train: Callable[..., dict]
    evaluate: Callable[..., dict]
    markdown: Callable[[dict], str]
    summary_line: Callable[[dict], str]
    plot: Callable[[dict, Any], Path]


def get(name: str) -> Kind:
    return import_module(KINDS[name])


def operator_names() -> list[str]:
    """Every operator of every kind, sorted."""
    return sorted(name for kind in KINDS for name in get(kind).operator_names())


def _serving(name) -> Kind | None:
    """The kind whose operators include ``name``, or None."""
    return next((get(kind) for kind in KINDS if name in get(kind).operator_names()), None)


def of_operator(name: str) -> Kind:
    """The kind whose operators include ``name``; a one-line ValueError naming every operator if none."""
    kind = _serving(name)
    if kind is None:
        raise ValueError(f"unknown operator {name!r}; expected one of {', '.join(operator_names())}")
    return kind


def of_problem(name: str) -> Kind:
    """The kind of the data that problem ``name`` generates (its ``data_kind``)."""
    from sciops import problems

    return get(problems.problem_class(name).data_kind)


def dataset_problem(path: str | Path) -> str:
    """The problem name recorded in a sciops dataset (the file is checked, not loaded)."""
    from sciops.datasets import schema
    from sciops.datasets.h5io import open_read

    with open_read(path) as h5:
        attrs, _ = schema.validate(h5, path)
    return attrs[schema.ATTR_PROBLEM]


def for_training(operator: str, data: str | Path) -> Kind:
    """The kind that trains ``operator`` on the dataset ``data``; a one-line ValueError when the
    operator does not take that kind of data, naming the operators that do."""
    kind = of_operator(operator)
    problem = dataset_problem(data)
    data_kind = of_problem(problem)
    if data_kind is not kind:
        raise ValueError(f"operator {operator} trains on {kind.DESCRIPTION}, but {data} holds "
                         f"{data_kind.DESCRIPTION} (problem {problem!r}); use one of "
                         f"{', '.join(data_kind.operator_names())}")
    return kind


def of_run(path: str | Path) -> Kind:
    """The kind of the run directory ``path``, from its operator's name in the run spec. A run whose
    spec names no known operator is left to the grid loader, which reports what is wrong."""
    from sciops.runs import RunSpec, storage

    return _serving(RunSpec.load(storage.check_run_dir(path)).operator.name) or get("grid")
