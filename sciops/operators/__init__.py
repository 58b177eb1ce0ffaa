"""Neural operators, one module per family, found by name through ``REGISTRY``.

Every operator is an ``nn.Module`` mapping channel-first inputs (batch, C_in, *space) to outputs
(batch, C_out, *space) and is built by ``build(name, in_channels, out_channels, ndim, geometry,
**hyperparameters)``. Hyperparameters must be JSON values: they are stored in ``config.json`` and
the operator is rebuilt from them when a checkpoint is loaded.
"""
from __future__ import annotations

import inspect
from importlib import import_module

from torch import nn

REGISTRY: dict[str, str] = {
    "dgno": "sciops.operators.dgno:DGNO",
    "fno": "sciops.operators.fno:FNO",
    "mgno": "sciops.operators.mgno:MgNO",
}

# Hyperparameters the caller supplies from the data; users set the others.
_FROM_DATA = ("in_channels", "out_channels", "ndim", "geometry")


def operator_class(name: str) -> type[nn.Module]:
    if name not in REGISTRY:
        raise ValueError(f"unknown operator {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)


def hyperparameters(name: str) -> dict:
    """The user-settable hyperparameters of an operator with their defaults."""
    params = inspect.signature(operator_class(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and k not in _FROM_DATA}


def build(name: str, *, in_channels: int, out_channels: int, ndim: int, geometry: str, **hparams) -> nn.Module:
    allowed = hyperparameters(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(f"operator {name}: unknown hyperparameter {unknown[0]!r}; expected one of {', '.join(allowed)}")
    return operator_class(name)(in_channels=in_channels, out_channels=out_channels, ndim=ndim,
                                geometry=geometry, **hparams)


def names() -> list[str]:
    return sorted(REGISTRY)
