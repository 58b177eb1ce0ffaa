"""Supervised training of an operator on a sciops dataset, with exact resume.

Algorithm: AdamW with a learning-rate schedule (one-cycle by default, stepped per batch), the
training loss from :mod:`sciops.losses` on raw targets through the normalised model, validation
on the last ``val_fraction`` of the file after every epoch, best weights kept by the ``select``
metric.

Operators follow the protocol of :mod:`sciops.operators.base`: ``prepare_hyperparameters``
completes the hyperparameters from the data's problem before they are stored, ``initialize`` runs
once on up to 256 training pairs before the first epoch, ``raw_io`` and ``shared_normalization``
choose the normalisation statistics, and an operator with ``own_loss`` (DGNO's label-free
weak-form physics) is trained on its ``training_loss`` instead, on raw inputs (and the labels only
if ``uses_labels``) with identity statistics. Validation metrics stay the supervised ones against
the stored labels, so accuracy is measured the same way for every operator.

Determinism and resume: the model is initialised from ``seed``; the batch order of epoch e comes
from a generator seeded with (seed, e). Epochs, the best epoch, the run directory's files and
resume are :func:`sciops.training.loop.run_epochs`': a run killed at any point and resumed with
``resume=True`` ends with the same weights and metrics lines as an uninterrupted run.

Several processes (torchrun, ``sciops train --nproc N``): ``batch_size`` is the global batch and
each rank trains on its share of every batch with DistributedDataParallel; statistics, metrics,
checkpoints and resume are those of a single-process run, written by rank 0 only. See
:mod:`sciops.training.distributed`.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from sciops.datasets.reader import SciopsDataset
from sciops.losses import Standardized, loss_options, make_loss
from sciops.normalization import NormalizedOperator, channel_stats
from sciops.operators import hyperparameters, operator_class
from sciops.runs import DataSpec, FieldSpec, OperatorSpec, ProblemSpec, RunSpec, storage
from sciops.runs.input_summary import summarize
from sciops.runs.models import build_model, resolve_device
from sciops.runs.spec import RunDirectories, check_resume
from sciops.training import distributed as ddp
from sciops.training.config import TrainConfig
from sciops.training.loop import run_epochs
from sciops.training.memory import check_training_memory


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "onecycle":
        # torch divides by (pct_start * total - 1): a 5-step run would raise ZeroDivisionError
        pct_start = 0.4 if total == 5 else 0.2
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=pct_start, div_factor=10.0, final_div_factor=100.0)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.scheduler == "step":  # halve every quarter of the run, stepped per batch
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, total // 4), gamma=0.5)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


class Trainer:
    """Train ``operator`` on ``data`` into ``run_dir``; see module docstring. :meth:`fit` runs the
    epochs through :func:`sciops.training.loop.run_epochs`, with this object as the task."""

    select: str

    def __init__(self, operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
                 config: TrainConfig | None = None, progress: bool | None = None):
        self.run_dir = Path(run_dir)
        self.data_path = Path(data)
        self.cfg = config or TrainConfig()
        self.select = self.cfg.select
        self.progress = progress
        self.ranks = ddp.context()  # one process unless started by torchrun
        self.device = ddp.rank_device(self.ranks, resolve_device(self.cfg.device))
        defaults = hyperparameters(operator)  # validates the operator name before any file is read
        unknown = sorted(set(hparams or {}) - set(defaults))
        if unknown:
            raise ValueError(f"operator {operator}: unknown hyperparameter {unknown[0]!r}; expected one of {', '.join(defaults)}")
        self.operator_class = operator_class(operator)
        self.dataset: SciopsDataset = ddp.open_rank_dataset(self.data_path, self.ranks)
        problem = self.dataset.problem
        hparams = self.operator_class.prepare_hyperparameters({**defaults, **(hparams or {})}, problem,
                                                              RunDirectories())
        n = self.dataset.n_samples
        n_train, self.n_val = self.cfg.split(n, self.data_path)
        ddp.check_world_size(self.cfg.batch_size, self.ranks.world_size, n_train)
        self.train_idx = torch.arange(n_train)
        self.val_idx = torch.arange(n - self.n_val, n)
        x0, y0 = self.dataset.get_batch([0])
        # Trajectory data: outputs (B, C, T, *space), inputs (B, C, *space) or a segment (B, C, K, *space)
        space = sum(d not in ("t", "channel") for d in problem.fields[self.dataset.output_fields[0]].dims)
        self.spec = RunSpec.from_dict(RunSpec(
            operator=OperatorSpec(operator, hparams, in_channels=x0.shape[1], out_channels=y0.shape[1], ndim=space,
                                  geometry=problem.geometry, time_steps=y0.shape[2] if y0.dim() == space + 3 else None,
                                  input_steps=x0.shape[2] if x0.dim() == space + 3 else None),
            problem=ProblemSpec(problem.name, problem.params),
            fields=FieldSpec(self.dataset.input_fields, self.dataset.output_fields,
                             {k: problem.fields[k].units for k in problem.fields}),
            data=DataSpec(str(self.data_path.resolve()), int(self.dataset.attrs["seed"]), n, n_train, self.n_val,
                          resolution=list(x0.shape[-space:])),
            training=self.cfg.to_dict()).to_dict())  # in JSON form, as it will be read back
        geometry = loss_options(problem)  # on the sphere also the grid type
        self.loss_fn = make_loss(self.cfg.loss, spatial_dims=space, **geometry)
        self.metric_fns = {m: make_loss(m, spatial_dims=space, **geometry) for m in self.cfg.metrics}
        ddp.setup(self.ranks, self.device)  # after the checks above, which every rank makes alike

    # --- pieces -----------------------------------------------------------------------------------
    def _stats(self) -> dict:
        cls = self.operator_class
        if cls.own_loss or cls.raw_io:  # the operator carries its own scales: identity statistics
            c_in, c_out = self.spec.operator.in_channels, self.spec.operator.out_channels
            return {"in_mean": [0.0] * c_in, "in_std": [1.0] * c_in,
                    "out_mean": [0.0] * c_out, "out_std": [1.0] * c_out}
        xs, ys = [], []
        for start in range(0, len(self.train_idx), 256):
            x, y = self.dataset.get_batch(self.train_idx[start:start + 256].tolist())
            xs.append(x)
            ys.append(y)
        in_mean, in_std = channel_stats(torch.cat(xs))
        out_mean, out_std = channel_stats(torch.cat(ys))
        if cls.shared_normalization:  # an autoregressive operator feeds its outputs back as inputs
            in_mean, in_std = out_mean, out_std
        return {"in_mean": in_mean, "in_std": in_std, "out_mean": out_mean, "out_std": out_std}

    def _batches(self, indices: torch.Tensor, shuffle_epoch: int | None):
        """This rank's share of each global batch: (x, y, n, m), n of the batch's m samples (all of
        them in one process). An empty share yields the batch's first sample, to weigh with 0."""
        if shuffle_epoch is not None:
            indices = indices[torch.randperm(len(indices), generator=_epoch_generator(self.cfg.seed, shuffle_epoch))]
        for start in range(0, len(indices), self.cfg.batch_size):
            batch = indices[start:start + self.cfg.batch_size]
            mine = ddp.share(batch, self.ranks)
            x, y = self.dataset.get_batch((mine if len(mine) else batch[:1]).tolist())
            yield x.to(self.device), y.to(self.device), len(mine), len(batch)

    def _check_targets(self, model: NormalizedOperator) -> None:
        """Before training: refuse targets the model's output cannot reach (e.g. a sigmoid head on
        values outside (0, 1)), and warn when they are constant (nothing to learn)."""
        _, y = self.dataset.get_batch(self.train_idx[:256].tolist())
        low, high = float(y.min()), float(y.max())
        head = model.operator.output_range
        if head is not None:  # what the model can output, channel by channel, after de-normalisation
            channel_values = y.transpose(0, 1).reshape(y.shape[1], -1)
            for c, values in enumerate(channel_values):
                mean, std = float(model.out_mean[c]), float(model.out_std[c])
                reach = (mean + std * head[0], mean + std * head[1])
                lo, hi = float(values.min()), float(values.max())
                if lo < reach[0] - 1e-6 * std or hi > reach[1] + 1e-6 * std:
                    raise ValueError(f"operator {self.spec.operator.name} outputs values in [{reach[0]:.4g}, "
                                     f"{reach[1]:.4g}], but the targets of {self.data_path} span [{lo:.4g}, {hi:.4g}]; "
                                     f"use data scaled into that range or an operator setting without the bounded "
                                     f"head (e.g. --set output=linear)")
        if high - low <= 1e-6 * max(abs(high), abs(low), 1e-30):
            print(f"warning: every target of {self.data_path} in the first {len(y)} training samples equals "
                  f"{low:.6g}; a constant fits them exactly and training learns nothing", file=sys.stderr)

    def _start(self, resume: bool) -> tuple[dict, bool]:
        """Check the run directory for a new or resumed run: the normalisation statistics to use,
        and whether the run resumes (``resume`` with no completed epoch to resume starts afresh)."""
        if storage.resumes(self.run_dir, resume):
            saved = check_resume(self.run_dir, self.spec)
            self.spec.input_summary = saved.input_summary
            return saved.normalization, True
        self.spec.input_summary = summarize(self.dataset.get_inputs(self.train_idx[i:i + 256].tolist())
                                            for i in range(0, len(self.train_idx), 256))
        return self._stats(), False

    # --- the task run_epochs drives ---------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        total, count = 0.0, 0
        for x, y, n, m in self._batches(self.train_idx, epoch):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.objective(x, y)
            value = loss.item()
            batch_sum, bad = ddp.all_sum(self.ranks, [value * n if n else 0.0,
                                                      0.0 if math.isfinite(value) or not n else 1.0])
            if bad:
                what = value if n and not math.isfinite(value) else "non-finite on another rank"
                raise FloatingPointError(f"training loss became {what} at epoch {epoch + 1}; lower the learning rate")
            # rank shares of n samples out of m: weight n W / m makes the DDP average the global batch mean
            world = self.ranks.world_size
            (loss if n * world == m else loss * (n * world / m)).backward()
            self.optimizer.step()
            self.scheduler.step()
            total += batch_sum
            count += m
        return {"train_loss": total / count, "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        totals = {name: 0.0 for name in ["loss", *self.metric_fns]}
        for x, y, n, _ in self._batches(self.val_idx, None):
            if n == 0:
                continue
            pred = self.model(x)
            totals["loss"] += self.loss_fn(pred, y).item() * n
            for name, fn in self.metric_fns.items():
                totals[name] += fn(pred, y).item() * n
        sums = ddp.all_sum(self.ranks, list(totals.values()))
        return {name: total / len(self.val_idx) for name, total in zip(totals, sums)}

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def weights(self) -> dict:
        return self.model.state_dict()

    # --- main ---------------------------------------------------------------------------------------
    def fit(self, resume: bool = False, force: bool = False) -> dict:
        """Train (or continue, with ``resume``); ``force`` skips the memory check before the first step."""
        cfg, ranks = self.cfg, self.ranks
        self.spec.normalization, resume = ddp.on_main(ranks, lambda: self._start(resume))
        for fn in [self.loss_fn, *self.metric_fns.values()]:
            for part in fn.modules():  # a sum of losses ("norm-l2+norm-h1") holds them as submodules
                if isinstance(part, Standardized):  # "norm-" losses: in units of the outputs' spread
                    part.set_statistics(self.spec.normalization["out_mean"], self.spec.normalization["out_std"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.model = model = build_model(self.spec).to(self.device)
        if not resume:
            if ranks.is_main:
                self._check_targets(model)
            x, y = self.dataset.get_batch(self.train_idx[:256].tolist())
            model.operator.initialize(x.to(self.device), y.to(self.device), RunDirectories())
        self.spec.operator.parameters = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = _make_scheduler(self.optimizer, cfg, math.ceil(len(self.train_idx) / cfg.batch_size))
        objective = ddp.Objective(model, self.loss_fn, model.operator.training_loss if model.operator.own_loss else None,
                                  model.operator.uses_labels, self.dataset.problem)
        if not (force or resume):  # a run that started once fits again
            x2, y2 = (t.to(self.device) for t in self.dataset.get_batch([0, 0]))
            check_training_memory(model, lambda k: objective(x2[:k], y2[:k]), cfg.batch_size, self.device,
                                  what=f"training {self.spec.operator.name}")
        self.objective = ddp.wrap(objective, ranks, self.device)
        where = "cpu" if ranks.enabled else self.device  # rank 0 reads, every rank loads
        return run_epochs(self, self.run_dir, self.spec, epochs=cfg.epochs, resume=resume, progress=self.progress,
                          ranks=ranks, state_location=where)


def train(operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
          config: TrainConfig | None = None, resume: bool = False, progress: bool | None = None,
          force: bool = False) -> dict:
    """Train and return the history summary (also stored in config.json). ``force`` skips the check
    that refuses a run whose estimated memory exceeds what the device has free."""
    return Trainer(operator, data, run_dir, hparams=hparams, config=config, progress=progress).fit(resume=resume,
                                                                                                   force=force)
