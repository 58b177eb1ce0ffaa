"""Trajectory operators (fno-rollout, fno3d, t1, st-fno): shapes, contracts, resolution behaviour, and a
short fit of an exactly known linear trajectory map (the heat semigroup on the torus)."""
from __future__ import annotations

import math

import pytest
import torch

from sciops import operators
from sciops.losses import make_loss

TRAJECTORY = ("fno-rollout", "fno3d", "t1")
SMALL = {"fno-rollout": {"modes": 6, "width": 12, "layers": 2},
         "fno3d": {"modes": (3, 6, 6), "width": 8, "layers": 2},
         "t1": {"modes": 6, "width": 12, "layers": 2, "resolution": 24}}


def build(name, time_steps=4, geometry="periodic", **extra):
    return operators.build(name, in_channels=1, out_channels=1, ndim=2, geometry=geometry,
                           time_steps=time_steps, **{**SMALL[name], **extra})


def band_limited_fields(n_samples: int, n: int, k_max: int, seed: int) -> torch.Tensor:
    """Random real fields on the n x n torus with Fourier modes |k_y|, |k_x| <= k_max only."""
    gen = torch.Generator().manual_seed(seed)
    coeffs = torch.zeros(n_samples, 1, n, n // 2 + 1, dtype=torch.cdouble)
    block = torch.randn(n_samples, 1, 2 * k_max + 1, k_max + 1, dtype=torch.cdouble, generator=gen)
    rows = list(range(k_max + 1)) + list(range(n - k_max, n))
    coeffs[:, :, rows, : k_max + 1] = block
    return torch.fft.irfft2(coeffs, s=(n, n), norm="forward").float()


def heat_trajectory(w0: torch.Tensor, steps: int, nu_dt: float) -> torch.Tensor:
    """Exact heat-equation records w(t_j) = exp(nu lap t_j) w0 on the unit torus, j = 1..steps."""
    n = w0.shape[-1]
    k = torch.fft.fftfreq(n, 1.0 / n)
    k2 = (2 * math.pi) ** 2 * (k[:, None] ** 2 + torch.fft.rfftfreq(n, 1.0 / n)[None, :] ** 2)
    w_hat = torch.fft.rfft2(w0.double())
    return torch.stack([torch.fft.irfft2(w_hat * torch.exp(-nu_dt * j * k2), s=(n, n))
                        for j in range(1, steps + 1)], dim=2).float()


@pytest.mark.parametrize("name", TRAJECTORY)
def test_shapes_and_other_resolutions(name):
    op = build(name)
    for n in (24, 32):
        assert op(torch.randn(3, 1, n, n)).shape == (3, 1, 4, n, n)


def test_field_operator_refuses_trajectories_and_back():
    with pytest.raises(ValueError, match="outputs have a time axis .4 records.; use one of .*fno-rollout"):
        operators.build("fno", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=4)
    with pytest.raises(ValueError, match="fno3d needs data whose outputs have a time axis"):
        operators.build("fno3d", in_channels=1, out_channels=1, ndim=2, geometry="periodic")
    # t1 also serves plain field-to-field data
    t1 = operators.build("t1", in_channels=1, out_channels=2, ndim=2, geometry="periodic", **SMALL["t1"])
    assert t1(torch.randn(2, 1, 24, 24)).shape == (2, 2, 24, 24)


def test_t1_refuses_bounded_problems_and_coarse_grids():
    with pytest.raises(ValueError, match="needs a periodic problem"):
        build("t1", geometry="bounded")
    with pytest.raises(ValueError, match="too coarse for t1"):
        build("t1")(torch.randn(1, 1, 10, 10))


def test_rollout_is_the_one_step_map_iterated_and_extends_past_the_horizon():
    torch.manual_seed(0)
    op = build("fno-rollout", time_steps=3)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        traj = op(x, steps=5)
        state = x
        for j in range(5):
            state = state + op.step(state)
            torch.testing.assert_close(traj[:, :, j], state)
        torch.testing.assert_close(op(x), traj[:, :, :3])


def test_fno3d_crops_its_time_padding():
    """Time is zero-padded, not wrapped: the padded records are cropped from the output."""
    op = build("fno3d", time_steps=5, time_padding=0.4)
    assert op(torch.randn(2, 1, 16, 16)).shape == (2, 1, 5, 16, 16)
    with pytest.raises(ValueError, match="time_padding"):
        build("fno3d", time_padding=2.0)


def test_t1_same_output_on_a_finer_grid_for_band_limited_input():
    """Kept coefficients are rescaled between grids, so a band-limited field sampled at 24 and at
    48 points per side gives the same (band-limited) prediction at the shared points."""
    torch.manual_seed(1)
    op = build("t1").eval()
    coarse = band_limited_fields(2, 24, 5, seed=2)
    fine = torch.fft.irfft2(_zero_pad_spectrum(torch.fft.rfft2(coarse.double(), norm="forward"), 48),
                            s=(48, 48), norm="forward").float()
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(op(fine)[..., ::2, ::2], op(coarse), atol=2e-4, rtol=2e-4)


def _zero_pad_spectrum(c: torch.Tensor, n: int) -> torch.Tensor:
    m = c.shape[-2]
    out = torch.zeros(*c.shape[:-2], n, n // 2 + 1, dtype=c.dtype)
    half = m // 2
    out[..., :half, : c.shape[-1]] = c[..., :half, :]
    out[..., n - half:, : c.shape[-1]] = c[..., m - half:, :]
    return out


@pytest.mark.parametrize("activation", ["gelu", "sin"])
def test_t1_initialisation_preserves_variance(activation):
    """With the paper's recipe (8 layers, width 48, 24 x 24 of 64^2 kept), the variance-preserving
    initialisation keeps a white-noise input's variance within a small factor through the whole
    stack (the FNO-style 1/(fan_in fan_out) init would shrink it by orders of magnitude, and
    unscaled residual branches would grow it ~20x)."""
    for seed in range(3):
        torch.manual_seed(seed)
        op = operators.build("t1", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=4,
                             modes=12, width=48, layers=8, resolution=64, activation=activation)
        with torch.no_grad():
            ratio = op(torch.randn(8, 1, 64, 64)).var().item()
        assert 0.3 < ratio < 6.0, (seed, ratio)


@pytest.mark.parametrize("name", TRAJECTORY)
def test_learns_the_heat_semigroup(name):
    """A linear trajectory map the operators can represent: fitting it briefly must cut the
    relative L2(0,T;L2) error of the untrained operator several times."""
    torch.manual_seed(0)
    n, steps = 16, 4
    w0 = band_limited_fields(64, n, 4, seed=5)
    w0 = w0 / w0.std()
    target = heat_trajectory(w0, steps, nu_dt=2e-3)
    op = build(name, time_steps=steps, **({"resolution": n} if name == "t1" else {}))
    loss_fn = make_loss("l2", geometry="periodic", spatial_dims=2)
    with torch.no_grad():
        before = loss_fn(op(w0), target).item()
    opt = torch.optim.Adam(op.parameters(), lr=5e-3)
    for _ in range(300 if name == "t1" else 100):
        opt.zero_grad()
        loss = loss_fn(op(w0), target)
        loss.backward()
        opt.step()
    test = band_limited_fields(16, n, 4, seed=6)
    test = test / test.std()
    with torch.no_grad():
        after = loss_fn(op(test), heat_trajectory(test, steps, nu_dt=2e-3)).item()
    assert after < 0.2 and after < before / 5, (before, after)


def test_spatiotemporal_fno_maps_a_segment_to_a_trajectory():
    op = operators.build("st-fno", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=6,
                         input_steps=3, modes=(3, 4, 4), width=8, layers=2)
    assert op(torch.randn(2, 1, 3, 16, 16)).shape == (2, 1, 6, 16, 16)
    with pytest.raises(ValueError, match="input segment"):
        op(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="needs data whose inputs have a time axis"):
        operators.build("st-fno", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=6)
    with pytest.raises(ValueError, match="cannot take data whose inputs have a time axis"):
        operators.build("fno", in_channels=1, out_channels=1, ndim=2, geometry="periodic", input_steps=3)


@pytest.mark.parametrize("name", TRAJECTORY)
def test_trajectory_operators_take_an_input_segment(name):
    op = build(name, time_steps=4, input_steps=3)
    assert op(torch.randn(2, 1, 3, 24, 24)).shape == (2, 1, 4, 24, 24)
    with pytest.raises(ValueError, match=r"\(batch, channels, 3, y, x\)"):
        op(torch.randn(2, 1, 2, 24, 24))


def test_rollout_from_a_segment_slides_its_window():
    """With K input records each step sees the last K states: the first step sees the input
    segment, the second the segment's last K - 1 records and the first prediction."""
    torch.manual_seed(0)
    op = build("fno-rollout", time_steps=3, input_steps=2)
    x = torch.randn(2, 1, 2, 16, 16)
    with torch.no_grad():
        traj = op(x)
        first = x[:, :, 1] + op.step(x.flatten(1, 2))
        second = first + op.step(torch.stack([x[:, :, 1], first], dim=2).flatten(1, 2))
    torch.testing.assert_close(traj[:, :, 0], first)
    torch.testing.assert_close(traj[:, :, 1], second)


@pytest.mark.parametrize("segment", [False, True])
def test_fno3d_residual_adds_the_last_input_state_to_every_record(segment):
    """residual=true (the default): w(t_j) = w_last + FNO(...)_j, so a zero network predicts the
    persistence of the last input state; residual=false predicts FNO(...) alone."""
    extra = {"input_steps": 3} if segment else {}
    op = build("fno3d", time_steps=4, **extra)
    plain = build("fno3d", time_steps=4, residual=False, **extra)
    plain.load_state_dict(op.state_dict())
    x = torch.randn(2, 1, 3, 16, 16) if segment else torch.randn(2, 1, 16, 16)
    last = x[:, :, -1] if segment else x
    with torch.no_grad():
        torch.testing.assert_close(op(x) - plain(x), last.unsqueeze(2).expand(2, 1, 4, 16, 16))
        op.fno.project[-1].weight.zero_()
        op.fno.project[-1].bias.zero_()
        torch.testing.assert_close(op(x), last.unsqueeze(2).expand(2, 1, 4, 16, 16))
    with pytest.raises(ValueError, match="set residual=false"):
        operators.build("fno3d", in_channels=2, out_channels=1, ndim=2, geometry="periodic", time_steps=4)
