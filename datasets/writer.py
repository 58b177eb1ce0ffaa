"""Streaming dataset generation with crash safety and resume: :func:`generate`.

``generate(problem, n, path, seed=...)`` draws and solves samples ``0 .. n-1`` in batches with
``problem.generate(batch, seed, start)`` and writes each batch to the schema-1 HDF5 file (see
``sciops.datasets.schema``) before drawing the next, so memory does not grow with ``n``: one batch
of inputs and outputs plus HDF5's chunk cache (one sample per chunk). Sample ``i`` depends only on
``(seed, i)``, so the file does not depend on ``batch_size`` and a resumed run writes the same
bytes of field data as an uninterrupted one. ``start=s`` writes samples ``s .. s+n-1`` instead (their
seeds ``sample_seed(seed, s + j)``, root attribute ``sample_start``): one shard of a sharded dataset
(see ``sciops.datasets.sharded``).

Crash safety. The file is written as ``<path>.partial`` in HDF5 SWMR mode (file format 1.10), which
orders metadata writes so that the file on disk is consistent at every instant; each batch is
written and flushed *before* ``n_written`` is advanced and flushed again. A killed run therefore
leaves a ``.partial`` whose first ``n_written`` samples are complete. Only when all samples are
written is ``complete`` set, the file closed, read back and checked sample by sample against the
checksums written with the data (``sciops.datasets.checksums``), fsync-ed, and renamed to ``path``
with ``os.replace`` (atomic, :func:`~sciops.datasets.h5io.commit`), so ``path`` is always either
absent or a complete, verified dataset. While it runs, ``generate`` holds an advisory lock on the
``.partial`` (see ``sciops.datasets.h5io``); a second writer is told which process holds it.

Write failures. Each batch's datasets are flushed one by one, so a failed write (a full disk, a
read-only or forbidden path) surfaces at that batch. ``generate`` then gives back the space it
kept free (:data:`RESERVE_BYTES` plus a batch), closes the file cleanly, and raises a one-line
:class:`~sciops.datasets.resources.WriteError` saying whether the ``.partial`` was kept (with its
verified samples, resumable) or removed (nothing complete in it). A resumed ``.partial`` is checked
again and any recorded sample that does not read back intact is written again. Before any work,
the output is probed and :func:`check_resources` refuses a generation whose memory or disk
estimate exceeds what the machine has (``force=True`` skips it).

Existing files:

* ``path`` exists: ``overwrite=True`` replaces it (only once the new file is complete);
  ``resume=True`` returns it untouched if it is a complete dataset of the same problem, parameters,
  seed and ``n`` (a mismatch is a ``ValueError`` naming the differences); otherwise
  :class:`~sciops.datasets.schema.DatasetExistsError` (a ``ValueError``).
* ``<path>.partial`` exists: ``resume=True`` continues it from ``n_written`` after checking that it
  belongs to the same problem name, parameters, seed and ``n`` (``ValueError`` naming what differs);
  ``overwrite=True`` starts again; neither is a ``ValueError`` that says to pass one of them.
  ``resume=True`` with no ``.partial`` simply generates, so ``--resume`` can always be passed.
* No sample is stored before the file is in SWMR mode (datasets are created from the first batch's
  shapes, then SWMR starts). A ``.partial`` killed before that point (its superblock says "open for
  writing" without SWMR, so its metadata may be torn) holds nothing, and resuming starts it afresh.
  A resumed file whose datasets exist is reopened directly in SWMR-write mode.
* Timings accumulate over resumed runs (``solve_seconds``, ``wall_seconds``).

A problem may carry ``file_attrs`` (name -> JSON value): extra root attributes written with the
file and compared on resume like the parameters (the importer's ``provenance``).

A solver exception, or NaN/Inf in a sample (a ``ValueError`` naming the field, sample and seed),
stops the run with the ``.partial`` closed cleanly at the last full batch, ready to resume.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sciops.datasets import schema as S
from sciops.datasets.checksums import CHECKSUMS, check_file, sample_checksums, verify_file
from sciops.datasets.estimates import RESERVE_BYTES, check_resources, default_batch_size, sample_bytes
from sciops.datasets.h5io import (
    WriterLock,
    clear_write_flags,
    commit,
    killed_before_swmr,
    open_read,
    open_swmr_write,
    write_guarded,
)
from sciops.datasets.progress import Progress
from sciops.datasets.resources import WriteError, check_writable
from sciops.problems import Problem, get, sample_seed


def _version() -> str:
    from sciops.version import __version__

    return __version__


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _identity(problem: Problem, n: int, seed: int, start: int = 0) -> dict[str, Any]:
    return {S.ATTR_PROBLEM: problem.name, S.ATTR_PARAMS: problem.params, S.ATTR_SEED: seed, S.ATTR_N_SAMPLES: n,
            S.ATTR_START: start, "file_attrs": dict(getattr(problem, "file_attrs", {}))}


def _first_difference(stored: Any, wanted: Any) -> str:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in list(wanted) + [k for k in stored if k not in wanted]:
            if not S.same_json(stored.get(key), wanted.get(key)):
                return f".{key}={stored.get(key, '<unset>')!r} (requested {wanted.get(key, '<unset>')!r})"
    return f"={stored!r} (requested {wanted!r})"


def _differences(attrs: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    """What differs between a file's root attributes and the requested generation."""
    out = []
    if attrs.get(S.ATTR_PROBLEM) != identity[S.ATTR_PROBLEM]:
        return [f"problem {attrs.get(S.ATTR_PROBLEM)!r} (requested {identity[S.ATTR_PROBLEM]!r})"]
    stored = attrs.get(S.ATTR_PARAMS) or {}
    wanted = json.loads(S.encode_json(identity[S.ATTR_PARAMS]))
    for key in list(wanted) + [k for k in stored if k not in wanted]:
        if key not in stored or key not in wanted or stored[key] != wanted[key]:
            out.append(f"parameter {key}={stored.get(key, '<unset>')!r} (requested {wanted.get(key, '<unset>')!r})")
    for key, value in identity.get("file_attrs", {}).items():
        if not S.same_json(attrs.get(key), value):
            out.append(f"{key}{_first_difference(attrs.get(key), json.loads(S.encode_json(value)))}")
    for key in (S.ATTR_SEED, S.ATTR_N_SAMPLES, S.ATTR_START):
        if attrs.get(key, 0 if key == S.ATTR_START else None) != identity.get(key, 0):
            label = "n" if key == S.ATTR_N_SAMPLES else key
            out.append(f"{label}={attrs.get(key)!r} (requested {identity[key]!r})")
    return out


