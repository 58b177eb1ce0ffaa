"""Per-channel Gaussian normalisation wrapped around an operator.

``NormalizedOperator`` maps raw inputs to raw outputs: x -> (x - mu_in) / sd_in -> operator ->
y * sd_out + mu_out. The statistics are scalars per channel (not per grid point), so the wrapped
operator stays resolution-invariant; they are buffers, saved with the weights and also written
to ``config.json``. Training optimises the wrapped model on raw targets, so what is trained is
exactly what the surrogate serves.
"""
from __future__ import annotations

import torch
from torch import nn


def channel_stats(fields: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per channel of (N, C, *space) data, as lists of floats."""
    flat = fields.transpose(0, 1).reshape(fields.shape[1], -1).double()
    return flat.mean(1).tolist(), flat.std(1).clamp_min(1e-12).tolist()


class NormalizedOperator(nn.Module):
    def __init__(self, operator: nn.Module, in_mean, in_std, out_mean, out_std):
        super().__init__()
        self.operator = operator
        for name, values in (("in_mean", in_mean), ("in_std", in_std), ("out_mean", out_mean), ("out_std", out_std)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32))

    def _bcast(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))

    def normalize_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mu_in) / sd_in, what the wrapped operator sees."""
        return (x - self._bcast(self.in_mean, x)) / self._bcast(self.in_std, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.operator(self.normalize_inputs(x))
        return y * self._bcast(self.out_std, y) + self._bcast(self.out_mean, y)

    def stats(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in ("in_mean", "in_std", "out_mean", "out_std")}
