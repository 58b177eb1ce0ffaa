"""Lp and Sobolev H^s norms of fields on regular grids, as training losses and metrics.

All losses take channel-first tensors (batch, channels, *space) and return the batch mean of
the per-sample (relative by default) error ``||pred - target|| / ||target||``; the norm is taken
jointly over channels and space.

Trajectories (batch, channels, time, *space): with ``spatial_dims`` set to the number of trailing
spatial dimensions, every dimension between channels and space is a time axis with uniform
records, and the norm is (sum_t ||u(t)||_X^p)^(1/p) (p = 2 for H^s), X the spatial Lp or H^s
norm below: the discrete Bochner norm L^p(0, T; X) without its constant factor dt^(1/p), which
cancels in relative errors. The relative L2 of a whole trajectory is the relative L2(0, T; L2) error. ``spatial_dims=None`` treats every dimension as space.

Geometry decides the quadrature and the spectral basis:

* ``"periodic"`` grids x_i = i L / n: rectangle rule (exact for trigonometric polynomials) and
  ``||u||_{H^s}^2 = L^d sum_k (1 + 4 pi^2 |k / L|^2)^s |u_k|^2`` with u_k the normalised DFT
  coefficients (Parseval), for any real s, negative included.
* ``"bounded"`` vertex grids x_i = i L / (n - 1): trapezoid rule for Lp. For H^s each dimension is
  extended evenly (mirror without repeating the end points) to a periodic grid of length 2 L and the
  periodic norm above is taken, divided by 2^d. This is the norm of the cosine (Neumann
  eigenfunction) expansion: at s = 0 it equals the trapezoid L2 norm exactly, and for
  -3/2 < s < 3/2 it is equivalent to the H^s norm on the box (the even extension of an H^s function
  stays H^s there), so "h1" is an H1 norm that needs no one-sided differences at the boundary.

* ``"sphere"`` grids (nlat, nlon) of torch-harmonics, named by ``grid`` ("equiangular" or
  "legendre-gauss"; :func:`loss_options` reads it from a problem): quadrature-weighted Lp on the
  unit sphere and the spherical-harmonic H^s norm, see :mod:`sciops.losses_sphere`; ``extent`` is
  not used (unit sphere).

Names accepted by :func:`make_loss`: ``"l2"``, ``"l1"``, ``"lp:3"`` (any p >= 1), ``"h1"``,
``"h-1"``, ``"h0.5"`` (any real s); prefix ``"abs-"`` for absolute instead of relative errors,
and ``"norm-"`` (first) for the loss of channel-standardised fields (:class:`Standardized`, e.g.
``"norm-l2"``): the trainer gives it the output statistics of the training data. Names joined by
``+`` (``"l2+h1"``) give the sum of those losses (:class:`SumLoss`); a relative H1 loss alone barely
sees a constant offset of a field dominated by its gradients, the sum does.
"""
from __future__ import annotations

import math
import re

import torch
from torch import nn

from sciops.layers.grid import GEOMETRIES

_EPS = 1e-12
LOSS_GEOMETRIES = GEOMETRIES + ("sphere",)


def _check_geometry(geometry: str, grid: str | None) -> None:
    if geometry not in LOSS_GEOMETRIES:
        raise ValueError(f"geometry must be one of {LOSS_GEOMETRIES}, got {geometry!r}")
    if geometry == "sphere":
        from sciops.losses_sphere import check_sphere_grid

        check_sphere_grid(grid)


def loss_options(problem) -> dict:
    """The geometry keywords of a problem's losses: ``geometry`` and, on the sphere, ``grid``."""
    if problem.geometry == "sphere":
        return {"geometry": "sphere", "grid": problem.params.get("grid")}
    return {"geometry": problem.geometry}


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
    if pred.dim() < 3:
        raise ValueError(f"expected (batch, channels, *space), got shape {tuple(pred.shape)}")


def _space_start(u: torch.Tensor, spatial_dims: int | None) -> int:
    """Index of the first spatial dimension of a (batch, channels, [time...,] *space) tensor."""
    if spatial_dims is None:
        return 2
    if u.dim() < 2 + spatial_dims:
        raise ValueError(f"expected (batch, channels, [time,] {spatial_dims} spatial dims), got {tuple(u.shape)}")
    return u.dim() - spatial_dims


