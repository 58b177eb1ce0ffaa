"""Specification of the U-Net operator and the learned radar reconstruction (Deep2S, its complex
variant, the PnP denoiser, the surrogate contract and evaluation against ground truth), on a small
radar problem (14 x 11 x 11 voxels, 4 frequencies) so that each test takes seconds."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sciops
from sciops.cli import main
from sciops.datasets import generate
from sciops.grid.evaluation import evaluate, summary_line
from sciops.grid.trainer import train
from sciops.image_metrics import psnr
from sciops.layers.unet_blocks import crop_to, pad_to_multiple
from sciops.operators import build
from sciops.operators.unet import UNet
from sciops.problems import get
from sciops.solvers import radar_recon as RR
from sciops.training.config import TrainConfig
from sciops.training.denoiser import LearnedDenoiser, train_denoiser

SMALL = dict(nz=14, ny=11, nx=11, n_freqs=4, max_shapes=2)
TINY_UNET = {"width": 4, "levels": 2}


# --- the network ------------------------------------------------------------------------------------
@torch.no_grad()
@pytest.mark.parametrize("sizes", [(49, 25, 25), (9, 7, 5), (5, 5, 5)])
@pytest.mark.parametrize("levels", [1, 3])
def test_any_grid_size_comes_back_at_its_size_in_0_1(sizes, levels):
    net = UNet(2, 3, ndim=3, width=4, levels=levels)
    y = net(torch.randn(2, 2, *sizes))
    assert y.shape == (2, 3, *sizes)
    assert float(y.min()) > 0 and float(y.max()) < 1


@torch.no_grad()
def test_2d_and_linear_output():
    net = UNet(1, 1, ndim=2, width=4, levels=3, output="linear")
    net.head.bias.fill_(-50.0)
    y = net(torch.randn(1, 1, 13, 10))
    assert y.shape == (1, 1, 13, 10) and float(y.max()) < 0  # no sigmoid


def test_padding_keeps_every_voxel():
    x = torch.randn(1, 2, 9, 7, 5)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 12, 8, 8)
    assert torch.equal(crop_to(padded, x.shape[2:]), x)
    # the far corner voxel of the input reaches the far corner of the output (not cropped away)
    net = UNet(1, 1, ndim=3, width=4, levels=3)
    x = torch.zeros(1, 1, 9, 7, 5, requires_grad=True)
    net(x)[0, 0, -1, -1, -1].backward()
    assert x.grad[0, 0, -1, -1, -1].abs() > 0


def test_magnitude_input_ignores_the_phase_and_channels_input_does_not():
    re, im = torch.randn(2, 1, 8, 6, 6), torch.randn(2, 1, 8, 6, 6)
    rotated = torch.cat([re * 0.6 - im * 0.8, re * 0.8 + im * 0.6], 1)  # global phase rotation
    x = torch.cat([re, im], 1)
    torch.manual_seed(0)
    mag = UNet(2, 1, ndim=3, width=4, levels=2, input_mode="magnitude")
    torch.manual_seed(0)
    chan = UNet(2, 1, ndim=3, width=4, levels=2, input_mode="channels")
    assert torch.allclose(mag(x), mag(rotated), atol=1e-5)
    assert not torch.allclose(chan(x), chan(rotated), atol=1e-3)


def test_bad_input_and_hyperparameters():
    net = UNet(2, 1, ndim=3, width=4)
    with pytest.raises(ValueError, match="expects 2 input channels, got 3"):
        net(torch.zeros(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match=r"expects \(batch, channels, 3 spatial dims\)"):
        net(torch.zeros(2, 8, 8, 8))
    with pytest.raises(ValueError, match="input_mode must be one of"):
        UNet(2, 1, input_mode="phase")
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        UNet(2, 1, levels=0)
    assert isinstance(build("unet", in_channels=2, out_channels=1, ndim=3, geometry="bounded", width=4), UNet)


# --- training on radar data -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def radar_runs(tmp_path_factory):
    """A 40-scene small radar dataset and U-Net runs (magnitude and complex inputs) trained on it."""
    root = tmp_path_factory.mktemp("radar_learned")
    data = root / "radar.h5"
    generate(get("radar", **SMALL), 40, data, seed=0, progress=False)
    cfg = TrainConfig(epochs=12, batch_size=4, lr=1e-2, loss="l2", metrics=["l2"], val_fraction=0.1, seed=1)
    runs = {}
    for mode in ("magnitude", "channels"):
        runs[mode] = root / mode
        with torch.random.fork_rng():
            train("unet", data, runs[mode], hparams={**TINY_UNET, "input_mode": mode}, config=cfg, progress=False)
    return data, runs


def _scenes(n=36, seed=0):
    _, out, _ = get("radar", **SMALL).generate(n, seed)
    return out


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
def test_targets_are_not_normalised_and_outputs_stay_in_0_1(radar_runs):
    _, runs = radar_runs
    surrogate = sciops.load(runs["magnitude"])
    norm = surrogate.spec.normalization
    assert norm["out_mean"] == [0.0] and norm["out_std"] == [1.0]  # the sigmoid sees the raw |x|
    assert norm["in_mean"] == [0.0, 0.0] and norm["in_std"] == [1.0, 1.0]
    out = surrogate.solve(get("radar", **SMALL).first_stage(_scenes(4, seed=5)["measurements"]))
    assert out.shape == (4, 14, 11, 11) and out.min() > 0 and out.max() < 1


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
def test_other_operators_keep_their_normalisation(radar_runs, tmp_path):
    data, _ = radar_runs
    train("fno", data, tmp_path / "fno", hparams={"modes": 3, "width": 4, "layers": 1, "projection": 4},
          config=TrainConfig(epochs=1, batch_size=8), progress=False)
    norm = sciops.load(tmp_path / "fno").spec.normalization
    assert norm["out_std"] != [1.0] and norm["in_std"] != [1.0, 1.0]


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
@pytest.mark.parametrize("mode", ["magnitude", "channels"])
def test_training_beats_the_first_stage_and_any_constant_image(radar_runs, mode):
    # on the training scenes: the first stage alone, |A^H y| / max, and the best a broken net that
    # ignores its input could do (a constant image: zeros or the mean) against the second stage
    _, runs = radar_runs
    out = _scenes()
    truth = out["magnitude"]
    adjoint = get("radar", **SMALL).first_stage(out["measurements"])
    first_stage = psnr(np.linalg.norm(adjoint, axis=-1), truth).mean()
    constant = max(psnr(np.full_like(truth, c), truth).mean() for c in (0.0, 0.02, 0.05, truth.mean()))
    learned = psnr(sciops.load(runs[mode]).solve(adjoint), truth).mean()
    assert learned > max(first_stage, constant) + 1, (learned, first_stage, constant)


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
def test_surrogate_contract_and_round_trip(radar_runs):
    _, runs = radar_runs
    surrogate = sciops.load(runs["channels"])
    problem = surrogate.problem
    out = _scenes(3, seed=11)
    adjoint = problem.first_stage(out["measurements"])
    batch = surrogate.solve(adjoint)
    assert batch.shape == problem.solve(adjoint).shape == (3, 14, 11, 11)
    complex_adjoint = adjoint[..., 0] + 1j * adjoint[..., 1]  # what problem.solve also accepts
    np.testing.assert_array_equal(surrogate.solve(complex_adjoint), batch)
    np.testing.assert_allclose(surrogate.solve(torch.as_tensor(complex_adjoint)).detach().numpy(), batch, atol=1e-6)
    # one sample, no batch dim (float32 convolutions may sum in another order for another batch size)
    np.testing.assert_allclose(surrogate.solve(adjoint[1]), batch[1], rtol=1e-4, atol=1e-6)
    # torch in, torch out; the weights reloaded give the same images
    assert torch.allclose(surrogate.solve(torch.as_tensor(adjoint)), torch.as_tensor(batch), atol=1e-6)
    assert np.array_equal(sciops.load(runs["channels"]).solve(adjoint), batch)
    with pytest.raises(ValueError, match="radar.solve expects the adjoint image of shape"):
        surrogate.solve(np.zeros((3, 14, 11, 11, 3), np.float32))
    with pytest.raises(ValueError, match=r"radar.solve expects .* got \(12, 9, 2\)"):
        surrogate.solve(np.zeros((12, 9, 2), np.float32))


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
def test_evaluate_compares_with_ground_truth_and_classical_methods(radar_runs, capsys):
    data, runs = radar_runs
    report = evaluate(sciops.load(runs["magnitude"]), fresh=4, progress_enabled=False)
    images = report["images"]
    assert set(images) == {"surrogate", "adjoint", "reference", "kirchhoff"}
    for v in images.values():
        assert set(v) == {"psnr", "ssim", "nrmse", "seconds_per_sample"} and v["seconds_per_sample"] > 0
    assert images["surrogate"]["psnr"] > images["kirchhoff"]["psnr"]
    assert 0 < images["surrogate"]["nrmse"] < images["kirchhoff"]["nrmse"]
    # the solver a reconstruction replaces is the reference reconstruction, not the forward simulation
    assert report["solver_seconds_per_sample"] == images["reference"]["seconds_per_sample"]
    assert report["speedup"] == pytest.approx(images["reference"]["seconds_per_sample"]
                                              / images["surrogate"]["seconds_per_sample"])
    stored = evaluate(sciops.load(runs["magnitude"]), data=data, progress_enabled=False)
    assert math.isnan(stored["speedup"]) and "solver time unknown" in summary_line(stored)  # the file's time is the forward model's
    png, rep = data.parent / "radar_eval.png", data.parent / "radar_eval.md"
    assert main(["evaluate", str(runs["magnitude"]), "--fresh", "3", "--plot", str(png), "--report", str(rep)]) in (0, None)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "kirchhoff" in rep.read_text()  # a 3D, 2-channel input
    printed = capsys.readouterr().out
    assert "kirchhoff: PSNR" in printed and "reference: PSNR" in printed and "surrogate: PSNR" in printed


# --- the PnP denoiser -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def denoiser(radar_runs, tmp_path_factory):
    data, _ = radar_runs
    run = tmp_path_factory.mktemp("denoiser") / "run"
    train_denoiser(data, run, width=4, levels=2, epochs=15, lr=1e-2, sigma_max=0.2)
    return LearnedDenoiser.load(run)


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
def test_denoiser_lowers_noise(denoiser):
    clean = torch.as_tensor(_scenes(6, seed=21)["magnitude"])
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    out = denoiser(noisy, 0.1)
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert torch.mean((out - clean) ** 2) < 0.5 * torch.mean((noisy - clean) ** 2)
    assert torch.allclose(denoiser(noisy[0], 0.1), out[0], atol=1e-6)  # one volume, no batch dim
    with pytest.raises(ValueError, match="denoiser expects"):
        denoiser(torch.zeros(9, 9), 0.1)


@pytest.mark.slow  # shares a ~15 s module fixture (dataset + trained U-Nets / denoiser)
def test_denoiser_plugs_into_pnp_admm(denoiser):
    problem = get("radar", **SMALL)
    out = _scenes(2, seed=31)
    y = out["measurements"]
    rec = problem.reconstruct(y, "pnp-learned", denoiser=denoiser, iters=5, strength=0.05)
    assert rec.shape == (2, 14, 11, 11) and np.isfinite(rec).all() and rec.max() == pytest.approx(1.0)
    # straight through the solver layer: each iteration calls D once on the peak-normalised magnitude
    # with sigma = strength, and the result carries D's output
    calls = []

    def spy(magnitude, sigma):
        calls.append((float(magnitude.amax()), sigma))
        return denoiser(magnitude, sigma)

    z = RR.pnp_admm(problem.operator(), torch.as_tensor(y[..., 0] + 1j * y[..., 1]), prox=spy, iters=3, strength=0.07)
    assert z.shape == (2, 14, 11, 11) and torch.isfinite(z.abs()).all()
    assert len(calls) == 3 and all(m == pytest.approx(1.0) and s == 0.07 for m, s in calls)
    with pytest.raises(ValueError, match="denoiser=D"):
        problem.reconstruct(y, "pnp-learned")
