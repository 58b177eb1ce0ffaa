"""Serving: gradients only where asked, the input's dtype back, torch.compile. Timing is measured by
scripts/bench_serving.py, never asserted here."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import sciops
from sciops.grid import surrogate as grid_surrogate
from sciops.grid.surrogate import Surrogate
from sciops.particles.surrogate import ParticleSurrogate
from sciops.runs import RunSpec
from sciops.runs.input_summary import counted_not_warned


@pytest.fixture(scope="module")
def surrogate(trained_run):
    return sciops.load(trained_run[0])


@pytest.fixture(scope="module")
def inputs(surrogate):
    return surrogate.problem.sample_inputs(3, seed=4).astype(np.float64)


def test_torch_input_without_grad_builds_no_graph(surrogate, inputs):
    u = surrogate.solve(torch.as_tensor(inputs, dtype=torch.float32))
    assert not u.requires_grad and u.grad_fn is None
    np.testing.assert_allclose(u.numpy(), surrogate.solve(inputs.astype(np.float32)), rtol=1e-6, atol=1e-7)


def test_torch_input_with_grad_stays_differentiable(surrogate, inputs):
    a = torch.as_tensor(inputs, dtype=torch.float32).requires_grad_()
    u = surrogate.solve(a)
    assert u.requires_grad and u.dtype == torch.float32
    u.square().sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    with torch.no_grad():  # grad mode off: no graph, as for any torch code
        assert not surrogate.solve(a).requires_grad


def test_float64_in_gives_float64_out(surrogate, inputs):
    u64 = surrogate.solve(inputs)
    u32 = surrogate.solve(inputs.astype(np.float32))
    assert u64.dtype == np.float64 and u32.dtype == np.float32
    np.testing.assert_allclose(u64, u32, rtol=1e-6, atol=1e-7)  # computed in float32, cast back
    t64 = surrogate.solve(torch.as_tensor(inputs))
    assert t64.dtype == torch.float64
    np.testing.assert_allclose(t64.numpy(), u64, rtol=1e-6, atol=1e-7)
    assert surrogate.solve(inputs[0]).dtype == np.float64  # one sample too
    with counted_not_warned():  # a 0/1 field lies outside the training inputs
        assert surrogate.solve((inputs > 0.5).astype(np.int64)).dtype == np.float32  # integers: float32


def test_batches_split_and_joined_give_the_same_answers(surrogate, inputs):
    np.testing.assert_allclose(surrogate.solve(inputs, batch_size=2), surrogate.solve(inputs), rtol=1e-5, atol=1e-6)


def _conv_surrogate(compile: bool) -> Surrogate:
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, kernel_size=3, padding=1)
    spec = RunSpec.from_dict({"fields": {"inputs": ["a"], "outputs": ["u"]}, "problem": {"name": "external"},
                              "operator": {"name": "conv", "ndim": 2, "in_channels": 1, "out_channels": 1}})
    return Surrogate(model, spec, torch.device("cpu"), compile=compile)


@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                    reason="torch.compile's inductor needs a C++ compiler on CPU")
def test_compile_gives_the_same_answers():
    plain, compiled = _conv_surrogate(False), _conv_surrogate(True)
    compiled.model.load_state_dict(plain.model.state_dict())
    a = np.random.default_rng(1).standard_normal((2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(compiled.solve(a), plain.solve(a), rtol=1e-5, atol=1e-6)


def test_load_with_compile_keeps_the_plain_module(trained_run):
    s = sciops.load(trained_run[0], compile=True)  # compiles lazily, on the first call
    assert isinstance(s.model, torch.nn.Module) and s._forward is not s.model
    assert set(s.model.state_dict()) == set(sciops.load(trained_run[0]).model.state_dict())


def test_compile_without_a_compiler_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(grid_surrogate.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="compile=True needs a C\\+\\+ compiler"):
        _conv_surrogate(True)


def test_particle_surrogate_refuses_compile(tmp_path):
    with pytest.raises(ValueError, match="compile=True is not supported for giorom"):
        ParticleSurrogate.load(tmp_path, compile=True)