def _root(total: torch.Tensor, p: float) -> torch.Tensor:
    """total ** (1 / p) with a zero (not NaN) gradient where total == 0, i.e. at an exact fit."""
    positive = total > 0
    return torch.where(positive, torch.where(positive, total, torch.ones_like(total)) ** (1.0 / p), 0.0)


def _reduce(err: torch.Tensor, ref: torch.Tensor, relative: bool, reduction: str) -> torch.Tensor:
    value = err / ref.clamp_min(_EPS) if relative else err
    return {"mean": value.mean, "sum": value.sum, "none": lambda: value}[reduction]()


class LpLoss(nn.Module):
    """Relative (or absolute) Lp error with trapezoid (bounded) or rectangle (periodic) weights."""

    def __init__(self, p: float = 2.0, *, geometry: str = "bounded", extent: float | tuple = 1.0,
                 relative: bool = True, reduction: str = "mean", spatial_dims: int | None = None,
                 grid: str | None = None):
        super().__init__()
        if p < 1:
            raise ValueError(f"p must be >= 1, got {p}")
        _check_geometry(geometry, grid)
        self.p, self.geometry, self.extent, self.relative, self.reduction = p, geometry, extent, relative, reduction
        self.spatial_dims, self.grid = spatial_dims, grid

    def _weights(self, sizes: tuple[int, ...], device, dtype) -> torch.Tensor:
        if self.geometry == "sphere":
            from sciops.losses_sphere import area_weights

            return area_weights(sizes, self.grid, device, dtype)
        extents = self.extent if isinstance(self.extent, tuple) else (self.extent,) * len(sizes)
        weights = []
        for n, length in zip(sizes, extents):
            if self.geometry == "periodic":
                w = torch.full((n,), length / n, device=device, dtype=dtype)
            else:
                w = torch.full((n,), length / (n - 1), device=device, dtype=dtype)
                w[0] = w[-1] = 0.5 * length / (n - 1)
            weights.append(w)
        grid = weights[0]
        for w in weights[1:]:
            grid = grid[..., None] * w
        return grid

    def norm(self, u: torch.Tensor) -> torch.Tensor:
        """Per-sample Lp norm, shape (batch,); time axes (see module docstring) get unit weights."""
        space = _space_start(u, self.spatial_dims)
        w = self._weights(tuple(u.shape[space:]), u.device, u.dtype)
        return _root((w * u.abs() ** self.p).flatten(1).sum(1), self.p)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target)
        return _reduce(self.norm(pred - target), self.norm(target), self.relative, self.reduction)


