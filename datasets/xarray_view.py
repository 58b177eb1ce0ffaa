"""An ``xarray.Dataset`` view of a sciops HDF5 dataset: :func:`open_xarray`.

Every field becomes a data variable with the dims of its ``dims`` attribute (``sample`` first, e.g.
``("sample", "y", "x")``) and attributes ``units``, ``role``, ``description``. Coordinates: each
``grid/<coord>`` array (attribute ``units``, and any others such as ``quadrature_weights``), ``sample`` (the
sample index i that the sample's seed derives from: start .. start + n - 1 in a shard) and ``seed`` (uint64
per-sample seed, along ``sample``). The root attributes become ``Dataset.attrs``, with JSON-valued
ones decoded (``problem_params`` and ``solver`` are dicts, so write the result with
``to_netcdf`` only after re-encoding those two as strings).

The data are read eagerly into numpy with h5py (no dask dependency): fine for inspection and
plotting; use :func:`sciops.datasets.open_dataset` (lazy mode) to stream files larger than memory.
Incomplete files are refused unless ``allow_incomplete=True``, which returns the first
``n_written`` samples.
"""
from __future__ import annotations

import os

import numpy as np
import xarray as xr

from sciops.datasets import schema as S
from sciops.datasets.checksums import verify_rows
from sciops.datasets.h5io import open_read


def open_xarray(path: str | os.PathLike, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Read a sciops dataset as an ``xarray.Dataset`` with named dims and coordinates."""
    with open_read(path, locking=not S.is_partial(path)) as h5:
        attrs, fields = S.validate(h5, path, require_complete=not allow_incomplete)
        n = int(attrs[S.ATTR_N_WRITTEN]) if allow_incomplete else int(attrs[S.ATTR_N_SAMPLES])
        coords = {}
        if S.GRID in h5:
            for name, ds in h5[S.GRID].items():
                coord_attrs = {k: v if isinstance(v, np.ndarray) else S.decode_value(v) for k, v in ds.attrs.items()}
                coord_attrs["units"] = coord_attrs.get("units", "")
                coords[name] = xr.Variable((name,), ds[()], attrs=coord_attrs)
        start = int(attrs.get(S.ATTR_START, 0))  # a shard holds samples start .. start + n - 1
        coords[S.SAMPLE_DIM] = xr.Variable((S.SAMPLE_DIM,), np.arange(start, start + n, dtype=np.int64))
        if S.SAMPLE_SEED in h5:
            coords["seed"] = xr.Variable((S.SAMPLE_DIM,), np.asarray(h5[S.SAMPLE_SEED][:n], dtype=np.uint64))
        data_vars = {}
        for name, info in fields.items():
            values = h5[S.FIELDS][name][:n]
            verify_rows(h5, name, slice(0, n), values, path)
            data_vars[name] = xr.Variable(info.dims, values,
                                          attrs={"units": info.units, "role": info.role,
                                                 "description": info.description})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
