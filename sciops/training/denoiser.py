"""A learned magnitude denoiser for plug-and-play ADMM (``sciops.solvers.radar_recon.pnp_admm``).

Training (``train_denoiser``): clean images u are the output field of a sciops dataset (for the
``radar`` problem the ground-truth magnitudes |x|, max 1). Each batch draws one noise level per
sample, sigma ~ U(``sigma_min``, ``sigma_max``), forms v = u + sigma n with n standard Gaussian,
and trains a :class:`sciops.operators.unet.UNet` (sigmoid output) on
(v, sigma) -> u with the mean squared error. The noise level enters as a second input channel
filled with sigma (the non-blind denoiser of FFDNet / DPIR), so one network serves every strength.
AdamW with a one-cycle schedule; the batch order and the noise come from generators seeded with
``seed``; the last ``val_fraction`` of the file is held out and the weights with the lowest
validation error (fixed noise drawn with seed + 1) are kept.

Run directory: ``config.json`` (UNet hyperparameters, noise range, data, history) and
``weights.pt`` through :mod:`sciops.runs.storage`, written atomically (``torch.load(weights_only=True)``).
``LearnedDenoiser.load(run_dir)`` rebuilds it; the object is the callable ``D(magnitude, sigma)``
that ``pnp_admm(..., prox=D)`` expects: magnitude (batch, *space) tensor (PnP passes it divided by
its maximum, so in [0, 1]), sigma the noise level (PnP's ``strength``), returns (batch, *space) on
the input's device and dtype. The solvers never import sciops: the caller passes this callable.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from sciops.datasets import open_dataset
from sciops.operators.unet import UNet
from sciops.runs import storage as ckpt
from sciops.training.config import TrainConfig
from sciops.version import __version__


class LearnedDenoiser:
    """D(magnitude, sigma) for PnP-ADMM around a (noisy image, sigma map) -> clean image U-Net."""

    def __init__(self, net: UNet, config: dict):
        if net.in_channels != 2 or net.out_channels != 1:
            raise ValueError(f"a denoiser network takes 2 channels (image, sigma) to 1, got {net.in_channels} -> "
                             f"{net.out_channels}")
        self.net, self.config = net.eval(), config

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "LearnedDenoiser":
        path = ckpt.check_run_dir(path)
        config = ckpt.load_json(path / ckpt.CONFIG)
        if "denoiser" not in config:
            raise ValueError(f"{path / ckpt.CONFIG} is not a denoiser run (no 'denoiser' entry)")
        net = UNet(2, 1, ndim=config["denoiser"]["ndim"], **config["denoiser"]["hyperparameters"])
        net.load_state_dict(ckpt.load_tensors(path / ckpt.WEIGHTS, map_location="cpu"))
        return cls(net.to(device), config)

    @torch.no_grad()
    def __call__(self, magnitude: torch.Tensor, sigma: float) -> torch.Tensor:
        ndim = self.net.ndim
        if magnitude.dim() not in (ndim, ndim + 1):
            raise ValueError(f"denoiser expects (batch, {ndim} grid dims) or ({ndim} grid dims), "
                             f"got {tuple(magnitude.shape)}")
        single = magnitude.dim() == ndim
        m = magnitude.unsqueeze(0) if single else magnitude
        device = next(self.net.parameters()).device
        x = m.to(device, torch.float32).unsqueeze(1)
        out = self.net(torch.cat([x, torch.full_like(x, float(sigma))], dim=1))[:, 0]
        out = out.to(magnitude.device, magnitude.dtype)
        return out[0] if single else out


def _noisy(u: torch.Tensor, sigma_range: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """(batch, 1, *space) clean -> (batch, 2, *space) [noisy, sigma map]."""
    lo, hi = sigma_range
    sigma = lo + (hi - lo) * torch.rand((u.shape[0],) + (1,) * (u.dim() - 1), generator=gen)
    noisy = u + sigma * torch.randn(u.shape, generator=gen)
    return torch.cat([noisy, sigma.expand_as(u)], dim=1)


@torch.no_grad()
def _mse(net: UNet, x: torch.Tensor, u: torch.Tensor, batch: int = 8) -> float:
    """Mean over samples of the per-sample MSE of net(x) against u, in batches of ``batch``."""
    per_sample = [torch.mean((net(x[i:i + batch]) - u[i:i + batch]) ** 2, dim=tuple(range(1, u.dim())))
                  for i in range(0, len(u), batch)]
    return float(torch.cat(per_sample).mean())


def train_denoiser(data: str | Path, run_dir: str | Path, *, width: int = 8, levels: int = 3, sigma_min: float = 0.0,
                   sigma_max: float = 0.2, epochs: int = 5, batch_size: int = 4, lr: float = 2e-3,
                   n_train: int | None = None, val_fraction: float = 0.1, seed: int = 0) -> dict:
    """Train the denoiser on the output field of ``data`` into ``run_dir``; returns the history summary.
    ``val_fraction`` and ``n_train`` split the file as for the grid trainer (``TrainConfig.split``)."""
    if not 0 <= sigma_min <= sigma_max or sigma_max <= 0:
        raise ValueError(f"need 0 <= sigma_min <= sigma_max and sigma_max > 0, got {sigma_min}, {sigma_max}")
    run_dir = Path(run_dir)
    if (run_dir / ckpt.CONFIG).exists():
        raise ValueError(f"run directory {run_dir} already holds a run; choose another directory")
    settings = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction, n_train=n_train,
                           seed=seed)  # validates them
    ds = open_dataset(data)
    if len(ds.output_fields) != 1:
        raise ValueError(f"the denoiser trains on one output field, {data} has {ds.output_fields}")
    n = ds.n_samples
    n_fit, n_val = settings.split(n, data)
    _, y0 = ds.get_batch([0])
    ndim = y0.dim() - 2
    hparams = {"width": width, "levels": levels, "input_mode": "channels", "output": "sigmoid"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(2, 1, ndim=ndim, **hparams)
    config = {"sciops_version": __version__,
              "denoiser": {"ndim": ndim, "hyperparameters": hparams, "sigma_min": sigma_min, "sigma_max": sigma_max},
              "data": {"path": str(Path(data).resolve()), "n_train": n_fit, "n_val": n_val},
              "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}}
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(n_fit / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.2)
    noise = torch.Generator().manual_seed(seed)
    val_y = ds.get_batch(list(range(n - n_val, n)))[1]
    val_x = _noisy(val_y, (sigma_min, sigma_max), torch.Generator().manual_seed(seed + 1))
    history, best = [], float("inf")
    for epoch in range(epochs):
        net.train()
        t0, total = time.perf_counter(), 0.0
        order = torch.randperm(n_fit, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        for start in range(0, n_fit, batch_size):
            _, u = ds.get_batch(order[start:start + batch_size].tolist())
            loss = torch.mean((net(_noisy(u, (sigma_min, sigma_max), noise)) - u) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(u)
        val = _mse(net.eval(), val_x, val_y)
        history.append({"epoch": epoch + 1, "train_mse": total / n_fit, "val_mse": val,
                        "seconds": time.perf_counter() - t0})
        if val < best:
            best = val
            ckpt.save_tensors(run_dir / ckpt.WEIGHTS, net.state_dict())
    config["history"] = history
    ckpt.save_json(run_dir / ckpt.CONFIG, config)
    return {"epochs": epochs, "best_val_mse": best, "train_seconds": sum(h["seconds"] for h in history)}
