"""Fields on a grid: the grid kind of data (``sciops.kinds``).

Exports the kind protocol (:class:`sciops.kinds.Kind`): the operators of ``sciops.operators``, their
training settings (:class:`~sciops.training.config.TrainConfig`) and trainer
(:mod:`sciops.grid.trainer`), the :class:`~sciops.grid.surrogate.Surrogate` that serves them, their
evaluation against the reference solver (:mod:`sciops.grid.evaluation`, with certified answers in
:mod:`sciops.grid.certified`) and its figure (:mod:`sciops.grid.figures`).
"""
from sciops.grid.evaluation import evaluate, markdown, summary_line
from sciops.grid.figures import plot_comparison as plot
from sciops.grid.surrogate import Surrogate
from sciops.grid.trainer import train
from sciops.operators import hyperparameters
from sciops.operators import names as operator_names
from sciops.training.config import TrainConfig as Config

DESCRIPTION = "fields on a grid"
DISTRIBUTED = True  # `sciops train --nproc N` runs it

__all__ = ["Config", "DESCRIPTION", "DISTRIBUTED", "Surrogate", "evaluate", "hyperparameters", "markdown",
           "operator_names", "plot", "summary_line", "train"]
