"""Specification of the FNO building blocks in ``sciops.layers``.

* ``SpectralConv`` is checked against a naive reference written straight from the definition:
  full ``rfftn``, keep the corner blocks (first ``m`` and last ``m`` frequencies along every
  dimension but the last, first ``m`` of the real FFT along the last), multiply by the complex
  weights per mode, zero the rest, ``irfftn``. Grids smaller than the mode count keep the
  ``min(m, n // 2)`` lowest frequencies on each side (``min(m, n // 2 + 1)`` along the last dim).
* ``Pointwise`` is a 1x1 convolution.
* ``grid_coordinates`` gives the vertex grid i / (n - 1) (bounded) or i / n (periodic).
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from sciops.layers.grid import append_grid, grid_coordinates
from sciops.layers.pointwise import Pointwise
from sciops.layers.spectral_conv import SpectralConv

F64 = torch.float64


def reference_spectral_conv(x: torch.Tensor, layer: SpectralConv) -> torch.Tensor:
    """out = irfftn(W(k) rfftn(x)(k) on the kept corner blocks), computed the slow, obvious way."""
    modes, cin, cout = layer.modes, layer.in_channels, layer.out_channels
    ndim, sizes = len(modes), tuple(x.shape[2:])
    dims = tuple(range(2, 2 + ndim))
    block = tuple(2 * m for m in modes[:-1]) + (modes[-1],)
    w = torch.view_as_complex(layer.weight.detach().reshape(*block, cin, cout, 2).contiguous())
    xf = torch.fft.rfftn(x, dim=dims)
    out = torch.zeros(x.shape[0], cout, *xf.shape[2:], dtype=xf.dtype)
    k_last = min(modes[-1], sizes[-1] // 2 + 1)
    kept = [min(m, n // 2) for m, n in zip(modes[:-1], sizes[:-1])]
    letters = "xyz"[:ndim]
    for corner in itertools.product((+1, -1), repeat=ndim - 1):
        xs, ws = [], []
        for sign, k, m, n in zip(corner, kept, modes[:-1], sizes[:-1]):
            xs.append(slice(0, k) if sign > 0 else slice(n - k, n))
            ws.append(slice(0, k) if sign > 0 else slice(2 * m - k, 2 * m))
        xs.append(slice(0, k_last))
        ws.append(slice(0, k_last))
        out[(slice(None), slice(None), *xs)] = torch.einsum(
            f"bi{letters},{letters}io->bo{letters}", xf[(slice(None), slice(None), *xs)], w[tuple(ws)])
    return torch.fft.irfftn(out, s=sizes, dim=dims)


def make_layer(cin, cout, modes, seed=0, dtype=F64) -> SpectralConv:
    torch.manual_seed(seed)
    layer = SpectralConv(cin, cout, modes).to(dtype)
    with torch.no_grad():  # O(1) weights with random signs (the default init is tiny and positive).
        layer.weight.normal_()
    return layer


def randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- SpectralConv ----------------------------------------------------------------------------------

@pytest.mark.parametrize("modes, sizes", [
    ((5,), (32,)), ((5,), (23,)),
    ((4, 3), (16, 12)), ((4, 3), (13, 11)), ((3, 5), (10, 15)),
    ((3, 2, 4), (8, 9, 10)), ((2, 3, 2), (7, 8, 5)),
])
def test_spectral_conv_matches_naive_reference(modes, sizes):
    layer = make_layer(3, 2, modes)
    x = randn(2, 3, *sizes)
    out = layer(x)
    assert out.shape == (2, 2, *sizes) and not out.is_complex()
    torch.testing.assert_close(out, reference_spectral_conv(x, layer), rtol=1e-10, atol=1e-10)


def test_spectral_conv_matches_reference_in_float32():
    layer = make_layer(4, 3, (6, 5), dtype=torch.float32)
    x = randn(2, 4, 20, 17, dtype=torch.float32)
    out = layer(x)
    assert out.dtype == torch.float32
    ref = reference_spectral_conv(x.double(), layer.double()).float()
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5


@pytest.mark.parametrize("modes, sizes", [
    ((12,), (16,)), ((12,), (8,)), ((12,), (7,)),
    ((12, 12), (16, 16)), ((12, 12), (8, 8)), ((12, 12), (9, 7)), ((12, 3), (8, 30)),
    ((6, 6, 6), (8, 4, 5)),
])
def test_spectral_conv_on_grids_smaller_than_the_modes(modes, sizes):
    """Runs, keeps the shape, real output, and equals the reference with the weights restricted to the
    frequencies the grid has."""
    layer = make_layer(2, 3, modes, seed=1)
    x = randn(2, 2, *sizes, seed=1)
    out = layer(x)
    assert out.shape == (2, 3, *sizes) and out.dtype == x.dtype
    torch.testing.assert_close(out, reference_spectral_conv(x, layer), rtol=1e-10, atol=1e-10)


def test_weights_of_modes_missing_from_the_grid_are_unused():
    """On a 6 x 5 grid, modes (4, 4) keep frequencies 0..2 and -3..-1 along dim 0 and 0..2 along the last:
    exactly the weights of those modes receive gradient, all others (unused) get exactly zero."""
    m0, m1 = 4, 4
    layer = make_layer(2, 2, (m0, m1), seed=2)
    x = randn(1, 2, 6, 5, seed=2)
    (layer(x) * randn(1, 2, 6, 5, seed=3)).sum().backward()
    used = layer.weight.grad.view(2 * m0, m1, 2, 2, 2).abs().flatten(2).sum(-1) > 0
    expected = torch.zeros(2 * m0, m1, dtype=torch.bool)
    rows = list(range(0, 3)) + list(range(2 * m0 - 3, 2 * m0))  # frequencies 0, 1, 2, -3, -2, -1
    expected[rows, :3] = True
    assert torch.equal(used, expected)


def identity_layer(channels: int, modes: tuple[int, ...]) -> SpectralConv:
    layer = SpectralConv(channels, channels, modes).double()
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[..., 0] = torch.eye(channels, dtype=F64)  # W(k) = I (real part), imaginary 0
    return layer


def test_identity_weights_reproduce_band_limited_input_and_remove_higher_modes():
    """With W(k) = I on every kept mode the layer is the projection onto the kept modes: a field made of
    modes with |k_0| < m_0 and 0 <= k_1 < m_1 (up to conjugation) comes back unchanged; a mode with
    |k_0| > m_0 or |k_1| >= m_1 is removed completely. (|k_0| = m_0 is half kept: the corner block holds
    frequencies 0..m-1 and -m..-1, the convention of the original FNO code.)"""
    n0, n1, m0, m1 = 24, 20, 5, 4
    x0 = (torch.arange(n0, dtype=F64) / n0)[:, None]
    x1 = (torch.arange(n1, dtype=F64) / n1)[None, :]
    wave = lambda k0, k1, phase: torch.cos(2 * math.pi * (k0 * x0 + k1 * x1) + phase)
    low = torch.stack([
        1.0 + wave(1, 0, 0.3) + 0.5 * wave(4, 3, 1.0) - 0.7 * wave(-4, 2, 0.2),
        wave(0, 3, -0.4) + 2.0 * wave(2, -3, 0.1) + wave(-3, 1, 2.0),
    ])[None]
    high = torch.stack([wave(6, 0, 0.5) + wave(0, 4, 0.2), wave(1, 4, 0.3) + wave(-7, 6, 0.0) + wave(9, 2, 1.0)])[None]
    layer = identity_layer(2, (m0, m1))
    torch.testing.assert_close(layer(low), low, rtol=0, atol=1e-10)
    assert layer(high).abs().max().item() < 1e-10
    torch.testing.assert_close(layer(low + high), low, rtol=0, atol=1e-10)
    # float32 as well, to the 1e-5 level.
    torch.testing.assert_close(layer.float()(low.float()), low.float(), rtol=0, atol=1e-5)


def test_identity_weights_in_1d():
    x = torch.arange(32, dtype=F64) / 32
    low = (0.5 + torch.sin(2 * math.pi * x) - 0.3 * torch.cos(2 * math.pi * 5 * x + 0.2))[None, None]
    high = torch.cos(2 * math.pi * 6 * x)[None, None]
    layer = identity_layer(1, (6,))
    torch.testing.assert_close(layer(low + high), low, rtol=0, atol=1e-10)


def test_identity_weights_in_3d():
    sizes, m = (10, 12, 9), 3
    x0, x1, x2 = torch.meshgrid(*[torch.arange(n, dtype=F64) / n for n in sizes], indexing="ij")
    low = (0.5 + torch.sin(2 * math.pi * (x0 - 2 * x1 + 2 * x2)) + torch.cos(2 * math.pi * (-2 * x0 + x2)))[None, None]
    high = (torch.cos(2 * math.pi * 4 * x0) + torch.sin(2 * math.pi * (x1 + 3 * x2)) + torch.cos(2 * math.pi * 5 * x1))[None, None]
    layer = identity_layer(1, (m, m, m))
    torch.testing.assert_close(layer(low + high), low, rtol=0, atol=1e-10)


def test_spectral_conv_rejects_bad_modes_and_input_rank():
    for modes in [(), (4, 4, 4, 4), (0, 3), (3, -1)]:
        with pytest.raises(ValueError, match="modes"):
            SpectralConv(2, 2, modes)
    with pytest.raises(ValueError, match="2 spatial dims"):
        SpectralConv(2, 2, (3, 3))(torch.zeros(1, 2, 8))


def test_spectral_conv_is_linear_and_differentiable():
    layer = make_layer(2, 2, (3, 3), seed=4)
    a, b = randn(1, 2, 10, 8, seed=5), randn(1, 2, 10, 8, seed=6)
    torch.testing.assert_close(layer(2.0 * a - b), 2.0 * layer(a) - layer(b), rtol=1e-10, atol=1e-10)
    x = randn(1, 2, 6, 5, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: layer(x), (x,))
    assert torch.autograd.gradcheck(lambda w: torch.func.functional_call(layer, {"weight": w}, (x.detach(),)),
                                    (layer.weight.detach().clone().requires_grad_(),))


# --- Pointwise -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [(11,), (6, 7), (4, 5, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_equals_conv_with_kernel_one(sizes, bias):
    torch.manual_seed(0)
    layer = Pointwise(3, 5, bias=bias)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(sizes)](3, 5, kernel_size=1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.view(5, 3, *([1] * len(sizes))))
        if bias:
            conv.bias.copy_(layer.bias.view(5))
    x = randn(2, 3, *sizes, dtype=torch.float32)
    out = layer(x)
    assert out.shape == (2, 5, *sizes)
    torch.testing.assert_close(out, conv(x), rtol=1e-5, atol=1e-6)


# --- grid coordinates ------------------------------------------------------------------------------

def test_bounded_grid_is_the_vertex_grid():
    coords = grid_coordinates((5, 3), "bounded", dtype=F64)
    assert coords.shape == (2, 5, 3)
    torch.testing.assert_close(coords[0], torch.linspace(0, 1, 5, dtype=F64)[:, None].expand(5, 3))
    torch.testing.assert_close(coords[1], torch.linspace(0, 1, 3, dtype=F64)[None, :].expand(5, 3))
    assert coords[0, 0, 0] == 0.0 and coords[0, -1, 0] == 1.0  # both ends included


def test_periodic_grid_is_i_over_n():
    coords = grid_coordinates((4, 2, 5), "periodic", dtype=F64)
    assert coords.shape == (3, 4, 2, 5)
    assert coords[0, :, 0, 0].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert coords[1, 0, :, 0].tolist() == [0.0, 0.5]
    torch.testing.assert_close(coords[2, 0, 0], torch.arange(5, dtype=F64) / 5)


def test_bad_geometry_raises():
    with pytest.raises(ValueError, match="geometry"):
        grid_coordinates((4,), "sphere")


def test_append_grid_adds_coordinate_channels_after_the_fields():
    x = randn(2, 3, 6, 4, dtype=torch.float32)
    out = append_grid(x, "bounded")
    assert out.shape == (2, 5, 6, 4)
    assert torch.equal(out[:, :3], x)
    assert torch.equal(out[1, 3:], grid_coordinates((6, 4), "bounded"))
