"""The operator protocol: what the grid trainer and the surrogate may ask of an operator.

Every grid operator subclasses :class:`Operator` (an ``nn.Module``) and overrides only the hooks it
needs; the defaults are the plain supervised case. The trainer calls the hooks unconditionally, so
the contract is declared here rather than discovered with ``getattr``.

Operators never import ``sciops.runs`` or ``sciops.training``. An operator built on another trained
run (SpecBoost) receives a :class:`RunReader` from the trainer instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

import torch
from torch import nn


class RunReader(Protocol):
    """Read access to run directories, passed to operators that build on another run."""

    def config(self, run_dir: str | Path) -> dict:
        """The run's config.json (checked, migrated to the current schema)."""

    def weights(self, run_dir: str | Path, device) -> dict:
        """The run's best weights (``weights.pt``, loaded safely)."""


class Operator(nn.Module):
    """Base class of grid operators: (batch, C_in, *space) -> (batch, C_out, [T,] *space).

    Class attributes:
        raw_io: the operator normalises itself; the trainer uses identity statistics.
        shared_normalization: inputs and outputs are the same field (autoregressive operators):
            one set of statistics, the outputs', for both.
        own_loss: the operator defines :meth:`training_loss` (e.g. label-free physics), which
            the trainer minimises instead of the data loss, on raw inputs with identity statistics.
        uses_labels: with ``own_loss``, whether ``training_loss`` receives the labels (else None).
    """

    raw_io: ClassVar[bool] = False
    shared_normalization: ClassVar[bool] = False
    own_loss: ClassVar[bool] = False
    uses_labels: bool = True

    @classmethod
    def prepare_hyperparameters(cls, hparams: dict, problem, runs: RunReader) -> dict:
        """Complete the hyperparameters from the data's problem (or another run) before they are stored."""
        return hparams

    @property
    def output_range(self) -> tuple[float, float] | None:
        """The range of the operator's normalised output (a bounded head), or None when unbounded."""
        return None

    def initialize(self, x: torch.Tensor, y: torch.Tensor, runs: RunReader) -> None:
        """Data-dependent set-up on up to 256 training pairs, once before the first epoch."""

    def training_loss(self, x: torch.Tensor, y: torch.Tensor | None, *, problem) -> torch.Tensor:
        """The scalar to minimise, for operators with ``own_loss``."""
        raise NotImplementedError(f"{type(self).__name__} has no training_loss of its own")
