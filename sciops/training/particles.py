"""Training GIOROM particle time-steppers on trajectories: :func:`train_stepper` (in memory) and
:func:`train` (a ``particles`` dataset into a run directory, what ``sciops train giorom`` runs).

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

Run directories (:class:`ParticleTrainer`, :func:`train`): the contract of the grid trainer
(``sciops.training.trainer``) for particle data. The last ``val_fraction`` of the trajectories are
held out. First the kernel reconstruction is fitted (``reconstruction_steps`` steps of
:func:`train_reconstruction`); then an epoch is one pass over every training window (trajectory n,
last input frame k for k = H .. T - 2) in an order drawn from (seed, epoch), or the first
``windows_per_epoch`` of that order. After each epoch the validation trajectories give ``loss``
(one-step normalised-acceleration MSE on up to 8 windows each, no noise) and ``rollout_mse``
(position MSE in m^2 of the full surrogate, sparse stepper plus reconstruction, rolled out
``val_rollout`` frames from frames 0 .. H); the best epoch by ``rollout_mse`` is kept in
``weights.pt``. ``state.pt`` (stepper, reconstruction, optimiser, history) and ``metrics.jsonl``
are replaced atomically after every epoch, and every random draw of epoch e comes from (seed, e),
so a run killed at any point and resumed continues from its last completed epoch and ends with
the weights and metrics of an uninterrupted run. ``config.json`` holds the GIOROM and
reconstruction settings, ``n_sparse``, the problem, the data (path, seed, sizes) and the training
settings; ``sciops.load`` returns the :class:`~sciops.particle_surrogate.ParticleSurrogate`.
One process (no ``--nproc``); the training trajectories are read into memory.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import sciops
from sciops import checkpoint as ckpt
from sciops.datasets.progress import Progress
from sciops.operators.giorom import GIOROM, subsample
from sciops.solvers.mpm.statistics import NAMES as STATISTICS, gns_statistics
from sciops.training.config import TrainConfig, check_types

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


# --- run directories ------------------------------------------------------------------------------------
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


def _finite_or_inf(value: float) -> float:
    return value if math.isfinite(value) else math.inf


class ParticleTrainer:
    """Train a particle operator on a ``particles`` dataset into ``run_dir`` (module docstring)."""

    def __init__(self, operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
                 config: ParticleTrainConfig | None = None, progress: bool | None = None):
        from sciops import problems
        from sciops.datasets.particles import read_trajectories
        from sciops.training.trainer import resolve_device

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
        self.config = {
            "sciops_version": sciops.__version__,
            "operator": {"name": operator,
                         "hyperparameters": {**defaults, **(hparams or {}), "dim": d, "bounds": problem.bounds.tolist()}},
            "reconstruction": {"dim": d, "neighbours": self.cfg.reconstruction_neighbours},
            "n_sparse": self.cfg.n_sparse, "seed": self.cfg.seed,
            "problem": {"name": problem.name, "params": problem.params},
            "fields": {"inputs": ["position", "particle_type"], "outputs": ["position"],
                       "units": {"position": problem.fields["position"].units}},
            "data": {"path": str(self.data_path.resolve()), "seed": int(attrs["seed"]), "n_samples": N,
                     "n_train": n_train, "n_val": n_val, "frames": T, "particles": P},
            "training": self.cfg.to_dict(),
        }
        self.config = json.loads(json.dumps(self.config))  # JSON form, as it will be read back

    def _check_start(self, resume: bool) -> bool:
        """Check the run directory; whether the run resumes (``resume`` with no completed epoch
        to resume starts afresh)."""
        if not ckpt.resumes(self.run_dir, resume):
            return False
        saved = ckpt.load_json(self.run_dir / ckpt.CONFIG)
        saved["operator"].pop("parameters", None)
        for key in ("operator", "reconstruction", "n_sparse", "seed", "problem", "training", "data"):
            mine, theirs = self.config.get(key), saved.get(key)
            if key == "data":  # the same data may have moved
                mine, theirs = ({k: v for k, v in c.items() if k != "path"} for c in (mine, theirs or {}))
            if mine != theirs:
                raise ValueError(f"cannot resume {self.run_dir}: its {key} settings differ from this command's "
                                 f"({ckpt.first_difference(theirs, mine, key)})")
        return True

    @torch.no_grad()
    def validate(self, surrogate) -> dict[str, float]:
        """One-step loss and rollout position MSE on the held-out trajectories (module docstring)."""
        stepper, cfg = surrogate.stepper.eval(), self.cfg
        H, (_, T, P, _) = stepper.history, self.positions.shape
        idx = subsample(P, min(cfg.n_sparse, P), np.random.default_rng(cfg.seed))
        steps = min(cfg.val_rollout, T - H - 1)
        losses, mses = [], []
        for n in self.val_idx:
            for k in np.unique(np.linspace(H, T - 2, VAL_WINDOWS).round().astype(int)):
                frames = self.positions[n][k - H:k + 2][:, idx]
                losses.append(float(window_loss(stepper, frames, self.types[n, idx], 0.0, None, self.device)))
            pred = surrogate.solve({"positions": self.positions[n, :H + 1], "particle_type": self.types[n]}, steps)
            mses.append(float(((pred - self.positions[n, H + 1:H + 1 + steps]) ** 2).mean()))
        return {"loss": float(np.mean(losses)), SELECT: float(np.mean(mses))}

    def _train_epoch(self, stepper, optimizer, windows: list[tuple[int, int]], per_epoch: int, epoch: int) -> float:
        """One epoch of optimiser steps on ``per_epoch`` of the (trajectory, last input frame)
        ``windows`` in the order drawn from (seed, epoch); returns the sum of the losses."""
        cfg, H, P = self.cfg, stepper.history, self.positions.shape[2]
        stepper.train()
        rng, gen = _epoch_rngs(cfg.seed, epoch)
        total = 0.0
        for w in rng.permutation(len(windows))[:per_epoch]:
            n, k = windows[w]
            idx = subsample(P, min(cfg.n_sparse, P), rng)
            loss = window_loss(stepper, self.positions[n][k - H:k + 2][:, idx], self.types[n, idx],
                               cfg.noise_std, gen, self.device)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value
        return total

    def fit(self, resume: bool = False) -> dict:
        from sciops.particle_surrogate import ParticleSurrogate

        cfg = self.cfg
        resume = self._check_start(resume)
        train_positions = self.positions[self.train_idx]
        if not resume:
            _warn_if_ballistic(train_positions, self.data_path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            surrogate = ParticleSurrogate.from_config(self.config, device=self.device)
        stepper, reconstruction = surrogate.stepper, surrogate.reconstruction
        set_pooled_statistics(stepper, train_positions)
        self.config["operator"]["parameters"] = sum(p.numel() for p in stepper.parameters())
        optimizer = torch.optim.Adam(stepper.parameters(), lr=cfg.lr)
        history: list[dict] = []
        if resume:
            state = ckpt.load_tensors(self.run_dir / ckpt.STATE, map_location=self.device)
            stepper.load_state_dict(state["stepper"])
            reconstruction.load_state_dict(state["reconstruction"])
            optimizer.load_state_dict(state["optimizer"])
            history = state["history"]
            ckpt.write_metrics(self.run_dir, history)  # a kill between an epoch's writes left them ahead
        elif cfg.reconstruction_steps:
            train_reconstruction(reconstruction, train_positions, min(cfg.n_sparse, self.positions.shape[2]),
                                 steps=cfg.reconstruction_steps, lr=cfg.reconstruction_lr, seed=cfg.seed)
        H, T = stepper.history, self.positions.shape[1]
        windows = [(int(n), k) for n in self.train_idx for k in range(H, T - 1)]
        per_epoch = len(windows) if cfg.windows_per_epoch is None else min(cfg.windows_per_epoch, len(windows))
        best = min((_finite_or_inf(h["val"][SELECT]) for h in history), default=float("inf"))
        bar = Progress(cfg.epochs, initial=len(history), desc=f"train {self.config['operator']['name']}",
                       unit="epoch", mode=self.progress)
        for epoch in range(len(history), cfg.epochs):
            t0 = time.perf_counter()
            total = self._train_epoch(stepper, optimizer, windows, per_epoch, epoch)
            seconds = time.perf_counter() - t0
            val = self.validate(surrogate)
            record = {"epoch": epoch + 1, "train_loss": total / per_epoch, "val": val, "lr": cfg.lr,
                      "windows": per_epoch, "seconds": seconds}
            history.append(record)
            if epoch == 0:  # the run directory is written from its first epoch on: a failure before leaves nothing
                ckpt.save_json(self.run_dir / ckpt.CONFIG, self.config)
            improved = _finite_or_inf(val[SELECT]) < best  # a rollout that blew up (NaN) never counts as best
            best = val[SELECT] if improved else best
            ckpt.save_epoch(self.run_dir, {"stepper": stepper.state_dict(), "reconstruction": reconstruction.state_dict(),
                                           "optimizer": optimizer.state_dict(), "history": history},
                            best_weights=surrogate.weights() if improved else None)
            bar.set_postfix_str(f"loss {record['train_loss']:.4f} val {SELECT} {val[SELECT]:.3g} best {best:.3g} "
                                f"({seconds:.1f}s/epoch)")
            bar.update(1)
        bar.close()
        if not (self.run_dir / ckpt.WEIGHTS).is_file():
            print(f"warning: every validation rollout of {self.run_dir} was non-finite; weights.pt holds the last "
                  "epoch (lower lr or raise noise_std)", file=sys.stderr)
            ckpt.save_tensors(self.run_dir / ckpt.WEIGHTS, surrogate.weights())
        best_record = min(history, key=lambda h: _finite_or_inf(h["val"][SELECT]))
        summary = {"epochs": len(history), "best_epoch": best_record["epoch"], "best_val": best_record["val"],
                   "final_train_loss": history[-1]["train_loss"],
                   "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
                   "train_seconds": sum(h["seconds"] for h in history)}
        self.config["history"] = summary
        ckpt.save_json(self.run_dir / ckpt.CONFIG, self.config)
        return summary


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
