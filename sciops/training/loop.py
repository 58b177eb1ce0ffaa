"""The training loop every kind of operator uses: epochs, the best epoch, state, metrics, summary.

A kind's trainer (``sciops.grid.trainer``, ``sciops.particles.trainer``) is a :class:`Task`: it
knows how to run one epoch, validate, and give or take its state; :func:`run_epochs` owns the rest.

Run directory, epoch by epoch: ``config.json`` (the run spec) is written at the end of the first
epoch, so a run that fails before leaves nothing; then every epoch ends with
``sciops.runs.storage.save_epoch`` (``weights.pt`` when the epoch is the best so far,
``metrics.jsonl``, and ``state.pt`` last, the commit point). A resumed run restarts from
``state.pt``, rewrites the metrics from its history and ends with the weights and metrics of an
uninterrupted run. When training ends, the history summary is stored in the spec (``history``),
which marks the run finished. Under torchrun only rank 0 reads and writes files.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Protocol

from sciops.datasets.progress import Progress
from sciops.runs import storage
from sciops.runs.spec import RunSpec
from sciops.training import distributed as ddp


class Task(Protocol):
    """One kind's training, as :func:`run_epochs` drives it."""

    select: str  # the validation metric that picks the best epoch (lower is better)

    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch; the record entries it adds (at least ``train_loss``)."""

    def validate(self) -> dict[str, float]:
        """Validation metrics of the current weights."""

    def state(self) -> dict:
        """What ``state.pt`` holds besides the history (model, optimiser, ...)."""

    def load_state(self, state: dict) -> None:
        """Continue from a saved ``state.pt``."""

    def weights(self) -> dict:
        """What ``weights.pt`` holds."""


def finite_or_inf(value: float) -> float:
    """A non-finite validation value (a rollout that blew up) never counts as the best."""
    return value if math.isfinite(value) else math.inf


def summarize(history: list[dict], select: str) -> dict:
    """The history summary stored in the run spec when training ends."""
    best = min(history, key=lambda h: finite_or_inf(h["val"][select]))
    return {"epochs": len(history), "best_epoch": best["epoch"], "best_val": best["val"],
            "final_train_loss": history[-1]["train_loss"],
            "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
            "train_seconds": sum(h["seconds"] for h in history)}


def run_epochs(task: Task, run_dir: str | Path, spec: RunSpec, *, epochs: int, resume: bool,
               progress: bool | None = None, ranks: ddp.Context | None = None, state_location=None) -> dict:
    """Train ``task`` up to ``epochs`` epochs into ``run_dir`` (continuing from ``state.pt`` with
    ``resume``); the history summary, also stored in the spec and ``config.json``."""
    run_dir = Path(run_dir)
    ranks = ranks or ddp.context()
    history: list[dict] = []
    if resume:
        state = ddp.on_main(ranks, lambda: storage.load_tensors(run_dir / storage.STATE, map_location=state_location))
        history = state.pop("history")
        task.load_state(state)
        if ranks.is_main:  # a kill between an epoch's writes leaves them one epoch ahead of state.pt
            storage.write_metrics(run_dir, history)
    best = min((finite_or_inf(h["val"][task.select]) for h in history), default=math.inf)
    bar = Progress(epochs, initial=len(history), desc=f"train {spec.operator.name}", unit="epoch",
                   mode=progress if ranks.is_main else False)
    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        record = {"epoch": epoch + 1, **task.train_epoch(epoch)}
        record["seconds"] = time.perf_counter() - t0
        record["val"] = val = task.validate()
        history.append(record)
        improved = finite_or_inf(val[task.select]) < best
        best = min(best, finite_or_inf(val[task.select]))
        if ranks.is_main:
            if epoch == 0:
                spec.save(run_dir)
            storage.save_epoch(run_dir, {**task.state(), "history": history},
                               best_weights=task.weights() if improved else None)
        bar.set_postfix_str(f"loss {record['train_loss']:.4f} val {task.select} {val[task.select]:.4g} "
                            f"best {best:.4g} ({record['seconds']:.1f}s/epoch)")
        bar.update(1)
    bar.close()
    spec.history = summarize(history, task.select)
    if ranks.is_main:
        if not (run_dir / storage.WEIGHTS).is_file():
            print(f"warning: every validation {task.select} of {run_dir} was non-finite; weights.pt holds the last "
                  f"epoch (lower the learning rate)", file=sys.stderr)
            storage.save_tensors(run_dir / storage.WEIGHTS, task.weights())
        spec.save(run_dir)
    ddp.barrier(ranks)  # the run directory is complete when training returns on any rank
    return spec.history