def generate(problem: Problem | str, n: int, path: str | os.PathLike, *, seed: int = 0, resume: bool = False,
             overwrite: bool = False, batch_size: int | None = None, progress: bool | None = None,
             start: int = 0, force: bool = False) -> Path:
    """Generate ``n`` samples of ``problem`` into the HDF5 dataset ``path``; return ``path``.

    ``progress``: None shows a tqdm bar on a terminal and periodic lines otherwise, True always a
    bar, False nothing. ``start``: index of the first sample (a shard of a larger dataset). See the
    module docstring for ``resume`` and ``overwrite``. ``force``: skip the memory and disk check
    (:func:`check_resources`).
    """
    if isinstance(problem, str):
        problem = get(problem)
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    start = _check_int("start", start, 0)
    batch_size = default_batch_size(problem) if batch_size is None else _check_int("batch_size", batch_size, 1)
    path = Path(path)
    if S.is_partial(path):
        raise ValueError(f"{path}: the output name must not end in {S.PARTIAL_SUFFIX!r} (generate writes "
                         f"to that name while it runs)")
    partial = S.partial_path(path)
    for taken in (path, partial):
        if taken.is_dir():
            raise IsADirectoryError(f"{taken} is a directory; expected a file name for the dataset")
    identity = _identity(problem, n, seed, start)

    if path.exists() and not overwrite:
        if not resume:
            raise S.DatasetExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        _check_final(path, identity)
        return path
    has_partial = partial.exists() and partial.stat().st_size > 0

    path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path)
    lock = WriterLock(partial).acquire()  # first: a running writer is named, not called interrupted
    try:
        if has_partial and not (resume or overwrite):
            raise ValueError(f"{partial} exists from an interrupted run; pass resume=True (--resume) to continue "
                             f"it, or overwrite=True (--overwrite) to start again")
        resuming = has_partial and resume and not killed_before_swmr(partial)
        check_resources(problem, n, path, batch_size=batch_size, force=force,
                        on_disk=partial.stat().st_size if resuming else 0)

        def write(h5: h5py.File) -> None:
            _write_samples(h5, problem, n, seed, batch_size, progress, desc=path.name, offset=start)
            h5.attrs.modify(S.ATTR_COMPLETE, True)
            h5.flush()

        failure = write_guarded(partial, RESERVE_BYTES + batch_size * (sample_bytes(problem, problem.fields) or 0),
                                lambda: _open_for_resume(partial, identity, problem) if resuming
                                else _create(partial, problem, n, seed, start), write)
        if failure is not None:
            raise WriteError(partial, failure, _salvage(partial))
        commit(partial, path)
    finally:
        if not partial.exists() or partial.stat().st_size == 0:  # the lock's empty file, nothing written
            partial.unlink(missing_ok=True)
        lock.release()
    return path


