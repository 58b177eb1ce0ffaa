"""Fixtures for the dataset tests: small Darcy files and a toy problem with several fields.

``Toy`` is not in the problem registry: it has two scalar input fields and one output field with
a trailing channel dim (stored (N, y, x, 2), dims [..., "channel"]), and can be told to raise or
to produce NaN at a given sample, which Darcy cannot.
"""
from __future__ import annotations

import numpy as np
import pytest

from sciops.datasets import generate
from sciops.problems import Field, Param, Problem, get


class Toy(Problem):
    name = "toy"
    geometry = "bounded"
    PARAMS = (Param("resolution", 8, int, "grid points per side", min=2, max=64),)

    def __init__(self, fail_at: int | None = None, nan_at: int | None = None, **params):
        super().__init__(**params)
        n = self.params["resolution"]
        self.grid = {"y": np.linspace(0.0, 2.0, n), "x": np.linspace(0.0, 1.0, n + 1)}
        self.grid_units = {"y": "m", "x": "m"}
        self.fields = {
            "k": Field(("y", "x"), "m2", "input", "permeability"),
            "f": Field(("y", "x"), "1", "input", "forcing"),
            "v": Field(("y", "x"), "m/s", "output", "velocity (vy, vx)"),
        }
        self.fail_at, self.nan_at = fail_at, nan_at

    def _sample_one(self, rng):
        shape = (len(self.grid["y"]), len(self.grid["x"]))
        return {"k": rng.random(shape, dtype=np.float32), "f": rng.standard_normal(shape, dtype=np.float32)}

    def solve(self, inputs):
        k, f = inputs["k"], inputs["f"]
        return {"v": np.stack([k * f, k - f], axis=-1).astype(np.float32)}

    def generate(self, n, seed, start=0):
        if self.fail_at is not None and start + n > self.fail_at:
            raise RuntimeError(f"toy solver failed at sample {self.fail_at}")
        inputs, outputs, seconds = super().generate(n, seed, start)
        if self.nan_at is not None and start <= self.nan_at < start + n:
            outputs["v"][self.nan_at - start, 0, 0, 1] = np.nan
        return inputs, outputs, seconds


@pytest.fixture
def toy_cls():
    return Toy


@pytest.fixture(scope="session")
def darcy16():
    return get("darcy", resolution=16)


@pytest.fixture(scope="session")
def darcy_file(tmp_path_factory, darcy16):
    """A complete 12-sample Darcy file at resolution 16 (seed 3); do not modify it."""
    path = tmp_path_factory.mktemp("darcy") / "darcy16.h5"
    return generate(darcy16, 12, path, seed=3, batch_size=5, progress=False)


@pytest.fixture(scope="session")
def toy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.h5"
    return generate(Toy(resolution=6), 9, path, seed=1, batch_size=4, progress=False)
