"""PDEBench HDF5 files (axes ``[sample, t, x, y, v]``, x before y).

Layouts read:

* 2D Darcy flow: ``nu`` (N, x, y) the input, ``tensor`` (N, 1, x, y) the output (its single time
  axis dropped), ``x-coordinate`` / ``y-coordinate``. Bounded.
* 2D incompressible Navier-Stokes: ``velocity`` (N, T, x, y, 2), ``force`` (N, x, y, 2), ``t``
  (N, T). Inputs ``force`` and ``velocity_0`` (record 0), output ``velocity`` (records 1 .. T-1);
  the file has no space coordinates: cell centres of [0, 1]. Bounded.
* 2D shallow water (and other per-sample files): groups ``0000``, ``0001``, ... each with ``data``
  (T, x, y, v) and ``grid/x``, ``grid/y``, ``grid/t``. Input ``data_0`` (record 0), output ``data``
  (records 1 .. T-1); a single component v is dropped. Bounded.
* Scalar time series: ``tensor`` (N, T, *space) with ``x-coordinate`` ... ``t-coordinate``: input
  ``tensor_0``, output ``tensor`` (records 1 .. T-1).
* Any file, with ``input_key``/``output_key``: those datasets, samples first.

Every array is an h5py dataset read batch by batch.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from sciops.datasets.importers.source import (
    CHANNEL,
    TIME,
    Source,
    SourceField,
    as_float32,
    dtype_note,
    infer_dims,
    require_key,
)

SPACE = ("x", "y", "z")
LAYOUTS = "nu/tensor (2D Darcy), velocity/force (2D incompressible Navier-Stokes), per-sample groups with data " \
          "(2D shallow water), tensor (time series)"


def open_source(path: Path, input_key: str | None = None, output_key: str | None = None) -> Source:
    h5 = h5py.File(path, "r")
    try:
        if input_key is not None or output_key is not None:
            return _named(path, h5, input_key, output_key)
        keys = list(h5.keys())
        if "nu" in keys and "tensor" in keys:
            return _darcy(path, h5)
        if "velocity" in keys and "force" in keys:
            return _ns_incompressible(path, h5)
        if keys and all(isinstance(h5[k], h5py.Group) and "data" in h5[k] for k in keys):
            return _per_sample(path, h5, sorted(keys))
        if "tensor" in keys:
            return _trajectories(path, h5)
        raise ValueError(f"{path} is HDF5 in none of the PDEBench layouts sciops reads ({LAYOUTS}); its keys are "
                         f"{', '.join(map(repr, keys)) or 'none'}: name the arrays with --input-key and --output-key")
    except BaseException:
        h5.close()
        raise


def _coords(h5, n_space: int) -> dict[str, np.ndarray]:
    out = {}
    for dim in SPACE[:n_space] + (TIME,):
        key = f"{dim}-coordinate"
        if key in h5:
            out[dim] = np.asarray(h5[key][()], dtype=np.float64).ravel()
    return out


def _check_count(path, counts: dict[str, int]) -> int:
    if len(set(counts.values())) > 1:
        raise ValueError(f"{path}: the arrays do not pair: " +
                         ", ".join(f"{k!r} holds {c} samples" for k, c in counts.items()))
    return next(iter(counts.values()))


def _finish(path, h5, n: int, fields, read, known, transformations) -> Source:
    return Source("pdebench", Path(path), n, fields, read, known, {}, "bounded", transformations, close=h5.close)


def _named(path, h5, input_key, output_key) -> Source:
    if input_key is None or output_key is None:
        raise ValueError("give both --input-key and --output-key, or neither")
    datasets = []
    h5.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    for key in (input_key, output_key):
        require_key(path, datasets, key, "dataset")
    per = {k: tuple(h5[k].shape[1:]) for k in (input_key, output_key)}
    n = _check_count(path, {k: int(h5[k].shape[0]) for k in (input_key, output_key)})
    dims = _dims(path, per)
    fields = {input_key: SourceField(input_key, "input", dims[input_key], per[input_key]),
              output_key: SourceField(output_key, "output", dims[output_key], per[output_key])}
    transformations = [n for k in (input_key, output_key) for n in dtype_note(k, h5[k].dtype)]
    return _finish(path, h5, n, fields, lambda key, lo, hi: as_float32(h5[key][lo:hi], key),
                   _coords(h5, max(len(d) for d in dims.values())), transformations)


def _dims(path, per):
    rank = min(len(s) for s in per.values())
    try:
        return infer_dims(per, SPACE[:rank] if rank <= 3 else None)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _darcy(path, h5) -> Source:
    nu, tensor = h5["nu"], h5["tensor"]
    if tensor.ndim != nu.ndim + 1 or tensor.shape[1] != 1 or tensor.shape[2:] != nu.shape[1:]:
        raise ValueError(f"{path}: the arrays do not pair: 'nu' {nu.shape}, 'tensor' {tensor.shape}; expected "
                         f"(N, x, y) and (N, 1, x, y)")
    n = _check_count(path, {"nu": nu.shape[0], "tensor": tensor.shape[0]})
    space = SPACE[:nu.ndim - 1]
    fields = {"nu": SourceField("nu", "input", space, tuple(nu.shape[1:]), description="coefficient"),
              "tensor": SourceField("tensor", "output", space, tuple(nu.shape[1:]), description="solution")}

    def read(key, lo, hi):
        return as_float32(h5["nu"][lo:hi], "nu") if key == "nu" else as_float32(h5["tensor"][lo:hi, 0], "tensor")
    transformations = ["tensor: its single time axis dropped"] + dtype_note("nu", nu.dtype) + \
        dtype_note("tensor", tensor.dtype)
    return _finish(path, h5, n, fields, read, _coords(h5, len(space)), transformations)


def _ns_incompressible(path, h5) -> Source:
    velocity, force = h5["velocity"], h5["force"]
    if velocity.ndim != 5 or force.shape[1:] != velocity.shape[2:] or velocity.shape[1] < 2:
        raise ValueError(f"{path}: the arrays do not pair: 'velocity' {velocity.shape}, 'force' {force.shape}; "
                         f"expected (N, T, x, y, 2) with T >= 2 and (N, x, y, 2)")
    n = _check_count(path, {"velocity": velocity.shape[0], "force": force.shape[0]})
    space, comps, steps = tuple(velocity.shape[2:4]), velocity.shape[4], velocity.shape[1]
    fields = {"force": SourceField("force", "input", ("x", "y", CHANNEL), space + (comps,), description="forcing"),
              "velocity_0": SourceField("velocity", "input", ("x", "y", CHANNEL), space + (comps,),
                                        description="velocity at the first record"),
              "velocity": SourceField("velocity", "output", (TIME, "x", "y", CHANNEL), (steps - 1,) + space + (comps,),
                                      description="velocity at the later records")}

    def read(name, lo, hi):
        if name == "force":
            return as_float32(force[lo:hi], "force")
        return as_float32(velocity[lo:hi, 0] if name == "velocity_0" else velocity[lo:hi, 1:], "velocity")
    known = {"x": (np.arange(space[0]) + 0.5) / space[0], "y": (np.arange(space[1]) + 0.5) / space[1]}
    if "t" in h5:
        known[TIME] = np.asarray(h5["t"][0] if h5["t"].ndim == 2 else h5["t"][()], dtype=np.float64).ravel()[1:]
    transformations = ["velocity: record 0 is the input velocity_0, records 1 .. T-1 the output",
                       "x, y: not in the file, cell centres of [0, 1]"] + dtype_note("velocity", velocity.dtype)
    return _finish(path, h5, n, fields, read, known, transformations)


def _per_sample(path, h5, groups: list[str]) -> Source:
    first = h5[groups[0]]["data"]
    if first.ndim < 3 or first.shape[0] < 2:
        raise ValueError(f"{path}: {groups[0]}/data has shape {first.shape}; expected (T, *space, v) with T >= 2")
    bad = next((g for g in groups if h5[g]["data"].shape != first.shape), None)
    if bad is not None:
        raise ValueError(f"{path}: the samples do not pair: {bad}/data has shape {h5[bad]['data'].shape}, "
                         f"{groups[0]}/data {first.shape}")
    steps, space, comps = first.shape[0], tuple(first.shape[1:-1]), first.shape[-1]
    names = SPACE[:len(space)]
    squeeze = comps == 1
    tail = () if squeeze else (CHANNEL,)
    extra = () if squeeze else (comps,)
    fields = {"data_0": SourceField("data", "input", names + tail, space + extra,
                                    description="state at the first record"),
              "data": SourceField("data", "output", (TIME,) + names + tail, (steps - 1,) + space + extra,
                                  description="state at the later records")}

    def read(name, lo, hi):
        rows = [h5[g]["data"][0] if name == "data_0" else h5[g]["data"][1:] for g in groups[lo:hi]]
        arr = as_float32(np.stack(rows), "data")
        return arr[..., 0] if squeeze else arr
    known = {}
    grid = first.parent.get("grid")
    if isinstance(grid, h5py.Group):
        known = {d: np.asarray(grid[d][()], dtype=np.float64).ravel() for d in names + (TIME,) if d in grid}
        if TIME in known:
            known[TIME] = known[TIME][1:]
    transformations = [f"samples: groups {groups[0]} .. {groups[-1]} in name order",
                       "data: record 0 is the input data_0, records 1 .. T-1 the output"]
    if squeeze:
        transformations.append("data: its single component axis dropped")
    transformations += dtype_note("data", first.dtype)
    return _finish(path, h5, len(groups), fields, read, known, transformations)


def _trajectories(path, h5) -> Source:
    tensor = h5["tensor"]
    if tensor.ndim < 3 or tensor.shape[1] < 2:
        raise ValueError(f"{path}: 'tensor' has shape {tensor.shape}; expected (N, T, *space) with T >= 2")
    space = tuple(tensor.shape[2:])
    names = SPACE[:len(space)]
    fields = {"tensor_0": SourceField("tensor", "input", names, space, description="state at the first record"),
              "tensor": SourceField("tensor", "output", (TIME,) + names, (tensor.shape[1] - 1,) + space,
                                    description="state at the later records")}

    def read(name, lo, hi):
        return as_float32(tensor[lo:hi, 0] if name == "tensor_0" else tensor[lo:hi, 1:], "tensor")
    known = _coords(h5, len(space))
    if TIME in known:
        known[TIME] = known[TIME][1:tensor.shape[1]]
    transformations = ["tensor: record 0 is the input tensor_0, records 1 .. T-1 the output"] + \
        dtype_note("tensor", tensor.dtype)
    return _finish(path, h5, int(tensor.shape[0]), fields, read, known, transformations)
