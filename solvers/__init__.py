"""Reference numerical solvers: numerics only (numpy / scipy / torch), no training code.

One module per solver; shared numerics live in their own modules.
"""
from importlib import import_module

# Imported on first use (a solver module imports torch or scipy): importing one solver, or the
# problems that list their parameters, does not import the others. The shallow-water solver
# (solvers/shallow_water.py, sw_initial.py, sw_diagnostics.py) is imported from its modules:
# sciops.solvers.shallow_water.simulate / stable_time_step would clash with the names below.
_EXPORTS = {"solve_darcy": "sciops.solvers.darcy", "BlowUpError": "sciops.solvers.navier_stokes",
            "NavierStokes2D": "sciops.solvers.navier_stokes", "simulate": "sciops.solvers.navier_stokes",
            "stable_time_step": "sciops.solvers.navier_stokes"}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