def _salvage(partial: Path) -> str:
    """After a failed write: keep the ``.partial`` if its recorded samples read back intact (resume
    checks them again), otherwise remove it. Returns what was done, for the error message."""
    try:
        with open_read(partial, locking=False) as h5:
            attrs, _ = S.validate(h5, partial, require_complete=False)
            written = int(attrs[S.ATTR_N_WRITTEN])
            good = verify_file(h5, partial, rows=written)
        if good == 0:
            partial.unlink()
            return f"removed {partial.name} (no sample was complete); rerun to start again"
        return (f"kept {partial.name} with {good} verified samples; free space, then rerun with --resume to "
                f"continue it")
    except (OSError, ValueError):
        partial.unlink(missing_ok=True)
        return f"removed {partial.name} (unreadable after the failed write); rerun to start again"


def _check_final(path: Path, identity: dict[str, Any]) -> None:
    """``resume=True`` on an existing output: fine if it is the complete dataset that was asked for."""
    with open_read(path) as h5:
        try:
            attrs, _ = S.validate(h5, path)
            check_file(h5, path)
        except S.IncompleteDatasetError:
            raise S.DatasetExistsError(f"{path} exists but is incomplete; pass overwrite=True (--overwrite) "
                                       f"to replace it") from None
        except S.CorruptDatasetError as exc:
            raise S.DatasetExistsError(f"{exc}; pass overwrite=True (--overwrite) to replace it") from None
    diffs = _differences(attrs, identity)
    if diffs:
        raise S.DatasetExistsError(f"{path} exists with different settings: {'; '.join(diffs)}; pass "
                                   f"overwrite=True (--overwrite) to replace it")


def _open_for_resume(partial: Path, identity: dict[str, Any], problem: Problem) -> h5py.File:
    try:
        with open_read(partial, locking=False) as h5:
            attrs, fields = S.validate(h5, partial, require_complete=False)
    except ValueError as exc:
        raise ValueError(f"cannot resume {partial}: {exc}; pass overwrite=True (--overwrite) to start "
                         f"again") from None
    diffs = _differences(attrs, identity)
    if diffs:
        raise ValueError(f"cannot resume {partial}: it holds {'; '.join(diffs)}; pass overwrite=True "
                         f"(--overwrite) to start again with the new settings")
    if attrs.get(S.ATTR_VERSION) != _version():
        warnings.warn(f"{partial} was started by sciops {attrs.get(S.ATTR_VERSION)} and is resumed by sciops "
                      f"{_version()}; its samples may differ from an uninterrupted run", stacklevel=3)
    clear_write_flags(partial)  # left set by a killed SWMR writer; we hold the writer lock
    try:
        if all(name in fields for name in problem.input_fields + problem.output_fields):
            h5 = open_swmr_write(partial, S.LIBVER)
        else:  # the first batch never got written (n_written is 0): datasets still to create, then SWMR
            h5 = h5py.File(partial, "r+", libver=S.LIBVER, locking=False)
    except OSError as exc:
        raise ValueError(f"cannot resume {partial}: HDF5 cannot open it for writing ({exc}); pass "
                         f"overwrite=True (--overwrite) to start again") from None
    _roll_back_to_verified(h5, partial)
    return h5


