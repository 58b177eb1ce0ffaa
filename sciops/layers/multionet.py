"""MultiONet: a DeepONet generalisation that sums inner products of several trunk/branch layers.

A trunk MLP maps coordinates x (N, d) to hidden features t_1(x), ..., t_L(x) and a branch MLP maps
a latent vector beta (B, m) to b_1(beta), ..., b_L(beta), all of width H. The last K layer pairs
each contribute a weighted inner product (Zang & Koutsourelakis 2025, "MultiONet")::

    G(beta)(x)_c = sum_{l = L-K+1}^{L} w_{l,c} <t_l(x), b_l(beta)> + bias_c

DeepONet is the case K = 1. The weights w and the bias are initialised to zero, so a freshly built
MultiONet outputs exactly zero (the decoders of DGNO then start from u = 0, s = 0) and its first
steps move w only, as in a residual network with zero-initialised gates.

Several output channels C are C independent MultiONets evaluated together: every linear layer has
a leading channel dimension and is applied with batched matrix products. The trunk does not depend
on beta and the branch does not depend on x, so :meth:`MultiONet.trunk` is evaluated once for all
points shared by a batch, :meth:`MultiONet.branch` once per sample, and :meth:`MultiONet.combine`
contracts them; spatial derivatives of the output come from forward-mode differentiation of the trunk
alone (see ``sciops.operators.dgno``).

Activation (``"tanh_sin"``, the paper's choice): sigma(z) = tanh(sin(pi (z + 1))) + z, a periodic,
bounded nonlinearity plus an identity path. ``"tanh"``, ``"gelu"`` and ``"silu"`` are offered for
comparison. Linear weights use Glorot-normal initialisation, biases zero.

Shapes: x (N, d) -> trunk features, a list of K tensors (C, N, H); beta (B, m) -> branch features,
a list of K tensors (C, B, H); output (B, C, N).

Reference: Y. Zang, P.-S. Koutsourelakis, "DGenNO: a novel physics-aware neural operator for
solving forward and inverse PDE problems based on deep, generative probabilistic modeling",
arXiv:2502.06250 (2025).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class TanhSin(nn.Module):
    """sigma(z) = tanh(sin(pi (z + 1))) + z."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.sin(math.pi * (z + 1.0))) + z

    def value_and_slope(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = math.pi * (z + 1.0)
        t = torch.tanh(torch.sin(w))
        return t + z, 1.0 + (1.0 - t * t) * math.pi * torch.cos(w)


class Tanh(nn.Tanh):
    def value_and_slope(self, z):
        t = torch.tanh(z)
        return t, 1.0 - t * t


class SiLU(nn.SiLU):
    def value_and_slope(self, z):
        s = torch.sigmoid(z)
        return z * s, s * (1.0 + z * (1.0 - s))


class GELU(nn.GELU):
    def value_and_slope(self, z):
        cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
        return z * cdf, cdf + z * torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


# Each activation also gives its slope sigma'(z), for forward-mode derivatives of the trunk.
ACTIVATIONS = {"tanh_sin": TanhSin, "tanh": Tanh, "gelu": GELU, "silu": SiLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class ChannelLinear(nn.Module):
    """C independent linear maps applied together: (C, N, fan_in) -> (C, N, fan_out).

    An input without the channel dimension, (N, fan_in), is shared by all channels."""

    def __init__(self, channels: int, fan_in: int, fan_out: int):
        super().__init__()
        std = math.sqrt(2.0 / (fan_in + fan_out))  # Glorot normal
        self.weight = nn.Parameter(torch.randn(channels, fan_in, fan_out) * std)
        self.bias = nn.Parameter(torch.zeros(channels, 1, fan_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 2:
            return torch.einsum("ni,cio->cno", h, self.weight) + self.bias
        return torch.baddbmm(self.bias, h, self.weight)


class _Tower(nn.Module):
    """An MLP of ``layers`` hidden layers that returns the activations of the last ``keep``."""

    def __init__(self, channels: int, fan_in: int, width: int, layers: int, keep: int, act: str):
        super().__init__()
        self.linears = nn.ModuleList(ChannelLinear(channels, fan_in if i == 0 else width, width)
                                     for i in range(layers))
        self.act = activation(act)
        self.keep = keep

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, linear in enumerate(self.linears):
            h = self.act(linear(h))
            if i >= len(self.linears) - self.keep:
                out.append(h)
        return out

    def forward_with_derivatives(self, h: torch.Tensor, scale: float = 1.0) -> tuple[list, list]:
        """Activations and their derivatives with respect to each input coordinate.

        h (N, d) -> (values, derivatives): K tensors (C, N, H) and K tensors (d, C, N, H), where
        derivatives[l][k] = d values[l] / d h[:, k] times ``scale``. Forward-mode chain rule through
        the layers with the activation's slope (first derivatives only)."""
        out, dout = [], []
        first = self.linears[0]
        pre = first(h)  # (C, N, H)
        dpre = scale * first.weight.permute(1, 0, 2).unsqueeze(2)  # (d, C, 1, H), constant in x
        dh = None  # the first layer's, set at the end of its iteration
        for i in range(len(self.linears)):
            if i > 0:
                linear = self.linears[i]
                pre = linear(h)
                d, c, n, width = dh.shape
                dpre = torch.bmm(dh.transpose(0, 1).reshape(c, d * n, width), linear.weight)
                dpre = dpre.reshape(c, d, n, -1).transpose(0, 1)
            h, slope = self.act.value_and_slope(pre)
            dh = slope.unsqueeze(0) * dpre
            if i >= len(self.linears) - self.keep:
                out.append(h)
                dout.append(dh)
        return out, dout


class MultiONet(nn.Module):
    """Args:
        in_dim: coordinate dimension d of the trunk input.
        latent: dimension m of the branch input beta.
        out_channels: independent output channels C.
        width: hidden width H of trunk and branch. layers: hidden layers L of each.
        inner: number K of final layer pairs whose inner products are summed (1 <= K <= L).
        activation: one of ``ACTIVATIONS``.
    """

    def __init__(self, in_dim: int, latent: int, out_channels: int = 1, *, width: int = 64, layers: int = 5,
                 inner: int = 4, activation: str = "tanh_sin"):
        super().__init__()
        if not 1 <= inner <= layers:
            raise ValueError(f"inner ({inner}) must be between 1 and layers ({layers})")
        for name, value in (("in_dim", in_dim), ("latent", latent), ("out_channels", out_channels), ("width", width)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.out_channels, self.width = out_channels, width
        self.trunk_net = _Tower(out_channels, in_dim, width, layers, inner, activation)
        self.branch_net = _Tower(out_channels, latent, width, layers, inner, activation)
        self.weights = nn.Parameter(torch.zeros(inner, out_channels))  # w_{l,c}, zero at initialisation
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of points x (N, d): K tensors (C, N, H)."""
        return self.trunk_net(x)

    def trunk_with_derivatives(self, x: torch.Tensor, scale: float = 1.0) -> tuple[list, list]:
        """Trunk features of x (N, d) and their x-derivatives (times ``scale``): K tensors
        (C, N, H) and K tensors (d, C, N, H)."""
        return self.trunk_net.forward_with_derivatives(x, scale)

    def branch(self, beta: torch.Tensor) -> list[torch.Tensor]:
        """Features of latents beta (B, m): K tensors (C, B, H)."""
        return self.branch_net(beta)

    def combine(self, trunk: list[torch.Tensor], branch: list[torch.Tensor], *, bias: bool = True) -> torch.Tensor:
        """sum_l w_l <t_l, b_l> (+ bias): (B, C, N). ``bias=False`` for derivatives of the output."""
        out = 0.0
        for l, (t, b) in enumerate(zip(trunk, branch)):
            out = out + self.weights[l].view(-1, 1, 1) * torch.bmm(b, t.transpose(1, 2))  # (C, B, N)
        out = out.transpose(0, 1)
        return out + self.bias.view(1, -1, 1) if bias else out

    def forward(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """G(beta)(x): x (N, d), beta (B, m) -> (B, C, N)."""
        return self.combine(self.trunk(x), self.branch(beta))
