"""Surrogate: drop-in for problem.solve (numpy and torch), any resolution, safe loading."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from small_settings import RESOLUTION

import sciops
from sciops import problems
from sciops.grid.surrogate import Surrogate
from sciops.runs import RunSpec
from sciops.runs import storage as ckpt


@pytest.fixture(scope="module")
def surrogate(trained_run):
    return sciops.load(trained_run[0])


def test_solve_matches_problem_contract(surrogate):
    problem = surrogate.problem
    assert problem.name == "darcy" and problem.params["resolution"] == RESOLUTION
    a = problem.sample_inputs(6, seed=123)
    u = problem.solve(a)
    u_hat = surrogate.solve(a)
    assert isinstance(u_hat, np.ndarray) and u_hat.dtype == np.float32 and u_hat.shape == u.shape
    rel = np.linalg.norm(u_hat - u) / np.linalg.norm(u)
    assert rel < 0.15
    np.testing.assert_allclose(surrogate(a[0]), u_hat[0], rtol=1e-5, atol=1e-7)  # one sample, no batch dim


def test_an_empty_batch_gives_an_empty_batch(surrogate):
    assert surrogate.solve(np.zeros((0, RESOLUTION, RESOLUTION), np.float32)).shape == (0, RESOLUTION, RESOLUTION)


def test_torch_in_torch_out_and_differentiable(surrogate):
    a = torch.as_tensor(surrogate.problem.sample_inputs(2, seed=9), dtype=torch.float64).requires_grad_()
    u = surrogate.solve(a)
    assert isinstance(u, torch.Tensor) and u.shape == a.shape
    u.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    np.testing.assert_allclose(u.detach().numpy(), surrogate.solve(a.detach().numpy()), rtol=1e-5, atol=1e-7)


def test_other_resolution_without_retraining(surrogate):
    fine = problems.get("darcy", resolution=2 * RESOLUTION - 1)
    a, u, _ = fine.generate(4, seed=77)
    u_hat = surrogate.solve(a)
    assert u_hat.shape == u.shape
    assert np.linalg.norm(u_hat - u) / np.linalg.norm(u) < 0.3  # zero-shot: degrades, stays a solution


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 3, 3), np.float32), "darcy.solve expects a of shape"),  # what the problem refuses
    (np.zeros((2, 3, 3), np.float32), "too small"),
    (np.full((1, 21, 21), np.nan, np.float32), "sample 0 contains NaN"),
    ({"b": np.ones((1, 21, 21))}, "input field 'a' missing"),
])
def test_bad_inputs(surrogate, bad, message):
    with pytest.raises(ValueError, match=message):
        surrogate.solve(bad)


def _copy_run(trained_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained_run[0], dst)
    return dst


def test_truncated_checkpoint(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path)
    data = (run / ckpt.WEIGHTS).read_bytes()
    (run / ckpt.WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not a torch checkpoint"):
        sciops.load(run)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch EXPLOITED",))


def test_checkpoint_that_would_run_code_is_refused(trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _copy_run(trained_run, tmp_path)
    state = torch.load(run / ckpt.WEIGHTS, weights_only=True)
    state["payload"] = _Exploit()
    with open(run / ckpt.WEIGHTS, "wb") as f:
        torch.save(state, f)
    with pytest.raises(ValueError, match="could run code"):
        sciops.load(run)
    assert not (tmp_path / "EXPLOITED").exists()


def test_missing_or_mismatched_checkpoints(trained_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        sciops.load(tmp_path / "nothing")
    run = _copy_run(trained_run, tmp_path)
    config = ckpt.load_json(run / ckpt.CONFIG)
    config["operator"]["hyperparameters"]["width"] += 1
    ckpt.save_json(run / ckpt.CONFIG, config)
    with pytest.raises(ValueError, match=r"does not match the operator in config.json \(size mismatch for "):
        sciops.load(run)
    (run / ckpt.WEIGHTS).unlink()
    with pytest.raises(ValueError, match="weights.pt is missing"):
        sciops.load(run)


@pytest.mark.parametrize("in_channels", [1, 2])
def test_an_output_field_with_channels_comes_back_channel_last(in_channels):
    model = torch.nn.Conv2d(in_channels, 2, kernel_size=1)  # channel c of the output: its own mix of inputs
    spec = RunSpec.from_dict({"fields": {"inputs": ["a"], "outputs": ["z"]}, "problem": {"name": "external"},
                              "operator": {"name": "conv", "ndim": 2, "in_channels": in_channels, "out_channels": 2}})
    surrogate = Surrogate(model, spec, torch.device("cpu"))
    a = np.random.default_rng(0).standard_normal((3, 8, 8) + (in_channels,) * (in_channels > 1)).astype(np.float32)
    z = surrogate.solve(a)
    x = torch.as_tensor(a).unsqueeze(1) if in_channels == 1 else torch.as_tensor(a).movedim(-1, 1)
    expected = model(x).detach().movedim(1, -1).numpy()
    assert z.shape == (3, 8, 8, 2)
    np.testing.assert_allclose(z, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(surrogate.solve(a[0]), expected[0], rtol=1e-6, atol=1e-6)


def test_run_files_take_the_umask_like_any_other_file(trained_run, tmp_path):
    # atomic writes go through mkstemp, whose 0600 would leave a run unreadable to the group
    old = os.umask(0o027)
    try:
        ckpt.save_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.STATE, ckpt.METRICS):
        assert (trained_run[0] / name).stat().st_mode & 0o777 == 0o666 & ~old, name