def _roll_back_to_verified(h5: h5py.File, partial: Path) -> None:
    """Resume from the first recorded sample that does not read back intact (a write lost to a full
    disk before the error surfaced), so no damaged sample survives a resume."""
    written = int(h5.attrs[S.ATTR_N_WRITTEN])
    if CHECKSUMS not in h5:
        if written:
            raise ValueError(f"cannot resume {partial}: it was started by a sciops without per-sample checksums; "
                             f"pass overwrite=True (--overwrite) to start again")
        h5.create_group(CHECKSUMS, track_order=True)
        return
    good = verify_file(h5, partial, rows=written)
    if good < written:
        warnings.warn(f"{partial}: samples {good}..{written - 1} did not read back intact; they are written again",
                      stacklevel=4)
        h5.attrs.modify(S.ATTR_N_WRITTEN, np.int64(good))
        h5.flush()


def _create(partial: Path, problem: Problem, n: int, seed: int, start: int = 0) -> h5py.File:
    h5 = h5py.File(partial, "w", libver=S.LIBVER, locking=False)
    a = h5.attrs
    a[S.ATTR_SCHEMA] = np.int64(S.SCHEMA_VERSION)
    a[S.ATTR_PROBLEM] = problem.name
    a[S.ATTR_PARAMS] = S.encode_json(problem.params)
    a[S.ATTR_VERSION] = _version()
    a[S.ATTR_SEED] = np.int64(seed)
    a[S.ATTR_N_SAMPLES] = np.int64(n)
    a[S.ATTR_START] = np.int64(start)
    a[S.ATTR_N_WRITTEN] = np.int64(0)
    a[S.ATTR_COMPLETE] = False
    a[S.ATTR_SOLVER] = S.encode_json(problem.solver_info)
    a[S.ATTR_CREATED] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    a[S.ATTR_SOLVE_SECONDS] = 0.0
    a[S.ATTR_WALL_SECONDS] = 0.0
    a[S.ATTR_INPUT_FIELDS] = S.encode_json(problem.input_fields)
    a[S.ATTR_OUTPUT_FIELDS] = S.encode_json(problem.output_fields)
    for key, value in getattr(problem, "file_attrs", {}).items():  # e.g. an import's provenance
        a[key] = S.encode_json(value)
    grid = h5.create_group(S.GRID, track_order=True)
    for name, coords in problem.grid.items():
        ds = grid.create_dataset(name, data=np.asarray(coords, dtype=np.float64))
        ds.attrs["units"] = problem.grid_units.get(name, "")
        for key, value in getattr(problem, "grid_attrs", {}).get(name, {}).items():
            ds.attrs[key] = value
    h5.create_group(S.FIELDS, track_order=True)
    samples = h5.create_group(S.SAMPLES)
    samples.create_dataset("seed", (n,), dtype=np.uint64)
    samples.create_dataset("index", (n,), dtype=np.int64, fillvalue=-1)
    h5.create_group(CHECKSUMS, track_order=True)
    h5.flush()
    return h5


def _field_dims(problem: Problem, name: str, arr: np.ndarray) -> tuple[str, ...]:
    field = problem.fields[name]
    dims = tuple(field.dims)
    if arr.ndim == len(dims) + 2:
        dims = dims + (S.CHANNEL_DIM,)
    elif arr.ndim != len(dims) + 1:
        raise ValueError(f"{problem.name}: field {name!r} came back with shape {arr.shape}; expected "
                         f"(batch, {', '.join(field.dims)}[, channel])")
    for dim, size in zip(dims, arr.shape[1:]):
        if dim in problem.grid and len(problem.grid[dim]) != size:
            raise ValueError(f"{problem.name}: field {name!r} has {size} points along {dim!r}; its grid has "
                             f"{len(problem.grid[dim])}")
    return (S.SAMPLE_DIM,) + dims


def _ensure_fields(h5: h5py.File, problem: Problem, arrays: dict[str, np.ndarray], n: int) -> None:
    """Create the field datasets from the first batch's shapes, then switch to SWMR mode."""
    group = h5[S.FIELDS]
    for name, arr in arrays.items():
        if name in group:
            if group[name].shape[1:] != arr.shape[1:]:
                raise ValueError(f"{problem.name}: field {name!r} has sample shape {arr.shape[1:]}; the file "
                                 f"holds {group[name].shape[1:]}")
            continue
        dims = _field_dims(problem, name, arr)
        field = problem.fields[name]
        ds = group.create_dataset(name, shape=(n,) + arr.shape[1:], dtype=S.FIELD_DTYPE,
                                  chunks=(1,) + arr.shape[1:], fillvalue=np.nan, **S.COMPRESSION)
        ds.attrs["dims"] = S.encode_json(list(dims))
        ds.attrs["units"] = field.units
        ds.attrs["role"] = field.role
        ds.attrs["description"] = field.description
        h5[CHECKSUMS].create_dataset(name, (n,), dtype=np.uint32)
    if not h5.swmr_mode:
        h5.flush()
        h5.swmr_mode = True


