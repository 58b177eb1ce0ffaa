"""Building the model a run spec describes, and choosing the device it runs on."""
from __future__ import annotations

import torch

from sciops.normalization import NormalizedOperator
from sciops.operators import build_normalized
from sciops.runs.spec import RunSpec


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; ValueError for anything else."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None


def build_model(spec: RunSpec) -> NormalizedOperator:
    """The normalised grid operator a run spec describes (weights not loaded)."""
    return build_normalized(spec.operator, spec.normalization)
