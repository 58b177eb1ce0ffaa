"""The Problem contract: an input distribution, parameters, a reference solver and field metadata.

A Problem is built by ``sciops.problems.get(name, **params)``, which validates every parameter
against the problem's ``PARAMS`` specification. Conventions every problem follows:

* ``sample_inputs(n, seed, start=0)`` returns the inputs of samples ``start .. start+n-1``.
  Sample ``i`` is drawn from its own generator ``numpy.random.default_rng(sample_seed(seed, i))``,
  so it depends only on ``(seed, i)``: any sample can be regenerated alone and sharded
  generation equals serial generation.
* ``solve(inputs)`` runs the reference solver on a batch. Inputs and outputs are numpy arrays
  of shape (batch, *field_dims) in float32 when the problem has one input (output) field, and
  dicts ``name -> array`` when it has several.
* ``generate(n, seed, start=0)`` returns ``(inputs, outputs, solve_seconds)``; it is what dataset
  writers and evaluation call. Problems that solve on a finer grid than they store override it.
* ``fields`` maps field names to :class:`Field` (dims, units, role); ``grid`` maps coordinate
  names to 1-D arrays; ``grid_units`` gives their units; ``grid_attrs`` (optional) maps a coordinate
  name to extra attributes stored with it (e.g. ``quadrature_weights`` of a sphere's latitudes);
  ``geometry`` is "bounded", "periodic" or "sphere".
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Field:
    dims: tuple[str, ...]
    units: str
    role: str  # "input", "output" or "diagnostic"
    description: str = ""


@dataclass(frozen=True)
class Param:
    """One problem parameter: its default, type, and allowed values or range."""

    name: str
    default: Any
    type: type
    doc: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    optional: bool = field(default=False)  # None allowed (meaning: a default derived from others)

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        lo = "-inf" if self.min is None else self.min
        hi = "inf" if self.max is None else self.max
        return f"a {self.type.__name__} in [{lo}, {hi}]"

    def validate(self, problem: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if isinstance(value, str) and self.type is not str:
            value = self._parse(problem, value)
            if value is None:  # "none" / "" for an optional parameter
                return None
        try:
            if isinstance(value, bool) and self.type is not bool:
                raise TypeError
            if self.type is int and float(value) != int(value):
                raise TypeError
            cast = self.type(value)
        except (TypeError, ValueError, OverflowError):  # int(inf) raises OverflowError
            raise ValueError(f"{problem}: parameter {self.name}={value!r} is not valid; expected {self.allowed()}") from None
        if self.type is float and not np.isfinite(cast):
            raise ValueError(f"{problem}: parameter {self.name}={value!r} is not valid; expected {self.allowed()}")
        bad = (self.choices is not None and cast not in self.choices) or \
              (self.min is not None and cast < self.min) or (self.max is not None and cast > self.max)
        if bad:
            raise ValueError(f"{problem}: parameter {self.name}={value!r} is out of range; expected {self.allowed()}")
        return cast

    def _parse(self, problem: str, text: str) -> Any:
        if self.optional and text.lower() in ("none", ""):
            return None
        try:
            return int(text) if self.type is int else float(text) if self.type is float else text
        except ValueError:
            raise ValueError(f"{problem}: parameter {self.name}={text!r} is not valid; expected {self.allowed()}") from None


@dataclass(frozen=True)
class Rung:
    """A cheaper configuration of a problem's own reference solver that a user could run instead
    (a coarser grid, a larger time step, fewer iterations): one step of the problem's ``ladder()``.

    ``solve`` takes and returns what ``Problem.solve`` takes and returns (the same grids: a coarse
    solve transfers its inputs and outputs), so evaluation scores it against the reference in the same
    metric and times it exactly as the surrogate. A rung the problem cannot run (its resolution check
    refuses it, say) has ``solve=None`` and ``note`` saying why; evaluation reports it as such."""

    label: str
    solve: Callable[[Any], Any] | None
    note: str = ""


def sample_seed(seed: int, index: int) -> int:
    """The 64-bit seed of sample ``index`` of a dataset drawn with base ``seed``."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1, np.uint64)
    return int(state[0])


