"""Per-sample checksums of a dataset's fields: written with the data, verified on every read.

``checksums/<field>`` is a uint32 (N,) dataset beside ``fields/<field>``: the CRC-32 (zlib) of
sample i's stored bytes (float32, C order). The writer computes it from the arrays it hands to
HDF5, so a sample that did not reach the disk intact (a write lost to a full disk, a torn chunk,
a flipped bit, a sample left at its fill value) reads back with another checksum. Who checks:

* the writer, over the whole file, before a ``.partial`` is renamed into place
  (:func:`verify_file`), and over the first ``n_written`` samples when it resumes one;
* every reader on the rows it reads (``open_dataset`` in memory and lazily, ``open_xarray``,
  ``merge``), through :func:`verify_rows`; ``sciops info`` over the whole file.

A mismatch is a :class:`CorruptDatasetError` (a ``ValueError``) naming the file, the field and the
first bad sample. Files written before checksums existed have no ``checksums/`` group; they are
read as before, and ``sciops info`` says they carry none. CRC-32 costs about a millisecond per
megabyte here, well under HDF5's decompression of the same bytes.
"""
from __future__ import annotations

import os
import zlib

import numpy as np

CHECKSUMS = "checksums"


class CorruptDatasetError(ValueError):
    """Stored data that do not match the checksums written with them."""


def sample_checksums(arr: np.ndarray) -> np.ndarray:
    """CRC-32 of each sample (first axis) of ``arr``'s bytes, as uint32 (batch,)."""
    arr = np.ascontiguousarray(arr)
    return np.array([zlib.crc32(memoryview(sample).cast("B")) for sample in arr], dtype=np.uint32)


def has_checksums(h5) -> bool:
    return CHECKSUMS in h5


def _rows(sel, n: int) -> np.ndarray:
    if isinstance(sel, slice):
        return np.arange(n)[sel]
    return np.atleast_1d(np.asarray(sel, dtype=np.int64))


def verify_rows(h5, name: str, sel, data: np.ndarray, path: str | os.PathLike = "") -> None:
    """Check ``data`` = ``fields/<name>[sel]`` against its stored checksums (no-op without them).

    ``sel`` is an int, a slice or a sorted index array, as the readers use.
    """
    if CHECKSUMS not in h5 or name not in h5[CHECKSUMS]:
        return
    stored = h5[CHECKSUMS][name]
    rows = _rows(sel, stored.shape[0])
    single = isinstance(sel, (int, np.integer))
    expected = np.atleast_1d(stored[sel])
    got = sample_checksums(data[None] if single else data)
    bad = np.flatnonzero(got != expected)
    if bad.size:
        raise CorruptDatasetError(
            f"{path or h5.filename}: field {name!r} of sample {int(rows[bad[0]])} does not match its checksum "
            f"({bad.size} of {rows.size} samples read differ); the file is corrupt: regenerate it")


def verify_file(h5, path: str | os.PathLike = "", rows: int | None = None, block_bytes: int = 64 * 2**20) -> int:
    """Verify samples ``0 .. rows-1`` (default all) of every field that has checksums; return the
    number of the first bad sample (``rows`` when all match). Never raises on a mismatch."""
    if CHECKSUMS not in h5:
        return rows if rows is not None else 0
    first_bad = None
    for name, stored in h5[CHECKSUMS].items():
        if name not in h5["fields"]:
            return 0
        ds = h5["fields"][name]
        n = stored.shape[0] if rows is None else min(rows, stored.shape[0])
        limit = n if first_bad is None else first_bad
        block = max(1, block_bytes // max(int(np.prod(ds.shape[1:])) * ds.dtype.itemsize, 1))
        for lo in range(0, limit, block):
            hi = min(limit, lo + block)
            bad = _first_bad(ds, stored, lo, hi)
            if bad is not None:
                first_bad = bad
                break
    total = rows if rows is not None else next(iter(h5[CHECKSUMS].values())).shape[0]
    return total if first_bad is None else first_bad


def _first_bad(ds, stored, lo: int, hi: int) -> int | None:
    """The first row in ``lo .. hi-1`` whose data differ from its checksum or cannot be decoded."""
    try:
        bad = np.flatnonzero(sample_checksums(ds[lo:hi]) != stored[lo:hi])
        return lo + int(bad[0]) if bad.size else None
    except OSError:  # a chunk HDF5 cannot decode: find which, one row at a time
        for row in range(lo, hi):
            try:
                if sample_checksums(ds[row:row + 1])[0] != stored[row]:
                    return row
            except OSError:
                return row
        return None


def check_file(h5, path: str | os.PathLike) -> None:
    """:class:`CorruptDatasetError` unless every sample of every field matches its checksum."""
    if CHECKSUMS not in h5:
        return
    n = next(iter(h5[CHECKSUMS].values())).shape[0]
    first_bad = verify_file(h5, path)
    if first_bad < n:
        raise CorruptDatasetError(f"{path}: sample {first_bad} does not match its checksum; the file is corrupt: "
                                  f"regenerate it")
