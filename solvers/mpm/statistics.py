"""GNS velocity and acceleration statistics of particle trajectories.

Following the DeepMind GNS convention (Sanchez-Gonzalez et al. 2020), velocities and
accelerations are finite differences of the stored frames, not divided by the frame interval:
v_k = x_k - x_{k-1} (m per frame) and a_k = v_k - v_{k-1} (m per frame^2). Their mean and
standard deviation are taken per coordinate over all frames and particles, in float64.

This is the one implementation: the ``particles`` problem stores it per trajectory as diagnostic
fields, and the GIOROM training pools it over the training trajectories to normalise the network's
inputs and outputs. It lives in the solvers layer so that both may import it.
"""
from __future__ import annotations

import numpy as np

NAMES = ("velocity_mean", "velocity_std", "acceleration_mean", "acceleration_std")


def gns_statistics(positions, *, pooled: bool = False) -> dict[str, np.ndarray]:
    """Statistics of positions (..., T, P, d) with T >= 3: each of ``NAMES`` is (..., d) per
    trajectory (reduced over frames and particles), or (d,) with ``pooled=True`` (reduced over every
    axis but the last: all trajectories, frames and particles together)."""
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim < 3 or x.shape[-3] < 3:
        raise ValueError(f"positions must be (..., T, P, d) with T >= 3 frames, got shape {x.shape}")
    v = np.diff(x, axis=-3)
    a = np.diff(v, axis=-3)
    axes = tuple(range(x.ndim - 1)) if pooled else (-3, -2)
    return dict(zip(NAMES, (v.mean(axes), v.std(axes), a.mean(axes), a.std(axes))))
