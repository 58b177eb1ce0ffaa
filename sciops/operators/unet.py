"""U-Net (Ronneberger et al. 2015; 3D: Cicek et al. 2016) on 1D, 2D and 3D grids, the second stage of
the Deep2S radar reconstruction.

    x -> [input_mode] -> zero-pad to a multiple of 2^(levels-1)
      -> encoder: ConvBlock(c_0), then per level l = 1 .. levels-1: max-pool 2, ConvBlock(c_l)
      -> decoder: per level: transposed conv (stride 2) to c_{l-1}, concatenate the skip, ConvBlock(c_{l-1})
      -> pointwise conv to out_channels -> sigmoid (or linear) -> crop to the input grid

c_l = width * 2^l; ConvBlock = 2 x (3^d conv, GroupNorm, GELU) (:mod:`sciops.layers.unet_blocks`).
Inputs and outputs are channel-first (batch, channels, *space) on the same grid.

Grid sizes: any size works. Each dimension is zero-padded on its high side up to the next multiple
of 2^(levels-1) (49 x 25 x 25 -> 52 x 28 x 28 for 3 levels) and the output cropped back, so no voxel
is dropped or interpolated; the padding is zero reflectivity outside the image, which is what the
radar volume has there.

Deep2S (physics first stage + this network; METHODS.md, radar): the ``radar`` problem stores the
first stage, the complex adjoint A^H y / max |A^H y|, as two channels (real, imaginary).
``input_mode="magnitude"`` feeds the network the norm over the input channels, |A^H y| / max, i.e.
Deep2S; ``input_mode="channels"`` feeds the channels as they are: the complex variant. Both train
from the same dataset.

Normalisation: the class sets ``raw_io``, so the trainer applies identity statistics. The inputs of
Deep2S are already scaled by the physics (peak-normalised adjoint, |values| <= 1) and a sigmoid
output lives in [0, 1], the units of the target |x| (max 1): standardising the targets would put
them outside the sigmoid's range. Use the U-Net on data scaled to O(1).

The sigmoid head's bias starts at -3 (outputs near 0.05), not 0 (0.5 everywhere): reflectivity
volumes are mostly empty, and this spares the first epochs pulling the background down.

Defaults (CPU-sized): width 8, levels 3 (channels 8/16/32), 85,337 parameters for Deep2S (the
paper's 32/64/128, ``width=32``: 1,356,641). The convolution work grows with width^2, so the paper's
net costs 16x as much per step: with width 8 one training step on 49 x 25 x 25 volumes takes about
0.075 s per volume on one CPU thread (quiet machine), so 1,800 training scenes are about 2-3 min
per epoch (``scripts/bench_radar_learned.py``), which keeps a CPU-only project's benchmark within
its budget. On a GPU use ``width=32``.

References: O. Ronneberger, P. Fischer, T. Brox, U-Net, MICCAI 2015; O. Cicek et al., 3D U-Net,
MICCAI 2016; Deep2S two-stage near-field MIMO radar imaging (METHODS.md, radar section).
"""
from __future__ import annotations

import torch
from torch import nn

from sciops.layers.grid import GEOMETRIES
from sciops.layers.unet_blocks import CONV, CONV_T, POOL, ConvBlock, crop_to, pad_to_multiple
from sciops.operators.base import Operator

INPUT_MODES = ("channels", "magnitude")
OUTPUTS = ("sigmoid", "linear")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class UNet(Operator):
    """Args:
        in_channels, out_channels: field channels of the input and the output.
        ndim: spatial dimension (1, 2 or 3). geometry: "bounded" or "periodic" (the convolutions
            zero-pad either way; periodic data is served but its wrap-around is not modelled).
        width: channels of the finest level; level l has width * 2^l.
        levels: resolution levels (>= 1; 1 is a plain two-convolution network).
        input_mode: "channels" (inputs as they are) or "magnitude" (norm over the input channels,
            one channel into the network).
        output: "sigmoid" (values in (0, 1)) or "linear".
    """

    raw_io = True  # identity normalisation statistics: see the module docstring

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, ndim: int = 3, geometry: str = "bounded",
                 width: int = 8, levels: int = 3, input_mode: str = "channels", output: str = "sigmoid"):
        super().__init__()
        if ndim not in CONV:
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width),
                            ("levels", levels)):
            _positive_int(name, value)
        self.ndim, self.geometry, self.levels = ndim, geometry, levels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_mode, self.output = input_mode, output
        channels = [width * 2 ** level for level in range(levels)]
        first = 1 if input_mode == "magnitude" else in_channels
        self.down = nn.ModuleList(ConvBlock(c_in, c_out, ndim) for c_in, c_out in zip([first, *channels], channels))
        self.pool = POOL[ndim](2)
        self.upsample = nn.ModuleList(CONV_T[ndim](channels[l], channels[l - 1], 2, stride=2)
                                      for l in range(levels - 1, 0, -1))
        self.up = nn.ModuleList(ConvBlock(2 * channels[l - 1], channels[l - 1], ndim) for l in range(levels - 1, 0, -1))
        self.head = CONV[ndim](channels[0], out_channels, 1)
        if output == "sigmoid":  # start near sigmoid(-3) = 0.05: the target volumes are mostly empty
            nn.init.constant_(self.head.bias, -3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.ndim + 2:
            raise ValueError(f"UNet expects (batch, channels, {self.ndim} spatial dims), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"UNet expects {self.in_channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
        sizes = x.shape[2:]
        if self.input_mode == "magnitude":
            x = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        h = pad_to_multiple(x, 2 ** (self.levels - 1))
        skips = []
        for level, block in enumerate(self.down):
            if level:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        skips.pop()
        for upsample, block in zip(self.upsample, self.up):
            h = block(torch.cat([upsample(h), skips.pop()], dim=1))
        h = self.head(h)
        if self.output == "sigmoid":
            h = torch.sigmoid(h)
        return crop_to(h, sizes).contiguous()

    @property
    def output_range(self) -> tuple[float, float] | None:
        """The values the head can produce (the trainer refuses targets outside them)."""
        return (0.0, 1.0) if self.output == "sigmoid" else None

    def extra_repr(self) -> str:
        return f"input_mode={self.input_mode!r}, output={self.output!r}"
