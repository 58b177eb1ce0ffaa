"""Reference numerical solvers: numerics only (numpy / scipy / torch), no training code.

One module per solver; shared numerics live in their own modules.
"""
from sciops.solvers.darcy import solve_darcy

__all__ = ["solve_darcy"]
