"""Specification of the purely learned radar first stage (``sciops.operators.learned_first_stage``):
shapes, the peak-normalised first stage, scale invariance, bad input, and that end-to-end training
on a handful of tiny scenes fits them better than the best constant image."""
from __future__ import annotations

import pytest
import torch

from sciops.operators.learned_first_stage import LearnedFirstStage
from sciops.problems import get

TINY = dict(nz=6, ny=5, nx=5, n_freqs=2, max_shapes=2)


@pytest.fixture(scope="module")
def tiny():
    problem = get("radar", **TINY)
    _, out, _ = problem.generate(8, 0)
    return problem, torch.from_numpy(out["measurements"]), torch.from_numpy(out["magnitude"])[:, None]


@torch.no_grad()
def test_shapes_range_and_peak_normalised_first_stage(tiny):
    problem, y, _ = tiny
    assert y.shape == (8, 2, 12, 13, 2)
    net = LearnedFirstStage(problem.operator().data_shape, (6, 5, 5), width=4, levels=2)
    assert net.weight_re.shape == (150, 312)
    z = net.first_stage(y)
    assert z.shape == (8, 2, 6, 5, 5)
    peak = z.square().sum(1).flatten(1).amax(1).sqrt()
    assert torch.allclose(peak, torch.ones(8), atol=1e-6)
    out = net(y)
    assert out.shape == (8, 1, 6, 5, 5) and float(out.min()) > 0 and float(out.max()) < 1
    assert torch.allclose(net(torch.complex(y[..., 0], y[..., 1])), out, atol=1e-6)  # complex input
    assert torch.allclose(net(3.7 * y), out, atol=1e-5)  # unit-RMS scaling of the measurements


def test_wrong_measurement_shape_is_refused(tiny):
    problem, y, _ = tiny
    net = LearnedFirstStage(problem.operator().data_shape, (6, 5, 5), width=4, levels=2)
    with pytest.raises(ValueError, match=r"expects measurements \(batch, 2, 12, 13, 2\), got \(8, 2, 12, 12, 2\)"):
        net(y[:, :, :, :12])
    with pytest.raises(ValueError, match="data_shape"):
        LearnedFirstStage((2, 12), (6, 5, 5))


def test_training_fits_tiny_scenes_better_than_the_best_constant_image(tiny):
    problem, y, t = tiny
    torch.manual_seed(0)
    net = LearnedFirstStage(problem.operator().data_shape, (6, 5, 5), width=4, levels=2)
    w0 = net.weight_re.detach().clone()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        loss = (net(y) - t).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = float((net(y) - t).square().mean())
    best_constant = float((t - t.mean(0, keepdim=True)).square().mean())  # per-voxel mean image
    assert mse < 0.5 * best_constant, (mse, best_constant)
    assert float((net.weight_re.detach() - w0).abs().max()) > 0.05  # the learned map trains end to end
