"""A trained GIOROM used like the MPM simulator: :class:`ParticleSurrogate`.

``surrogate.solve(initial_state, steps)`` takes the last H + 1 frames of a particle cloud
(``positions`` (H + 1, P, d) in m, ``particle_type`` (P,)) and returns the positions (steps, P, d)
of all P points at the next ``steps`` frames, what ``Particles.solve`` stores after its first
H + 1 frames. Inside, the time-stepper advances ``n_sparse`` particles drawn from the cloud
(seeded, so a call is deterministic) and the kernel reconstruction moves every point with the
sparse particles' displacements from the last input frame; with ``n_sparse`` >= P the stepper runs
on the whole cloud and no reconstruction is needed.

Run directory: ``config.json`` (``operator``: name and the stepper's constructor arguments,
``reconstruction``: the kernel's, ``n_sparse``, ``seed``; a run written by ``sciops train giorom``
adds the problem, data, training settings and history, see ``sciops.training.particles``) and
``weights.pt`` (the two state dicts, with the GNS statistics as buffers), written atomically and read
with ``torch.load(weights_only=True)`` (``sciops.checkpoint``). ``sciops.load(run)`` returns this
class for a giorom run (``sciops.kinds``); ``surrogate.problem`` rebuilds the ``particles`` problem
the run was trained on, which ``sciops evaluate`` compares the rollouts with.

Device: the stepper and reconstruction run on ``device`` (neighbour search is on the CPU either
way); numpy in, numpy out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sciops import checkpoint as ckpt
from sciops.operators.giorom import GIOROM, KernelReconstruction, subsample

OPERATOR = "giorom"


class ParticleSurrogate:
    def __init__(self, stepper: GIOROM, reconstruction: KernelReconstruction | None = None, *,
                 n_sparse: int = 1000, seed: int = 0, config: dict | None = None, device=None) -> None:
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.stepper = stepper.to(self.device).eval()
        self.reconstruction = None if reconstruction is None else reconstruction.to(self.device)
        self.n_sparse, self.seed = int(n_sparse), int(seed)
        config = config or {}
        operator = {**config.get("operator", {}), "name": OPERATOR, "hyperparameters": stepper.config}
        self.config = {**config, "operator": operator,
                       "reconstruction": None if reconstruction is None else reconstruction.config,
                       "n_sparse": self.n_sparse, "seed": self.seed}
        self._problem = None

    @classmethod
    def from_config(cls, config: dict, device=None) -> "ParticleSurrogate":
        """An untrained surrogate with the modules described by a run's config (weights not loaded)."""
        stepper = GIOROM(**config["operator"]["hyperparameters"])
        rec = None if config["reconstruction"] is None else KernelReconstruction(**config["reconstruction"])
        return cls(stepper, rec, n_sparse=config["n_sparse"], seed=config["seed"], config=config, device=device)

    @property
    def problem(self):
        """The ``particles`` Problem this surrogate was trained for, rebuilt from its config."""
        if "problem" not in self.config:
            raise ValueError("this surrogate was saved without its problem (not by `sciops train giorom`)")
        if self._problem is None:
            from sciops import problems

            self._problem = problems.get(self.config["problem"]["name"], **self.config["problem"]["params"])
        return self._problem

    def solve(self, initial_state: dict, steps: int) -> np.ndarray:
        """Positions (steps, P, d) float32 of all points after the input window (module docstring)."""
        if not isinstance(initial_state, dict):
            raise ValueError(f"initial_state must be a dict with 'positions' and 'particle_type', "
                             f"got {type(initial_state).__name__}")
        x = np.asarray(initial_state.get("positions"))
        H, d = self.stepper.history, self.stepper.dim
        if x.ndim != 3 or x.shape[0] != H + 1 or x.shape[2] != d or x.shape[1] < 1:
            raise ValueError(f"initial_state['positions'] must be (H + 1, P, d) = ({H + 1}, P, {d}), got {x.shape}")
        types = np.asarray(initial_state.get("particle_type"))
        if types.shape != (x.shape[1],):
            raise ValueError(f"initial_state['particle_type'] must be ({x.shape[1]},), got {types.shape}")
        if int(steps) < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        P = x.shape[1]
        full = torch.as_tensor(x, dtype=torch.float32).permute(1, 0, 2).contiguous().to(self.device)  # (P, H + 1, d)
        kinds = torch.as_tensor(types.astype(np.int64)).to(self.device)
        if self.n_sparse >= P or self.reconstruction is None:
            return self.stepper.rollout(full, kinds, steps).cpu().numpy()
        idx = torch.as_tensor(subsample(P, self.n_sparse, np.random.default_rng(self.seed))).to(self.device)
        sparse = self.stepper.rollout(full[idx], kinds[idx], steps)               # (steps, S, d)
        reference = full[:, -1]
        with torch.no_grad():
            u = self.reconstruction(reference[idx], sparse - reference[idx], reference)
        return (reference + u).cpu().numpy()

    __call__ = solve

    def weights(self) -> dict:
        """The state dicts that ``weights.pt`` holds."""
        rec = self.reconstruction
        return {"stepper": self.stepper.state_dict(), "reconstruction": None if rec is None else rec.state_dict()}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        ckpt.save_tensors(path / ckpt.WEIGHTS, self.weights())
        ckpt.save_json(path / ckpt.CONFIG, self.config)
        return path

    @classmethod
    def load(cls, path: str | Path, device=None) -> "ParticleSurrogate":
        path = ckpt.check_run_dir(path)
        config = ckpt.load_json(path / ckpt.CONFIG)
        operator = config.get("operator")
        name = operator.get("name") if isinstance(operator, dict) else None  # as kinds.of_run reads it
        if name != OPERATOR:
            raise ValueError(f"{path} holds operator {name!r}; expected a {OPERATOR} run directory")
        weights = ckpt.load_tensors(path / ckpt.WEIGHTS, map_location="cpu")
        surrogate = cls.from_config(config, device=device)
        try:
            surrogate.stepper.load_state_dict(weights["stepper"])
            if surrogate.reconstruction is not None:
                surrogate.reconstruction.load_state_dict(weights["reconstruction"])
        except (RuntimeError, TypeError, KeyError) as exc:
            raise ValueError(f"{path / ckpt.WEIGHTS} does not match the operator in config.json "
                             f"({ckpt.load_error(exc)})") from None
        return surrogate

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.stepper.parameters())
        return (f"ParticleSurrogate({OPERATOR} for {self.config.get('problem', {}).get('name', '?')}, {params} "
                f"parameters, n_sparse={self.n_sparse}, device={self.device})")
