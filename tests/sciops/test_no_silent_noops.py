"""Runs that would learn nothing, or cannot fit, are refused or warned before the work starts."""
from __future__ import annotations

import numpy as np
import pytest

from sciops import problems
from sciops.cli import main
from sciops.datasets import generate
from sciops.datasets.resources import ResourceError
from sciops.grid.trainer import train
from sciops.particles.trainer import _warn_if_ballistic
from sciops.training import TrainConfig


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    return generate(problems.get("darcy", resolution=16), 24, tmp_path_factory.mktemp("d") / "d.h5", progress=False)


def test_a_sigmoid_head_on_targets_outside_0_1_is_refused(tmp_path, darcy, capsys):
    # Darcy's u reaches 0.07 at most: inside (0, 1), so the U-Net trains; scaled by 100 it cannot
    code = main(["train", "unet", "--data", str(darcy), "-o", str(tmp_path / "ok"), "--epochs", "1", "-q"])
    assert code == 0
    import h5py

    scaled = tmp_path / "scaled.h5"
    import shutil

    shutil.copy2(darcy, scaled)
    from sciops.datasets.checksums import sample_checksums

    with h5py.File(scaled, "r+") as h5:
        h5["fields/u"][...] = h5["fields/u"][...] * 100
        h5["checksums/u"][...] = sample_checksums(h5["fields/u"][...])
    capsys.readouterr()
    code = main(["train", "unet", "--data", str(scaled), "-o", str(tmp_path / "bad"), "--epochs", "1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "outputs values in [0, 1], but the targets" in err and "--set output=linear" in err
    assert not (tmp_path / "bad").exists()
    assert main(["train", "unet", "--data", str(scaled), "-o", str(tmp_path / "lin"), "--epochs", "1",
                 "--set", "output=linear", "-q"]) == 0


def test_constant_targets_are_warned(tmp_path, darcy, capsys):
    import shutil

    import h5py

    from sciops.datasets.checksums import sample_checksums

    flat = tmp_path / "flat.h5"
    shutil.copy2(darcy, flat)
    with h5py.File(flat, "r+") as h5:
        h5["fields/u"][...] = 0.5
        h5["checksums/u"][...] = sample_checksums(h5["fields/u"][...])
    train("fno", flat, tmp_path / "run", hparams={"modes": 4, "width": 8, "layers": 1},
          config=TrainConfig(epochs=1, batch_size=8), progress=False)
    assert "every target of" in capsys.readouterr().err
    train("fno", darcy, tmp_path / "run2", hparams={"modes": 4, "width": 8, "layers": 1},
          config=TrainConfig(epochs=1, batch_size=8), progress=False)
    assert "warning" not in capsys.readouterr().err


def test_free_fall_trajectories_are_warned(capsys):
    t = np.arange(12.0)[None, :, None, None]
    start = np.random.default_rng(0).uniform(0.2, 0.8, (3, 1, 50, 2))
    free_fall = start + 0.01 * t + np.array([0.0, -0.5e-3]) * t ** 2
    _warn_if_ballistic(free_fall.astype(np.float32), "fall.h5")
    assert "moves with constant acceleration" in capsys.readouterr().err
    bouncing = free_fall.copy()
    bouncing[..., 1] = np.abs(bouncing[..., 1] - 0.5) + 0.1  # a wall at y = 0.5 reflects them
    _warn_if_ballistic(bouncing.astype(np.float32), "bounce.h5")
    assert capsys.readouterr().err == ""


def test_training_that_cannot_fit_in_memory_is_refused_with_the_batch_that_fits(tmp_path, darcy, monkeypatch,
                                                                               capsys):
    import sciops.training.memory as memory

    fixed, per_sample = 400 * 2**20, 10 * 2**20  # a 400 MiB model, 10 MiB per sample; 435 MiB free
    monkeypatch.setattr(memory, "training_memory", lambda model, step: (fixed, per_sample))
    monkeypatch.setattr(memory, "available_memory", lambda: fixed + 3 * per_sample + 5 * 2**20)
    with pytest.raises(ResourceError, match=r"needs about 560.0 MiB .* at batch size 16 \(435.0 MiB available\); "
                                            r"the largest batch size that fits: 3"):
        train("fno", darcy, tmp_path / "run", config=TrainConfig(epochs=1, batch_size=16), progress=False)
    assert not (tmp_path / "run").exists()
    code = main(["train", "fno", "--data", str(darcy), "-o", str(tmp_path / "run"), "--epochs", "1", "-q"])
    assert code == 2 and "--force" in capsys.readouterr().err
    assert main(["train", "fno", "--data", str(darcy), "-o", str(tmp_path / "run"), "--epochs", "1", "-q",
                 "--force"]) == 0


def test_the_activation_estimate_counts_what_autograd_keeps():
    import torch

    from sciops.training.memory import RUNTIME_BYTES, training_memory

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1))
    fixed, per_sample = training_memory(model, lambda k: model(torch.zeros(k, 1, 16, 16)))
    params = sum(p.numel() for p in model.parameters()) * 4
    assert fixed == RUNTIME_BYTES + 4 * params
    # the input (kept by conv 1), ReLU's output (kept by ReLU and conv 2, one storage), the output: x 2
    assert per_sample == 2 * (16 * 16 * 4 + 4 * 16 * 16 * 4 + 16 * 16 * 4)
