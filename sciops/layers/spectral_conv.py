"""Spectral convolution on regular grids in 1, 2 or 3 dimensions (the Fourier layer of FNO).

Input and output are channel-first real tensors (batch, channels, *space). The layer keeps the
lowest ``modes`` Fourier coefficients per dimension (the first ``modes`` and the last ``modes``
along every dimension but the last, the first ``modes`` of the real FFT along the last one),
multiplies them by learned complex weights per mode, and transforms back.

The transform is done one dimension at a time and only the kept modes are carried forward, so
dimensions other than the last are transformed on ``modes`` columns instead of all of them; the
per-mode channel mixing is one batched *real* matmul over modes, with the complex product
written as a 2x2 real block (much faster on CPU than a complex bmm). Weights are stored as real
tensors (..., 2) holding real and imaginary parts. Grids smaller than the mode
count use the modes they have (the weights of missing modes are unused), so a layer built for one
resolution runs at any other.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class SpectralConv(nn.Module):
    """out = IFFT(W(k) FFT(x)(k)) on the kept modes k.

    Args:
        in_channels, out_channels: channel counts.
        modes: kept modes per spatial dimension, a tuple whose length is the dimension (1-3).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, ...]):
        super().__init__()
        if not 1 <= len(modes) <= 3 or min(modes) < 1:
            raise ValueError(f"modes must be 1 to 3 positive integers, got {modes}")
        self.in_channels, self.out_channels, self.modes = in_channels, out_channels, tuple(modes)
        # Full-spectrum mode block: 2 m for every dimension but the last (positive and negative
        # frequencies), m for the last (real FFT).
        block = tuple(2 * m for m in modes[:-1]) + (modes[-1],)
        scale = 1.0 / (in_channels * out_channels)
        weight = scale * torch.rand(math.prod(block), in_channels, out_channels, 2)
        self.weight = nn.Parameter(weight)  # (modes, in, out, re/im), modes flattened row-major
        self._block = block

    def _kept(self, sizes: tuple[int, ...]) -> list[int]:
        """Modes kept on each side per dimension for the given grid sizes."""
        kept = [min(m, n // 2) for m, n in zip(self.modes[:-1], sizes[:-1])]
        return kept + [min(self.modes[-1], sizes[-1] // 2 + 1)]

    def _weights(self, kept: list[int]) -> torch.Tensor:
        """The weight block restricted to the kept modes, flattened to (modes, in, out)."""
        if kept[:-1] == list(self.modes[:-1]) and kept[-1] == self.modes[-1]:
            return self.weight
        w = self.weight.view(*self._block, self.in_channels, self.out_channels, 2)
        for d, (k, m) in enumerate(zip(kept[:-1], self.modes[:-1])):
            w = torch.cat([w.narrow(d, 0, k), w.narrow(d, 2 * m - k, k)], dim=d)
        w = w.narrow(len(kept) - 1, 0, kept[-1])
        return w.reshape(-1, self.in_channels, self.out_channels, 2)

    @staticmethod
    def _real_block(w: torch.Tensor) -> torch.Tensor:
        """(modes, in, out, 2) -> (modes, 2 in, 2 out) acting on interleaved (re, im) vectors."""
        wr, wi = w[..., 0], w[..., 1]
        top = torch.stack([wr, wi], dim=-1)  # multiplies the real part of the input
        bottom = torch.stack([-wi, wr], dim=-1)  # multiplies the imaginary part
        block = torch.stack([top, bottom], dim=2)  # (modes, in, 2, out, 2)
        return block.reshape(w.shape[0], 2 * w.shape[1], 2 * w.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ndim = len(self.modes)
        if x.dim() != ndim + 2:
            raise ValueError(f"expected input of shape (batch, channels, {ndim} spatial dims), got {tuple(x.shape)}")
        sizes = tuple(x.shape[2:])
        kept = self._kept(sizes)
        dims = list(range(2, 2 + ndim))
        # Forward: real FFT on the last dim, then complex FFTs on the others, trimming as we go.
        z = torch.fft.rfft(x, dim=dims[-1]).narrow(dims[-1], 0, kept[-1])
        for d, k in zip(dims[:-1], kept[:-1]):
            z = torch.fft.fft(z, dim=d)
            z = torch.cat([z.narrow(d, 0, k), z.narrow(d, z.shape[d] - k, k)], dim=d)
        block_shape = z.shape[2:]
        # Channel mixing per mode: (modes, batch, 2 in) @ (modes, 2 in, 2 out), interleaved re/im.
        zb = torch.view_as_real(z.flatten(2).permute(2, 0, 1).contiguous()).flatten(2)
        out = torch.bmm(zb, self._real_block(self._weights(kept)))
        out = torch.view_as_complex(out.view(*out.shape[:2], self.out_channels, 2))
        out = out.permute(1, 2, 0).reshape(x.shape[0], self.out_channels, *block_shape)
        # Inverse: zero-fill the dropped modes one dimension at a time.
        for d, k, n in zip(dims[:-1], kept[:-1], sizes[:-1]):
            if n > 2 * k:
                pad_shape = list(out.shape)
                pad_shape[d] = n - 2 * k
                out = torch.cat([out.narrow(d, 0, k), out.new_zeros(pad_shape), out.narrow(d, k, k)], dim=d)
            out = torch.fft.ifft(out, dim=d)
        return torch.fft.irfft(out, n=sizes[-1], dim=dims[-1])

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, modes={self.modes}"
