"""Lagrangian particle trajectories: the particles kind of data (``sciops.kinds``).

Exports the kind protocol (:class:`sciops.kinds.Kind`): the particle operators (GIOROM), their
training settings and trainer (:mod:`sciops.particles.trainer`, built from
:mod:`sciops.particles.stepping`), the :class:`~sciops.particles.surrogate.ParticleSurrogate` that
serves them, and their rollout evaluation against the MPM simulator (:mod:`sciops.particles.evaluation`).
"""
from sciops.particles.evaluation import evaluate, markdown, plot, summary_line
from sciops.particles.surrogate import ParticleSurrogate as Surrogate
from sciops.particles.trainer import ParticleTrainConfig as Config
from sciops.particles.trainer import hyperparameters, operator_names, train

DESCRIPTION = "particle trajectories"
DISTRIBUTED = False

__all__ = ["Config", "DESCRIPTION", "DISTRIBUTED", "Surrogate", "evaluate", "hyperparameters", "markdown",
           "operator_names", "plot", "summary_line", "train"]
