"""Reference numerical solvers: numerics only (numpy / scipy / torch), no training code.

One module per solver; shared numerics live in their own modules.
"""
from sciops.solvers.darcy import solve_darcy
from sciops.solvers.navier_stokes import BlowUpError, NavierStokes2D, simulate, stable_time_step

# The shallow-water solver (solvers/shallow_water.py, sw_initial.py, sw_diagnostics.py) is imported from
# its modules: sciops.solvers.shallow_water.simulate / stable_time_step would clash with the names above.
__all__ = ["solve_darcy", "BlowUpError", "NavierStokes2D", "simulate", "stable_time_step"]
