"""FNO variants for trajectories: the autoregressive FNO-2D and the space-time FNO-3D (Li et al. 2021).

Both map an initial state (batch, C, y, x) to the trajectory of the next ``time_steps`` records
(batch, C, T, y, x) - the contract of trajectory problems such as ``navier-stokes``, whose
``solve(w0)`` returns w at t = dt, 2 dt, ..., T dt (the input state not repeated).

* ``fno-rollout`` (:class:`FNORollout`): one FNO-2D step w(t) -> w(t + dt), applied
  autoregressively, as a residual update w + FNO(w) by default. From an input segment of K
  records (batch, C, K, y, x) the step sees the last K states as K C channels, w(t + dt) =
  w(t) + FNO(w(t - (K - 1) dt), ..., w(t)), and the window slides along the rollout. Training goes
  through the whole rollout (the loss is on all T predicted records, gradients flow through every
  step), which is the multi-step rollout loss; ``forward(x, steps=...)`` rolls out further than the training horizon.
  Its input and output are the same physical field, so it asks the trainer for one normalisation
  for both (``shared_normalization``). On ``sphere`` data (shallow-water) it treats the (lat, lon)
  grid as a periodic box: the flat-geometry baseline of ``sfno``.
* ``fno3d`` (:class:`FNO3D`): the input repeated over the T output times, a 3D FNO over
  (t, y, x) with the (t, y, x) grid embedding. Time is not periodic: it is zero-padded by
  ``time_padding`` of T before the Fourier layers and cropped after, so the FFT does not wrap the
  last record onto the first. An input segment of K records (batch, C, K, y, x) enters as K C
  channels. With ``residual`` (the default) the network predicts the change from the last input
  state, w(t_j) = w_last + FNO(...)_j, with one normalisation for inputs and outputs (the same
  field): without it, the 3D FNO has to learn the identity part of the map from scratch, and its
  validation error on navier-stokes was clearly higher in development runs (the figures are on the
  documentation's Navier-Stokes benchmark page, docs/benchmarks/navier-stokes.md, where
  scripts/bench_ns_operators.py measures the defaults).
* ``st-fno`` (:class:`SpatiotemporalFNO`): the spatiotemporal FNO of Cao et al. (ICLR 2025),
  K input records -> T output records (10 -> 40 in the paper) with space-time spectral
  convolutions, the FNO-3D above with an input segment; trained with the relative Bochner
  L2(0, T; L2) loss (``--loss l2`` on trajectories) and fine-tuned with Spectral-Refiner
  (``sciops finetune``, :mod:`sciops.workflows.refine`). Not the spherical SFNO.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sciops.layers.spectral_conv import SpectralConv
from sciops.operators.base import Operator
from sciops.operators.fno import FNO


class Autoregressive(Operator):
    """The rollout of a one-step network ``self.step`` (set by subclasses) over a sliding window of
    ``input_steps`` states (see ``fno-rollout`` in the module docstring); also used by ``sfno``."""

    shared_normalization = True
    time_steps: int
    input_steps: int | None
    residual: bool

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        if self.input_steps is None:
            window = x.unsqueeze(2)
        elif x.dim() != 5 or x.shape[2] != self.input_steps:
            raise ValueError(f"expected an input segment (batch, channels, {self.input_steps}, y, x), "
                             f"got {tuple(x.shape)}")
        else:
            window = x
        states = []
        for _ in range(self.time_steps if steps is None else steps):
            update = self.step(window.flatten(1, 2))
            state = window[:, :, -1] + update if self.residual else update
            window = torch.cat([window[:, :, 1:], state.unsqueeze(2)], dim=2)
            states.append(state)
        return torch.stack(states, dim=2)


class FNORollout(Autoregressive):
    """Args:
        time_steps: records predicted by ``forward`` (from the data).
        modes, width, layers, padding, projection: of the one-step FNO (see :class:`FNO`).
        residual: predict the increment, w(t + dt) = w(t) + FNO(w(t)).
        input_steps: records in the input segment (from the data; None: one state).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, time_steps: int, modes: int = 12,
                 width: int = 32, layers: int = 4, ndim: int = 2, geometry: str = "periodic",
                 input_steps: int | None = None, padding: float = 0.0, projection: int = 128,
                 residual: bool = True):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"fno-rollout feeds its output back as input: in_channels ({in_channels}) "
                             f"must equal out_channels ({out_channels})")
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        if input_steps is not None and input_steps < 1:
            raise ValueError(f"input_steps must be >= 1, got {input_steps}")
        self.time_steps, self.residual, self.input_steps = time_steps, residual, input_steps
        if geometry == "sphere":  # the flat baseline of sfno: the (lat, lon) grid taken as a periodic box
            geometry = "periodic"
        self.step = FNO(in_channels * (input_steps or 1), out_channels, modes=modes, width=width, layers=layers,
                        ndim=ndim, geometry=geometry, padding=padding, projection=projection)


