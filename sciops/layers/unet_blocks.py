"""Building blocks of convolutional U-Nets on 1D, 2D and 3D grids.

* :class:`ConvBlock`   two (conv k^d, GroupNorm, GELU) stages, "same" zero padding.
* :func:`pad_to_multiple` / :func:`crop_to`   zero-pad each spatial dim on its high side up to a
  multiple of m (so every stride-2 level halves exactly) and crop back to the original size
  afterwards: any grid size is served and no voxel is dropped or interpolated.

GroupNorm (not BatchNorm): statistics per sample, so results do not depend on the batch the
sample arrives in, and training with batches of 2-8 volumes (CPU) is stable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _groups(channels: int) -> int:
    """Largest of 8, 4, 2, 1 dividing ``channels`` (GroupNorm needs a divisor)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ConvBlock(nn.Module):
    """(batch, c_in, *space) -> (batch, c_out, *space): 2 x (conv, GroupNorm, GELU)."""

    def __init__(self, c_in: int, c_out: int, ndim: int, kernel: int = 3):
        super().__init__()
        conv = CONV[ndim]
        self.net = nn.Sequential(
            conv(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(_groups(c_out), c_out), nn.GELU(),
            conv(c_out, c_out, kernel, padding=kernel // 2), nn.GroupNorm(_groups(c_out), c_out), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the spatial dims of (batch, C, *space) on their high side to multiples of ``multiple``."""
    pads: list[int] = []
    for n in reversed(x.shape[2:]):  # F.pad lists the last dim first
        pads += [0, (-n) % multiple]
    return F.pad(x, pads) if any(pads) else x


def crop_to(x: torch.Tensor, sizes) -> torch.Tensor:
    """The low corner of (batch, C, *space) of spatial size ``sizes``."""
    return x[(slice(None), slice(None), *(slice(0, n) for n in sizes))]
