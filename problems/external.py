"""The ``external`` problem: data sciops did not generate, described by what was imported.

An imported file (``sciops.datasets.import_file`` / ``from_arrays``) that is not mapped to a sciops
problem carries ``problem="external"`` and parameters that rebuild this class with
``sciops.problems.get("external", **params)``, so training, ``open_dataset``, ``open_xarray`` and
``sciops info`` treat it as any other dataset:

* ``fields``: ``{name: {"dims": [...], "units": ..., "role": "input"|"output", "description": ...}}``
  in channel order (dims without the sample and channel axes);
* ``grid``: ``{coord: {"start": a, "stop": b, "n": n, "units": u}}`` for ``numpy.linspace(a, b, n)``,
  or ``{coord: {"values": [...], "units": u}}`` for any other coordinates;
* ``geometry``: ``bounded``, ``periodic`` or ``sphere``;
* ``source``: the provenance (file, format, sha256, keys read, transformations).

There is no solver: ``solve``, ``sample_inputs`` and so ``generate`` raise a one-line ``ValueError``
(evaluation on fresh samples is refused), unless the data were imported ``--as`` a sciops problem,
in which case the file carries that problem instead.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sciops.problems.base import Field, Param, Problem

GEOMETRIES = ("bounded", "periodic", "sphere")
ROLES = ("input", "output")
_DEFAULT_FIELDS = {"a": {"dims": ["x"], "units": "", "role": "input"},
                   "u": {"dims": ["x"], "units": "", "role": "output"}}
_DEFAULT_GRID = {"x": {"start": 0.0, "stop": 1.0, "n": 2, "units": ""}}


class _Described(Param):
    """A JSON-object parameter, written by the importer rather than typed by hand."""

    def allowed(self) -> str:
        return "a JSON object (written by sciops import)"


def encode_grid(grid: dict[str, np.ndarray], units: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The ``grid`` parameter for coordinate arrays: a linspace where one reproduces them exactly."""
    out = {}
    for name, values in grid.items():
        values = np.asarray(values, dtype=np.float64)
        spec: dict[str, Any]
        if values.size >= 2 and np.array_equal(values, np.linspace(values[0], values[-1], values.size)):
            spec = {"start": float(values[0]), "stop": float(values[-1]), "n": int(values.size)}
        else:
            spec = {"values": values.tolist()}
        out[name] = {**spec, "units": units.get(name, "")}
    return out


def decode_grid(spec: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    grid, units = {}, {}
    for name, item in spec.items():
        if not isinstance(item, dict):
            raise ValueError(f"external: grid coordinate {name!r} is {item!r}; expected {{start, stop, n}} or "
                             f"{{values}}")
        if "values" in item:
            grid[name] = np.asarray(item["values"], dtype=np.float64)
        elif {"start", "stop", "n"} <= set(item):
            grid[name] = np.linspace(float(item["start"]), float(item["stop"]), int(item["n"]))
        else:
            raise ValueError(f"external: grid coordinate {name!r} has keys {sorted(item)}; expected start, stop "
                             f"and n, or values")
        units[name] = str(item.get("units", ""))
    return grid, units


class External(Problem):
    """Imported data: fields, grid and provenance, no solver."""

    name = "external"
    has_solver = False
    operator_params = ("fields",)
    PARAMS = (
        _Described("fields", _DEFAULT_FIELDS, dict, "stored fields: name -> {dims, units, role, description}"),
        _Described("grid", _DEFAULT_GRID, dict, "coordinates: name -> {start, stop, n, units} or {values, units}"),
        Param("geometry", "bounded", str, "domain geometry", choices=GEOMETRIES),
        _Described("source", None, dict, "provenance: file, format, sha256, keys read, transformations",
                   optional=True),
    )

    def __init__(self, **params):
        super().__init__(**params)
        self.geometry = self.params["geometry"]
        self.grid, self.grid_units = decode_grid(self.params["grid"])
        self.fields = {}
        for name, spec in self.params["fields"].items():
            if not isinstance(spec, dict) or "dims" not in spec or spec.get("role") not in ROLES:
                raise ValueError(f"external: field {name!r} is {spec!r}; expected {{dims, units, role}} with role "
                                 f"input or output")
            missing = [d for d in spec["dims"] if d not in self.grid]
            if missing:
                raise ValueError(f"external: field {name!r} has dim {missing[0]!r} without a grid coordinate")
            self.fields[name] = Field(tuple(spec["dims"]), str(spec.get("units", "")), spec["role"],
                                      str(spec.get("description", "")))

    @property
    def solver_info(self):
        return {"name": "none (imported data)"}

    def _no_solver(self) -> str:
        source = self.params["source"] or {}
        origin = f" from {source['file']}" if source.get("file") else ""
        return (f"external: there is no solver for imported data{origin}; import it with --as PROBLEM "
                f"(and --param) to map it to a sciops problem with a solver")

    def sample_inputs(self, n: int, seed: int, start: int = 0):
        raise ValueError(self._no_solver())

    def solve(self, inputs):
        raise ValueError(self._no_solver())

    def peak_memory(self, batch_size: int) -> int:
        return 0
