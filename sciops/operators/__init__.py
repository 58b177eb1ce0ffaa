"""Neural operators, one module per family, found by name through ``REGISTRY``.

Every operator is an ``nn.Module`` mapping channel-first inputs (batch, C_in, *space) to outputs
(batch, C_out, *space), or for trajectory operators (those whose constructor takes ``time_steps``)
to (batch, C_out, T, *space), and is built by ``build(name, in_channels, out_channels, ndim,
geometry, [time_steps,] **hyperparameters)``. Hyperparameters must be JSON values: they are stored in ``config.json`` and
the operator is rebuilt from them when a checkpoint is loaded.
"""
from __future__ import annotations

import inspect
from importlib import import_module

from torch import nn

REGISTRY: dict[str, str] = {
    "dgno": "sciops.operators.dgno:DGNO",
    "fno": "sciops.operators.fno:FNO",
    "fno-rollout": "sciops.operators.fno_trajectory:FNORollout",
    "fno3d": "sciops.operators.fno_trajectory:FNO3D",
    "mgno": "sciops.operators.mgno:MgNO",
    "specboost": "sciops.operators.specboost:SpecBoost",
    "t1": "sciops.operators.t1:T1",
}

# Hyperparameters the caller supplies from the data; users set the others. ``time_steps`` is the
# number of output records of trajectory data (outputs (batch, C, T, *space) from inputs
# (batch, C, *space)); only trajectory operators accept it, and they require it.
_FROM_DATA = ("in_channels", "out_channels", "ndim", "geometry", "time_steps")


def operator_class(name: str) -> type[nn.Module]:
    if name not in REGISTRY:
        raise ValueError(f"unknown operator {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)


def hyperparameters(name: str) -> dict:
    """The user-settable hyperparameters of an operator with their defaults."""
    params = inspect.signature(operator_class(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and k not in _FROM_DATA}


def _time_steps_parameter(name: str) -> inspect.Parameter | None:
    return inspect.signature(operator_class(name).__init__).parameters.get("time_steps")


def is_trajectory_operator(name: str) -> bool:
    """Whether the operator can predict trajectories (it accepts ``time_steps``)."""
    return _time_steps_parameter(name) is not None


def build(name: str, *, in_channels: int, out_channels: int, ndim: int, geometry: str,
          time_steps: int | None = None, **hparams) -> nn.Module:
    allowed = hyperparameters(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(f"operator {name}: unknown hyperparameter {unknown[0]!r}; expected one of {', '.join(allowed)}")
    trajectory_ops = ", ".join(n for n in names() if is_trajectory_operator(n))
    parameter = _time_steps_parameter(name)
    if parameter is not None:
        if time_steps is None and parameter.default is inspect.Parameter.empty:
            raise ValueError(f"operator {name} predicts trajectories (outputs with a time axis) but the data's "
                             "outputs have none; use one of " + ", ".join(n for n in names() if not is_trajectory_operator(n)))
        hparams["time_steps"] = time_steps
    elif time_steps is not None:
        raise ValueError(f"operator {name} maps a field to a field on the same grid, but the data's outputs are "
                         f"trajectories of {time_steps} records; use one of {trajectory_ops}")
    return operator_class(name)(in_channels=in_channels, out_channels=out_channels, ndim=ndim,
                                geometry=geometry, **hparams)


def names() -> list[str]:
    return sorted(REGISTRY)