class FNO3D(Operator):
    """Args:
        time_steps: records predicted (from the data).
        input_steps: records in the input segment when the inputs are one (from the data; None: one state).
        modes: kept modes in (t, y, x); an int applies to all three (time keeps at most half the
            padded length). width, layers, projection: as in :class:`FNO`.
        time_padding: fraction of T zero-padded after the last record.
        padding: spatial padding fraction for bounded problems (as in :class:`FNO`).
        residual: predict the change from the last input state (needs in_channels == out_channels).
        last_modes: modes of the last spectral layer if different (set by Spectral-Refiner
            fine-tuning, :mod:`sciops.workflows.refine`, which extends that layer to the full grid).
    """

    shared_normalization = True  # input records and outputs are the same field (needed by ``residual``)

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, time_steps: int,
                 modes: int | tuple[int, int, int] = (6, 12, 12), width: int = 20, layers: int = 4,
                 ndim: int = 2, geometry: str = "periodic", input_steps: int | None = None,
                 time_padding: float = 0.3, padding: float = 0.0, projection: int = 128,
                 residual: bool = True, last_modes: tuple[int, int, int] | None = None):
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"residual=true adds the last input state to every output record: in_channels "
                             f"({in_channels}) must equal out_channels ({out_channels}); set residual=false")
        self.residual = residual
        if ndim != 2:
            raise ValueError(f"fno3d works on 2D fields (space-time 3D); got ndim={ndim}")
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        if not 0.0 <= time_padding <= 1.0:
            raise ValueError(f"time_padding must be a fraction in [0, 1], got {time_padding}")
        self.time_steps, self.time_padding = time_steps, time_padding
        self.spatial_padding = padding if geometry == "bounded" else 0.0
        # Padding is done here (time always, space for bounded problems); the FNO sees a periodic box.
        self.input_steps = input_steps
        self.fno = FNO(in_channels * (input_steps or 1), out_channels, modes=modes, width=width, layers=layers, ndim=3,
                       geometry="periodic", projection=projection)
        if last_modes is not None:
            self.fno.spectral[-1] = SpectralConv(width, width, tuple(last_modes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_steps is not None:
            if x.dim() != 5 or x.shape[2] != self.input_steps:
                raise ValueError(f"expected an input segment (batch, channels, {self.input_steps}, y, x), "
                                 f"got {tuple(x.shape)}")
            last = x[:, :, -1]
            x = x.flatten(1, 2)  # the input records become channels, repeated over the output times
        elif x.dim() != 4:
            raise ValueError(f"fno3d expects (batch, channels, y, x), got {tuple(x.shape)}")
        else:
            last = x
        b, c, ny, nx = x.shape
        t = self.time_steps
        z = x.unsqueeze(2).expand(b, c, t, ny, nx)
        pt = round(self.time_padding * t)
        # int(n): sizes are tensors under torch.jit.trace, which round() does not take; without spatial
        # padding the sizes are not read, so that torch.export keeps them dynamic
        py, px = (round(self.spatial_padding * int(n)) if self.spatial_padding else 0 for n in (ny, nx))
        if pt or py or px:
            z = F.pad(z, (0, px, 0, py, 0, pt))
        out = self.fno(z)[:, :, :t, :ny, :nx]
        return out + last.unsqueeze(2) if self.residual else out


class SpatiotemporalFNO(FNO3D):
    """FNO3D from an input segment of ``input_steps`` records (required); see the module docstring."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, time_steps: int, input_steps: int,
                 modes: int | tuple[int, int, int] = (8, 12, 12), width: int = 20, layers: int = 4,
                 ndim: int = 2, geometry: str = "periodic", time_padding: float = 0.3, padding: float = 0.0,
                 projection: int = 128, residual: bool = True, last_modes: tuple[int, int, int] | None = None):
        super().__init__(in_channels, out_channels, time_steps=time_steps, modes=modes, width=width, layers=layers,
                         ndim=ndim, geometry=geometry, input_steps=input_steps, time_padding=time_padding,
                         padding=padding, projection=projection, residual=residual, last_modes=last_modes)
