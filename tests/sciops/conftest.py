"""Shared fixtures: a small Darcy dataset and a briefly trained FNO run (built once per session)."""
from __future__ import annotations

import pytest
from small_settings import RESOLUTION, SMALL_FNO, SMALL_TRAINING

from sciops import problems
from sciops.datasets import generate
from sciops.grid.trainer import train
from sciops.training import TrainConfig


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
