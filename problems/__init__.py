"""Problems: input distribution + parameters + reference solver + field metadata.

``get(name, **params)`` validates parameters and returns a :class:`~sciops.problems.base.Problem`.
Problems are found by name through ``REGISTRY`` (name -> "module:Class"), imported lazily so a
problem with heavy dependencies costs nothing until it is used. Adding a problem is one module
and one registry line.
"""
from __future__ import annotations

from importlib import import_module

from sciops.problems.base import Field, Param, Problem, Rung, sample_seed

REGISTRY: dict[str, str] = {
    "darcy": "sciops.problems.darcy:Darcy",
    "navier-stokes": "sciops.problems.navier_stokes:NavierStokes",
    "shallow-water": "sciops.problems.shallow_water:ShallowWater",
    "particles": "sciops.problems.particles:Particles",
    "radar": "sciops.problems.radar:Radar",
    "external": "sciops.problems.external:External",
}


def problem_class(name: str) -> type[Problem]:
    if name not in REGISTRY:
        raise ValueError(f"unknown problem {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)


def get(name: str, **params) -> Problem:
    """Build the problem ``name`` with validated parameters (ValueError on any bad one)."""
    return problem_class(name)(**params)


def names() -> list[str]:
    return sorted(REGISTRY)


__all__ = ["Field", "Param", "Problem", "REGISTRY", "Rung", "get", "names", "problem_class", "sample_seed"]
