"""A learned multigrid V-cycle on multi-channel fields (the MgConv of MgNO), in 1, 2 or 3 dimensions.

:class:`MultigridConv` maps a field f (batch, C_in, *space) to u (batch, C_out, *space) by one
V-cycle of a learned linear multigrid method for "A u = f", in the correction scheme of
MgNet / MgNO (He, Xu 2019; He, Liu, Xu, ICLR 2024). With levels l = 0 (finest) .. L - 1::

    down, l = 0 .. L-1:   u_l = S_l^1 f_l                                (first step, from u = 0)
                          u_l <- u_l + S_l^i (f_l - A_l u_l),  i = 2 .. pre_smooth_l
                          f_{l+1} = R_l (f_l - A_l u_l)                  (restrict the residual)
    up,   l = L-2 .. 0:   u_l <- u_l + P_l u_{l+1}                       (coarse-grid correction)
                          u_l <- u_l + S_l^i (f_l - A_l u_l),  i = 1 .. post_smooth_l
    result: u_0

Every operator is a learned convolution without bias: A_l (C_out -> C_in) and S_l^i (C_in -> C_out)
are 3^d stencils, R_l (C_in -> C_in) a 3^d stencil applied with stride 2, P_l (C_out -> C_out) a 4^d
transposed convolution with stride 2. A_l is shared by all smoothing steps and the restriction of
level l (one discrete operator per grid, as in multigrid); each smoothing step has its own S.
Operators a configuration never uses (A on the coarsest grid when it is smoothed once) are not
created.

Grids and alignment. The coarse point i sits on the fine point 2 i: R_l reads fine points
2i-1, 2i, 2i+1 and P_l writes coarse point i onto fine points 2i-1 .. 2i+2 (PyTorch's
``ConvTranspose(kernel 4, stride 2, padding 1)``, as in the MgNO code). A fine size n has the coarse
size ceil(n / 2). On a vertex grid of 2^k + 1 points (boundary included) the coarse grid is the
vertex grid of 2^(k-1) + 1 points, boundary included; on 2^k points, 2^(k-1) points. P's output has
2 ceil(n / 2) >= n points and is cropped to the n fine points: what is cropped is the stencil's
overhang past the grid, never input data; no grid is ever padded with extra points. Bilinear
interpolation (1D weights 1/2, 1, 1/2, 0 at offsets -1, 0, 1, 2) and full weighting are special
cases of P and R.

Parameterisation. Each stencil is stored as v (initially uniform in +-1/2) and applied as
``v * stencil_scale(v)`` = ``v * STENCIL_GAIN / sqrt(fan_in)`` (fan_in: the inputs one output point
reads), so its initial values are nn.Conv's default, but Adam's steps,
which have a fixed size per entry, are relative to the stencil's size ("equalised learning rate",
Karras et al. 2018). The V-cycle multiplies up to ~4 L stencils along its coarse path; stored the
plain way (entries ~0.04 at width 24) a learning rate of 1e-2 changes them by ~25 % per step and
training diverged within 4 epochs on Darcy 21^2, while this form trains stably at lr 5e-3 .. 4e-2
(measured; best near 2e-2 in short runs).

Boundary conditions enter only through how every stencil sees one point past the grid edge
(``padding_mode``): ``"zeros"`` (homogeneous Dirichlet), ``"circular"`` (periodic) or ``"reflect"``
(mirror about the edge point, even extension). Transposed convolutions pad their coarse input by one
point the same way, so periodic layers are periodic at every level (PyTorch's ``ConvTranspose``
alone would zero-pad).

With ``"circular"`` the coarse grids tile the torus exactly and a hand-set layer is the textbook
periodic V-cycle. With ``"zeros"`` every level has its ghost points one of *its* spacings past the
edge, so the coarse ghosts lie 2^l - 1 fine spacings beyond the fine ones: a hand-set layer is then
not the textbook Dirichlet V-cycle (learned stencils, as in MgNO, do not need it to be).

Allowed grid sizes (checked on every call by :func:`level_sizes`, ``ValueError`` otherwise):
``"circular"`` needs every size divisible by 2^(L-1), so each coarse grid tiles the torus exactly
and the layer commutes with circular shifts by multiples of 2^(L-1); ``"zeros"`` and ``"reflect"``
need at least 2^(L-1) + 1 points per dimension, so the coarsest grid keeps >= 2 points (17 for
L = 5; every size from there on works, odd or even).

The stencils are local and scale-free, so a layer runs on any allowed grid; what it computes at a
resolution other than the training one is whatever the learned stencils do there (a true multigrid
would rescale A by h^-2; the learned one is not told h).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PADDING_MODES = ("zeros", "circular", "reflect")

STENCIL_GAIN = 2.0  # see "Parameterisation" in the module docstring
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def level_sizes(sizes: tuple[int, ...], levels: int, padding_mode: str) -> list[tuple[int, ...]]:
    """Grid sizes of the ``levels`` grids of a V-cycle on a grid of ``sizes`` (finest first).

    Raises ``ValueError`` naming the size and the allowed sizes when the grid cannot be coarsened
    ``levels - 1`` times (see module docstring)."""
    factor = 2 ** (levels - 1)
    for n in sizes:
        if padding_mode == "circular":
            if n % factor:
                raise ValueError(f"grid size {n} is not allowed: a periodic (circular) multigrid with {levels} levels "
                                 f"needs every grid size to be a multiple of 2^{levels - 1} = {factor}; "
                                 "use another resolution or fewer levels")
        elif n < factor + 1:
            raise ValueError(f"grid size {n} is too small: a multigrid with {levels} levels needs at least "
                             f"2^{levels - 1} + 1 = {factor + 1} points per dimension (any size from there on); "
                             "use a finer grid or fewer levels")
    out = [tuple(sizes)]
    for _ in range(levels - 1):
        out.append(tuple((n + 1) // 2 for n in out[-1]))
    return out


def stencil_scale(w: torch.Tensor) -> float:
    """The factor a stored stencil is multiplied by when applied: STENCIL_GAIN / sqrt(fan_in).

    3^d stencils (out, in, 3, ..): fan_in = in 3^d. 4^d prolongations (coarse, fine, 4, ..): each fine
    point receives 2^d of the 4^d taps per coarse channel, fan_in = coarse 2^d."""
    ndim = w.dim() - 2
    fan_in = w.shape[1] * 3 ** ndim if w.shape[2] == 3 else w.shape[0] * 2 ** ndim
    return STENCIL_GAIN / math.sqrt(fan_in)


def _stencil(out_channels: int, in_channels: int, ndim: int, size: int) -> nn.Parameter:
    """A stored (out, in, size^d) stencil v, uniform in +-1/2 (applied as v * stencil_scale(v), whose
    initial bound is nn.Conv's default 1/sqrt(fan_in))."""
    return nn.Parameter(torch.empty(out_channels, in_channels, *(size,) * ndim).uniform_(-0.5, 0.5))


class _Level(nn.Module):
    """The learned operators of one grid level (see :class:`MultigridConv`)."""

    def __init__(self, cin: int, cout: int, ndim: int, pre: int, post: int, coarsest: bool):
        super().__init__()
        self.A = _stencil(cin, cout, ndim, 3) if (pre > 1 or not coarsest) else None
        self.pre = nn.ParameterList(_stencil(cout, cin, ndim, 3) for _ in range(pre))
        self.post = nn.ParameterList(_stencil(cout, cin, ndim, 3) for _ in range(0 if coarsest else post))
        self.R = None if coarsest else _stencil(cin, cin, ndim, 3)
        self.P = None if coarsest else _stencil(cout, cout, ndim, 4)  # (coarse in, fine out, 4^d)


class MultigridConv(nn.Module):
    """One learned V-cycle f -> u (see module docstring).

    Args:
        in_channels: channels of f (the right-hand side). out_channels: channels of u.
        ndim: spatial dimension (1, 2 or 3). levels: number of grids (>= 1; 1 means smoothing only).
        pre_smooth, post_smooth: smoothing steps per level, an int for every level or a list with one
            entry per level (finest first); pre >= 1 (the first step starts the iterate), post >= 0
            (there is no post-smoothing on the coarsest grid).
        padding_mode: "zeros" (Dirichlet), "circular" (periodic) or "reflect".

    Shapes: (batch, in_channels, *space) -> (batch, out_channels, *space), same grid.
    """

    def __init__(self, in_channels: int, out_channels: int, *, ndim: int = 2, levels: int = 5,
                 pre_smooth: int | list[int] = 1, post_smooth: int | list[int] = 1, padding_mode: str = "zeros"):
        super().__init__()
        if ndim not in _CONV:
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        if min(in_channels, out_channels) < 1:
            raise ValueError(f"channels must be >= 1, got in_channels={in_channels}, out_channels={out_channels}")
        pre = _per_level("pre_smooth", pre_smooth, levels, minimum=1)
        post = _per_level("post_smooth", post_smooth, levels, minimum=0)
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.levels, self.padding_mode = levels, padding_mode
        self.pre_smooth, self.post_smooth = pre, post
        self.grids = nn.ModuleList(_Level(in_channels, out_channels, ndim, pre[l], post[l], l == levels - 1)
                                   for l in range(levels))

    # --- stencils with the boundary condition --------------------------------------------------------
    def _conv(self, x: torch.Tensor, w: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """3^d stencil, one ghost point per side filled by the padding mode; stride 2 restricts."""
        w = w * stencil_scale(w)
        if self.padding_mode == "zeros":
            return _CONV[self.ndim](x, w, stride=stride, padding=1)
        return _CONV[self.ndim](F.pad(x, (1,) * (2 * self.ndim), mode=self.padding_mode), w, stride=stride)

    def _prolong(self, u: torch.Tensor, w: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        """Coarse point i -> fine points 2i-1 .. 2i+2, cropped to the fine grid ``sizes``."""
        w = w * stencil_scale(w)
        if self.padding_mode == "zeros":  # zero ghost points contribute nothing: no copy needed
            out, start = _CONV_T[self.ndim](u, w, stride=2, padding=1), 0
        else:  # one ghost point per side; output index 0 is then fine point -3
            out, start = _CONV_T[self.ndim](F.pad(u, (1,) * (2 * self.ndim), mode=self.padding_mode), w, stride=2), 3
        return out[(..., *(slice(start, start + n) for n in sizes))]

    # --- the V-cycle ---------------------------------------------------------------------------------
    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.dim() != self.ndim + 2 or f.shape[1] != self.in_channels:
            raise ValueError(f"MultigridConv expects (batch, {self.in_channels}, {self.ndim} spatial dims), "
                             f"got {tuple(f.shape)}")
        sizes = level_sizes(tuple(f.shape[2:]), self.levels, self.padding_mode)
        rhs, sols = [], []
        for l, grid in enumerate(self.grids):
            u = self._conv(f, grid.pre[0])
            for S in grid.pre[1:]:
                u = u + self._conv(f - self._conv(u, grid.A), S)
            rhs.append(f)
            sols.append(u)
            if grid.R is not None:
                f = self._conv(f - self._conv(u, grid.A), grid.R, stride=2)
        u = sols[-1]
        for l in range(self.levels - 2, -1, -1):
            grid = self.grids[l]
            u = sols[l] + self._prolong(u, grid.P, sizes[l])
            for S in grid.post:
                u = u + self._conv(rhs[l] - self._conv(u, grid.A), S)
        return u

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, ndim={self.ndim}, levels={self.levels}, "
                f"pre_smooth={self.pre_smooth}, post_smooth={self.post_smooth}, padding_mode={self.padding_mode!r}")


def _per_level(name: str, value, levels: int, minimum: int) -> list[int]:
    """An int (every level) or a list of ints (one per level) -> list of ``levels`` ints >= minimum."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * levels
    if len(values) != levels or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"{name} must be an integer >= {minimum} or a list of {levels} such integers "
                         f"(one per level), got {value!r}")
    return values
