"""SpecBoost: a second FNO on the first one's residual starts at the first model's prediction,
lowers the validation error, and saves and loads as one surrogate without the base run."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from small_settings import SMALL_TRAINING

import sciops
from sciops.grid.trainer import Trainer
from sciops.runs.spec import RunDirectories
from sciops.training import TrainConfig


def test_boost_lowers_error_and_loads_alone(tmp_path, darcy_file, trained_run):
    base_dir, base_summary = trained_run
    base_copy = tmp_path / "base"
    shutil.copytree(base_dir, base_copy)
    boosted_dir = tmp_path / "boost"
    trainer = Trainer("specboost", darcy_file, boosted_dir, hparams={"base": str(base_copy)},
                      config=TrainConfig(**{**SMALL_TRAINING, "epochs": 30}), progress=False)
    trainer.fit()

    base_val = min(h["val"]["l2"] for h in map(json.loads, (base_dir / "metrics.jsonl").read_text().splitlines()))
    boost_val = min(h["val"]["l2"] for h in map(json.loads, (boosted_dir / "metrics.jsonl").read_text().splitlines()))
    assert boost_val < 0.9 * base_val, (base_val, boost_val)

    config = json.loads((boosted_dir / "config.json").read_text())
    assert config["operator"]["hyperparameters"]["base_config"]["operator"]["name"] == "fno"
    shutil.rmtree(base_copy)  # the boosted run carries both stages
    boosted = sciops.load(boosted_dir)
    base = sciops.load(base_dir)
    a = boosted.problem.sample_inputs(4, seed=99)
    u = boosted.problem.solve(a)
    err = lambda pred: np.linalg.norm(pred - u) / np.linalg.norm(u)  # noqa: E731
    assert boosted.solve(a).shape == u.shape
    assert err(boosted.solve(a)) < err(base.solve(a))


def test_untrained_boost_is_the_base_model(tmp_path, darcy_file, trained_run):
    base_dir, _ = trained_run
    from sciops.operators import build

    hparams = Trainer("specboost", darcy_file, tmp_path / "b", hparams={"base": str(base_dir)},
                      config=TrainConfig(**SMALL_TRAINING), progress=False).spec.operator.hyperparameters
    model = build("specboost", in_channels=1, out_channels=1, ndim=2, geometry="bounded", **hparams)
    x, y = sciops.datasets.open_dataset(darcy_file).get_batch(list(range(8)))
    model.initialize(x, y, RunDirectories())
    base = sciops.load(base_dir)
    with torch.no_grad():
        torch.testing.assert_close(model(x), base.model(x))


def test_bad_base_runs(tmp_path, darcy_file):
    with pytest.raises(ValueError, match="--set base=RUN_DIR"):
        Trainer("specboost", darcy_file, tmp_path / "b", config=TrainConfig(**SMALL_TRAINING), progress=False)
    with pytest.raises((ValueError, FileNotFoundError), match="nowhere"):
        Trainer("specboost", darcy_file, tmp_path / "b", hparams={"base": str(tmp_path / "nowhere")},
                config=TrainConfig(**SMALL_TRAINING), progress=False)


def test_boosting_on_data_of_another_operator_is_refused(tmp_path, trained_run):
    from small_settings import RESOLUTION

    from sciops import problems
    from sciops.datasets import generate

    other = generate(problems.get("darcy", resolution=RESOLUTION, forcing=2.0), 4, tmp_path / "f2.h5", seed=1,
                     progress=False)
    with pytest.raises(ValueError, match="generated with forcing=2.0, but the run was trained with forcing=1.0"):
        Trainer("specboost", other, tmp_path / "b", hparams={"base": str(trained_run[0])},
                config=TrainConfig(**{**SMALL_TRAINING, "val_fraction": 0.25}), progress=False)
    assert not (tmp_path / "b").exists()
