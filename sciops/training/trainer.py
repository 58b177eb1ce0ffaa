"""Supervised training of an operator on a sciops dataset, with exact resume.

Algorithm: AdamW with a learning-rate schedule (one-cycle by default, stepped per batch), the
training loss from :mod:`sciops.losses` on raw targets through the normalised model, validation
on the last ``val_fraction`` of the file after every epoch, best weights kept by the ``select``
metric.

Operator hooks (all optional): ``prepare_hyperparameters(hparams, problem)`` (classmethod, may
complete the hyperparameters from the data's problem before they are stored), ``initialize(x, y)``
(called once on up to 256 training pairs before the first epoch), ``raw_io`` (the operator
normalises itself: identity statistics), ``shared_normalization`` (one set of statistics, the
outputs', for inputs and outputs).

Operator-defined losses: an operator class with a method ``training_loss(x, y, *, problem)``
(for example DGNO's label-free weak-form physics) is trained on that scalar instead. It receives
raw inputs, and the labels only if its ``uses_labels`` attribute is true (else ``y=None``); its
normalisation statistics are the identity, computed from no data. Validation metrics stay the
supervised ones against the stored labels, so accuracy is measured the same way for every operator.

Determinism and resume: the model is initialised from ``seed``; the batch order of epoch e comes
from a generator seeded with (seed, e). The run directory is first written at the end of epoch 1
(``config.json`` with the rest), so a run that fails before leaves nothing. After every epoch ``state.pt`` (model, optimiser,
scheduler, history) is replaced atomically and ``metrics.jsonl`` is rewritten from the history,
so a run killed at any point and resumed with ``resume=True`` continues from the last completed
epoch and ends with the same weights and the same metrics lines as an uninterrupted run.

Several processes (torchrun, ``sciops train --nproc N``): ``batch_size`` is the global batch and
each rank trains on its share of every batch with DistributedDataParallel; statistics, metrics,
checkpoints and resume are those of a single-process run, written by rank 0 only. See
:mod:`sciops.training.distributed`.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

import sciops
from sciops import checkpoint as ckpt
from sciops.losses import Standardized, loss_options, make_loss
from sciops.normalization import NormalizedOperator, channel_stats
from sciops.input_summary import summarize
from sciops.training.memory import check_training_memory
from sciops.operators import build, hyperparameters, operator_class
from sciops.datasets.progress import Progress
from sciops.training import distributed as ddp
from sciops.training.config import TrainConfig


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def build_model(config: dict) -> NormalizedOperator:
    """The normalised operator described by a run's config.json (weights not loaded)."""
    op = config["operator"]
    operator = build(op["name"], in_channels=op["in_channels"], out_channels=op["out_channels"],
                     ndim=op["ndim"], geometry=op["geometry"], time_steps=op.get("time_steps"),
                     input_steps=op.get("input_steps"),
                     **op["hyperparameters"])
    norm = config["normalization"]
    return NormalizedOperator(operator, norm["in_mean"], norm["in_std"], norm["out_mean"], norm["out_std"])


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
    """Train ``operator`` on ``data`` into ``run_dir``; see module docstring."""

    def __init__(self, operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
                 config: TrainConfig | None = None, progress: bool | None = None):
        self.run_dir = Path(run_dir)
        self.data_path = Path(data)
        self.cfg = config or TrainConfig()
        self.progress = progress
        self.ranks = ddp.context()  # one process unless started by torchrun
        self.device = ddp.rank_device(self.ranks, resolve_device(self.cfg.device))
        defaults = hyperparameters(operator)  # validates the operator name before any file is read
        unknown = sorted(set(hparams or {}) - set(defaults))
        if unknown:
            raise ValueError(f"operator {operator}: unknown hyperparameter {unknown[0]!r}; expected one of {', '.join(defaults)}")
        self.hparams = {**defaults, **(hparams or {})}
        self.dataset = ddp.open_rank_dataset(self.data_path, self.ranks)
        problem = self.dataset.problem
        prepare = getattr(operator_class(operator), "prepare_hyperparameters", None)
        if prepare is not None:  # e.g. SpecBoost embeds its base run's configuration, sfno the data's grid
            self.hparams = prepare(self.hparams, problem)
        n = self.dataset.n_samples
        n_train, self.n_val = self.cfg.split(n, self.data_path)
        ddp.check_world_size(self.cfg.batch_size, self.ranks.world_size, n_train)
        self.train_idx = torch.arange(n_train)
        self.val_idx = torch.arange(n - self.n_val, n)
        x0, y0 = self.dataset.get_batch([0])
        # Trajectory data: outputs (B, C, T, *space), inputs (B, C, *space) or a segment (B, C, K, *space)
        space = sum(d not in ("t", "channel") for d in problem.fields[self.dataset.output_fields[0]].dims)
        time_steps = y0.shape[2] if y0.dim() == space + 3 else None
        input_steps = x0.shape[2] if x0.dim() == space + 3 else None
        self.config = {
            "sciops_version": sciops.__version__,
            "operator": {"name": operator, "in_channels": x0.shape[1], "out_channels": y0.shape[1],
                         "ndim": space, "geometry": problem.geometry, "time_steps": time_steps,
                         "input_steps": input_steps,
                         "hyperparameters": self.hparams},
            "problem": {"name": problem.name, "params": problem.params},
            "fields": {"inputs": self.dataset.input_fields, "outputs": self.dataset.output_fields,
                       "units": {k: problem.fields[k].units for k in problem.fields}},
            "data": {"path": str(self.data_path.resolve()), "seed": int(self.dataset.attrs["seed"]),
                     "n_samples": n, "n_train": n_train, "n_val": self.n_val,
                     "resolution": list(x0.shape[-space:])},
            "training": self.cfg.to_dict(),
        }
        self.config = json.loads(json.dumps(self.config))  # JSON form, as it will be read back
        geometry = loss_options(problem)  # on the sphere also the grid type
        self.loss_fn = make_loss(self.cfg.loss, spatial_dims=space, **geometry)
        self.metric_fns = {m: make_loss(m, spatial_dims=space, **geometry) for m in self.cfg.metrics}
        ddp.setup(self.ranks, self.device)  # after the checks above, which every rank makes alike

    # --- pieces -----------------------------------------------------------------------------------
    def _stats(self) -> dict:
        cls = operator_class(self.config["operator"]["name"])
        if hasattr(cls, "training_loss") or getattr(cls, "raw_io", False):
            # an operator with its own training_loss gets raw inputs (and labels only if its
            # uses_labels is true) and carries its own scales, as does one marked raw_io:
            # identity statistics, computed from no data
            c_in, c_out = self.config["operator"]["in_channels"], self.config["operator"]["out_channels"]
            return {"in_mean": [0.0] * c_in, "in_std": [1.0] * c_in,
                    "out_mean": [0.0] * c_out, "out_std": [1.0] * c_out}
        xs, ys = [], []
        for start in range(0, len(self.train_idx), 256):
            x, y = self.dataset.get_batch(self.train_idx[start:start + 256].tolist())
            xs.append(x)
            ys.append(y)
        in_mean, in_std = channel_stats(torch.cat(xs))
        out_mean, out_std = channel_stats(torch.cat(ys))
        if getattr(operator_class(self.config["operator"]["name"]), "shared_normalization", False):
            # an autoregressive operator feeds its outputs back as inputs: one scale for both
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

    def _check_targets(self, model) -> None:
        """Before training: refuse targets the model's output cannot reach (e.g. a sigmoid head on
        values outside (0, 1)), and warn when they are constant (nothing to learn)."""
        _, y = self.dataset.get_batch(self.train_idx[:256].tolist())
        low, high = float(y.min()), float(y.max())
        head = getattr(model.operator, "output_range", None)
        if head is not None:  # what the model can output, channel by channel, after de-normalisation
            channel_values = y.transpose(0, 1).reshape(y.shape[1], -1)
            for c, values in enumerate(channel_values):
                mean, std = float(model.out_mean[c]), float(model.out_std[c])
                reach = (mean + std * head[0], mean + std * head[1])
                lo, hi = float(values.min()), float(values.max())
                if lo < reach[0] - 1e-6 * std or hi > reach[1] + 1e-6 * std:
                    raise ValueError(f"operator {self.config['operator']['name']} outputs values in [{reach[0]:.4g}, "
                                     f"{reach[1]:.4g}], but the targets of {self.data_path} span [{lo:.4g}, {hi:.4g}]; "
                                     f"use data scaled into that range or an operator setting without the bounded "
                                     f"head (e.g. --set output=linear)")
        if high - low <= 1e-6 * max(abs(high), abs(low), 1e-30):
            print(f"warning: every target of {self.data_path} in the first {len(y)} training samples equals "
                  f"{low:.6g}; a constant fits them exactly and training learns nothing", file=sys.stderr)

    @torch.no_grad()
    def validate(self, model) -> dict[str, float]:
        model.eval()
        totals = {name: 0.0 for name in ["loss", *self.metric_fns]}
        for x, y, n, _ in self._batches(self.val_idx, None):
            if n == 0:
                continue
            pred = model(x)
            totals["loss"] += self.loss_fn(pred, y).item() * n
            for name, fn in self.metric_fns.items():
                totals[name] += fn(pred, y).item() * n
        sums = ddp.all_sum(self.ranks, list(totals.values()))
        return {name: total / len(self.val_idx) for name, total in zip(totals, sums)}

    # --- main loop --------------------------------------------------------------------------------
    def _start(self, resume: bool) -> tuple[dict, bool]:
        """Check the run directory for a new or resumed run: the normalisation statistics to use,
        and whether the run resumes (``resume`` with no completed epoch to resume starts afresh)."""
        if ckpt.resumes(self.run_dir, resume):
            saved = ckpt.load_json(self.run_dir / ckpt.CONFIG)
            saved["operator"].pop("parameters", None)
            saved["data"].pop("path", None)
            mine = {**self.config, "data": {k: v for k, v in self.config["data"].items() if k != "path"}}
            for key in ("operator", "problem", "training", "data"):
                if saved[key] != mine[key]:
                    raise ValueError(f"cannot resume {self.run_dir}: its {key} settings differ from this command's "
                                     f"({ckpt.first_difference(saved[key], mine[key], key)})")
            self.config["input_summary"] = saved.get("input_summary")
            return saved["normalization"], True
        self.config["input_summary"] = summarize(self.dataset.get_inputs(self.train_idx[i:i + 256].tolist())
                                                 for i in range(0, len(self.train_idx), 256))
        return self._stats(), False

    def fit(self, resume: bool = False, force: bool = False) -> dict:
        """Train (or continue, with ``resume``); ``force`` skips the memory check before the first step."""
        cfg, ranks = self.cfg, self.ranks
        state_path = self.run_dir / ckpt.STATE
        self.config["normalization"], resume = ddp.on_main(ranks, lambda: self._start(resume))
        norm = self.config["normalization"]
        for fn in [self.loss_fn, *self.metric_fns.values()]:
            for part in fn.modules():  # a sum of losses ("norm-l2+norm-h1") holds them as submodules
                if isinstance(part, Standardized):  # "norm-" losses: in units of the outputs' spread
                    part.set_statistics(norm["out_mean"], norm["out_std"])

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = build_model(self.config).to(self.device)
        if not resume and ranks.is_main:
            self._check_targets(model)
        initialize = getattr(model.operator, "initialize", None)
        if initialize is not None and not resume:  # data-dependent set-up, e.g. SpecBoost's residual scale
            x, y = self.dataset.get_batch(self.train_idx[:256].tolist())
            initialize(x.to(self.device), y.to(self.device))
        real_numbers = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
        self.config["operator"]["parameters"] = real_numbers
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(self.train_idx) / cfg.batch_size)
        scheduler = _make_scheduler(optimizer, cfg, steps_per_epoch)
        history: list[dict] = []
        start_epoch = 0
        if resume:
            where = "cpu" if ranks.enabled else self.device  # rank 0 reads, every rank loads
            state = ddp.on_main(ranks, lambda: ckpt.load_tensors(state_path, map_location=where))
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history = state["history"]
            start_epoch = len(history)
            if ranks.is_main:  # a kill between an epoch's writes leaves them one epoch ahead of state.pt
                ckpt.write_metrics(self.run_dir, history)

        best = min((h["val"][cfg.select] for h in history), default=float("inf"))
        bar = Progress(cfg.epochs, initial=start_epoch, desc=f"train {self.config['operator']['name']}",
                       unit="epoch", mode=self.progress if ranks.is_main else False)
        custom_loss = getattr(model.operator, "training_loss", None)  # e.g. physics-informed, label-free
        labels = getattr(model.operator, "uses_labels", True)
        objective = ddp.Objective(model, self.loss_fn, custom_loss, labels, self.dataset.problem)
        if not (force or resume):  # a run that started once fits again
            x2, y2 = (t.to(self.device) for t in self.dataset.get_batch([0, 0]))
            check_training_memory(model, lambda k: objective(x2[:k], y2[:k]), cfg.batch_size, self.device,
                                  what=f"training {self.config['operator']['name']}")
        objective = ddp.wrap(objective, ranks, self.device)
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            t0 = time.perf_counter()
            total, count = 0.0, 0
            for x, y, n, m in self._batches(self.train_idx, epoch):
                optimizer.zero_grad(set_to_none=True)
                loss = objective(x, y)
                value = loss.item()
                batch_sum, bad = ddp.all_sum(ranks, [value * n if n else 0.0, 0.0 if math.isfinite(value) or not n else 1.0])
                if bad:
                    what = value if n and not math.isfinite(value) else "non-finite on another rank"
                    raise FloatingPointError(f"training loss became {what} at epoch {epoch + 1}; lower the learning rate")
                # rank shares of n samples out of m: weight n W / m makes the DDP average the global batch mean
                (loss if n * ranks.world_size == m else loss * (n * ranks.world_size / m)).backward()
                optimizer.step()
                scheduler.step()
                total += batch_sum
                count += m
            seconds = time.perf_counter() - t0
            val = self.validate(model)
            record = {"epoch": epoch + 1, "train_loss": total / count, "val": val,
                      "lr": optimizer.param_groups[0]["lr"], "seconds": seconds}
            history.append(record)
            improved = val[cfg.select] < best
            best = min(best, val[cfg.select])
            if ranks.is_main:
                if epoch == 0:  # the run directory is written from its first epoch on: a failure before leaves nothing
                    ckpt.save_json(self.run_dir / ckpt.CONFIG, self.config)
                ckpt.save_epoch(self.run_dir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                               "scheduler": scheduler.state_dict(), "history": history},
                                best_weights=model.state_dict() if improved else None)
            bar.set_postfix_str(f"loss {record['train_loss']:.4f} val {cfg.select} {val[cfg.select]:.4f} "
                                f"best {best:.4f} ({seconds:.1f}s/epoch)")
            bar.update(1)
        bar.close()
        summary = self._summary(history)
        self.config["history"] = summary
        if ranks.is_main:
            ckpt.save_json(self.run_dir / ckpt.CONFIG, self.config)
        ddp.barrier(ranks)  # the run directory is complete when fit returns on any rank
        return summary

    def _summary(self, history: list[dict]) -> dict:
        select = self.cfg.select
        best = min(history, key=lambda h: h["val"][select])
        return {"epochs": len(history), "best_epoch": best["epoch"], "best_val": best["val"],
                "final_train_loss": history[-1]["train_loss"],
                "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
                "train_seconds": sum(h["seconds"] for h in history)}


def train(operator: str, data: str | Path, run_dir: str | Path, *, hparams: dict | None = None,
          config: TrainConfig | None = None, resume: bool = False, progress: bool | None = None,
          force: bool = False) -> dict:
    """Train and return the history summary (also stored in config.json). ``force`` skips the check
    that refuses a run whose estimated memory exceeds what the device has free."""
    return Trainer(operator, data, run_dir, hparams=hparams, config=config, progress=progress).fit(resume=resume,
                                                                                                   force=force)
