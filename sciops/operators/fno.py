"""Fourier neural operator (Li et al., ICLR 2021) on 1D, 2D and 3D regular grids.

    x -> [x, grid] -> lift (pointwise linear) -> L x { GELU( SpectralConv(v) + W v ) } -> project

The last Fourier layer has no activation; the projection is a pointwise two-layer MLP. Inputs
and outputs are channel-first (batch, channels, *space). For bounded (non-periodic) problems
``padding`` zero-pads each spatial dimension on its high side by that fraction of its size
before the Fourier layers and crops after, so the FFT's periodic wrap-around does not couple
opposite boundaries. Resolution-invariant: the same weights run on any grid (modes beyond a
grid's Nyquist are dropped).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sciops.layers.grid import GEOMETRIES, append_grid
from sciops.layers.pointwise import Pointwise
from sciops.layers.spectral_conv import SpectralConv
from sciops.operators.base import Operator


class FNO(Operator):
    """Args:
        in_channels, out_channels: field channels (grid coordinates are added internally).
        modes: kept Fourier modes per dimension; an int applies to every dimension of ``ndim``.
        width: channels of the Fourier layers. layers: number of Fourier layers.
        ndim: spatial dimension (1, 2 or 3). geometry: "bounded" or "periodic".
        padding: fraction of each dimension zero-padded for bounded problems (0 disables).
        projection: hidden channels of the projection MLP.
        grid_embedding: append grid coordinates to the input.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, modes: int | tuple[int, ...] = 12,
                 width: int = 32, layers: int = 4, ndim: int = 2, geometry: str = "bounded",
                 padding: float = 0.0, projection: int = 128, grid_embedding: bool = True):
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if not 0.0 <= padding <= 1.0:
            raise ValueError(f"padding must be a fraction in [0, 1], got {padding}")
        modes = (modes,) * ndim if isinstance(modes, int) else tuple(modes)
        if len(modes) != ndim:
            raise ValueError(f"modes {modes} must have one entry per dimension ({ndim})")
        self.ndim, self.geometry, self.padding, self.grid_embedding = ndim, geometry, padding, grid_embedding
        self.lift = Pointwise(in_channels + (ndim if grid_embedding else 0), width)
        self.spectral = nn.ModuleList(SpectralConv(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(Pointwise(width, width) for _ in range(layers))
        self.project = nn.Sequential(Pointwise(width, projection), nn.GELU(), Pointwise(projection, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.ndim + 2:
            raise ValueError(f"FNO expects (batch, channels, {self.ndim} spatial dims), got {tuple(x.shape)}")
        sizes = x.shape[2:]
        if self.grid_embedding:
            x = append_grid(x, self.geometry)
        v = self.lift(x)
        # int(n): sizes are tensors under torch.jit.trace, which round() does not take; without
        # padding the sizes are not read at all, so that torch.export keeps them dynamic
        bounded = self.geometry == "bounded" and self.padding
        pads = [round(self.padding * int(n)) for n in sizes] if bounded else [0] * self.ndim
        if any(pads):
            v = F.pad(v, [p for pad in reversed(pads) for p in (0, pad)])
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise)):
            v = spectral(v) + pointwise(v)
            if i < last:
                v = F.gelu(v)
        if any(pads):
            v = v[(...,) + tuple(slice(0, n) for n in sizes)]
        return self.project(v)
