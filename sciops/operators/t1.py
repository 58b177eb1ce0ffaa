"""T1, "Transform Once" (Poli et al., NeurIPS 2022): every layer in the frequency domain.

    x --rfft2 (once)--> kept modes z --lift--> L x { z + M( act( W(k) z ) ) } --project--> irfft2 (once)

* The transform is the orthonormal 2D real DFT; the kept modes are the block of the lowest
  ``modes`` frequencies per dimension (ky in [-m1, m1), kx in [0, m2)), as in FNO's spectral
  layers. Periodic problems only: on a bounded grid the DFT would see the jump between opposite
  boundaries.
* Each layer: a complex channel mix per mode W(k) (the FNO weight), an activation applied to the
  real and imaginary parts separately (GELU by default; the reference's sin is available, but it
  fits poorly when the coefficients of smooth fields are large, as they are here), a mode mix M along
  each frequency axis (a dense complex matrix over ky and one over kx, per channel: this is what
  couples modes, the job the pointwise nonlinearity in physical space does in an FNO), and a
  residual connection.
* Lift and projection are complex channel maps on the kept modes; the projection emits
  ``out_channels`` x T channels for trajectory data (all records at once), turned back into
  fields by one inverse transform. The output is band-limited to the kept modes.
* Variance-preserving initialisation: with the orthonormal transform, the kept block of an N-point
  field of unit variance carries only modes / N of its energy, so the lift is drawn with standard
  deviation gain sqrt(N / (fan_in * modes)) (N of the reference grid ``resolution``^2, complex
  weights with E|w|^2 = std^2); the maps inside the frequency domain are drawn with
  gain / sqrt(fan_in), which preserves the variance of the coefficients they act on, except the
  last map of each residual branch, scaled by a further 1 / sqrt(layers) so the sum of the L
  branches does not grow the variance with depth.

The operator runs at any resolution whose half-size is at least the kept modes (the coefficients
are rescaled by sqrt(N_train / N) so that a field sampled on a finer grid gives the same kept
coefficients).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sciops.operators.base import Operator


def _complex_param(*shape: int, std: float) -> nn.Parameter:
    """Complex Gaussian weights with E|w|^2 = std^2 (real and imaginary parts std / sqrt 2 each)."""
    return nn.Parameter(std * torch.randn(*shape, dtype=torch.cfloat))


class T1(Operator):
    """Args:
        time_steps: records to predict for trajectory data (None: one field per output channel).
        input_steps: records of an input segment (from the data; None: one state); they enter the
            lift as channels.
        modes: kept frequencies (ky on each side, kx) as an int or a pair.
        width: channels in the frequency domain. layers: number of frequency-domain layers.
        activation: "sin", "tanh" or "gelu", applied to real and imaginary parts.
        resolution: reference grid size per side: sets the initialisation scale and the coefficient
            rescaling between grids (any grid with enough points runs; this is not a restriction).
        gain: initialisation gain.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, time_steps: int | None = None,
                 modes: int | tuple[int, int] = 12, width: int = 48, layers: int = 8, ndim: int = 2,
                 geometry: str = "periodic", input_steps: int | None = None, activation: str = "gelu",
                 resolution: int = 64, gain: float = 1.0):
        super().__init__()
        self.input_steps = input_steps
        in_channels *= input_steps or 1  # the records of an input segment enter as channels
        if ndim != 2:
            raise ValueError(f"t1 works on 2D fields; got ndim={ndim}")
        if geometry != "periodic":
            raise ValueError("t1 uses the Fourier transform and needs a periodic problem; "
                             f"this problem's geometry is {geometry!r} (use fno or mgno)")
        activations = {"sin": torch.sin, "tanh": torch.tanh, "gelu": nn.functional.gelu}
        if activation not in activations:
            raise ValueError(f"activation must be one of {', '.join(activations)}, got {activation!r}")
        m1, m2 = (modes, modes) if isinstance(modes, int) else tuple(modes)
        if 2 * m1 > resolution or m2 > resolution // 2 + 1:
            raise ValueError(f"modes ({m1}, {m2}) do not fit a {resolution}^2 grid: need 2 * m1 <= n and m2 <= n // 2 + 1")
        self.modes, self.width, self.resolution = (m1, m2), width, resolution
        self.time_steps, self.out_channels = time_steps, out_channels
        self.act = activations[activation]
        n_modes = 2 * m1 * m2
        self.lift = _complex_param(in_channels, width, std=gain * math.sqrt(resolution ** 2 / (in_channels * n_modes)))
        inner = gain / math.sqrt(width)
        self.channel_mix = nn.ParameterList(_complex_param(2 * m1, m2, width, width, std=inner) for _ in range(layers))
        self.mix_y = nn.ParameterList(_complex_param(width, 2 * m1, 2 * m1, std=gain / math.sqrt(2 * m1)) for _ in range(layers))
        branch = gain / math.sqrt(m2 * layers)  # L residual branches each add ~1/L of the variance
        self.mix_x = nn.ParameterList(_complex_param(width, m2, m2, std=branch) for _ in range(layers))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(2 * m1, m2, width, dtype=torch.cfloat)) for _ in range(layers))
        outputs = out_channels * (time_steps or 1)
        self.project = _complex_param(width, outputs, std=gain / math.sqrt(width))

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            what = f"(batch, channels, {self.input_steps}, y, x)" if self.input_steps else "(batch, channels, y, x)"
            raise ValueError(f"t1 expects {what}, got {tuple(x.shape)}")
        m1, m2 = self.modes
        if min(x.shape[-2:]) < 2 * m1 or x.shape[-1] // 2 + 1 < m2:
            raise ValueError(f"grid {tuple(x.shape[-2:])} is too coarse for t1 with modes {self.modes}: "
                             f"need at least {2 * m1} points per side")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_steps is not None:
            if x.dim() != 5 or x.shape[2] != self.input_steps:
                raise ValueError(f"t1 expects (batch, channels, {self.input_steps}, y, x), got {tuple(x.shape)}")
            x = x.flatten(1, 2)
        self._check(x)
        m1, m2 = self.modes
        ny, nx = x.shape[-2:]
        scale = math.sqrt(self.resolution ** 2 / (ny * nx))  # same kept coefficients on any grid
        spectrum = torch.fft.rfft2(x, norm="ortho") * scale
        z = torch.cat([spectrum[..., :m1, :m2], spectrum[..., ny - m1:, :m2]], dim=-2)  # (B, C, 2 m1, m2)
        z = torch.einsum("bcyx,cw->byxw", z, self.lift)  # channels last inside the frequency domain
        for w, my, mx, b in zip(self.channel_mix, self.mix_y, self.mix_x, self.bias):
            h = torch.einsum("byxc,yxcd->byxd", z, w) + b
            h = torch.complex(self.act(h.real), self.act(h.imag))
            h = torch.einsum("byxc,cyk->bkxc", h, my)
            h = torch.einsum("byxc,cxk->bykc", h, mx)
            z = z + h
        out = torch.einsum("byxc,co->boyx", z, self.project) / scale
        full = out.new_zeros(out.shape[0], out.shape[1], ny, nx // 2 + 1)
        full[..., :m1, :m2] = out[..., :m1, :]
        full[..., ny - m1:, :m2] = out[..., m1:, :]
        y = torch.fft.irfft2(full, s=(ny, nx), norm="ortho")
        if self.time_steps is None:
            return y
        return y.view(y.shape[0], self.out_channels, self.time_steps, ny, nx)
