"""Sizes shared by the sciops tests: a small Darcy grid, FNO and training budget.

A module with a unique name (not conftest) so that `from small_settings import ...` finds this
file whichever tests/*/conftest.py pytest imported first.
"""
RESOLUTION = 21
SMALL_FNO = {"modes": 6, "width": 16, "layers": 3, "projection": 32}
SMALL_TRAINING = dict(epochs=12, batch_size=16, lr=1e-2, val_fraction=0.1, seed=3)
