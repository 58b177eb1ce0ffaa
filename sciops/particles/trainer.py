"""Training a particle operator into a run directory: :class:`ParticleTrainer` and :func:`train`
(what ``sciops train giorom`` runs), built from the pieces of :mod:`sciops.particles.stepping`.

The last ``val_fraction`` of the trajectories are held out. First the kernel reconstruction is
fitted (``reconstruction_steps`` steps of ``train_reconstruction``); then an epoch is one pass
over every training window (trajectory n, last input frame k for k = H .. T - 2) in an order drawn
from (seed, epoch), or the first ``windows_per_epoch`` of that order. After each epoch the
validation trajectories give ``loss`` (one-step normalised-acceleration MSE on up to 8 windows
each, no noise) and ``rollout_mse`` (position MSE in m^2 of the full surrogate, sparse stepper plus
reconstruction, rolled out ``val_rollout`` frames from frames 0 .. H); the best epoch by
``rollout_mse`` is kept in ``weights.pt``. Every random draw of epoch e comes from (seed, e); the
epochs, files and resume are :func:`sciops.training.loop.run_epochs`', so a run killed at any
point and resumed ends with the weights and metrics of an uninterrupted run. The run spec holds
the GIOROM and reconstruction settings, ``n_sparse``, the problem, the data (path, seed, sizes) and
the training settings; ``sciops.load`` returns the :class:`~sciops.particles.surrogate.ParticleSurrogate`.
One process (no ``--nproc``); the training trajectories are read into memory.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sciops.operators.giorom import GIOROM, subsample
from sciops.particles.stepping import set_pooled_statistics, train_reconstruction, window_loss
from sciops.particles.surrogate import ParticleSurrogate
from sciops.runs import DataSpec, FieldSpec, OperatorSpec, ProblemSpec, RunSpec, storage
from sciops.runs.models import resolve_device
from sciops.runs.spec import check_resume
from sciops.training.config import TrainConfig, check_types
from sciops.training.loop import run_epochs

OPERATORS = {"giorom": GIOROM}  # particle operators, by name (``sciops.kinds``)
FROM_DATA = ("dim", "bounds")   # constructor arguments taken from the dataset, not the user
SELECT = "rollout_mse"          # validation metric that picks the best epoch
VAL_WINDOWS = 8                 # one-step validation windows per held-out trajectory, at most


def operator_names() -> list[str]:
    return sorted(OPERATORS)


def hyperparameters(name: str) -> dict:
    """The user-settable hyperparameters of a particle operator with their defaults."""
    if name not in OPERATORS:
        raise ValueError(f"unknown particle operator {name!r}; expected one of {', '.join(operator_names())}")
    params = inspect.signature(OPERATORS[name].__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and k not in FROM_DATA}


@dataclass
class ParticleTrainConfig:
    """Training settings of a particle operator (the ``[training]`` table; see the module docstring)."""

    epochs: int = 20
    lr: float = 1e-3
    noise_std: float = 3e-5  # random-walk input noise, m/frame
    n_sparse: int = 1000  # particles the stepper advances; the reconstruction moves the rest
    windows_per_epoch: int | None = None  # None: every training window once per epoch
    val_fraction: float = 0.1
    val_rollout: int = 20  # frames of the validation rollout (at most the trajectory's remaining frames)
    n_train: int | None = None  # train on the first n_train trajectories only
    reconstruction_steps: int = 200
    reconstruction_lr: float = 3e-3
    reconstruction_neighbours: int = 8
    seed: int = 0
    device: str = "auto"

    split = TrainConfig.split  # the grid trainer's train / validation split, same rules

    def __post_init__(self):
        check_types(self)
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.noise_std >= 0, "noise_std must be >= 0"),
            (self.n_sparse >= 1, "n_sparse must be >= 1"),
            (self.windows_per_epoch is None or self.windows_per_epoch >= 1, "windows_per_epoch must be >= 1"),
            (0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1)"),
            (self.val_rollout >= 1, "val_rollout must be >= 1"),
            (self.n_train is None or self.n_train >= 1, "n_train must be >= 1"),
            (self.reconstruction_steps >= 0, "reconstruction_steps must be >= 0"),
            (self.reconstruction_lr > 0, "reconstruction_lr must be > 0"),
            (self.reconstruction_neighbours >= 1, "reconstruction_neighbours must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"training config: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _epoch_rngs(seed: int, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
    """The generators of every random draw of one epoch (window order, subsamples, noise)."""
    return np.random.default_rng([seed, epoch]), torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class ParticleTrainer:
    """Train a particle operator on a ``particles`` dataset into ``run_dir`` (module docstring);
    :meth:`fit` runs the epochs through :func:`sciops.training.loop.run_epochs`, with this object as the task."""

    select = SELECT

    def __init__(self, operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
                 config: ParticleTrainConfig | None = None, progress: bool | None = None):
        from sciops import problems
        from sciops.datasets.particles import read_trajectories

        self.run_dir, self.data_path = Path(run_dir), Path(data)
        self.cfg = config or ParticleTrainConfig()
        if not isinstance(self.cfg, ParticleTrainConfig):
            raise ValueError(f"operator {operator} takes a ParticleTrainConfig, got {type(self.cfg).__name__}")
        self.progress = progress
        defaults = hyperparameters(operator)  # validates the name before any file is read
        bad = sorted(set(hparams or {}) - set(defaults))
        if bad:
            what = "comes from the data" if bad[0] in FROM_DATA else "is unknown"
            raise ValueError(f"operator {operator}: hyperparameter {bad[0]!r} {what}; expected one of "
                             f"{', '.join(defaults)}")
        self.device = resolve_device(self.cfg.device)
        self.positions, self.types, attrs = read_trajectories(self.data_path)
        problem = problems.get(attrs["problem"], **attrs["problem_params"])
        N, T, P, d = self.positions.shape
        H = int({**defaults, **(hparams or {})}["history"])
        if T < H + 2:
            raise ValueError(f"{self.data_path} has {T} frames per trajectory; operator {operator} with history={H} "
                             f"needs at least {H + 2} (H + 1 input frames and a target)")
        n_train, n_val = self.cfg.split(N, self.data_path)
        self.train_idx, self.val_idx = np.arange(n_train), np.arange(N - n_val, N)
        self.spec = RunSpec.from_dict(RunSpec(
            operator=OperatorSpec(operator, {**defaults, **(hparams or {}), "dim": d, "bounds": problem.bounds.tolist()}),
            reconstruction={"dim": d, "neighbours": self.cfg.reconstruction_neighbours},
            n_sparse=self.cfg.n_sparse, seed=self.cfg.seed,
            problem=ProblemSpec(problem.name, problem.params),
            fields=FieldSpec(["position", "particle_type"], ["position"],
                             {"position": problem.fields["position"].units}),
            data=DataSpec(str(self.data_path.resolve()), int(attrs["seed"]), N, n_train, n_val, frames=T, particles=P),
            training=self.cfg.to_dict()).to_dict())  # in JSON form, as it will be read back

    # --- the task run_epochs drives ---------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """One-step loss and rollout position MSE on the held-out trajectories (module docstring)."""
        surrogate, cfg = self.surrogate, self.cfg
        stepper = surrogate.stepper.eval()
        H, (_, T, P, _) = stepper.history, self.positions.shape
        idx = subsample(P, min(cfg.n_sparse, P), np.random.default_rng(cfg.seed))
        steps = min(cfg.val_rollout, T - H - 1)
        losses, mses = [], []
        for n in self.val_idx:
            for k in np.unique(np.linspace(H, T - 2, VAL_WINDOWS).round().astype(int)):
                frames = self.positions[n][k - H:k + 2][:, idx]
                losses.append(float(window_loss(stepper, frames, self.types[n, idx], 0.0, None, self.device)))
            pred = surrogate.rollout({"positions": self.positions[n, :H + 1], "particle_type": self.types[n]}, steps)
            mses.append(float(((pred - self.positions[n, H + 1:H + 1 + steps]) ** 2).mean()))
        return {"loss": float(np.mean(losses)), SELECT: float(np.mean(mses))}

    def train_epoch(self, epoch: int) -> dict:
        """Optimiser steps on ``per_epoch`` of the (trajectory, last input frame) windows in the order
        drawn from (seed, epoch)."""
        cfg, stepper, P = self.cfg, self.surrogate.stepper, self.positions.shape[2]
        H = stepper.history
        stepper.train()
        rng, gen = _epoch_rngs(cfg.seed, epoch)
        total = 0.0
        for w in rng.permutation(len(self.windows))[:self.per_epoch]:
            n, k = self.windows[w]
            idx = subsample(P, min(cfg.n_sparse, P), rng)
            loss = window_loss(stepper, self.positions[n][k - H:k + 2][:, idx], self.types[n, idx],
                               cfg.noise_std, gen, self.device)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch + 1}; lower the learning rate")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += value
        return {"train_loss": total / self.per_epoch, "lr": cfg.lr, "windows": self.per_epoch}

    def state(self) -> dict:
        return {"stepper": self.surrogate.stepper.state_dict(),
                "reconstruction": self.surrogate.reconstruction.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        self.surrogate.stepper.load_state_dict(state["stepper"])
        self.surrogate.reconstruction.load_state_dict(state["reconstruction"])
        self.optimizer.load_state_dict(state["optimizer"])

    def weights(self) -> dict:
        return self.surrogate.weights()

    # --- main ---------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        cfg = self.cfg
        resume = storage.resumes(self.run_dir, resume)
        if resume:
            check_resume(self.run_dir, self.spec)
        train_positions = self.positions[self.train_idx]
        if not resume:
            _warn_if_ballistic(train_positions, self.data_path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.surrogate = ParticleSurrogate.from_spec(self.spec, device=self.device)
        stepper = self.surrogate.stepper
        set_pooled_statistics(stepper, train_positions)
        self.spec.operator.parameters = sum(p.numel() for p in stepper.parameters())
        self.optimizer = torch.optim.Adam(stepper.parameters(), lr=cfg.lr)
        if not resume and cfg.reconstruction_steps:
            train_reconstruction(self.surrogate.reconstruction, train_positions,
                                 min(cfg.n_sparse, self.positions.shape[2]),
                                 steps=cfg.reconstruction_steps, lr=cfg.reconstruction_lr, seed=cfg.seed)
        H, T = stepper.history, self.positions.shape[1]
        self.windows = [(int(n), k) for n in self.train_idx for k in range(H, T - 1)]
        self.per_epoch = len(self.windows) if cfg.windows_per_epoch is None else min(cfg.windows_per_epoch,
                                                                                     len(self.windows))
        return run_epochs(self, self.run_dir, self.spec, epochs=cfg.epochs, resume=resume, progress=self.progress,
                          state_location=self.device)


def _warn_if_ballistic(positions, path) -> None:
    """Warn when every training trajectory is a constant-acceleration motion (free fall, no contact):
    extrapolating the last three frames is then exact to rounding, and there is nothing to learn."""
    x = np.asarray(positions, dtype=np.float64)
    if x.shape[1] < 4:
        return
    extrapolated = 3 * x[:, 2:-1] - 3 * x[:, 1:-2] + x[:, :-3]
    miss = float(np.abs(x[:, 3:] - extrapolated).max())
    if miss <= 1e-5 * max(float(np.abs(x).max()), 1e-30):
        print(f"warning: every training trajectory of {path} moves with constant acceleration (constant-acceleration "
              f"extrapolation misses by at most {miss:.2g}): no particle interactions to learn; generate scenes with "
              f"contact or collisions", file=sys.stderr)


def train(operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
          config: ParticleTrainConfig | None = None, resume: bool = False, progress: bool | None = None,
          force: bool = False) -> dict:
    """Train a particle operator into a run directory; the history summary (also in config.json).
    ``force`` is accepted for the command line's sake: particle runs train on sparse subsamples of a
    few thousand particles and are not estimated."""
    return ParticleTrainer(operator, data, run_dir, hparams=hparams, config=config, progress=progress).fit(resume=resume)