class Problem:
    """Base class; subclasses set ``name``, ``PARAMS``, ``fields``, ``grid`` and implement
    ``_sample_one(rng)`` and ``solve(inputs)``."""

    name: ClassVar[str]
    PARAMS: ClassVar[tuple[Param, ...]]
    geometry: str = "bounded"
    # what a sample's outputs are, which picks the operators, trainer and evaluation that serve the
    # problem (``sciops.kinds``): "grid" fields, or "particles" trajectories
    data_kind: ClassVar[str] = "grid"
    # the parameters that define the map from inputs to outputs (physics, recorded times), as
    # opposed to the input distribution and the numerics: data that differ in one of them are
    # another operator's (:meth:`check_same_operator` refuses them)
    operator_params: ClassVar[tuple[str, ...]] = ()

    # integer parameters that set the work per sample (grid sizes, refinement), largest first to
    # shrink: the writer names the largest value that fits when a generation would not
    size_params: ClassVar[tuple[str, ...]] = ()

    # whether certify() gives guaranteed error bounds for approximate outputs (a surrogate's)
    certified: ClassVar[bool] = False

    # whether the problem has a solver (imported data may not: the "external" problem), so that what
    # needs one (evaluation on fresh samples, the ladder) can refuse before any work
    has_solver: ClassVar[bool] = True

    # whether record_residuals() measures how far records are from the problem's equations (the
    # error indicator of error-controlled rollouts)
    has_residual: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = self.validate_params(params)

    def certify(self, inputs, outputs, tol: float | None = None):
        """Guaranteed error bounds for approximate ``outputs`` of ``inputs``, improved with the
        reference solver until each bound is <= ``tol`` when given. Returns ``(outputs, bounds,
        iterations)``: the certified outputs, the bounds (batch,) on their relative error, and the
        solver iterations each sample took. Only problems with ``certified = True`` have it."""
        raise NotImplementedError(f"{self.name} has no certified error bound")

    def certified_error(self, inputs, outputs):
        """The true error (batch,) in the norm ``certify`` bounds, against an exact solve: what
        evaluation checks the bounds with. Only problems with ``certified = True``."""
        raise NotImplementedError(f"{self.name} has no certified error bound")

    def ladder(self) -> list[Rung]:
        """Cheaper configurations of this problem's reference solver, cheapest first (see :class:`Rung`).
        Evaluation never reports a surrogate's speed without the one against the cheapest rung at
        least as accurate. The default is no ladder (evaluation then says so)."""
        return []

    def with_records(self, k: int) -> Problem:
        """The same map over k record intervals (trajectory problems): what advances a state by one
        record in error-controlled rollouts (:mod:`sciops.grid.hybrid`). The default has no records."""
        raise ValueError(f"{self.name} records no trajectory; expected a trajectory problem")

    def record_residuals(self, initial: dict, records: dict) -> dict:
        """The residual in the problem's equations of each record interval of trajectories ``records``
        {output: (batch, T, ...)} started from ``initial`` {output: (batch, ...)}: {output: (batch, T,
        ...)} in the outputs' units (``solvers.residual``). Only problems with ``has_residual``."""
        raise NotImplementedError(f"{self.name} has no record residual")

    def check_input_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """ValueError when inputs of these shapes (input field -> array shape, a batch or one sample)
        are not what :meth:`solve` takes; only shapes are checked, nothing is solved. A surrogate asks
        this before it answers, so it refuses what the solver refuses. The default accepts any shape."""

    def with_params(self, **changes: Any) -> Problem:
        """The same problem with some parameters changed (validated like ``get``)."""
        return type(self)(**{**self.params, **changes})

    @classmethod
    def param(cls, name: str) -> Param:
        return next(p for p in cls.PARAMS if p.name == name)

    def peak_memory(self, batch_size: int) -> int:
        """Bytes the solver needs for one batch of ``batch_size`` samples, beyond the process's base.

        The default, eight float64 copies of every field of the batch, suits explicit solvers that
        hold a few work arrays per stored field; problems whose solver grid or factorisation is
        larger override it with a measured model.
        """
        try:
            per_sample = sum(8 * int(np.prod(self.field_shape(f))) for f in self.fields)
        except (KeyError, TypeError, AttributeError):  # a field dim without a grid coordinate
            return 0
        return 8 * batch_size * per_sample

    @classmethod
    def check_same_operator(cls, data_params: dict, run_params: dict, source) -> None:
        """ValueError naming the first of ``operator_params`` in which the parameters of data from
        ``source`` differ from those a run was trained with."""
        for name in cls.operator_params:
            if data_params.get(name) != run_params.get(name):
                raise ValueError(f"{source} was generated with {name}={data_params.get(name)}, but the run was "
                                 f"trained with {name}={run_params.get(name)}; expected data of the same operator")

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in cls.PARAMS}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"{cls.name}: unknown parameter {unknown[0]!r}; expected one of {', '.join(known)}")
        return {name: spec.validate(cls.name, params.get(name, spec.default)) for name, spec in known.items()}

    # --- metadata -------------------------------------------------------------------------------
    fields: dict[str, Field]
    grid: dict[str, np.ndarray]
    grid_units: dict[str, str]
    grid_attrs: dict[str, dict[str, Any]] = {}  # never mutated; subclasses assign their own dict

    @property
    def input_fields(self) -> list[str]:
        return [k for k, f in self.fields.items() if f.role == "input"]

    @property
    def output_fields(self) -> list[str]:
        return [k for k, f in self.fields.items() if f.role == "output"]

    @property
    def solver_info(self) -> dict[str, Any]:
        """Solver name and settings recorded in dataset files."""
        return {}

    # --- sampling and solving ---------------------------------------------------------------------
    def _sample_one(self, rng: np.random.Generator) -> np.ndarray | dict[str, np.ndarray]:
        raise NotImplementedError

    def sample_inputs(self, n: int, seed: int, start: int = 0):
        if n < 0 or start < 0:
            raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
        samples = [self._sample_one(np.random.default_rng(sample_seed(seed, start + i))) for i in range(n)]
        if samples and isinstance(samples[0], dict):
            return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
        return np.stack(samples) if samples else np.zeros((0,) + self.field_shape(self.input_fields[0]), np.float32)

    def solve(self, inputs):
        raise NotImplementedError

    def generate(self, n: int, seed: int, start: int = 0):
        """Inputs, reference outputs and the seconds the solver took, for samples start..start+n-1."""
        inputs = self.sample_inputs(n, seed, start)
        t0 = time.perf_counter()
        outputs = self.solve(inputs)
        return inputs, outputs, time.perf_counter() - t0

    def field_shape(self, name: str) -> tuple[int, ...]:
        return tuple(len(self.grid[d]) for d in self.fields[name].dims)

    def as_field_dict(self, arrays, role: str) -> dict[str, np.ndarray]:
        """Inputs or outputs in dict form, whatever form the problem uses."""
        names = self.input_fields if role == "input" else self.output_fields
        if isinstance(arrays, dict):
            return arrays
        return {names[0]: arrays}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
