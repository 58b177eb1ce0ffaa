"""Specification of ``sciops.losses``: Lp and Sobolev H^s norms on regular grids, as losses.

Conventions under test (see the module docstring):

* periodic grids x_i = i L / n, rectangle rule, ||u||_{H^s}^2 = sum_k (1 + 4 pi^2 |k/L|^2)^s |u_k|^2
  times the volume (Parseval);
* bounded vertex grids x_i = i L / (n - 1), trapezoid rule for Lp, and the H^s norm of the cosine
  (Neumann eigenfunction) expansion, obtained through the even extension;
* losses return the batch mean of per-sample ``||pred - target|| / ||target||`` (norm taken jointly
  over channels and space), or the absolute ``||pred - target||`` with ``relative=False``/``abs-``.

Exact values are checked in float64, where the quadratures are exact (trigonometric polynomials)
to rounding, so the tolerances are tight.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from sciops.losses import LpLoss, SobolevLoss, make_loss

PI = math.pi
F64 = torch.float64


def vertex(n: int, length: float = 1.0) -> torch.Tensor:
    return torch.linspace(0.0, length, n, dtype=F64)


def periodic(n: int, length: float = 1.0) -> torch.Tensor:
    return torch.arange(n, dtype=F64) * length / n


def field(*factors: torch.Tensor) -> torch.Tensor:
    """Outer product of 1D factors as a (1, 1, *space) tensor."""
    out = factors[0]
    for f in factors[1:]:
        out = out[..., None] * f
    return out[None, None]


def norm(loss, u: torch.Tensor) -> float:
    return loss.norm(u).item()


# --- LpLoss: quadrature ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [9, 17, 65])
def test_trapezoid_l2_of_sin_sin_is_one_half(n):
    """||sin(pi x) sin(pi y)||_{L2([0,1]^2)} = 1/2. The integrand sin^2(pi x) is 1-periodic and smooth,
    so the trapezoid rule on whole periods is exact (to rounding) already on coarse grids."""
    x = vertex(n)
    u = field(torch.sin(PI * x), torch.sin(PI * x))
    absolute = LpLoss(2, geometry="bounded", relative=False)
    assert norm(absolute, u) == pytest.approx(0.5, abs=1e-12)
    # As a loss in absolute mode: ||u - 0|| = 1/2.
    assert absolute(u, torch.zeros_like(u)).item() == pytest.approx(0.5, abs=1e-12)


def test_trapezoid_converges_at_second_order_for_non_periodic_integrand():
    """||e^x y||^2 on [0,1]^2 = (e^2 - 1)/2 * 1/3; trapezoid error is O(h^2): it drops ~4x per halving."""
    exact = math.sqrt((math.e ** 2 - 1) / 2 / 3)
    loss = LpLoss(2, geometry="bounded", relative=False)
    errors = []
    for n in (17, 33, 65, 129):
        x = vertex(n)
        errors.append(abs(norm(loss, field(torch.exp(x), x)) - exact))
    assert errors[2] < 1e-3  # n = 65
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(1.9 < p < 2.1 for p in orders), orders


def test_bounded_weights_use_the_extent_per_dimension():
    """On [0, Lx] x [0, Ly] (vertex grid x_i = i Lx / (n - 1)), ||sin(pi x / Lx) sin(pi y / Ly)||^2 = Lx Ly / 4."""
    lx, ly = 2.0, 0.5
    u = field(torch.sin(PI * vertex(33, lx) / lx), torch.sin(PI * vertex(20, ly) / ly))
    loss = LpLoss(2, geometry="bounded", extent=(lx, ly), relative=False)
    assert norm(loss, u) ** 2 == pytest.approx(lx * ly / 4, rel=1e-12)


@pytest.mark.parametrize("p, n", [(2, 16), (2, 13), (4, 16)])
def test_periodic_rectangle_rule_is_exact_for_trig_polynomials(p, n):
    """u = 1 + cos(2 pi x) + sin(2 pi 2 y) on [0,1)^2: ||u||_2^2 = 1 + 1/2 + 1/2 = 2 and
    ||u||_4^4 = int (1 + a + b)^4 = 1 + 6 (1/2 + 1/2) + 3/8 + 3/8 + 6 (1/2)(1/2) = 37/4 (a, b
    independent with mean 0, E a^2 = 1/2, E a^4 = 3/8). The rectangle rule integrates trig
    polynomials of degree < n exactly, and u^p has degree <= 2p here, below n."""
    x = periodic(n)
    u = (1 + torch.cos(2 * PI * x)[:, None] + torch.sin(4 * PI * x)[None, :])[None, None]
    exact = {2: 2.0, 4: 9.25}[p]
    loss = LpLoss(p, geometry="periodic", relative=False)
    assert norm(loss, u) ** p == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("geometry", ["bounded", "periodic"])
@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_relative_error_of_scaled_target_is_the_scale(geometry, p):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 2, 11, 8, generator=g, dtype=F64)
    eps = 0.037
    loss = LpLoss(p, geometry=geometry)
    assert loss((1 + eps) * target, target).item() == pytest.approx(eps, rel=1e-10)


def test_relative_loss_is_batch_mean_of_per_sample_ratios_over_joint_channels():
    """Per-sample relative error, then the batch mean (not a ratio of batch sums); the norm is joint
    over channels, so an error in one channel is measured against the norm of all channels."""
    g = torch.Generator().manual_seed(1)
    target = torch.randn(2, 2, 16, generator=g, dtype=F64)
    pred = target.clone()
    pred[0] *= 1.1  # sample 0: relative error 0.1
    pred[1, 1] += target[1, 1]  # sample 1: channel 1 doubled
    loss = LpLoss(2, geometry="periodic")
    c0, c1 = (target[1, c].pow(2).sum() for c in (0, 1))
    expected1 = math.sqrt(c1 / (c0 + c1))
    per_sample = LpLoss(2, geometry="periodic", reduction="none")(pred, target)
    assert per_sample.tolist() == pytest.approx([0.1, expected1], rel=1e-10)
    assert loss(pred, target).item() == pytest.approx((0.1 + expected1) / 2, rel=1e-10)
    assert LpLoss(2, geometry="periodic", reduction="sum")(pred, target).item() == pytest.approx(0.1 + expected1)


# --- SobolevLoss, periodic -------------------------------------------------------------------------

S_VALUES = [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("s", S_VALUES)
@pytest.mark.parametrize("n, k", [(32, 1), (32, 5), (33, 7), (15, 3)])
def test_periodic_hs_of_a_sine_1d(s, n, k):
    """||sin(2 pi k x)||_{H^s}^2 = (1 + 4 pi^2 k^2)^s * 1/2 on the unit torus."""
    u = field(torch.sin(2 * PI * k * periodic(n)))
    value = norm(SobolevLoss(s, geometry="periodic"), u) ** 2
    assert value == pytest.approx((1 + 4 * PI ** 2 * k ** 2) ** s / 2, rel=1e-5)


@pytest.mark.parametrize("s", S_VALUES)
@pytest.mark.parametrize("shape, ks", [((32, 24), (3, 1)), ((17, 32), (1, 6)), ((16, 16, 11), (2, 0, 4))])
def test_periodic_hs_of_a_product_of_modes_2d_3d(s, shape, ks):
    """u = prod_d f_d(2 pi k_d x_d) with f = sin (cos for k = 0, i.e. 1): ||u||_{L2}^2 = 2^-(#nonzero k),
    ||u||_{H^s}^2 = (1 + 4 pi^2 |k|^2)^s ||u||_{L2}^2. Asymmetric k catches swapped axes."""
    factors = [torch.sin(2 * PI * k * periodic(n)) if k else torch.ones(n, dtype=F64) for n, k in zip(shape, ks)]
    u = field(*factors)
    l2 = 0.5 ** sum(1 for k in ks if k)
    k2 = sum(k * k for k in ks)
    value = norm(SobolevLoss(s, geometry="periodic"), u) ** 2
    assert value == pytest.approx((1 + 4 * PI ** 2 * k2) ** s * l2, rel=1e-5)


@pytest.mark.parametrize("s", [-1.0, 0.5, 2.0])
def test_periodic_hs_with_extent_scales_wavenumbers(s):
    """On [0, Lx) x [0, Ly), u = sin(2 pi kx x / Lx) sin(2 pi ky y / Ly) has physical wavenumber
    (kx / Lx, ky / Ly) and ||u||_{L2}^2 = Lx Ly / 4."""
    (lx, ly), (kx, ky), (nx, ny) = (2.0, 0.5), (3, 1), (24, 16)
    u = field(torch.sin(2 * PI * kx * periodic(nx, lx) / lx), torch.sin(2 * PI * ky * periodic(ny, ly) / ly))
    value = norm(SobolevLoss(s, geometry="periodic", extent=(lx, ly)), u) ** 2
    expected = (1 + 4 * PI ** 2 * ((kx / lx) ** 2 + (ky / ly) ** 2)) ** s * lx * ly / 4
    assert value == pytest.approx(expected, rel=1e-5)


def test_periodic_hs_is_additive_over_orthogonal_modes():
    """Fourier modes are H^s-orthogonal: ||a sin(2 pi x) + b cos(2 pi 4 x)||^2 = a^2 w_1 / 2 + b^2 w_4 / 2."""
    x, s, a, b = periodic(20), 1.5, 0.7, -1.3
    u = field(a * torch.sin(2 * PI * x) + b * torch.cos(8 * PI * x))
    w = lambda k: (1 + 4 * PI ** 2 * k * k) ** s
    assert norm(SobolevLoss(s, geometry="periodic"), u) ** 2 == pytest.approx(a * a * w(1) / 2 + b * b * w(4) / 2, rel=1e-10)


@pytest.mark.parametrize("shape", [(31,), (32,), (12, 9), (8, 7, 6)])
def test_periodic_h0_equals_rectangle_l2(shape):
    g = torch.Generator().manual_seed(2)
    u = torch.randn(3, 2, *shape, generator=g, dtype=F64)
    extent = tuple(0.5 + i for i in range(len(shape)))
    h0 = SobolevLoss(0.0, geometry="periodic", extent=extent).norm(u)
    l2 = LpLoss(2, geometry="periodic", extent=extent).norm(u)
    torch.testing.assert_close(h0, l2, rtol=1e-12, atol=0)


# --- SobolevLoss, bounded --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(9,), (10,), (7, 12), (2, 5), (6, 5, 8), (5, 5, 5)])
def test_bounded_h0_equals_trapezoid_l2(shape):
    g = torch.Generator().manual_seed(3)
    u = torch.randn(2, 2, *shape, generator=g, dtype=F64)
    h0 = SobolevLoss(0.0, geometry="bounded").norm(u)
    l2 = LpLoss(2, geometry="bounded").norm(u)
    torch.testing.assert_close(h0, l2, rtol=1e-6, atol=0)
    # float32 inputs agree too (loosely, rounding).
    torch.testing.assert_close(SobolevLoss(0.0, geometry="bounded").norm(u.float()), l2.float(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("s", S_VALUES)
@pytest.mark.parametrize("n, k", [(17, 1), (17, 5), (24, 3), (24, 0)])
def test_bounded_hs_of_a_cosine_eigenfunction_1d(s, n, k):
    """cos(pi k x) on the vertex grid is a Neumann eigenfunction: ||u||_{H^s}^2 = (1 + pi^2 k^2)^s ||u||_{L2}^2
    with ||u||_{L2}^2 = 1/2 (1 for k = 0)."""
    u = field(torch.cos(PI * k * vertex(n)))
    l2 = 1.0 if k == 0 else 0.5
    value = norm(SobolevLoss(s, geometry="bounded"), u) ** 2
    assert value == pytest.approx((1 + PI ** 2 * k ** 2) ** s * l2, rel=1e-5)


@pytest.mark.parametrize("s", [-1.0, 0.5, 1.0])
def test_bounded_hs_of_a_cosine_eigenfunction_2d_with_extent(s):
    """cos(pi kx x / Lx) cos(pi ky y / Ly) on [0,Lx] x [0,Ly]: weight (1 + pi^2 ((kx/Lx)^2 + (ky/Ly)^2))^s,
    ||u||_{L2}^2 = Lx Ly / 4."""
    (lx, ly), (kx, ky) = (2.0, 0.5), (3, 1)
    u = field(torch.cos(PI * kx * vertex(21, lx) / lx), torch.cos(PI * ky * vertex(14, ly) / ly))
    value = norm(SobolevLoss(s, geometry="bounded", extent=(lx, ly)), u) ** 2
    expected = (1 + PI ** 2 * ((kx / lx) ** 2 + (ky / ly) ** 2)) ** s * lx * ly / 4
    assert value == pytest.approx(expected, rel=1e-5)


def _smooth(x):
    return x * (1 - x) * np.exp(x)


def _smooth_prime(x):
    return (1 - x - x * x) * np.exp(x)


def test_bounded_h1_converges_to_analytic_h1_of_a_non_cosine_function():
    """u = x (1 - x) e^x: ||u||_{H1}^2 = int u^2 + u'^2 (quad). u'(0) = 1 and u'(1) = -e are nonzero, so
    the even extension has kinks, its cosine coefficients decay like k^-2 and the discrete H1 norm
    converges at first order (measured: errors 0.073, 0.038, 0.019, 0.0096, 0.0048 for
    n = 33 ... 513, observed order 0.91 -> 0.99). The L2 part is the trapezoid rule: second order."""
    l2_exact = quad(lambda x: _smooth(x) ** 2, 0, 1, epsabs=1e-14)[0]
    h1_exact = l2_exact + quad(lambda x: _smooth_prime(x) ** 2, 0, 1, epsabs=1e-14)[0]
    ns = (33, 65, 129, 257, 513)
    errors = []
    for n in ns:
        u = field(torch.from_numpy(_smooth(np.linspace(0.0, 1.0, n))))
        errors.append(abs(norm(SobolevLoss(1.0, geometry="bounded"), u) ** 2 - h1_exact))
        if n == 65:
            assert norm(SobolevLoss(0.0, geometry="bounded"), u) ** 2 == pytest.approx(l2_exact, rel=1e-6)
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] / h1_exact < 1e-2
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(0.8 < p < 1.2 for p in orders), orders


@pytest.mark.parametrize("geometry", ["bounded", "periodic"])
def test_hs_norms_are_ordered_in_s(geometry):
    """The weights (1 + |k|^2 ...)^s are >= 1 and increase with s, so ||u||_{H^s} is nondecreasing in s;
    strictly increasing for data that is not constant."""
    g = torch.Generator().manual_seed(4)
    u = torch.randn(4, 1, 12, 9, generator=g, dtype=F64)
    norms = [SobolevLoss(s, geometry=geometry).norm(u) for s in (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0)]
    for lo, hi in zip(norms, norms[1:]):
        assert bool((lo < hi).all())
    # And the smooth function of the previous test: H^-1 <= L2 <= H1.
    v = field(torch.from_numpy(_smooth(np.linspace(0.0, 1.0, 65))))
    h = [norm(SobolevLoss(s, geometry="bounded"), v) for s in (-1.0, 0.0, 1.0)]
    assert h[0] < h[1] < h[2]


# --- make_loss -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, param, relative", [
    ("l2", LpLoss, 2.0, True), ("l1", LpLoss, 1.0, True), ("lp:3", LpLoss, 3.0, True),
    ("h1", SobolevLoss, 1.0, True), ("h-1", SobolevLoss, -1.0, True), ("h0.5", SobolevLoss, 0.5, True),
    ("abs-h1", SobolevLoss, 1.0, False), ("abs-l2", LpLoss, 2.0, False), ("H1", SobolevLoss, 1.0, True),
])
def test_make_loss_names(name, cls, param, relative):
    loss = make_loss(name, geometry="periodic", extent=2.0)
    assert type(loss) is cls
    assert (loss.p if cls is LpLoss else loss.s) == param
    assert loss.relative is relative and loss.geometry == "periodic" and loss.extent == 2.0
    # And it computes the same as the class built directly.
    g = torch.Generator().manual_seed(5)
    target = torch.randn(2, 1, 16, generator=g, dtype=F64)
    pred = target + 0.1 * torch.randn(2, 1, 16, generator=g, dtype=F64)
    direct = cls(param, geometry="periodic", extent=2.0, relative=relative)
    assert loss(pred, target).item() == pytest.approx(direct(pred, target).item(), rel=1e-12)


def test_sum_of_losses_by_name_and_it_sees_an_offset_h1_alone_barely_sees():
    n = 33
    x = torch.linspace(0, 1, n, dtype=F64)
    target = (torch.sin(3 * math.pi * x)[:, None] * torch.sin(3 * math.pi * x)[None]).reshape(1, 1, n, n)
    pred = target + 0.1 * target.abs().max()  # a constant offset
    total = make_loss("l2+h1")(pred, target).item()
    l2, h1 = make_loss("l2")(pred, target).item(), make_loss("h1")(pred, target).item()
    assert total == pytest.approx(l2 + h1, rel=1e-12)
    assert h1 < 0.2 * l2  # why the sum exists
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        make_loss("l2+mse")


@pytest.mark.parametrize("name", ["mse", "l", "h", "lp:", "linf", "h1x", "abs-", "abs-mse", "sobolev", ""])
def test_make_loss_rejects_unknown_names_listing_accepted_ones(name):
    with pytest.raises(ValueError) as info:
        make_loss(name)
    message = str(info.value)
    for accepted in ("l1", "l2", "lp:", "h1", "h-1", "abs-"):
        assert accepted in message


def test_lp_below_one_is_rejected():
    with pytest.raises(ValueError, match="p must be >= 1"):
        make_loss("l0.5")
    with pytest.raises(ValueError, match="geometry"):
        make_loss("h1", geometry="sphere")


@pytest.mark.parametrize("name", ["l2", "h1"])
def test_shape_mismatch_raises(name):
    with pytest.raises(ValueError, match="shape"):
        make_loss(name)(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="batch, channels"):
        make_loss(name)(torch.zeros(8, 8), torch.zeros(8, 8))


@pytest.mark.parametrize("name", ["l2", "h-1", "h1", "abs-l1", "lp:3"])
def test_gradients_flow_and_are_finite(name):
    g = torch.Generator().manual_seed(6)
    target = torch.randn(3, 2, 10, 9, generator=g)
    pred = (target + 0.3 * torch.randn(3, 2, 10, 9, generator=g)).requires_grad_()
    make_loss(name)(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["l2", "h-1", "h1", "lp:3", "abs-h0.5"])
def test_exact_fit_gives_zero_loss_and_zero_not_nan_gradient(name):
    """At pred == target the norm's root has an infinite derivative; the loss must still give a zero
    (sub)gradient rather than NaN, which would poison every parameter of the model."""
    target = torch.randn(2, 1, 12, generator=torch.Generator().manual_seed(7))
    pred = target.clone().requires_grad_()
    loss = make_loss(name)(pred, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(pred.grad, torch.zeros_like(target))


def test_sobolev_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(8)
    target = torch.randn(2, 1, 9, 6, generator=g, dtype=F64)
    pred = (target + 0.5 * torch.randn(2, 1, 9, 6, generator=g, dtype=F64)).requires_grad_()
    for s in (-1.0, 1.0):
        for geometry in ("bounded", "periodic"):
            loss = SobolevLoss(s, geometry=geometry)
            assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,))


@pytest.mark.parametrize("name", ["l2", "h1", "h-1", "abs-l1"])
@pytest.mark.parametrize("geometry", ["periodic", "bounded"])
def test_trajectory_norm_is_bochner_sum_over_time(name, geometry):
    """With spatial_dims=2 a (B, C, T, y, x) norm is the l^p sum over time of per-time norms."""
    gen = torch.Generator().manual_seed(3)
    u = torch.randn(3, 1, 5, 12, 12, generator=gen, dtype=torch.float64)
    v = torch.randn(3, 1, 5, 12, 12, generator=gen, dtype=torch.float64)
    traj = make_loss(name, geometry=geometry, spatial_dims=2)
    frame = make_loss(name, geometry=geometry)
    p = 1.0 if name == "abs-l1" else 2.0
    per_time = torch.stack([frame.norm(u[:, :, t] - v[:, :, t]) for t in range(5)], 1)
    expected = (per_time ** p).sum(1) ** (1 / p)
    torch.testing.assert_close(traj.norm(u - v), expected)
    if name != "abs-l1":
        ref = (torch.stack([frame.norm(v[:, :, t]) for t in range(5)], 1) ** 2).sum(1).sqrt()
        torch.testing.assert_close(traj(u, v), (expected / ref).mean())