def _batch_arrays(problem: Problem, inputs, outputs, count: int, start: int, seed: int) -> dict[str, np.ndarray]:
    arrays = {**problem.as_field_dict(inputs, "input"), **problem.as_field_dict(outputs, "output")}
    # diagnostic fields (stored, never stacked by the reader) come back in the outputs dict
    expected = problem.input_fields + problem.output_fields + \
        [k for k, f in problem.fields.items() if f.role == "diagnostic"]
    if sorted(arrays) != sorted(expected):
        raise ValueError(f"{problem.name}.generate returned fields {sorted(arrays)}; expected {sorted(expected)}")
    out = {}
    for name in expected:
        arr = np.asarray(arrays[name])
        if arr.ndim == 0 or arr.shape[0] != count:
            raise ValueError(f"{problem.name}.generate returned {name!r} with shape {arr.shape}; expected "
                             f"{count} samples first")
        arr = arr.astype(S.FIELD_DTYPE, copy=False)
        finite = np.isfinite(arr.reshape(count, -1)).all(axis=1)
        if not finite.all():
            j = int(np.argmin(finite))
            raise ValueError(f"{problem.name}: field {name!r} of sample {start + j} (sample seed "
                             f"{sample_seed(seed, start + j)}) contains NaN or Inf")
        out[name] = arr
    return out


def _write_batch(h5: h5py.File, arrays: dict[str, np.ndarray], lo: int, hi: int, seed: int, offset: int) -> None:
    """Rows ``lo .. hi-1`` of every field, its checksums, seeds and indices, flushed dataset by
    dataset: HDF5 reports a failed chunk write only to H5Dflush (a dataset closed by the garbage
    collector would swallow it)."""
    opened = []
    for name, arr in arrays.items():
        opened += [h5[S.FIELDS][name], h5[CHECKSUMS][name]]
        opened[-2][lo:hi] = arr
        opened[-1][lo:hi] = sample_checksums(arr)
    opened += [h5[S.SAMPLE_SEED], h5[S.SAMPLE_INDEX]]
    opened[-2][lo:hi] = np.array([sample_seed(seed, offset + i) for i in range(lo, hi)], dtype=np.uint64)
    opened[-1][lo:hi] = np.arange(offset + lo, offset + hi, dtype=np.int64)
    for ds in opened:
        ds.flush()


def _write_samples(h5: h5py.File, problem: Problem, n: int, seed: int, batch_size: int,
                   progress: bool | None, desc: str, offset: int = 0) -> None:
    """Write samples ``offset + n_written .. offset + n - 1`` at rows ``n_written .. n - 1``."""
    attrs = h5.attrs
    start = int(attrs[S.ATTR_N_WRITTEN])
    solve_total = float(attrs[S.ATTR_SOLVE_SECONDS])
    wall_before = float(attrs[S.ATTR_WALL_SECONDS])
    t0 = time.perf_counter()
    with Progress(n, start, desc=desc, mode=progress) as bar:
        for lo in range(start, n, batch_size):
            hi = min(n, lo + batch_size)
            inputs, outputs, seconds = problem.generate(hi - lo, seed, offset + lo)
            arrays = _batch_arrays(problem, inputs, outputs, hi - lo, offset + lo, seed)
            _ensure_fields(h5, problem, arrays, n)
            _write_batch(h5, arrays, lo, hi, seed, offset)
            h5.flush()  # the data first ...
            solve_total += float(seconds)
            attrs.modify(S.ATTR_N_WRITTEN, np.int64(hi))  # ... then the count that vouches for it
            attrs.modify(S.ATTR_SOLVE_SECONDS, solve_total)
            attrs.modify(S.ATTR_WALL_SECONDS, wall_before + time.perf_counter() - t0)
            h5.flush()
            bar.update(hi - lo)
    attrs.modify(S.ATTR_WALL_SECONDS, wall_before + time.perf_counter() - t0)

