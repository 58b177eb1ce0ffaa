"""Spherical Fourier neural operator ``sfno`` (Bonev et al., ICML 2023) for trajectories on the sphere.

One step u(t) -> u(t + dt) on a torch-harmonics grid (nlat, nlon), latitudes north to south:

    x -> [x, sin lat, cos lat] -> lift -> L x { GELU( SHT^-1( w_l . SHT(v) ) + W v ) } -> project

with RealSHT / InverseRealSHT (orthonormal) truncated to ``modes`` degrees and orders, and complex
weights w per degree l (``per_order``: per (l, m)), mixing channels. Per-degree weights commute with
every rotation of the sphere (the Funk-Hecke form of a zonal convolution); per (l, m) weights still
commute with rotations about the polar axis. The last layer has no activation (as :class:`FNO`).
The latitude embedding keeps the longitude-roll equivariance. With ``band_limit`` (default) the
step's output is projected on the grid's alias-free degrees (SHT then inverse SHT at the grid's
lmax), the space the solver's states live in: the pointwise layers otherwise leave grid-scale
content that the rollout feeds back step after step.

Rollout, training and normalisation are those of ``fno-rollout`` (:class:`Autoregressive`): the step
is applied ``time_steps`` times (multi-step rollout loss through every step), as a residual update
by default, from a window of ``input_steps`` records if the inputs are a segment; one normalisation
for inputs and outputs.

Grids: the transforms are built for the input's (nlat, nlon) on the grid type ``grid`` (taken from
the data by the trainer; ``forward(..., grid=...)`` serves another type) and cached per shape,
grid, device and dtype, so the same weights run at any resolution: degrees above the grid's
alias-free lmax (``solvers.sphere_grid.default_lmax``) or above ``modes`` are dropped.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sciops.layers.pointwise import Pointwise
from sciops.operators.fno_trajectory import Autoregressive
from sciops.solvers.sphere_grid import GRIDS, check_grid, quadrature


class SphericalConv(nn.Module):
    """v -> SHT^-1( sum_i w[i, o, l(, m)] SHT(v)[i, l, m] ) on the degrees l, orders m < modes."""

    def __init__(self, in_channels: int, out_channels: int, modes: int, per_order: bool = False):
        super().__init__()
        self.modes, self.per_order = modes, per_order
        shape = (in_channels, out_channels, modes) + ((modes,) if per_order else ())
        scale = 1.0 / math.sqrt(in_channels)
        self.weight = nn.Parameter(scale * torch.randn(*shape, dtype=torch.cfloat))

    def forward(self, v: torch.Tensor, sht: nn.Module, isht: nn.Module) -> torch.Tensor:
        coeffs = sht(v)  # (batch, in, L, M)
        lmax, mmax = coeffs.shape[-2:]
        w = self.weight[:, :, :lmax, :mmax] if self.per_order else self.weight[:, :, :lmax, None]
        out = torch.einsum("bilm,iolm->bolm", coeffs, w.to(coeffs.dtype))
        return isht(out)


class SphericalNet(nn.Module):
    """The one-step network of the module docstring."""

    def __init__(self, in_channels: int, out_channels: int, *, modes: int, width: int, layers: int,
                 projection: int, per_order: bool, grid_embedding: bool, band_limit: bool):
        super().__init__()
        self.modes, self.grid_embedding, self.band_limit = modes, grid_embedding, band_limit
        self.lift = Pointwise(in_channels + (2 if grid_embedding else 0), width)
        self.spectral = nn.ModuleList(SphericalConv(width, width, modes, per_order) for _ in range(layers))
        self.pointwise = nn.ModuleList(Pointwise(width, width) for _ in range(layers))
        self.project = nn.Sequential(Pointwise(width, projection), nn.GELU(), Pointwise(projection, out_channels))
        self._transforms: dict = {}  # not submodules: rebuilt for each grid, never in the state dict

    def transforms(self, nlat: int, nlon: int, grid: str, device, dtype):
        key = (nlat, nlon, grid, str(device), dtype)
        if key not in self._transforms:
            import torch_harmonics as th

            def pair(lmax: int):
                mmax = min(lmax, nlon // 2 + 1)
                kw = dict(lmax=lmax, mmax=mmax, grid=grid, norm="ortho")
                return (th.RealSHT(nlat, nlon, **kw).to(device=device, dtype=dtype),
                        th.InverseRealSHT(nlat, nlon, **kw).to(device=device, dtype=dtype))

            grid_lmax = check_grid(nlat, nlon, grid)
            lat = quadrature(nlat, grid)[0].to(device=device, dtype=dtype)[:, None].expand(nlat, nlon)
            self._transforms[key] = (*pair(min(self.modes, grid_lmax)), torch.stack([torch.sin(lat), torch.cos(lat)]),
                                     pair(grid_lmax))
        return self._transforms[key]

    def forward(self, x: torch.Tensor, grid: str) -> torch.Tensor:
        nlat, nlon = (int(n) for n in x.shape[-2:])  # plain ints key the transforms (traced sizes are tensors)
        sht, isht, embedding, (full_sht, full_isht) = self.transforms(nlat, nlon, grid, x.device, x.dtype)
        if self.grid_embedding:
            x = torch.cat([x, embedding.expand(x.shape[0], -1, -1, -1)], dim=1)
        v = self.lift(x)
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise)):
            v = spectral(v, sht, isht) + pointwise(v)
            if i < last:
                v = F.gelu(v)
        out = self.project(v)
        return full_isht(full_sht(out)) if self.band_limit else out


class SFNO(Autoregressive):
    """Args:
        time_steps: records predicted by ``forward`` (from the data).
        grid: torch-harmonics grid type of the inputs, "equiangular" or "legendre-gauss" (None: the
            training data's, filled in by the trainer).
        modes: kept degrees (and orders) of the spectral layers. width, layers, projection: as in FNO.
        per_order: weights per (l, m) instead of per degree l.
        residual: predict the increment u(t + dt) = u(t) + net(u(t)).
        grid_embedding: append sin(lat), cos(lat) to the input.
        band_limit: project each step's output on the grid's alias-free degrees.
        input_steps: records in the input segment (from the data; None: one state).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, *, time_steps: int, grid: str | None = None,
                 modes: int = 24, width: int = 32, layers: int = 4, projection: int = 64, per_order: bool = False,
                 residual: bool = True, grid_embedding: bool = True, band_limit: bool = True, ndim: int = 2,
                 geometry: str = "sphere",
                 input_steps: int | None = None):
        super().__init__()
        if geometry != "sphere" or ndim != 2:
            raise ValueError(f"sfno works on (lat, lon) fields of geometry 'sphere'; got geometry={geometry!r}, "
                             f"ndim={ndim} (use fno-rollout on flat grids)")
        if grid is not None and grid not in GRIDS:
            raise ValueError(f"sfno: grid={grid!r}; expected one of {', '.join(GRIDS)}")
        if in_channels != out_channels:
            raise ValueError(f"sfno feeds its output back as input: in_channels ({in_channels}) "
                             f"must equal out_channels ({out_channels})")
        if time_steps < 1 or modes < 1 or layers < 1:
            raise ValueError(f"time_steps, modes and layers must be >= 1, got {time_steps}, {modes}, {layers}")
        if input_steps is not None and input_steps < 1:
            raise ValueError(f"input_steps must be >= 1, got {input_steps}")
        self.time_steps, self.residual, self.input_steps, self.grid = time_steps, residual, input_steps, grid
        self.net = SphericalNet(in_channels * (input_steps or 1), out_channels, modes=modes, width=width,
                                layers=layers, projection=projection, per_order=per_order,
                                grid_embedding=grid_embedding, band_limit=band_limit)
        self._call_grid: str | None = None

    @classmethod
    def prepare_hyperparameters(cls, hparams: dict, problem, runs=None) -> dict:
        """The trainer's hook: the grid type of the data when not given; a different one is refused."""
        data_grid = problem.params.get("grid")
        if hparams.get("grid") is not None and hparams["grid"] != data_grid:
            raise ValueError(f"sfno: grid={hparams['grid']!r} does not match the data's grid {data_grid!r}; "
                             f"leave grid unset or set it to {data_grid!r}")
        return {**hparams, "grid": data_grid}

    def step(self, x: torch.Tensor) -> torch.Tensor:
        grid = self._call_grid or self.grid
        if grid is None:
            raise ValueError("sfno: the grid type is unknown; pass grid='equiangular' or 'legendre-gauss'")
        return self.net(x, grid)

    def forward(self, x: torch.Tensor, steps: int | None = None, grid: str | None = None) -> torch.Tensor:
        if grid is not None and grid not in GRIDS:
            raise ValueError(f"sfno: grid={grid!r}; expected one of {', '.join(GRIDS)}")
        self._call_grid = grid
        try:
            return super().forward(x, steps)
        finally:
            self._call_grid = None
