"""Grid coordinates appended to operator inputs (the FNO "grid embedding").

Bounded problems use the vertex grid x_i = i / (n - 1); periodic problems x_i = i / n; both on
the unit interval per dimension, whatever the physical extent, so an embedding learned at one
resolution means the same points at another.
"""
from __future__ import annotations

import torch

GEOMETRIES = ("bounded", "periodic")


def grid_coordinates(sizes: tuple[int, ...], geometry: str, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of shape (len(sizes), *sizes), one channel per dimension."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    axes = [torch.linspace(0.0, 1.0, n, device=device, dtype=dtype) if geometry == "bounded"
            else torch.arange(n, device=device, dtype=dtype) / n for n in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def append_grid(x: torch.Tensor, geometry: str) -> torch.Tensor:
    """(batch, C, *space) -> (batch, C + d, *space) with the coordinates as extra channels."""
    coords = grid_coordinates(tuple(x.shape[2:]), geometry, device=x.device, dtype=x.dtype)
    return torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)
