"""A trained GIOROM used like the MPM simulator: :class:`ParticleSurrogate`.

``surrogate.solve(inputs)`` takes what ``Particles.solve`` takes (a dict of ``position0``,
``velocity0``, ``particle_type``, ``volume``: (batch, P, ...) or one sample) and returns what it
returns: positions (batch, T, P, d) float32 of the problem's T frames. The operator needs a history
of H + 1 frames, so the reference solver computes frames 0 .. H (H ``stride`` steps of MPM each)
and the operator the remaining T - H - 1; ``solver_frames`` says how many came from the solver.

``surrogate.rollout(initial_state, steps)`` is the operator alone: from the last H + 1 frames of a
particle cloud (``positions`` (H + 1, P, d) in m, ``particle_type`` (P,)) the positions (steps, P, d)
of all P points at the next ``steps`` frames. Inside, the time-stepper advances ``n_sparse``
particles drawn from the cloud (seeded, so a call is deterministic) and the kernel reconstruction
moves every point with the sparse particles' displacements from the last input frame; with
``n_sparse`` >= P the stepper runs on the whole cloud and no reconstruction is needed.

Run directory: the run spec (``sciops.runs.spec``: ``operator`` with the stepper's constructor
arguments, ``reconstruction``, ``n_sparse``, ``seed``, and for a run written by ``sciops train
giorom`` the problem, data, training settings and history) and ``weights.pt`` (the two state
dicts, with the GNS statistics as buffers), written atomically and read with
``torch.load(weights_only=True)``. ``surrogate.problem`` rebuilds the ``particles`` problem the run
was trained on, which ``sciops evaluate`` compares the rollouts with.

Device: the stepper and reconstruction run on ``device`` (neighbour search is on the CPU either
way); numpy in, numpy out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sciops.operators.giorom import GIOROM, KernelReconstruction, subsample
from sciops.runs import OperatorSpec, RunSpec, storage

OPERATOR = "giorom"


class ParticleSurrogate:
    def __init__(self, stepper: GIOROM, reconstruction: KernelReconstruction | None = None, *,
                 n_sparse: int = 1000, seed: int = 0, spec: RunSpec | None = None, device=None) -> None:
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.stepper = stepper.to(self.device).eval()
        self.reconstruction = None if reconstruction is None else reconstruction.to(self.device)
        self.n_sparse, self.seed = int(n_sparse), int(seed)
        spec = spec.copy() if spec is not None else RunSpec(operator=OperatorSpec(OPERATOR))
        spec.operator.name, spec.operator.hyperparameters = OPERATOR, stepper.config
        spec.reconstruction = None if reconstruction is None else reconstruction.config
        spec.n_sparse, spec.seed = self.n_sparse, self.seed
        self.spec = spec
        self._problem = None

    @classmethod
    def from_spec(cls, spec: RunSpec, device=None) -> "ParticleSurrogate":
        """An untrained surrogate with the modules a run spec describes (weights not loaded)."""
        stepper = GIOROM(**spec.operator.hyperparameters)
        rec = None if spec.reconstruction is None else KernelReconstruction(**spec.reconstruction)
        return cls(stepper, rec, n_sparse=spec.n_sparse, seed=spec.seed, spec=spec, device=device)

    @property
    def problem(self):
        """The ``particles`` Problem this surrogate was trained for, rebuilt from its spec."""
        if self.spec.problem is None:
            raise ValueError("this surrogate was saved without its problem (not by `sciops train giorom`)")
        if self._problem is None:
            self._problem = self.spec.problem.build()
        return self._problem

    @property
    def solver_frames(self) -> int:
        """Frames of :meth:`solve`'s answer that the reference solver computes (the operator's history)."""
        return self.stepper.history + 1

    def solve(self, inputs: dict) -> np.ndarray:
        """Positions (batch, T, P, d) float32, what ``Particles.solve`` returns for ``inputs`` (module
        docstring): the first :attr:`solver_frames` frames from the reference solver, the rest from
        the operator."""
        problem = self.problem
        frames, warm = problem.params["frames"], self.solver_frames
        if frames <= warm:
            return problem.solve(inputs)
        history = problem.with_params(frames=max(warm, 3)).solve(inputs)  # the problem stores at least 3 frames
        single = history.ndim == 3
        history = history[None] if single else history
        types = np.asarray(inputs["particle_type"]).reshape(len(history), -1)
        rolled = [self.rollout({"positions": h[:warm], "particle_type": k}, frames - warm) for h, k in zip(history, types)]
        out = np.concatenate([history[:, :warm], np.stack(rolled)], axis=1) if len(history) else \
            np.zeros((0, frames) + history.shape[2:], np.float32)
        return out[0] if single else out

    __call__ = solve

    def rollout(self, initial_state: dict, steps: int) -> np.ndarray:
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

    def weights(self) -> dict:
        """The state dicts that ``weights.pt`` holds."""
        rec = self.reconstruction
        return {"stepper": self.stepper.state_dict(), "reconstruction": None if rec is None else rec.state_dict()}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        storage.save_tensors(path / storage.WEIGHTS, self.weights())
        self.spec.save(path)
        return path

    @classmethod
    def load(cls, path: str | Path, device=None, compile: bool = False) -> "ParticleSurrogate":
        """The surrogate of run directory ``path``. ``compile=True`` is refused: the stepper's graph
        changes size with every neighbour search, which torch.compile would recompile for."""
        if compile:
            raise ValueError(f"compile=True is not supported for {OPERATOR} (its neighbour graph changes shape "
                             f"every step); load without compile")
        path = storage.check_run_dir(path)
        spec = RunSpec.load(path)
        if spec.operator.name != OPERATOR:
            raise ValueError(f"{path} holds operator {spec.operator.name!r}; expected a {OPERATOR} run directory")
        weights = storage.load_tensors(path / storage.WEIGHTS, map_location="cpu")
        surrogate = cls.from_spec(spec, device=device)
        try:
            surrogate.stepper.load_state_dict(weights["stepper"])
            if surrogate.reconstruction is not None:
                surrogate.reconstruction.load_state_dict(weights["reconstruction"])
        except (RuntimeError, TypeError, KeyError) as exc:
            raise ValueError(f"{path / storage.WEIGHTS} does not match the operator in config.json "
                             f"({storage.load_error(exc)})") from None
        return surrogate

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.stepper.parameters())
        problem = self.spec.problem.name if self.spec.problem else "?"
        return (f"ParticleSurrogate({OPERATOR} for {problem}, {params} "
                f"parameters, n_sparse={self.n_sparse}, device={self.device})")
