"""Losses on the sphere: quadrature L2 against exact integrals, H^s on spherical harmonics, grid consistency."""
import math

import pytest
import torch

from sciops.losses import LpLoss, SobolevLoss, loss_options, make_loss
from sciops.solvers.sphere_grid import quadrature

GRIDS = {"legendre-gauss": (12, 24), "equiangular": (25, 48)}


def cartesian(grid: str):
    nlat, nlon = GRIDS[grid]
    lat = quadrature(nlat, grid)[0][:, None]
    lon = 2 * math.pi * torch.arange(nlon, dtype=torch.float64)[None, :] / nlon
    return torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat).expand(nlat, nlon)


# Real spherical harmonics as polynomials (degree l, m), with their exact L2 norm^2 on the unit sphere.
HARMONICS = {
    "z": (1, lambda x, y, z: z, 4 * math.pi / 3),
    "xz": (2, lambda x, y, z: x * z, 4 * math.pi / 15),
    "xy": (2, lambda x, y, z: x * y, 4 * math.pi / 15),
    "3z2-1": (2, lambda x, y, z: 3 * z ** 2 - 1, 16 * math.pi / 5),
    "(x2-y2)z": (3, lambda x, y, z: (x ** 2 - y ** 2) * z, 16 * math.pi / 105),
}


def as_batch(f):
    return f[None, None]  # (batch, channel, nlat, nlon)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_l2_is_the_exact_integral(grid):
    x, y, z = cartesian(grid)
    l2 = LpLoss(2, geometry="sphere", grid=grid, relative=False)
    assert l2.norm(as_batch(torch.ones_like(z))).item() ** 2 == pytest.approx(4 * math.pi, rel=1e-12)
    for _, f, exact in HARMONICS.values():
        assert l2.norm(as_batch(f(x, y, z))).item() ** 2 == pytest.approx(exact, rel=1e-10)
    # absolute error of f against 0 is its norm; the relative error of 2 f against f is 1
    f = as_batch(HARMONICS["xz"][1](x, y, z))
    assert make_loss("abs-l2", geometry="sphere", grid=grid)(f, 0 * f).item() == pytest.approx(math.sqrt(4 * math.pi / 15))
    assert make_loss("l2", geometry="sphere", grid=grid)(2 * f, f).item() == pytest.approx(1.0)
    # L1 of |z|: int |sin lat| dOmega = 2 pi
    assert LpLoss(1, geometry="sphere", grid=grid, relative=False).norm(as_batch(z)).item() == pytest.approx(
        2 * math.pi, rel=1e-2)  # |z| has a kink at the equator: quadrature only approximate


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("s", [-1.5, -0.5, 0.0, 0.7, 2.0])
def test_sobolev_norm_of_spherical_harmonics(grid, s):
    x, y, z = cartesian(grid)
    hs = SobolevLoss(s, geometry="sphere", grid=grid, relative=False)
    for l, f, exact in HARMONICS.values():
        assert hs.norm(as_batch(f(x, y, z))).item() ** 2 == pytest.approx((1 + l * (l + 1)) ** s * exact, rel=1e-9)
    # a sum of degrees: the weights add per degree
    mixed = 1.0 + HARMONICS["xy"][1](x, y, z)
    expected = 4 * math.pi + 7 ** s * 4 * math.pi / 15
    assert hs.norm(as_batch(mixed)).item() ** 2 == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_h0_equals_l2_for_band_limited_fields(grid):
    import torch_harmonics as th

    nlat, nlon = GRIDS[grid]
    torch.manual_seed(0)
    coeffs = torch.randn(3, 2, 8, 8, dtype=torch.complex128).tril()  # degrees l < 8, orders m <= l
    coeffs[..., 0] = coeffs[..., 0].real  # m = 0 coefficients of a real field are real
    f = th.InverseRealSHT(nlat, nlon, lmax=8, mmax=8, grid=grid, norm="ortho").double()(coeffs)
    l2 = LpLoss(2, geometry="sphere", grid=grid, relative=False, reduction="none").norm(f)
    h0 = SobolevLoss(0, geometry="sphere", grid=grid, relative=False).norm(f)
    torch.testing.assert_close(h0, l2, rtol=1e-10, atol=0)


def test_grids_agree_on_band_limited_fields():
    values = {}
    for grid in GRIDS:
        x, y, z = cartesian(grid)
        target = as_batch(1.0 + 0.5 * z + x * y - 0.3 * (x ** 2 - y ** 2) * z)
        pred = target + 0.1 * as_batch(x * z) - 0.05
        values[grid] = [make_loss(name, geometry="sphere", grid=grid, spatial_dims=2)(pred, target).item()
                        for name in ("l2", "h1", "h-1", "h0.5", "abs-l2", "abs-h2")]
    assert values["equiangular"] == pytest.approx(values["legendre-gauss"], rel=1e-9)


def test_trajectories_sum_squares_over_time():
    x, y, z = cartesian("legendre-gauss")
    a, b = HARMONICS["z"][1](x, y, z), HARMONICS["xz"][1](x, y, z)
    traj = torch.stack([a, b])[None, None]  # (batch, channel, T = 2, nlat, nlon)
    for loss, ratio in ((LpLoss(2, geometry="sphere", grid="legendre-gauss", spatial_dims=2, relative=False), 1),
                        (SobolevLoss(1, geometry="sphere", grid="legendre-gauss", spatial_dims=2, relative=False), 3)):
        expected = ratio * 4 * math.pi / 3 + (7 if ratio == 3 else 1) * 4 * math.pi / 15
        assert loss.norm(traj).item() ** 2 == pytest.approx(expected, rel=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="needs the grid type"):
        make_loss("l2", geometry="sphere")
    with pytest.raises(ValueError, match="geometry must be one of"):
        make_loss("l2", geometry="torus")
    with pytest.raises(ValueError, match="nlon"):
        make_loss("h1", geometry="sphere", grid="legendre-gauss")(torch.ones(1, 1, 16, 8), torch.ones(1, 1, 16, 8))

    class Problem:
        geometry, params = "sphere", {"grid": "equiangular"}

    assert loss_options(Problem()) == {"geometry": "sphere", "grid": "equiangular"}


def test_standardized_loss_scales_each_channel():
    torch.manual_seed(0)
    target, pred = torch.randn(2, 2, 12, 24), torch.randn(2, 2, 12, 24)
    loss = make_loss("norm-abs-l2", geometry="sphere", grid="legendre-gauss")
    with pytest.raises(ValueError, match="output statistics"):
        loss(pred, target)
    loss.set_statistics([100.0, -1.0], [10.0, 0.5])
    scale = torch.tensor([10.0, 0.5]).view(1, 2, 1, 1)
    expected = make_loss("abs-l2", geometry="sphere", grid="legendre-gauss")(pred / scale, target / scale)
    assert loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-6)
