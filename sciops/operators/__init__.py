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

from sciops.value_types import EXPECTED, fits, is_int, kind_of

REGISTRY: dict[str, str] = {
    "dgno": "sciops.operators.dgno:DGNO",
    "fno": "sciops.operators.fno:FNO",
    "fno-rollout": "sciops.operators.fno_trajectory:FNORollout",
    "fno3d": "sciops.operators.fno_trajectory:FNO3D",
    "mgno": "sciops.operators.mgno:MgNO",
    "sfno": "sciops.operators.sfno:SFNO",
    "specboost": "sciops.operators.specboost:SpecBoost",
    "st-fno": "sciops.operators.fno_trajectory:SpatiotemporalFNO",
    "t1": "sciops.operators.t1:T1",
    "unet": "sciops.operators.unet:UNet",
}

# Hyperparameters the caller supplies from the data; users set the others. ``time_steps`` is the
# number of output records of trajectory data (outputs (batch, C, T, *space)), ``input_steps`` the
# number of input records when the inputs are a trajectory segment too ((batch, C, K, *space));
# only operators that accept them get them, and data with such an axis needs such an operator.
_FROM_DATA = ("in_channels", "out_channels", "ndim", "geometry", "time_steps", "input_steps")

# Hyperparameters that count something (modes, channels, layers, levels, points): integers >= 1,
# or lists of them where the operator takes one per dimension
SIZES = ("modes", "last_modes", "width", "layers", "projection", "levels", "latent", "inner", "centres",
         "encoder_resolution", "encoder_channels", "quad_radial", "quad_angular", "data_points", "resolution")


def operator_class(name: str) -> type[nn.Module]:
    if name not in REGISTRY:
        raise ValueError(f"unknown operator {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)


def hyperparameters(name: str) -> dict:
    """The user-settable hyperparameters of an operator with their defaults."""
    params = inspect.signature(operator_class(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and k not in _FROM_DATA}


def _parameter(name: str, key: str) -> inspect.Parameter | None:
    return inspect.signature(operator_class(name).__init__).parameters.get(key)


def is_trajectory_operator(name: str) -> bool:
    """Whether the operator can predict trajectories (it accepts ``time_steps``)."""
    return _parameter(name, "time_steps") is not None


def _data_axis(name: str, key: str, value: int | None, hparams: dict) -> None:
    """Pass a time-axis length from the data (``time_steps`` of the outputs, ``input_steps`` of the
    inputs) to an operator that accepts it; refuse data the operator cannot take."""
    parameter = _parameter(name, key)
    what = {"time_steps": "outputs", "input_steps": "inputs"}[key]
    able = ", ".join(n for n in names() if _parameter(n, key) is not None)
    if parameter is None:
        if value is not None:
            raise ValueError(f"operator {name} cannot take data whose {what} have a time axis ({value} records); "
                             f"use one of {able}")
        return
    if value is None and parameter.default is inspect.Parameter.empty:
        raise ValueError(f"operator {name} needs data whose {what} have a time axis, and this data's have none")
    hparams[key] = value


def build(name: str, *, in_channels: int, out_channels: int, ndim: int, geometry: str,
          time_steps: int | None = None, input_steps: int | None = None, **hparams) -> nn.Module:
    allowed = hyperparameters(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(f"operator {name}: unknown hyperparameter {unknown[0]!r}; expected one of {', '.join(allowed)}")
    for key, value in hparams.items():
        _check_value(name, key, value, allowed[key])
    _data_axis(name, "time_steps", time_steps, hparams)
    _data_axis(name, "input_steps", input_steps, hparams)
    return operator_class(name)(in_channels=in_channels, out_channels=out_channels, ndim=ndim,
                                geometry=geometry, **hparams)


def build_normalized(operator: dict, normalization: dict) -> nn.Module:
    """The operator described by a run's ``operator`` entry (a dict, or an object with its fields),
    wrapped in its normalisation (``sciops.normalization.NormalizedOperator``); weights not loaded."""
    from sciops.normalization import NormalizedOperator

    op = operator if isinstance(operator, dict) else vars(operator)
    model = build(op["name"], in_channels=op["in_channels"], out_channels=op["out_channels"], ndim=op["ndim"],
                  geometry=op["geometry"], time_steps=op.get("time_steps"), input_steps=op.get("input_steps"),
                  **op["hyperparameters"])
    return NormalizedOperator(model, normalization["in_mean"], normalization["in_std"],
                              normalization["out_mean"], normalization["out_std"])


def _check_value(name: str, key: str, value, default) -> None:
    """ValueError unless ``value`` is a size >= 1 (``SIZES``) or of its default's type; an integer
    setting may also be a list of integers (one per level, e.g. MgNO's smoothing steps)."""
    if key in SIZES and value is not None:
        items = value if isinstance(value, (list, tuple)) else [value]
        if not (items and all(is_int(v) and v >= 1 for v in items)):
            raise ValueError(f"operator {name}: {key}={value!r} is not a size; expected an integer >= 1"
                             + " or a list of them (as JSON: [6,12,12])" * isinstance(default, (list, tuple)))
        return
    kind = kind_of(default)
    per_level = kind is int and isinstance(value, (list, tuple)) and all(map(is_int, value))
    if kind is not None and not (fits(value, kind) or per_level):
        expected = EXPECTED[kind] + " or a list of them (one per level)" * (kind is int)
        raise ValueError(f"operator {name}: {key}={value!r} has the wrong type; expected {expected}")


def names() -> list[str]:
    return sorted(REGISTRY)
