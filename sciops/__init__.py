"""sciops: reference PDE solvers, self-describing HDF5 datasets and neural operators.

``sciops.load(run_dir)`` returns a :class:`~sciops.grid.surrogate.Surrogate`, a drop-in replacement
for ``problem.solve`` (for particle operators a :class:`~sciops.particles.surrogate.ParticleSurrogate`,
a drop-in for ``Particles.solve``); ``sciops.train(operator, data, run_dir)`` trains one.
Subpackages: ``sciops.solvers``, ``sciops.problems``, ``sciops.datasets`` (installed from the
top-level folders of the same names); ``sciops.operators`` and ``sciops.layers`` (the models),
``sciops.runs`` (the run spec and run directories), ``sciops.training`` (the loop every kind uses),
``sciops.grid`` and ``sciops.particles`` (each kind's trainer, surrogate and evaluation), and
``sciops.workflows`` (inversion, the Spectral-Refiner, the demo). Nothing heavy is imported here.
"""
from sciops.version import __version__


def load(path, device=None, compile=False):
    """Load a trained operator from a run directory: a Surrogate for grid operators, a
    ParticleSurrogate for particle operators such as giorom; the run's operator picks which
    (``sciops.kinds``). ``compile=True`` serves a grid operator through ``torch.compile`` (warm-up
    cost in :mod:`sciops.grid.surrogate`); particle operators refuse it."""
    from sciops import kinds

    return kinds.of_run(path).Surrogate.load(path, device=device, compile=compile)


def train(operator: str, data, run_dir, **options) -> dict:
    """Train ``operator`` on the dataset ``data`` into ``run_dir`` with the trainer of the data's
    kind; keyword options as that trainer takes them (``hparams``, ``config``, ``resume``,
    ``progress``, ``force``). Returns the history summary."""
    from sciops import kinds

    return kinds.for_training(operator, data).train(operator, data, run_dir, **options)


__all__ = ["__version__", "load", "train"]
