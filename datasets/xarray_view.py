"""An ``xarray.Dataset`` view of a sciops HDF5 dataset: :func:`open_xarray`.

Every field becomes a data variable with the dims of its ``dims`` attribute (``sample`` first, e.g.
``("sample", "y", "x")``; a field whose number of channels differs from the first such field's
has the dim ``<name>_channel`` instead of ``channel``) and attributes ``units``, ``long_name`` (its
description, else its name), ``role``, ``description``. Coordinates: each ``grid/<coord>`` array (attributes ``units``,
``long_name``, CF ``axis`` for x, y, z, t, lon and lat, and any others such as
``quadrature_weights``), ``sample`` (the sample index i that the sample's seed derives from: start
.. start + n - 1 in a shard) and ``seed`` (uint64 per-sample seed, along ``sample``). The root
attributes become ``Dataset.attrs`` in a form netCDF stores: JSON-valued ones (``problem_params``,
``solver``, ``input_fields``, ...) as JSON text (``json.loads(ds.attrs["problem_params"])``),
booleans as 0/1; ``Conventions`` is ``CF-1.10``. So ``open_xarray(path).to_netcdf(...)`` works, and
:func:`sciops.datasets.export_netcdf` writes it atomically.

The data are read eagerly into numpy with h5py (no dask dependency): fine for inspection and
plotting; use :func:`sciops.datasets.open_dataset` (lazy mode) to stream files larger than memory.
Incomplete files are refused unless ``allow_incomplete=True``, which returns the first
``n_written`` samples.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from sciops.datasets import schema as S
from sciops.datasets.checksums import verify_rows
from sciops.datasets.h5io import open_read

CONVENTIONS = "CF-1.10"
AXES = {"x": "X", "y": "Y", "z": "Z", "t": "T", "lon": "X", "lat": "Y"}
LONG_NAMES = {"t": "time", "lon": "longitude", "lat": "latitude"}


def open_xarray(path: str | os.PathLike, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Read a sciops dataset as an ``xarray.Dataset`` with named dims and coordinates."""
    with open_read(path, locking=not S.is_partial(path)) as h5:
        attrs, fields = S.validate(h5, path, require_complete=not allow_incomplete)
        n = int(attrs[S.ATTR_N_WRITTEN]) if allow_incomplete else int(attrs[S.ATTR_N_SAMPLES])
        coords = {}
        if S.GRID in h5:
            for name, ds in h5[S.GRID].items():
                coord_attrs = {k: netcdf_value(v if isinstance(v, np.ndarray) else S.decode_value(v))
                               for k, v in ds.attrs.items()}
                coord_attrs = {"units": coord_attrs.pop("units", ""), "long_name": LONG_NAMES.get(name, name),
                               **({"axis": AXES[name]} if name in AXES else {}), **coord_attrs}
                coords[name] = xr.Variable((name,), ds[()], attrs=coord_attrs)
        start = int(attrs.get(S.ATTR_START, 0))  # a shard holds samples start .. start + n - 1
        coords[S.SAMPLE_DIM] = xr.Variable((S.SAMPLE_DIM,), np.arange(start, start + n, dtype=np.int64),
                                           attrs={"long_name": "sample index"})
        if S.SAMPLE_SEED in h5:
            coords["seed"] = xr.Variable((S.SAMPLE_DIM,), np.asarray(h5[S.SAMPLE_SEED][:n], dtype=np.uint64),
                                         attrs={"long_name": "seed of the sample's random draw"})
        data_vars, channels = {}, None
        for name, info in fields.items():
            values = h5[S.FIELDS][name][:n]
            verify_rows(h5, name, slice(0, n), values, path)
            dims = info.dims
            if dims[-1] == S.CHANNEL_DIM:
                channels = channels or info.channels
                if info.channels != channels:  # one xarray dim has one size: this field's channels get their own
                    dims = dims[:-1] + (f"{name}_{S.CHANNEL_DIM}",)
            data_vars[name] = xr.Variable(dims, values,
                                          attrs={"units": info.units, "long_name": info.description or name,
                                                 "role": info.role, "description": info.description})
    root = {key: netcdf_value(S.encode_json(value) if key in S.JSON_ATTRS else value) for key, value in attrs.items()}
    return xr.Dataset(data_vars, coords=coords, attrs={"Conventions": CONVENTIONS, **root})


def netcdf_value(value: Any) -> Any:
    """An attribute value netCDF stores: dicts and lists as JSON text, booleans as 0/1."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (dict, list, tuple)) or value is None:
        return S.encode_json(value)
    return value
