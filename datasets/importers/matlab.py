"""FNO-paper MATLAB files: ``.mat`` version 5/7 through scipy.io, version 7.3 through h5py.

Keys: ``coeff``/``sol`` (Darcy: bounded, vertex grid on [0, 1]) or ``a``/``u`` (Burgers,
Navier-Stokes: periodic, i / n on [0, 1)), or those given (bounded). Arrays are (N, *space) with, for
Navier-Stokes, time last (N, s, s, T): the time axis is moved to follow the sample axis, and a ``t``
key of T values gives its coordinates. Version 7.3 files are HDF5 in MATLAB's column-major order, so
h5py sees every axis reversed ((T, s, s, N)): they are transposed back, batch by batch, so such files
are read in samples, never whole. Version 5 files are loaded whole by scipy (they are at most 2 GiB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sciops.datasets.h5io import is_hdf5
from sciops.datasets.importers.source import (
    Source,
    as_float32,
    dtype_note,
    paired_fields,
    pick_pair,
)

PAIRS = (("coeff", "sol"), ("a", "u"))
V73_HEADER = b"MATLAB 7.3 MAT-file"


def is_v73(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(V73_HEADER)) == V73_HEADER or is_hdf5(path)


def open_source(path: Path, input_key: str | None = None, output_key: str | None = None) -> Source:
    if is_v73(path):
        import h5py

        h5 = h5py.File(path, "r")
        try:
            keys = [k for k in h5.keys() if not k.startswith("#") and isinstance(h5[k], h5py.Dataset)]
            ikey, okey = pick_pair(path, keys, input_key, output_key, PAIRS)
            arrays = {k: h5[k] for k in (ikey, okey)}
            shapes = {k: tuple(reversed(a.shape)) for k, a in arrays.items()}
            t = np.asarray(h5["t"][()]).ravel() if "t" in keys else None

            def take(key, lo, hi):
                ds = arrays[key]
                return np.asarray(ds[(Ellipsis, slice(lo, hi))]).transpose(tuple(reversed(range(ds.ndim))))
            notes = ["MATLAB 7.3 (HDF5) axes reversed to MATLAB's order"]
            return _source(path, ikey, okey, shapes, {k: a.dtype for k, a in arrays.items()}, take, t, notes,
                           h5.close)
        except BaseException:
            h5.close()
            raise
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except (ValueError, NotImplementedError, TypeError) as exc:
        raise ValueError(f"{path}: scipy.io cannot read this MATLAB file ({str(exc).splitlines()[0]})") from None
    keys = [k for k in data if not k.startswith("__")]
    ikey, okey = pick_pair(path, keys, input_key, output_key, PAIRS)
    arrays = {k: np.asarray(data[k]) for k in (ikey, okey)}
    t = np.asarray(data["t"]).ravel() if "t" in keys else None
    return _source(path, ikey, okey, {k: a.shape for k, a in arrays.items()}, {k: a.dtype for k, a in arrays.items()},
                   lambda key, lo, hi: arrays[key][lo:hi], t, [])


def _source(path, ikey, okey, shapes, dtypes, take, t, notes, close=lambda: None) -> Source:
    counts = {k: s[0] if s else 0 for k, s in shapes.items()}
    if counts[ikey] != counts[okey]:
        raise ValueError(f"{path}: the arrays do not pair: {ikey!r} holds {counts[ikey]} samples, {okey!r} "
                         f"{counts[okey]}")
    per = {k: tuple(s[1:]) for k, s in shapes.items()}
    time_last = len(per[okey]) == len(per[ikey]) + 1 and per[okey][:-1] == per[ikey]
    if time_last:
        per[okey] = (per[okey][-1],) + per[okey][:-1]
        notes = notes + [f"{okey}: time axis moved from last to first after the sample axis"]
    fields = paired_fields(path, per, ikey, okey)

    def read(key, lo, hi):
        arr = as_float32(take(key, lo, hi), key)
        return np.moveaxis(arr, -1, 1) if time_last and key == okey else arr

    geometry = "periodic" if (ikey, okey) == PAIRS[1] else "bounded"
    transformations = notes + [n for k in (ikey, okey) for n in dtype_note(k, dtypes[k])]
    known = {"t": t} if t is not None else {}
    return Source("mat", Path(path), counts[ikey], fields, read, known, {}, geometry, transformations, close=close)
