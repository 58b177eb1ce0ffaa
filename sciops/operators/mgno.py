"""MgNO, the multigrid neural operator (He, Liu, Xu, ICLR 2024), on 1D, 2D and 3D regular grids.

Each layer is a "neuron layer" whose linear operators between channels are parameterised by one
learned multigrid V-cycle (:class:`sciops.layers.multigrid.MultigridConv`)::

    u_0 = x,   u_{k+1} = act( MgConv_k(u_k) + W_k u_k + b_k ),   k = 0 .. layers-1,

with no activation after the last layer. W_k is a pointwise (1x1) linear map. There are no lifting
or projection layers (as in the paper): the first layer maps ``in_channels`` -> ``width``, the last
``width`` -> ``out_channels``. Inputs and outputs are channel-first (batch, channels, *space) on the
same grid; no grid coordinates are appended (the boundary condition of the padding and the
coefficient field carry the position information).

Bias function. The paper's bias B_k is a function. ``bias_grid=0`` (default) makes it a learned
constant per output channel (the bias of W_k), the same function at every resolution, exactly
equivariant under a periodic grid's shifts (the MgNO reference code does this too).
``bias_grid=m`` (bounded geometry only) adds a learned field per output channel on an m^d vertex
grid over the domain, interpolated (multi)linearly to the data's grid with the corners on the
boundary nodes: a fixed function of position, so it too is the same function at every resolution.
It gives the network the solution's mean shape directly (a constant offset costs the V-cycle a
global correction, and relative H1 losses barely see offsets); on 64^2 Darcy the constant-bias
model kept a near-constant offset in short runs, which the bias function and an ``l2+h1`` loss remove.

Boundary conditions (``boundary``) act through how every stencil sees one point past the grid
edge: ``"dirichlet"`` zero padding, ``"periodic"`` circular padding, ``"reflect"`` mirror padding;
``"auto"`` picks dirichlet for ``geometry="bounded"`` and periodic for ``geometry="periodic"``.
With vertex grids (bounded problems, boundary points included) the zero ghost point sits one grid
spacing outside the boundary.

Grid sizes: no grid is padded or cropped; a V-cycle with L ``levels`` coarsens n -> ceil(n / 2)
(coarse point i on fine point 2 i). Dirichlet and reflect layers run on any size with at least
2^(L-1) + 1 points per dimension (17 for the default L = 5: 17, 21, 33, 64, 65, ... all work and
come back at exactly their size); periodic layers need every size divisible by 2^(L-1). Other sizes
raise ``ValueError`` naming the size and what is allowed (the number of levels is never reduced
behind the user's back: coarse levels trained at one resolution but skipped at another would
silently change the operator, and levels never trained would add untrained weights).

Resolution. The weights are local stencils, so a model trained at 33^2 runs at 65^2 (or 21^2)
unchanged. It is not a discretisation-invariant operator: the stencils are not rescaled with the
grid spacing and the V-cycle's depth in physical units changes with resolution, so accuracy at a
resolution other than the training one is not guaranteed and must be measured: in development runs
on Darcy the error at twice or about two thirds the training resolution was more than ten times the
error at the training resolution, while an FNO trained on the same data kept its error (figures on
the documentation's Darcy operators benchmark page, docs/benchmarks/darcy-operators.md). Train at
the resolution you serve.

Training. The stencils use an equalised-learning-rate parameterisation (see
:mod:`sciops.layers.multigrid`); with the default trainer (AdamW, one-cycle) learning rates of
1e-2 to 2e-2 worked best in short runs, 5e-3 converges more slowly. CPU note: the forward pass
runs in channels-last memory layout (oneDNN convolutions ~30 % faster); the output is returned
contiguous.

Parameters. With the defaults (width 24, 4 layers, 5 levels, one pre- and one post-smoothing step,
2D, one input and one output channel) the model has 314,573 parameters: each inner 24 -> 24 layer
125,592 (per level a 3x3 A, S_pre, S_post and R and a 4x4 P, only S on the coarsest grid, plus the
1x1 map and bias), the first layer 39,756, the last 23,633 (its restrictions act on the 24-channel
input). The paper's Darcy model has about 0.57M: its code has a separate A for every smoothing
step and restriction and also restricts u through a learned stride-2 convolution. Width 32 gives
556,613 here, the nearest to the paper's budget.

Reference: J. He, X. Liu, J. Xu, "MgNO: Efficient parameterization of linear operators via
multigrid", ICLR 2024; J. He, J. Xu, "MgNet: A unified framework of multigrid and convolutional
neural network", Sci. China Math. 2019.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sciops.layers.grid import GEOMETRIES
from sciops.layers.multigrid import MultigridConv
from sciops.layers.pointwise import Pointwise
from sciops.operators.base import Operator

BOUNDARIES = {"dirichlet": "zeros", "periodic": "circular", "reflect": "reflect"}
_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh, "silu": F.silu}


class MgNO(Operator):
    """Args:
        in_channels, out_channels: field channels of the input and the output.
        ndim: spatial dimension (1, 2 or 3). geometry: "bounded" or "periodic" (picks the
            boundary when ``boundary="auto"``).
        width: channels of the hidden layers. layers: number of MgNO layers (>= 1).
        levels: grids per V-cycle (finest included). pre_smooth, post_smooth: smoothing steps per
            level, an int or a list with one entry per level (finest first).
        boundary: "auto", "dirichlet", "periodic" or "reflect".
        activation: "gelu", "relu", "tanh" or "silu".
        bias_grid: 0 for a constant bias per channel, m >= 2 for a learned bias function on an m^d
            vertex grid (bounded geometry; see module docstring).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, ndim: int = 2, geometry: str = "bounded",
                 width: int = 24, layers: int = 4, levels: int = 5, pre_smooth: int | list[int] = 1,
                 post_smooth: int | list[int] = 1, boundary: str = "auto", activation: str = "gelu",
                 bias_grid: int = 0):
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if boundary != "auto" and boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {('auto', *BOUNDARIES)}, got {boundary!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        for name, value in (("width", width), ("layers", layers), ("in_channels", in_channels),
                            ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(bias_grid, bool) or not isinstance(bias_grid, int) or bias_grid < 0 or bias_grid == 1:
            raise ValueError(f"bias_grid must be 0 (constant bias) or an integer >= 2, got {bias_grid!r}")
        if bias_grid and geometry != "bounded":
            raise ValueError(f"bias_grid applies to bounded geometry (vertex grids); got geometry={geometry!r}, "
                             "use bias_grid=0")
        if boundary == "auto":
            boundary = "periodic" if geometry == "periodic" else "dirichlet"
        self.ndim, self.geometry, self.boundary = ndim, geometry, boundary
        self.in_channels, self.out_channels = in_channels, out_channels
        self.act = ACTIVATIONS[activation]
        channels = [in_channels] + [width] * (layers - 1) + [out_channels]
        self.mg = nn.ModuleList(
            MultigridConv(cin, cout, ndim=ndim, levels=levels, pre_smooth=pre_smooth, post_smooth=post_smooth,
                          padding_mode=BOUNDARIES[boundary])
            for cin, cout in zip(channels[:-1], channels[1:]))
        self.pointwise = nn.ModuleList(Pointwise(cin, cout) for cin, cout in zip(channels[:-1], channels[1:]))
        self.bias_fields = nn.ParameterList(nn.Parameter(torch.zeros(1, c, *(bias_grid,) * ndim))
                                            for c in channels[1:]) if bias_grid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.ndim + 2:
            raise ValueError(f"MgNO expects (batch, channels, {self.ndim} spatial dims), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"MgNO expects {self.in_channels} input channels, got {x.shape[1]} "
                             f"(shape {tuple(x.shape)})")
        if self.ndim > 1:  # oneDNN convolutions on CPU are ~30 % faster in channels-last layout
            x = x.contiguous(memory_format=torch.channels_last if self.ndim == 2 else torch.channels_last_3d)
        last = len(self.mg) - 1
        for i, (mg, pointwise) in enumerate(zip(self.mg, self.pointwise)):
            x = mg(x) + pointwise(x)
            if self.bias_fields is not None:
                x = x + F.interpolate(self.bias_fields[i], size=x.shape[2:], mode=_LINEAR[self.ndim],
                                      align_corners=True)
            if i < last:
                x = self.act(x)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"boundary={self.boundary!r}"
