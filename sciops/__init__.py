"""sciops: reference PDE solvers, self-describing HDF5 datasets and neural operators.

``sciops.load(run_dir)`` returns a :class:`~sciops.surrogate.Surrogate`, a drop-in replacement
for ``problem.solve`` (for particle operators a
:class:`~sciops.particle_surrogate.ParticleSurrogate`, a drop-in for the MPM rollout). Subpackages: ``sciops.solvers``, ``sciops.problems``, ``sciops.datasets``
(installed from the top-level folders of the same names), ``sciops.operators``, ``sciops.layers``,
``sciops.training``.
"""
__version__ = "0.1.0"


def load(path, device=None):
    """Load a trained operator from a run directory: a Surrogate (see sciops.surrogate) for grid
    operators, a ParticleSurrogate (sciops.particle_surrogate) for particle operators such as giorom;
    the run's operator picks which (sciops.kinds)."""
    from sciops import kinds

    return kinds.of_run(path).get("surrogate").load(path, device=device)


__all__ = ["__version__", "load"]
