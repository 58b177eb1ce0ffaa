"""Data kinds: which operators, trainer, surrogate and evaluation serve a dataset or a run directory.

A problem declares the kind of its data in ``Problem.data_kind``:

* ``grid``: fields on a grid, channel-first tensors; operators from ``sciops.operators.REGISTRY``,
  trained by ``sciops.training.trainer``, loaded as ``sciops.surrogate.Surrogate`` and checked by
  ``sciops.evaluation``;
* ``particles``: Lagrangian particle trajectories (the ``particles`` problem); the GIOROM graph
  time-stepper, trained by ``sciops.training.particles``, loaded as
  ``sciops.particle_surrogate.ParticleSurrogate`` and checked by ``sciops.particle_evaluation``.

Each :class:`Kind` names its pieces as ``"module:attribute"`` strings imported on first use, so the
CLI starts without importing torch models it does not need. The CLI and ``sciops.load`` dispatch
through :func:`of_operator`, :func:`for_training` and :func:`of_run` instead of testing names. A
new kind is one entry in ``KINDS`` plus its modules.

Every kind's ``train(operator, data, run_dir, *, hparams, config, resume, progress)`` returns the
same summary dict (``epochs``, ``best_epoch``, ``best_val``, ``seconds_per_epoch``, ...); its
``evaluate(surrogate, *, fresh=N | data=FILE)`` returns a report that its ``markdown``,
``summary_line`` and ``plot(report, path)`` take, and whose keys starting with ``_`` are arrays
(``sciops.evaluation.public`` drops them).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path


def _resolve(target: str):
    module, attribute = target.split(":")
    return getattr(import_module(module), attribute)


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    operators: str        # "module:function" -> list of operator names
    hyperparameters: str  # "module:function" (operator name) -> {hyperparameter: default}
    config: str           # "module:Class" of the training settings ([training] table, CLI options)
    train: str            # "module:function", see the module docstring
    surrogate: str        # "module:Class" with .load(path, device=None)
    evaluate: str
    markdown: str
    summary_line: str
    plot: str
    distributed: bool = False  # whether `sciops train --nproc N` can run it

    def get(self, piece: str):
        """The object named by field ``piece`` (e.g. ``kind.get("train")``)."""
        return _resolve(getattr(self, piece))

    def operator_names(self) -> list[str]:
        return list(self.get("operators")())


KINDS: dict[str, Kind] = {
    "grid": Kind(
        "grid", "fields on a grid",
        operators="sciops.operators:names", hyperparameters="sciops.operators:hyperparameters",
        config="sciops.training.config:TrainConfig", train="sciops.training.trainer:train",
        surrogate="sciops.surrogate:Surrogate", evaluate="sciops.evaluation:evaluate",
        markdown="sciops.evaluation:markdown", summary_line="sciops.evaluation:summary_line",
        plot="sciops.plotting:plot_comparison", distributed=True),
    "particles": Kind(
        "particles", "particle trajectories",
        operators="sciops.training.particles:operator_names",
        hyperparameters="sciops.training.particles:hyperparameters",
        config="sciops.training.particles:ParticleTrainConfig", train="sciops.training.particles:train",
        surrogate="sciops.particle_surrogate:ParticleSurrogate", evaluate="sciops.particle_evaluation:evaluate",
        markdown="sciops.particle_evaluation:markdown", summary_line="sciops.particle_evaluation:summary_line",
        plot="sciops.particle_evaluation:plot"),
}


def operator_names() -> list[str]:
    """Every operator of every kind, sorted."""
    return sorted(name for kind in KINDS.values() for name in kind.operator_names())


def _serving(name) -> Kind | None:
    """The kind whose operators include ``name``, or None."""
    return next((kind for kind in KINDS.values() if name in kind.operator_names()), None)


def of_operator(name: str) -> Kind:
    """The kind whose operators include ``name``; a one-line ValueError naming every operator if none."""
    kind = _serving(name)
    if kind is None:
        raise ValueError(f"unknown operator {name!r}; expected one of {', '.join(operator_names())}")
    return kind


def of_problem(name: str) -> Kind:
    """The kind of the data that problem ``name`` generates (its ``data_kind``)."""
    from sciops import problems

    return KINDS[problems.problem_class(name).data_kind]


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
        raise ValueError(f"operator {operator} trains on {kind.description}, but {data} holds "
                         f"{data_kind.description} (problem {problem!r}); use one of "
                         f"{', '.join(data_kind.operator_names())}")
    return kind


def of_run(path: str | Path) -> Kind:
    """The kind of the run directory ``path``, from its operator's name in config.json. A run whose
    config names no known operator is left to the grid loader, which reports what is wrong."""
    from sciops import checkpoint as ckpt

    config = ckpt.load_json(ckpt.check_run_dir(path) / ckpt.CONFIG)
    operator = config.get("operator")
    name = operator.get("name") if isinstance(operator, dict) else None
    return _serving(name) or KINDS["grid"]
