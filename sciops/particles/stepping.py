"""Training GIOROM particle time-steppers in memory, the pieces the run-directory trainer
(:mod:`sciops.particles.trainer`) is built from: windows of trajectories, random-walk input noise, the
normalised-acceleration loss, and :func:`train_stepper` / :func:`train_reconstruction`.

Data: positions (N, T, P, d) (a ``particles`` dataset's ``fields/position``) and particle types
(N, P). A training example is a window of H + 1 frames (H = ``model.history``) of one
trajectory on a sparse subsample of its particles (``n_sparse``, redrawn per example) and the
next frame. Following GNS (Sanchez-Gonzalez et al. 2020):

* random-walk input noise: the H input velocities get a random walk of H steps of standard
  deviation noise_std / sqrt(H), so the last velocity's noise has std ``noise_std`` (m/frame);
  positions integrate it; the target next position moves with
  the last input position's noise, so the model learns to keep the noisy velocity rather than to
  undo position noise;
* loss: MSE of the normalised acceleration (a - acc_mean) / acc_std, a = x_{t+1} - 2 x_t + x_{t-1},
  with the statistics pooled over the training data (set on the model first,
  ``sciops.solvers.mpm.gns_statistics``).

Adam with a constant learning rate; one window per optimiser step (graphs differ per window).
"""
from __future__ import annotations

import numpy as np
import torch

from sciops.operators.giorom import subsample
from sciops.solvers.mpm.statistics import NAMES as STATISTICS
from sciops.solvers.mpm.statistics import gns_statistics


def set_pooled_statistics(model, positions: np.ndarray) -> None:
    """Give ``model`` the GNS statistics of positions (N, T, P, d) pooled over all trajectories
    (``set_statistics`` takes them in the order of ``STATISTICS``)."""
    stats = gns_statistics(positions, pooled=True)
    model.set_statistics(*(stats[k] for k in STATISTICS))


def random_walk_noise(window: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Position noise (P, H + 1, d) of a random walk in the H velocities (the last velocity's noise has std ``std``)."""
    P, frames, d = window.shape
    steps = frames - 1
    increments = torch.randn((P, steps, d), generator=generator, dtype=window.dtype) * (std / steps ** 0.5)
    velocity = increments.cumsum(1)
    return torch.cat([torch.zeros(P, 1, d, dtype=window.dtype), velocity.cumsum(1)], 1).to(window.device)


def window_loss(model, frames: np.ndarray, types: np.ndarray, noise_std: float, generator: torch.Generator,
                device) -> torch.Tensor:
    """Normalised-acceleration MSE of ``model`` on one window: frames (H + 2, S, d) of S particles
    of types (S,), the last frame the target; random-walk noise of std ``noise_std`` if > 0."""
    window = torch.as_tensor(frames[:-1]).permute(1, 0, 2).contiguous()  # (S, H + 1, d)
    target = torch.as_tensor(frames[-1])
    if noise_std > 0:
        noise = random_walk_noise(window, noise_std, generator)
        window, target = window + noise, target + noise[:, -1]
    window, target = window.to(device), target.to(device)
    acc = target - 2 * window[:, -1] + window[:, -2]
    goal = (acc - model.acc_mean) / model.acc_std
    kinds = torch.as_tensor(types, dtype=torch.long, device=device)
    return torch.nn.functional.mse_loss(model(window, kinds), goal)


def train_stepper(model, positions: np.ndarray, types: np.ndarray, *, steps: int = 1000, lr: float = 1e-3,
                  noise_std: float = 0.0, n_sparse: int | None = None, seed: int = 0, device=None) -> list[float]:
    """Train ``model`` (a :class:`~sciops.operators.giorom.GIOROM`) in place; return the loss of
    every step. Sets the model's statistics from ``positions`` first."""
    x = np.asarray(positions, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != model.dim or x.shape[1] < model.history + 2:
        raise ValueError(f"positions must be (N, T, P, {model.dim}) with T >= {model.history + 2}, got {x.shape}")
    t = np.asarray(types)
    if t.shape != x.shape[:1] + x.shape[2:3]:
        raise ValueError(f"types must be (N, P) = {x.shape[:1] + x.shape[2:3]}, got {t.shape}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    set_pooled_statistics(model, x)
    model.to(device).train()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    N, T, P, _ = x.shape
    H = model.history
    losses = []
    for _ in range(int(steps)):
        n, k = int(rng.integers(N)), int(rng.integers(H, T - 1))
        idx = subsample(P, P if n_sparse is None else min(n_sparse, P), rng)
        loss = window_loss(model, x[n][k - H:k + 2][:, idx], t[n, idx], noise_std, gen, device)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def train_reconstruction(reconstruction, positions: np.ndarray, n_sparse: int, *, steps: int = 200, lr: float = 3e-3,
                         seed: int = 0, reference_frame: int = 0) -> list[float]:
    """Fit a :class:`~sciops.operators.giorom.KernelReconstruction` on dense trajectories (N, T, P, d):
    from the displacements of ``n_sparse`` random particles since ``reference_frame``, predict
    those of all particles (MSE in m^2); one random trajectory per step. Returns the losses."""
    x = np.asarray(positions, dtype=np.float32)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(reconstruction.parameters(), lr=lr)
    device = next(reconstruction.parameters()).device
    N, T, P, _ = x.shape
    losses = []
    for _ in range(int(steps)):
        n = int(rng.integers(N))
        idx = subsample(P, min(n_sparse, P), rng)
        traj = torch.as_tensor(x[n]).to(device)
        ref = traj[reference_frame]
        disp = traj - ref                                              # (T, P, d)
        loss = torch.nn.functional.mse_loss(reconstruction(ref[idx], disp[:, idx], ref), disp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
