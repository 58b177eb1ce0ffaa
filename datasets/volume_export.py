"""Export 3D volumes (images on a rectilinear z, y, x grid) as netCDF files that ParaView opens.

:func:`write_volume` writes each array (nz, ny, nx) as a float32 variable on the coordinate
variables z, y, x (with ``units`` and CF ``axis`` attributes), through ``xarray.Dataset.to_netcdf``.
ParaView reads the file with its "NetCDF CF" reader as a rectilinear grid (choose the variables in
the Properties panel). A complex array ``name`` becomes three variables: ``name_magnitude``,
``name_real`` and ``name_imag`` (netCDF-3 has no complex type). The engine is netCDF4 when the
``netCDF4`` package is installed, otherwise scipy's netCDF-3 writer (scipy is a core dependency).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import xarray as xr

from sciops.datasets.resources import WriteError, is_write_failure

_AXES = ("z", "y", "x")


def write_volume(path: str | os.PathLike, arrays: dict[str, np.ndarray], axes: dict[str, np.ndarray], *,
                 units: str = "m", attrs: dict | None = None) -> Path:
    """Write the volumes ``arrays`` (name -> (nz, ny, nx), real or complex) on ``axes`` {"z", "y", "x"}."""
    if not isinstance(axes, dict) or set(axes) != set(_AXES):
        raise ValueError(f"axes must be a dict with 1-D coordinates 'z', 'y', 'x', got keys {sorted(axes) if isinstance(axes, dict) else axes!r}")
    shape = tuple(len(axes[k]) for k in _AXES)
    if not arrays:
        raise ValueError("write_volume needs at least one array")
    data_vars = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise ValueError(f"volume {name!r} has shape {arr.shape}; the axes give (nz, ny, nx) = {shape}")
        parts = {f"{name}_magnitude": np.abs(arr), f"{name}_real": arr.real, f"{name}_imag": arr.imag} \
            if np.iscomplexobj(arr) else {name: arr}
        for key, value in parts.items():
            data_vars[key] = (_AXES, np.asarray(value, dtype=np.float32))
    coords = {k: (k, np.asarray(axes[k], dtype=np.float64), {"units": units, "axis": k.upper()}) for k in _AXES}
    ds = xr.Dataset(data_vars, coords=coords, attrs={"Conventions": "CF-1.8", **(attrs or {})})
    path = Path(path)
    engine = "netcdf4" if importlib.util.find_spec("netCDF4") else "scipy"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # renamed when whole: never a torn volume
    try:
        ds.to_netcdf(tmp, engine=engine)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        if is_write_failure(exc):
            raise WriteError(path, exc, "nothing written") from None
        raise
    return path
