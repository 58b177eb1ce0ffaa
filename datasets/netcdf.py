"""netCDF: :func:`export_netcdf` writes a dataset as CF netCDF-4; :func:`describe_netcdf` reads one back.

The netCDF file holds what :func:`~sciops.datasets.open_xarray` returns: every field as a variable
with ``units``, ``long_name``, ``role`` and ``description``; the coordinates with ``units``,
``long_name`` and ``axis``; ``sample`` and ``seed``; and the root attributes (JSON-valued ones as
JSON text, booleans as 0/1) with ``Conventions = "CF-1.10"``. ``xarray.open_dataset`` on the export
returns a Dataset identical to ``open_xarray`` on the original (the export checks this before it
renames the file into place). Fields are stored with zlib level 1. The per-sample checksums stay in
the HDF5 original: sciops trains on that, not on the export.

The file is written under a temporary name beside the target and renamed only once it is complete
and read back equal, so a failed export (a full disk, an interrupted process) leaves no
half-written ``.nc``. Engine: netCDF4 when installed, else h5netcdf (a dependency of sciops).

Intended command line: ``sciops export FILE.h5 -o FILE.nc [--overwrite]`` ->
``export_netcdf(FILE.h5, FILE.nc, overwrite=...)``.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from sciops.datasets import schema as S
from sciops.datasets.resources import WriteError, check_writable, format_bytes, is_write_failure

NETCDF3_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


def engine() -> str:
    from importlib.util import find_spec

    return "netcdf4" if find_spec("netCDF4") is not None else "h5netcdf"


def is_netcdf(path: str | os.PathLike) -> bool:
    """True for a netCDF-3 file or an HDF5 file a netCDF-4 library wrote."""
    from sciops.datasets.h5io import is_hdf5

    try:
        with open(path, "rb") as fh:
            if fh.read(4) in NETCDF3_SIGNATURES:
                return True
    except OSError:
        return False
    if not is_hdf5(path):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return S.NETCDF_MARK in h5.attrs
    except OSError:
        return False


def export_netcdf(h5_path: str | os.PathLike, nc_path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the sciops dataset ``h5_path`` as the CF netCDF-4 file ``nc_path``; return ``nc_path``."""
    import xarray as xr

    from sciops.datasets.xarray_view import open_xarray

    nc_path = Path(nc_path)
    if nc_path.is_dir():
        raise IsADirectoryError(f"{nc_path} is a directory; expected a file name for the netCDF export")
    if nc_path.exists() and not overwrite:
        raise S.DatasetExistsError(f"{nc_path} exists; pass overwrite=True (--overwrite) to replace it")
    if Path(h5_path).resolve() == nc_path.resolve():
        raise ValueError(f"{nc_path}: the export would overwrite the dataset it reads")
    ds = open_xarray(h5_path)
    nc_path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(nc_path)
    tmp = nc_path.with_name(f".{nc_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    which = engine()
    try:
        encoding = {name: {"zlib": True, "complevel": 1} for name in ds.data_vars}
        ds.to_netcdf(tmp, engine=which, encoding=encoding)
        with xr.open_dataset(tmp, engine=which) as back:
            if not back.load().identical(ds):
                raise ValueError(f"{nc_path}: the netCDF file read back differs from {h5_path}; not written")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, nc_path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        if is_write_failure(exc):
            raise WriteError(nc_path, exc, "nothing written") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return nc_path


def describe_netcdf(path: str | os.PathLike) -> str:
    """What ``sciops info`` prints for a netCDF file: a sciops export is summarised, anything else is
    named for what it is (ValueError)."""
    import xarray as xr

    path = Path(path)
    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is a netCDF file that xarray cannot open ({str(exc).splitlines()[0]})") from None
    with ds:
        attrs = ds.attrs
        if S.ATTR_SCHEMA not in attrs:
            names = ", ".join(ds.data_vars) or "none"
            raise ValueError(f"{path} is a netCDF file, not a sciops dataset (no {S.ATTR_SCHEMA!r} attribute; its "
                             f"variables: {names})")
        from sciops.datasets.info import _kv, _provenance_lines

        decoded = S.decode_attrs(attrs)
        params = decoded.get(S.ATTR_PARAMS)
        if decoded.get(S.ATTR_PROBLEM) == "external" and isinstance(params, dict):
            params = {"geometry": params.get("geometry")}
        lines = [f"{path}  ({format_bytes(path.stat().st_size)})",
                 f"  format     netCDF ({attrs.get('Conventions', 'no Conventions')}): an export of a sciops dataset "
                 f"(schema {attrs[S.ATTR_SCHEMA]}) for other tools; sciops trains on the HDF5 original (the "
                 f"per-sample checksums stay there)",
                 f"  problem    {decoded.get(S.ATTR_PROBLEM, '?')}",
                 f"  params     {_kv(params)}",
                 f"  samples    {ds.sizes.get(S.SAMPLE_DIM, 0)}"]
        provenance = decoded.get(S.ATTR_PROVENANCE)
        if isinstance(provenance, dict):
            lines += _provenance_lines(provenance)
        lines.append("  fields")
        width = max((len(n) for n in ds.data_vars), default=0)
        for name, var in ds.data_vars.items():
            lines.append(f"    {name:<{width}}  {var.attrs.get('role', '?'):<6}  {var.dtype} {tuple(var.shape)}  "
                         f"dims ({', '.join(var.dims)})  units {var.attrs.get('units', '')!r}")
        coords = [c for c in ds.coords if c not in (S.SAMPLE_DIM, "seed")]
        if coords:
            lines.append("  grid")
            width = max(len(c) for c in coords)
            for name in coords:
                values = ds[name].values
                span = f"[{values.min():.6g}, {values.max():.6g}]" if values.size else "[]"
                lines.append(f"    {name:<{width}}  {values.size} points in {span}, units "
                             f"{ds[name].attrs.get('units', '')!r}")
    return "\n".join(lines)
