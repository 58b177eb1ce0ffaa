"""sciops: reference PDE solvers, self-describing HDF5 datasets and neural operators.

``sciops.load(run_dir)`` returns a :class:`~sciops.surrogate.Surrogate`, a drop-in replacement
for ``problem.solve``. Subpackages: ``sciops.solvers``, ``sciops.problems``, ``sciops.datasets``
(installed from the top-level folders of the same names), ``sciops.operators``, ``sciops.layers``,
``sciops.training``.
"""
__version__ = "0.1.0"


def load(path, device=None):
    """Load a trained operator from a run directory as a Surrogate (see sciops.surrogate)."""
    from sciops.surrogate import Surrogate

    return Surrogate.load(path, device=device)


__all__ = ["__version__", "load"]