class SobolevLoss(nn.Module):
    """Relative (or absolute) H^s error for any real s, computed spectrally (see module docstring)."""

    def __init__(self, s: float = 1.0, *, geometry: str = "bounded", extent: float | tuple = 1.0,
                 relative: bool = True, reduction: str = "mean", spatial_dims: int | None = None,
                 grid: str | None = None):
        super().__init__()
        _check_geometry(geometry, grid)
        self.s, self.geometry, self.extent, self.relative, self.reduction = s, geometry, extent, relative, reduction
        self.spatial_dims, self.grid = spatial_dims, grid
        self._cache: dict = {}

    @staticmethod
    def even_extension(u: torch.Tensor, dim: int) -> torch.Tensor:
        """Mirror a vertex-grid dimension of n points into a periodic one of 2 (n - 1) points."""
        n = u.shape[dim]
        inner = u.narrow(dim, 1, n - 2).flip(dim)
        return torch.cat([u, inner], dim=dim)

    def _spectral_weights(self, sizes: tuple[int, ...], lengths: tuple[float, ...], device, dtype) -> torch.Tensor:
        key = (sizes, lengths, device, dtype)
        if key not in self._cache:
            k2 = 0.0
            for i, (n, length) in enumerate(zip(sizes, lengths)):
                freq = torch.fft.rfftfreq(n, d=1.0 / n) if i == len(sizes) - 1 else torch.fft.fftfreq(n, d=1.0 / n)
                shape = [1] * len(sizes)
                shape[i] = -1
                k2 = k2 + (freq.to(device=device, dtype=dtype) / length).reshape(shape) ** 2
            weight = (1.0 + 4.0 * math.pi ** 2 * k2) ** self.s
            # rfft stores each conjugate pair once: double every column but k=0 (and the even Nyquist).
            weight = weight.clone()
            last = sizes[-1]
            double = torch.full((last // 2 + 1,), 2.0, device=device, dtype=dtype)
            double[0] = 1.0
            if last % 2 == 0:
                double[-1] = 1.0
            self._cache[key] = weight * double
        return self._cache[key]

    def norm(self, u: torch.Tensor) -> torch.Tensor:
        """Per-sample H^s norm, shape (batch,); summed in squares over time axes if any."""
        space = _space_start(u, self.spatial_dims)
        ndim = u.dim() - space
        if self.geometry == "sphere":
            from sciops.losses_sphere import sobolev_squared

            if ndim != 2:
                raise ValueError(f"H^s on the sphere needs 2 spatial dims (lat, lon), got {ndim}")
            return _root(sobolev_squared(u, self.s, self.grid), 2.0)
        extents = self.extent if isinstance(self.extent, tuple) else (self.extent,) * ndim
        if self.geometry == "bounded":
            for d in range(space, u.dim()):
                u = self.even_extension(u, d)
            extents = tuple(2.0 * e for e in extents)
        sizes = tuple(u.shape[space:])
        coeffs = torch.fft.rfftn(u, dim=tuple(range(space, u.dim())), norm="forward")
        weights = self._spectral_weights(sizes, tuple(extents), u.device, u.real.dtype)
        squared = (weights * coeffs.abs() ** 2).flatten(1).sum(1) * math.prod(extents)
        if self.geometry == "bounded":
            squared = squared / 2 ** ndim
        return _root(squared, 2.0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target)
        return _reduce(self.norm(pred - target), self.norm(target), self.relative, self.reduction)


class Standardized(nn.Module):
    """``loss`` of (u - mean_c) / std_c per channel c: each output field counts in units of its own
    spread, whatever its physical unit, and a relative error is that of the anomaly about the channel
    mean. Without it a relative error over fields of different sizes is the largest field's (on
    shallow-water data the geopotential, ~1e5 m2 s-2 against winds of ~20 m/s)."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss, self.mean, self.std = loss, None, None

    def set_statistics(self, mean, std) -> None:
        self.mean, self.std = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(std, dtype=torch.float64)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise ValueError("a norm- loss needs the output statistics (set_statistics), which the trainer supplies")
        if pred.dim() < 2 or pred.shape[1] != len(self.mean):
            raise ValueError(f"a norm- loss with {len(self.mean)} channels got shape {tuple(pred.shape)}")
        shape = (1, -1) + (1,) * (pred.dim() - 2)
        mean = self.mean.to(pred.device, pred.dtype).view(shape)
        std = self.std.to(pred.device, pred.dtype).view(shape)
        return self.loss((pred - mean) / std, (target - mean) / std)


_NAME = re.compile(r"^(?P<abs>abs-)?(?:(?P<l>l)(?P<p>\d+(?:\.\d+)?)|lp:(?P<lp>\d+(?:\.\d+)?)|h(?P<s>-?\d+(?:\.\d+)?))$")


class SumLoss(nn.Module):
    """The sum of several losses (``make_loss("l2+h1")``)."""

    def __init__(self, parts: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(part(pred, target) for part in self.parts)


def make_loss(name: str, *, geometry: str = "bounded", extent: float | tuple = 1.0,
              spatial_dims: int | None = None, grid: str | None = None) -> nn.Module:
    """Build a loss from its name (see module docstring); ValueError for an unknown name."""
    name = name.strip().lower()
    if "+" in name:
        return SumLoss([make_loss(part, geometry=geometry, extent=extent, spatial_dims=spatial_dims, grid=grid)
                        for part in name.split("+")])
    if name.startswith("norm-"):
        return Standardized(make_loss(name[5:], geometry=geometry, extent=extent, spatial_dims=spatial_dims,
                                      grid=grid))
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"unknown loss {name!r}; expected l1, l2, lp:P, or h<s> such as h1, h-1, h0.5 "
                         "(prefix abs- for absolute errors, norm- for channel-standardised fields)")
    relative = match["abs"] is None
    if match["s"] is not None:
        return SobolevLoss(float(match["s"]), geometry=geometry, extent=extent, relative=relative,
                           spatial_dims=spatial_dims, grid=grid)
    return LpLoss(float(match["p"] or match["lp"]), geometry=geometry, extent=extent, relative=relative,
                  spatial_dims=spatial_dims, grid=grid)
