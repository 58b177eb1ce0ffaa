"""The Well's HDF5 layout: ``t0_fields``, ``t1_fields``, ``t2_fields``, ``dimensions``, ``boundary_conditions``.

Each field is (n_trajectories, T, *space, [D, [D]]) when it varies over samples and time (a field
that does not vary over samples is repeated for each; one that does not vary in time has no T
axis). Scalars (t0) are stored as they are, vectors (t1) with a ``channel`` axis of D components,
tensors (t2) with D*D components in row-major order. A time-varying field ``f`` becomes the input
``f_0`` (record 0) and the output ``f`` (records 1 .. T-1); a constant one is an input. Coordinates
come from ``dimensions`` (``time`` and the names in its ``spatial_dims`` attribute); the geometry
is periodic when every boundary condition is PERIODIC, otherwise bounded, and the boundary
conditions are recorded in the provenance.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from sciops.datasets.importers.source import CHANNEL, TIME, Source, SourceField, as_float32, dtype_note
from sciops.datasets.schema import decode_value

GROUPS = ("t0_fields", "t1_fields", "t2_fields")


def _flag(obj, name: str, default: bool = True) -> bool:
    return bool(decode_value(obj.attrs.get(name, default)))


def _names(value) -> list[str]:
    value = decode_value(value)
    return [value] if isinstance(value, str) else [decode_value(v) for v in value]


def open_source(path: Path, input_key: str | None = None, output_key: str | None = None) -> Source:
    if input_key is not None or output_key is not None:
        raise ValueError("The Well's files are read whole (every field, record 0 as input); --input-key and "
                         "--output-key do not apply")
    h5 = h5py.File(path, "r")
    try:
        return _open(path, h5)
    except BaseException:
        h5.close()
        raise


def _open(path, h5) -> Source:
    dims_group = h5.get("dimensions")
    if dims_group is None or "spatial_dims" not in dims_group.attrs:
        raise ValueError(f"{path}: The Well's layout needs a 'dimensions' group with a 'spatial_dims' attribute; "
                         f"the keys there are {', '.join(map(repr, h5.keys()))}")
    space = tuple(_names(dims_group.attrs["spatial_dims"]))
    datasets = {name: (order, ds) for order, group in enumerate(GROUPS) if group in h5
                for name, ds in h5[group].items()}
    if not datasets:
        raise ValueError(f"{path}: no field in {', '.join(GROUPS)}")
    counts = {name: ds.shape[0] for name, (_, ds) in datasets.items() if _flag(ds, "sample_varying")}
    if not counts:
        raise ValueError(f"{path}: no field varies over samples; nothing to learn from")
    if len(set(counts.values())) > 1:
        raise ValueError(f"{path}: the fields do not pair: " + ", ".join(f"{k!r} holds {c} samples"
                                                                    for k, c in counts.items()))
    n = next(iter(counts.values()))
    fields, plan, transformations = {}, {}, []
    for name, (order, ds) in datasets.items():
        samples, timed = _flag(ds, "sample_varying"), _flag(ds, "time_varying")
        shape = ds.shape[1 if samples else 0:]
        spatial = tuple(shape[1 if timed else 0:][:len(space)])
        comps = int(np.prod(shape[(1 if timed else 0) + len(space):], dtype=np.int64)) if order else 1
        tail, extra = ((CHANNEL,), (comps,)) if order else ((), ())
        plan[name] = (ds, samples, timed, order)
        if timed:
            if shape[0] < 2:
                raise ValueError(f"{path}: field {name!r} has {shape[0]} record; expected at least 2")
            fields[f"{name}_0"] = SourceField(name, "input", space + tail, spatial + extra,
                                              description=f"{name} at the first record")
            fields[name] = SourceField(name, "output", (TIME,) + space + tail, (shape[0] - 1,) + spatial + extra,
                                       description=f"{name} at the later records")
        else:
            fields[name] = SourceField(name, "input", space + tail, spatial + extra, description=name)
        transformations += dtype_note(name, ds.dtype)
        if not samples:
            transformations.append(f"{name}: the same for every sample (repeated)")
        if order == 2:
            transformations.append(f"{name}: its {shape[-2]}x{shape[-1]} tensor flattened to channels, row-major")
    if any(p[2] for p in plan.values()):
        transformations.insert(0, "time-varying fields: record 0 is the input <name>_0, records 1 .. T-1 the output")

    def read(field, lo, hi):
        key = fields[field].key
        ds, samples, timed, order = plan[key]
        if samples:
            block = ds[lo:hi]
        else:
            block = np.broadcast_to(ds[()], (hi - lo,) + ds.shape)
        if timed:
            block = block[:, 0] if field.endswith("_0") and field != key else block[:, 1:]
        arr = as_float32(block, key)
        if order:
            arr = arr.reshape(arr.shape[:arr.ndim - order] + (-1,))
        return arr

    known = {}
    for dim in space + ("time",):
        if dim in dims_group:
            ds = dims_group[dim]
            values = np.asarray(ds[0] if _flag(ds, "sample_varying", False) else ds[()], dtype=np.float64).ravel()
            known[TIME if dim == "time" else dim] = values[1:] if dim == "time" else values
    bcs = _boundary_conditions(h5)
    geometry = "periodic" if bcs and all(b == "PERIODIC" for b in bcs.values()) else "bounded"
    notes = {"boundary_conditions": bcs}
    if "dataset_name" in h5.attrs:
        notes["dataset_name"] = decode_value(h5.attrs["dataset_name"])
    return Source("the-well", Path(path), n, fields, read, known, {}, geometry, transformations, notes, h5.close)


def _boundary_conditions(h5) -> dict[str, str]:
    out = {}
    group = h5.get("boundary_conditions")
    if group is None:
        return out
    for name, bc in group.items():
        kind = str(decode_value(bc.attrs.get("bc_type", "unknown"))).upper()
        for dim in _names(bc.attrs.get("associated_dims", [name])):
            out[dim] = kind
    return out
