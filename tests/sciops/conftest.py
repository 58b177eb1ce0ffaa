"""Shared fixtures: a small Darcy dataset and a briefly trained FNO run (built once per session)."""
from __future__ import annotations

import pytest

from sciops import problems
from sciops.datasets import generate
from sciops.training import TrainConfig, train

RESOLUTION = 21
SMALL_FNO = {"modes": 6, "width": 16, "layers": 3, "projection": 32}
SMALL_TRAINING = dict(epochs=12, batch_size=16, lr=1e-2, val_fraction=0.1, seed=3)


@pytest.fixture(scope="session")
def darcy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "darcy.h5"
    generate(problems.get("darcy", resolution=RESOLUTION), 220, path, seed=5, progress=False)
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, darcy_file):
    run_dir = tmp_path_factory.mktemp("runs") / "fno"
    summary = train("fno", darcy_file, run_dir, hparams=SMALL_FNO, config=TrainConfig(**SMALL_TRAINING),
                    progress=False)
    return run_dir, summary
