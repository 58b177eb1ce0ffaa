"""``merge``: a dataset (sharded or not) written as one contiguous file, verified, then renamed.

The copy reads every sample through its checksum and writes it with a new one, chunked and
compressed as the writer stores it, :data:`MERGE_BLOCK` samples between flushes; it runs under the
same space reserve as ``generate`` (``h5io.write_guarded``), so a full disk removes the
``.partial`` and says so in one line, and the result is verified before ``os.replace``
(``h5io.commit``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sciops.datasets import schema as S
from sciops.datasets.checksums import sample_checksums, verify_rows
from sciops.datasets.estimates import RESERVE_BYTES
from sciops.datasets.h5io import WriterLock, commit, open_read, write_guarded
from sciops.datasets.progress import Progress
from sciops.datasets.resources import WriteError, check_fits, check_writable
from sciops.problems import sample_seed

_COPY_BLOCK_BYTES = 64 * 2**20
MERGE_BLOCK = 16  # samples copied between flushes


def merge(index: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
          progress: bool | None = None, force: bool = False) -> Path:
    """Write the dataset ``index`` (sharded or not) as one contiguous file ``output``, chunked and
    compressed as the writer does; atomic (``output.partial``, verified, then renamed). Every sample
    is checked against its checksum as it is read; a failed write removes the ``.partial``."""
    index, output = Path(index), Path(output)
    if S.is_partial(output):
        raise ValueError(f"{output}: the output name must not end in {S.PARTIAL_SUFFIX!r}")
    if output.exists() and output.resolve() == index.resolve():
        raise ValueError(f"{output} is the input itself; merge into another file")
    if output.exists() and not overwrite:
        raise S.DatasetExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    check_writable(output)
    partial = S.partial_path(output)
    lock = WriterLock(partial).acquire()
    try:
        with open_read(index) as src:
            attrs, fields = S.validate(src, index)
            n = int(attrs[S.ATTR_N_SAMPLES])
            sample_bytes = sum(f.sample_bytes for f in fields.values())
            check_fits(f"merging {index}", 0, sample_bytes * n, output, force=force)
            failure = write_guarded(partial, RESERVE_BYTES + sample_bytes * min(MERGE_BLOCK, n),
                                    lambda: h5py.File(partial, "w", libver=S.LIBVER, locking=False),
                                    lambda out: _write_merged(src, out, attrs, fields, n, index, progress,
                                                              f"merge {output.name}"))
        if failure is not None:
            raise WriteError(partial, failure, f"removed {partial.name}; {index} is untouched")
        commit(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        lock.release()
    return output


def _write_merged(src, out, attrs: dict[str, Any], fields: dict[str, S.FieldInfo], n: int, index: Path,
                  progress: bool | None, desc: str) -> None:
    """The whole of ``src`` into the open file ``out``: attributes, grid, fields (verified as read,
    with their checksums), seeds and indices."""
    for key, value in src.attrs.items():
        if key != S.ATTR_SHARDS:
            out.attrs[key] = value
    if S.GRID in src:
        grid = out.create_group(S.GRID, track_order=True)
        for name, ds in src[S.GRID].items():
            grid.create_dataset(name, data=ds[()])
            for key, value in ds.attrs.items():
                grid[name].attrs[key] = value
    _copy_fields(src, out, fields, n, index, progress, desc)
    samples = out.create_group(S.SAMPLES)
    seeds = src[S.SAMPLE_SEED][:] if S.SAMPLE_SEED in src else \
        np.array([sample_seed(attrs[S.ATTR_SEED], i) for i in range(n)], dtype=np.uint64)
    samples.create_dataset("seed", data=np.asarray(seeds, dtype=np.uint64))
    idx = src[S.SAMPLE_INDEX][:] if S.SAMPLE_INDEX in src else np.arange(n)
    samples.create_dataset("index", data=np.asarray(idx, dtype=np.int64), fillvalue=-1)
    out.flush()


def _copy_fields(src, out, fields: dict[str, S.FieldInfo], n: int, index: Path, progress: bool | None,
                 desc: str) -> None:
    """Copy every field block by block (one sample per chunk, compressed, as the writer stores it)."""
    group = out.create_group(S.FIELDS, track_order=True)
    sums = out.create_group(S.CHECKSUMS, track_order=True)
    for name in fields:
        ds = src[S.FIELDS][name]
        dst = group.create_dataset(name, shape=ds.shape, dtype=S.FIELD_DTYPE, chunks=(1,) + ds.shape[1:],
                                   fillvalue=np.nan, **S.COMPRESSION)
        for key, value in ds.attrs.items():
            dst.attrs[key] = value
        sums.create_dataset(name, (n,), dtype=np.uint32)
    # at most MERGE_BLOCK samples between flushes: what a failed close may still have to write
    block = max(1, min(MERGE_BLOCK, _COPY_BLOCK_BYTES // max(sum(f.sample_bytes for f in fields.values()), 1)))
    with Progress(n, desc=desc, mode=progress) as bar:
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            for name in fields:
                try:
                    data = src[S.FIELDS][name][lo:hi]
                except OSError as exc:
                    raise S.CorruptDatasetError(f"{index}: field {name!r} of samples {lo}..{hi - 1} cannot be read "
                                                f"({str(exc).splitlines()[0]}); a shard is damaged: regenerate it") from None
                verify_rows(src, name, slice(lo, hi), data, index)
                finite = np.isfinite(data.reshape(hi - lo, -1)).all(axis=1)
                if not finite.all():  # the writer never stores NaN: a hole in a virtual index
                    raise ValueError(f"{index}: field {name!r} of sample {lo + int(np.argmin(finite))} reads as "
                                     f"NaN/Inf; a shard is missing or damaged")
                group[name][lo:hi] = data
                sums[name][lo:hi] = sample_checksums(data)
                group[name].flush()  # a failed chunk write surfaces here, not in a garbage-collected close
                sums[name].flush()
            out.flush()
            bar.update(hi - lo)
