"""Purely learned first stage for near-field MIMO radar: a dense learned complex linear map from the
measurements to the voxel grid, followed by the Deep2S U-Net second stage. The comparison baseline
for Deep2S, whose first stage is the physics adjoint A^H y (METHODS.md, radar).

    y (batch, F, T, R, 2)  -> complex vector y in C^M, M = F*T*R, scaled to unit RMS per sample
      -> z = W y + b, W in C^(V x M) learned (stored as real and imaginary parts), V = nz*ny*nx
      -> z / max |z| per sample (the peak normalisation of the physics first stage)
      -> UNet(input_mode="magnitude"): |z| / max -> |x| (sigmoid), as Deep2S

Trained end to end on (measurements -> magnitude). The only difference from Deep2S is that W is
learned from data instead of being the adjoint of the Born model; nothing of the physics (antenna
positions, frequencies, grid) enters the network, only the shapes.

Size: W has 2 M V real weights. On the reference system (15 x 12 x 13 measurements, 49 x 25 x 25
voxels) that is about 1.4e8, too large for the project's CPU budget, so it is benchmarked at a
reduced size (``scripts/bench_radar_first_stage.py``). Initialisation: W ~ CN(0, 1/M) (each part
N(0, 1/(2M))), so that z has O(1) entries for unit-RMS y; b = 0.

Not in the operator registry: ``sciops.operators`` operators map grid fields to fields on the same
grid, and the radar dataset's measurements are a diagnostic field on another grid (f, tx, rx); this
network is built and trained directly (see the benchmark script).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sciops.operators.base import Operator
from sciops.operators.unet import UNet


class LearnedFirstStage(Operator):
    """Args:
        data_shape: (F, T, R) measurement shape (frequencies, transmitters, receivers).
        image_shape: (nz, ny, nx) voxel grid.
        width, levels: of the U-Net second stage (``sciops.operators.unet.UNet``, magnitude input).
    Input: measurements (batch, F, T, R, 2) real/imaginary (or complex (batch, F, T, R)).
    Output: (batch, 1, nz, ny, nx) magnitude in (0, 1).
    """

    def __init__(self, data_shape, image_shape, *, width: int = 8, levels: int = 3):
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.data_shape) != 3 or len(self.image_shape) != 3 or min(self.data_shape + self.image_shape) < 1:
            raise ValueError(f"LearnedFirstStage expects data_shape (F, T, R) and image_shape (nz, ny, nx) of "
                             f"positive sizes, got {data_shape} and {image_shape}")
        m, v = math.prod(self.data_shape), math.prod(self.image_shape)
        std = 1.0 / math.sqrt(2 * m)
        self.weight_re = nn.Parameter(torch.randn(v, m) * std)
        self.weight_im = nn.Parameter(torch.randn(v, m) * std)
        self.bias = nn.Parameter(torch.zeros(v, 2))
        self.unet = UNet(2, 1, ndim=3, width=width, levels=levels, input_mode="magnitude")

    def first_stage(self, y: torch.Tensor) -> torch.Tensor:
        """Learned first stage: (batch, 2, nz, ny, nx) real/imaginary, peak-normalised."""
        if torch.is_complex(y):
            y = torch.stack([y.real, y.imag], -1)
        if y.dim() != 5 or tuple(y.shape[1:]) != (*self.data_shape, 2):
            raise ValueError(f"LearnedFirstStage expects measurements (batch, {', '.join(map(str, self.data_shape))}, 2), "
                             f"got {tuple(y.shape)}")
        b = y.shape[0]
        y = y.reshape(b, -1, 2).to(self.weight_re.dtype)
        y = y / y.square().sum(-1).mean(-1).clamp_min(1e-30).sqrt()[:, None, None]  # unit RMS per sample
        yr, yi = y[..., 0], y[..., 1]
        zr = yr @ self.weight_re.T - yi @ self.weight_im.T + self.bias[:, 0]
        zi = yr @ self.weight_im.T + yi @ self.weight_re.T + self.bias[:, 1]
        z = torch.stack([zr, zi], 1)  # (batch, 2, V)
        peak = z.square().sum(1).amax(-1).clamp_min(1e-30).sqrt()
        return (z / peak[:, None, None]).reshape(b, 2, *self.image_shape)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.unet(self.first_stage(y))

    def extra_repr(self) -> str:
        return f"data_shape={self.data_shape}, image_shape={self.image_shape}"
