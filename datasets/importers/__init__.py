"""Readers of other projects' dataset files, one module per format, and detection from content.

:data:`FORMATS` maps a format name to its reader (``module:open_source``); :func:`detect` names the
format of a file from its bytes (never its extension); :func:`open_source` returns a
:class:`~sciops.datasets.importers.source.Source`. Formats:

* ``mat``: FNO-paper MATLAB files, version 5/7 (scipy.io) and 7.3 (h5py, axes reversed);
* ``pt``: neuraloperator's dicts of tensors (``torch.load(weights_only=True)``);
* ``pdebench``: PDEBench HDF5 (2D Darcy, 2D incompressible Navier-Stokes, 2D shallow water, ...);
* ``the-well``: The Well's HDF5 layout;
* ``npz``: numpy archives.

``sciops.datasets.importing`` turns a Source into a sciops dataset.
"""
from __future__ import annotations

import os
import zipfile
from importlib import import_module
from pathlib import Path

from sciops.datasets.h5io import HDF5_SIGNATURE, is_hdf5
from sciops.datasets.importers.source import Source

FORMATS = {
    "mat": "sciops.datasets.importers.matlab",
    "pt": "sciops.datasets.importers.torch_pt",
    "pdebench": "sciops.datasets.importers.pdebench",
    "the-well": "sciops.datasets.importers.the_well",
    "npz": "sciops.datasets.importers.npz",
}


def _known() -> str:
    return ", ".join(FORMATS)


def detect(path: str | os.PathLike) -> str:
    """The format of ``path`` from its content; ValueError naming the known formats otherwise."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB"):
        return "mat"
    if head[:3] == b"CDF" or (is_hdf5(path) and _netcdf(path)):
        raise ValueError(f"{path} is a netCDF file; sciops imports {_known()} (a sciops netCDF export is read "
                         f"with xarray.open_dataset)")
    if is_hdf5(path):
        return _hdf5_format(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith(".npy") for n in names):
            return "npz"
        if any(n.endswith("data.pkl") for n in names):
            return "pt"
    if head[:2] in (b"\x80\x02", b"\x80\x04", b"\x80\x05"):  # torch's legacy (pickle) format
        return "pt"
    raise ValueError(f"{path}: unknown format (not {_known()}); pass format= (--format) if it is one of them")


def _netcdf(path: Path) -> bool:
    import h5py

    from sciops.datasets.schema import NETCDF_MARK

    try:
        with h5py.File(path, "r") as h5:
            return NETCDF_MARK in h5.attrs
    except OSError:
        return False


def _hdf5_format(path: Path) -> str:
    import h5py

    from sciops.datasets.schema import ATTR_SCHEMA

    try:
        with h5py.File(path, "r") as h5:
            keys = set(h5.keys())
            if ATTR_SCHEMA in h5.attrs:
                raise ValueError(f"{path} is a sciops dataset already; nothing to import")
            if keys & {"t0_fields", "t1_fields", "t2_fields"}:
                return "the-well"
            if "#refs#" in keys or any("MATLAB_class" in h5[k].attrs for k in keys):
                return "mat"
    except OSError as exc:
        raise ValueError(f"{path}: HDF5 cannot open it ({str(exc).splitlines()[0]})") from None
    with open(path, "rb") as fh:
        if fh.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:  # a user block: MATLAB 7.3 writes one
            return "mat"
    return "pdebench"


def open_source(path: str | os.PathLike, format: str | None = None, input_key: str | None = None,
                output_key: str | None = None) -> Source:
    """Open ``path`` with the reader of ``format`` (detected when None)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file to import")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a file to import")
    if format is None:
        format = detect(path)
    elif format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {_known()}")
    return import_module(FORMATS[format]).open_source(path, input_key, output_key)


__all__ = ["FORMATS", "Source", "detect", "open_source"]
