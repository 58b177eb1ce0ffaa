"""A trained GIOROM used like the MPM simulator: :class:`ParticleSurrogate`.

``surrogate.solve(initial_state, steps)`` takes the last H + 1 frames of a particle cloud
(``positions`` (H + 1, P, d) in m, ``particle_type`` (P,)) and returns the positions (steps, P, d)
of all P points at the next ``steps`` frames, what ``Particles.solve`` stores after its first
H + 1 frames. Inside, the time-stepper advances ``n_sparse`` particles drawn from the cloud
(seeded, so a call is deterministic) and the kernel reconstruction moves every point with the
sparse particles' displacements from the last input frame; with ``n_sparse`` >= P the stepper runs
on the whole cloud and no reconstruction is needed.

Run directory: ``config.json`` (the two modules' constructor arguments, ``n_sparse``) and
``weights.pt`` (their state dicts, with the GNS statistics as buffers), written atomically and read
with ``torch.load(weights_only=True)`` (``sciops.checkpoint``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sciops import checkpoint as ckpt
from sciops.operators.giorom import GIOROM, KernelReconstruction, subsample


class ParticleSurrogate:
    def __init__(self, stepper: GIOROM, reconstruction: KernelReconstruction | None = None, *,
                 n_sparse: int = 1000, seed: int = 0) -> None:
        self.stepper, self.reconstruction = stepper.eval(), reconstruction
        self.n_sparse, self.seed = int(n_sparse), int(seed)

    def solve(self, initial_state: dict, steps: int) -> np.ndarray:
        """Positions (steps, P, d) float32 of all points after the input window (module docstring)."""
        x = np.asarray(initial_state.get("positions") if isinstance(initial_state, dict) else None)
        H, d = self.stepper.history, self.stepper.dim
        if x.ndim != 3 or x.shape[0] != H + 1 or x.shape[2] != d or x.shape[1] < 1:
            raise ValueError(f"initial_state['positions'] must be (H + 1, P, d) = ({H + 1}, P, {d}), got {x.shape}")
        types = np.asarray(initial_state.get("particle_type"))
        if types.shape != (x.shape[1],):
            raise ValueError(f"initial_state['particle_type'] must be ({x.shape[1]},), got {types.shape}")
        if int(steps) < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        P = x.shape[1]
        full = torch.as_tensor(x, dtype=torch.float32).permute(1, 0, 2).contiguous()  # (P, H + 1, d)
        kinds = torch.as_tensor(types.astype(np.int64))
        if self.n_sparse >= P or self.reconstruction is None:
            return self.stepper.rollout(full, kinds, steps).numpy()
        idx = torch.as_tensor(subsample(P, self.n_sparse, np.random.default_rng(self.seed)))
        sparse = self.stepper.rollout(full[idx], kinds[idx], steps)               # (steps, S, d)
        reference = full[:, -1]
        with torch.no_grad():
            u = self.reconstruction(reference[idx], sparse - reference[idx], reference)
        return (reference + u).numpy()

    __call__ = solve

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        rec = self.reconstruction
        config = {"operator": "giorom", "stepper": self.stepper.config, "n_sparse": self.n_sparse, "seed": self.seed,
                  "reconstruction": None if rec is None else rec.config}
        weights = {"stepper": self.stepper.state_dict(), "reconstruction": None if rec is None else rec.state_dict()}
        ckpt.save_tensors(path / ckpt.WEIGHTS, weights)
        ckpt.save_json(path / ckpt.CONFIG, config)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ParticleSurrogate":
        path = ckpt.check_run_dir(path)
        config = ckpt.load_json(path / ckpt.CONFIG)
        if config.get("operator") != "giorom":
            raise ValueError(f"{path} holds operator {config.get('operator')!r}; expected a giorom run directory")
        weights = ckpt.load_tensors(path / ckpt.WEIGHTS, map_location="cpu")
        stepper = GIOROM(**config["stepper"])
        stepper.load_state_dict(weights["stepper"])
        rec = None
        if config["reconstruction"] is not None:
            rec = KernelReconstruction(**config["reconstruction"])
            rec.load_state_dict(weights["reconstruction"])
        return cls(stepper, rec, n_sparse=config["n_sparse"], seed=config["seed"])
