"""Sharded generation on Dask: :func:`generate_sharded` (``merge`` lives in ``sciops.datasets.merge``).

``generate_sharded(problem, n, path, workers=W)`` runs on a ``distributed.LocalCluster`` of ``W``
single-threaded worker processes on this machine; ``scheduler="tcp://host:8786"`` runs the same
job on an existing Dask cluster (``client=`` takes a ``distributed.Client`` already connected).

Layout. Samples ``0 .. n-1`` are split into shards of ``shard_size`` contiguous indices (the last
one shorter). Shard ``i`` holds samples ``i*K .. min(n, (i+1)*K) - 1`` and is the file
``<path>.shards/shard-<i:05d>.h5``, written by one Dask task with the serial writer
(``sciops.datasets.writer.generate(..., start=i*K)``): a ``.partial`` renamed when complete, resumable,
seeds ``sample_seed(seed, i*K + j)``. When every shard exists, each is verified (complete, sample
count, ``sample_start``, per-sample seeds and indices, problem, parameters and seed, field shapes),
and only then is ``path`` written, atomically (temporary file, fsync, ``os.replace``): a schema-1
file with the root attributes and grid of a single file, ``shards`` (JSON list of shard paths
relative to ``path``'s folder) and ``fields/`` and ``samples/`` as HDF5 virtual datasets over the
shards. Every reader (``open_dataset``, ``open_xarray``, ``sciops info``, training) reads it as one
dataset, and its data equal a serial run's, because sample ``i`` depends only on ``(seed, i)``. Move
``path`` and its ``.shards`` folder together; :func:`merge` writes one self-contained file. The
index's ``solve_seconds`` and ``wall_seconds`` are the sums over shards (worker seconds).

The default shard size, ``max(32, ceil(n / 256))`` samples (fewer if that exceeds 1 GiB of fields),
depends only on ``n`` and the problem, never on the worker count, so a run can be resumed with
other workers; it keeps at most ~256 shard files, gives each worker many shards to balance, and
amortises the fixed cost of a shard (file creation, flushes, fsync, task, verification: about
10-20 ms here) over at least 32 samples.

Failures and resume. A worker killed mid-shard loses only that shard's unflushed batch: Dask
reruns the task elsewhere and the writer resumes the ``.partial``; finished shards are never
touched again. After the driver itself dies, ``resume=True`` (``--resume``) submits only missing
or partial shards. Before any work starts (and before a cluster is started) the shard folder is
checked: a shard of another problem, parameters or seed, or of another ``n`` / shard size, is a
``ValueError`` naming the file; existing shards without ``resume`` or ``overwrite`` are an error
too. ``overwrite=True`` deletes the old index and shards (after the cluster is reachable).

Threads. Workers run one task at a time with one thread: LocalCluster workers get
``OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1``, and each task sets torch to one thread
and ``SCIOPS_SOLVER_THREADS=1`` (the Darcy solver's thread pool, 2 by default), so W workers use W
cores. Workers of an existing cluster must have sciops installed and see the
output folder (a shared filesystem); paths are sent to them as absolute paths. Dask's nanny sets
``MALLOC_TRIM_THRESHOLD_=65536`` in workers, which slowed the torch-FFT Navier-Stokes solver 7-10x:
the LocalCluster started here unsets it, and on an existing cluster a note says so (the fix is the
Dask config ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` on the workers).

Python API: ``workers=W`` starts worker processes with the ``spawn`` method, so a script calling it
needs the usual ``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sciops.datasets import schema as S
from sciops.datasets.estimates import check_resources
from sciops.datasets.h5io import killed_before_swmr, open_read
from sciops.datasets.merge import merge  # noqa: F401  (re-exported: a sharded dataset is merged with it)
from sciops.datasets.progress import Progress
from sciops.datasets.resources import check_writable
from sciops.datasets.writer import _check_int, _differences, _identity, generate
from sciops.problems import Problem, get, sample_seed

SHARDS_SUFFIX = ".shards"
SHARD_RE = re.compile(r"^shard-(\d+)\.h5(\.partial)?$")
MIN_SHARD_SIZE = 32
TARGET_SHARDS = 256
MAX_SHARD_BYTES = 2**30
CONNECT_TIMEOUT = 5.0  # seconds to reach an existing scheduler before giving up
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "SCIOPS_SOLVER_THREADS": "1"}
# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in workers (less memory kept after tasks); glibc then
# serves every allocation above 128 KiB with a fresh mmap, which made the torch-FFT Navier-Stokes
# solver 7-10x slower in a worker than in a plain process in a probe here. sciops' LocalCluster leaves it unset.
MALLOC_ENV = "MALLOC_TRIM_THRESHOLD_"


def shard_dir(path: str | os.PathLike) -> Path:
    """The folder holding the shards of the sharded dataset ``path``."""
    path = Path(path)
    return path.with_name(path.name + SHARDS_SUFFIX)


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.h5"


def default_shard_size(problem: Problem, n: int) -> int:
    """``max(32, ceil(n / 256))`` samples, capped at ~1 GiB of float32 fields per shard."""
    size = max(MIN_SHARD_SIZE, math.ceil(n / TARGET_SHARDS))
    try:
        per_sample = sum(4 * int(np.prod(problem.field_shape(f)))
                         for f in problem.input_fields + problem.output_fields)
        size = min(size, max(1, MAX_SHARD_BYTES // max(per_sample, 1)))
    except (KeyError, TypeError, AttributeError):  # a field dim without a grid coordinate
        pass
    return max(1, min(size, n))


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]``: the sample range of each shard."""
    return [(lo, min(n, lo + shard_size)) for lo in range(0, n, shard_size)]


# --- the task a worker runs -------------------------------------------------------------------------
def _generate_shard(name: str, params: dict[str, Any], n: int, path: str, seed: int, start: int,
                    batch_size: int | None) -> int:
    """Write one shard with the serial writer (resuming its ``.partial``); return its sample count."""
    os.environ["SCIOPS_SOLVER_THREADS"] = "1"  # sciops' own solver thread pools (read at each solve)
    problem = get(name, **params)
    torch = sys.modules.get("torch")  # imported by torch-based solvers; never imported here just for this
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # one core per worker process (OMP_NUM_THREADS may not be set on a cluster)
    generate(problem, n, path, seed=seed, start=start, resume=True, batch_size=batch_size, progress=False,
             force=True)  # the driver checked the resources for all workers
    return n


# --- checks -------------------------------------------------------------------------------------------
def _describe_diffs(diffs: list[str]) -> str:
    return "; ".join(diffs)


def _shard_identity(problem: Problem, seed: int, lo: int, hi: int) -> dict[str, Any]:
    return _identity(problem, hi - lo, seed, lo)


def _check_shard_attrs(file: Path, attrs: dict[str, Any], problem: Problem, seed: int,
                       ranges: list[tuple[int, int]], i: int, folder: Path) -> None:
    """A shard file found in the folder must belong to this dataset and this layout."""
    diffs = _differences({**attrs, S.ATTR_N_SAMPLES: None, S.ATTR_START: None},
                         {**_identity(problem, 0, seed), S.ATTR_N_SAMPLES: None, S.ATTR_START: None})
    if diffs:
        raise ValueError(f"{file} belongs to another dataset ({_describe_diffs(diffs)}); remove {folder} or "
                         f"pass overwrite=True (--overwrite) to start again")
    lo, hi = ranges[i] if i < len(ranges) else (None, None)
    got_lo = int(attrs.get(S.ATTR_START, 0))
    got_hi = got_lo + int(attrs.get(S.ATTR_N_SAMPLES, 0))
    if (got_lo, got_hi) != (lo, hi):
        want = f"samples {lo}..{hi - 1}" if lo is not None else f"no shard {i} (there are {len(ranges)})"
        raise ValueError(f"{file} holds samples {got_lo}..{got_hi - 1} but this layout expects {want}; it was "
                         f"generated with another -n or --shard-size (pass the same ones, or overwrite=True "
                         f"(--overwrite) to start again)")


def _scan(folder: Path, problem: Problem, seed: int, ranges: list[tuple[int, int]]) -> dict[int, str]:
    """State of each shard file in ``folder``: "complete" or "partial"; checks that each belongs here."""
    states: dict[int, str] = {}
    if not folder.is_dir():
        return states
    for file in sorted(folder.iterdir()):
        m = SHARD_RE.match(file.name)
        if not m:
            continue
        i, partial = int(m.group(1)), bool(m.group(2))
        if partial and (file.stat().st_size == 0 or killed_before_swmr(file)):
            if i >= len(ranges):
                raise ValueError(f"{file} is a shard beyond this layout's {len(ranges)} shards; it was generated "
                                 f"with another -n or --shard-size (or pass overwrite=True (--overwrite))")
            states.setdefault(i, "partial")  # nothing readable in it: the writer starts it afresh
            continue
        with open_read(file, locking=not partial) as h5:
            try:
                attrs, _ = S.validate(h5, file, require_complete=not partial)
            except S.IncompleteDatasetError:
                raise ValueError(f"{file} is marked incomplete; remove it so that it is generated again") from None
            except ValueError as exc:
                raise ValueError(f"{exc}; remove it from {folder}") from None
        _check_shard_attrs(file, attrs, problem, seed, ranges, i, folder)
        if not partial:
            states[i] = "complete"
        else:
            states.setdefault(i, "partial")
    return states


def _verify_shard(file: Path, problem: Problem, seed: int, lo: int, hi: int) -> tuple[dict[str, Any], dict[str, S.FieldInfo]]:
    """Full check of a finished shard: identity, count, seeds, indices; its attributes and fields."""
    if not file.exists():
        raise ValueError(f"shard {file} is missing after generation; do all workers see {file.parent} (a shared "
                         f"filesystem) and run this sciops?")
    with open_read(file) as h5:
        attrs, fields = S.validate(h5, file)
        diffs = _differences(attrs, _shard_identity(problem, seed, lo, hi))
        if diffs:
            raise ValueError(f"{file} does not hold samples {lo}..{hi - 1} of this dataset: {_describe_diffs(diffs)}")
        if int(attrs[S.ATTR_N_WRITTEN]) != hi - lo:
            raise ValueError(f"{file} has n_written={attrs[S.ATTR_N_WRITTEN]}; expected {hi - lo}")
        seeds = np.asarray(h5[S.SAMPLE_SEED][:], dtype=np.uint64)
        expected = np.array([sample_seed(seed, i) for i in range(lo, hi)], dtype=np.uint64)
        if not np.array_equal(seeds, expected):
            j = int(np.argmax(seeds != expected))
            raise ValueError(f"{file}: sample {lo + j} has seed {seeds[j]}; expected sample_seed({seed}, {lo + j}) = "
                             f"{expected[j]}")
        if not np.array_equal(h5[S.SAMPLE_INDEX][:], np.arange(lo, hi)):
            raise ValueError(f"{file}: samples/index is not {lo}..{hi - 1}")
    wanted = sorted(problem.input_fields + problem.output_fields +
                    [k for k, f in problem.fields.items() if f.role == "diagnostic"])
    if sorted(fields) != wanted:
        raise ValueError(f"{file} holds fields {sorted(fields)}; expected {wanted}")
    return attrs, fields


# --- the index ------------------------------------------------------------------------------------------
def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_index(path: str | os.PathLike, problem: Problem, n: int, seed: int, shard_size: int) -> Path:
    """Verify every shard of ``path`` and write the virtual-dataset index ``path`` atomically."""
    path = Path(path)
    folder = shard_dir(path)
    ranges = shard_ranges(n, shard_size)
    files = [folder / shard_name(i) for i in range(len(ranges))]
    checked = [_verify_shard(f, problem, seed, lo, hi) for f, (lo, hi) in zip(files, ranges)]
    fields0 = checked[0][1]
    for f, (_, fields) in zip(files[1:], checked[1:]):
        for name, info in fields.items():
            if info.shape[1:] != fields0[name].shape[1:] or info.dims != fields0[name].dims:
                raise ValueError(f"{f}: field {name!r} has sample shape {info.shape[1:]}; {files[0]} has "
                                 f"{fields0[name].shape[1:]}")
    rel = [Path(os.path.relpath(f, path.parent)).as_posix() for f in files]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w", libver=S.LIBVER) as out, h5py.File(files[0], "r") as first:
            for key, value in first.attrs.items():
                out.attrs[key] = value
            a = out.attrs
            a[S.ATTR_N_SAMPLES] = np.int64(n)
            a[S.ATTR_N_WRITTEN] = np.int64(n)
            a[S.ATTR_START] = np.int64(0)
            a[S.ATTR_COMPLETE] = True
            a[S.ATTR_CREATED] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            a[S.ATTR_SOLVE_SECONDS] = float(sum(c[0].get(S.ATTR_SOLVE_SECONDS, 0.0) for c in checked))
            a[S.ATTR_WALL_SECONDS] = float(sum(c[0].get(S.ATTR_WALL_SECONDS, 0.0) for c in checked))
            a[S.ATTR_SHARDS] = S.encode_json(rel)
            if S.GRID in first:
                first.copy(first[S.GRID], out, name=S.GRID)
            group = out.create_group(S.FIELDS, track_order=True)
            for name in first[S.FIELDS]:
                src = first[S.FIELDS][name]
                _virtual(group, name, rel, ranges, f"{S.FIELDS}/{name}", src.shape[1:], src.dtype, np.nan)
                for key, value in src.attrs.items():
                    group[name].attrs[key] = value
            if S.CHECKSUMS in first:
                sums = out.create_group(S.CHECKSUMS, track_order=True)
                for name in first[S.CHECKSUMS]:
                    _virtual(sums, name, rel, ranges, f"{S.CHECKSUMS}/{name}", (), np.uint32, 0)
            samples = out.create_group(S.SAMPLES)
            _virtual(samples, "seed", rel, ranges, S.SAMPLE_SEED, (), np.uint64, 0)
            _virtual(samples, "index", rel, ranges, S.SAMPLE_INDEX, (), np.int64, -1)
        _fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _virtual(group, name: str, files: list[str], ranges: list[tuple[int, int]], source: str, sample_shape,
             dtype, fill) -> None:
    n = ranges[-1][1]
    layout = h5py.VirtualLayout(shape=(n,) + tuple(sample_shape), dtype=dtype)
    for file, (lo, hi) in zip(files, ranges):
        layout[lo:hi] = h5py.VirtualSource(file, source, shape=(hi - lo,) + tuple(sample_shape))
    group.create_virtual_dataset(name, layout, fillvalue=fill)


# --- the driver ------------------------------------------------------------------------------------------
def _connect(workers: int | None, scheduler: str | None):
    """(client, cluster-or-None); unreachable scheduler: ValueError within CONNECT_TIMEOUT."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port

        try:
            scheme, location = parse_address(scheduler)
            if scheme in ("tcp", "tls"):
                parse_host_port(location)
        except ValueError as exc:
            raise ValueError(f"--scheduler {scheduler!r} is not a Dask scheduler address ({exc}); expected "
                             f"tcp://host:port, as printed by `dask scheduler`") from None
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT:g} s "
                             f"({reason}); start one with `dask scheduler` and workers with `dask worker "
                             f"ADDRESS`, or use --workers W for a local cluster") from None
        return client, None
    import dask

    # silence_logs: a task's error reaches the driver through its future and is reported there in
    # one line; the workers' own "Compute Failed" logs would print its traceback first
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_ENV}": None}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               env=dict(SINGLE_THREAD_ENV), silence_logs=logging.CRITICAL)
    return Client(cluster, set_as_default=False), cluster


def _malloc_trim(client) -> set[str]:
    """Values of MALLOC_TRIM_THRESHOLD_ set in the cluster's workers."""
    return {v for v in client.run(os.environ.get, MALLOC_ENV).values() if v is not None}


def generate_sharded(problem: Problem | str, n: int, path: str | os.PathLike, *, seed: int = 0,
                     workers: int | None = None, scheduler: str | None = None, client=None,
                     shard_size: int | None = None, resume: bool = False, overwrite: bool = False,
                     batch_size: int | None = None, progress: bool | None = None, force: bool = False) -> Path:
    """Generate ``n`` samples of ``problem`` as shards on Dask plus a virtual index ``path``.

    Exactly one of ``workers`` (a LocalCluster of that many single-threaded processes),
    ``scheduler`` (address of an existing cluster) or ``client`` (a connected
    ``distributed.Client``). See the module docstring for the layout, ``resume`` and ``overwrite``.
    """
    if isinstance(problem, str):
        problem = get(problem)
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    if sum(x is not None for x in (workers, scheduler, client)) != 1:
        raise ValueError("give exactly one of workers (--workers W), scheduler (--scheduler ADDRESS) or client")
    if workers is not None:
        workers = _check_int("workers (--workers)", workers, 1)
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValueError(f"scheduler (--scheduler) must be an address like tcp://host:8786, got {scheduler!r}")
    shard_size = default_shard_size(problem, n) if shard_size is None \
        else _check_int("shard size (--shard-size)", shard_size, 1)
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
    path = Path(path)
    if S.is_partial(path):
        raise ValueError(f"{path}: the output name must not end in {S.PARTIAL_SUFFIX!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected a file name for the dataset index")
    folder = shard_dir(path)
    ranges = shard_ranges(n, shard_size)

    if path.exists() and not overwrite:
        if not resume:
            raise S.DatasetExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        with open_read(path) as h5:
            is_index = S.ATTR_SHARDS in h5.attrs
            try:
                attrs, _ = S.validate(h5, path)
            except ValueError as exc:
                if not is_index:
                    raise S.DatasetExistsError(f"{exc}; pass overwrite=True (--overwrite) to replace it") from None
                attrs = S.decode_attrs(h5.attrs)  # e.g. a shard deleted since: regenerated below
        diffs = _differences(attrs, _identity(problem, n, seed))
        if diffs:
            raise S.DatasetExistsError(f"{path} exists with different settings: {_describe_diffs(diffs)}; pass "
                                       f"overwrite=True (--overwrite) to replace it")
        if not is_index:
            return path  # a complete single file of this dataset
    serial = S.partial_path(path)
    if serial.exists() and serial.stat().st_size > 0 and not overwrite:
        raise ValueError(f"{serial} is an interrupted serial run of this output; resume it without --workers/"
                         f"--scheduler, or pass overwrite=True (--overwrite) to start again on the cluster")
    states = {} if overwrite else _scan(folder, problem, seed, ranges)
    if states and not resume:
        raise ValueError(f"{folder} holds {len(states)} shard file(s) from an earlier run; pass resume=True "
                         f"(--resume) to continue it, or overwrite=True (--overwrite) to start again")
    pending = [i for i in range(len(ranges)) if states.get(i) != "complete"]

    if pending:
        check_writable(path)
        check_resources(problem, sum(ranges[i][1] - ranges[i][0] for i in pending), path, batch_size=batch_size,
                        force=force, processes=workers or 1)
        own_client, cluster = (None, None) if client is not None else _connect(workers, scheduler)
        try:
            if cluster is None and progress is not False and _malloc_trim(own_client or client):
                print(f"sciops: note: the Dask workers run with {MALLOC_ENV} set (the nanny's default), which can "
                      f"make solvers several times slower; see 'Generating on a Dask cluster' in the README",
                      file=sys.stderr)
            if overwrite:
                _remove_old(path, folder)
            folder.mkdir(parents=True, exist_ok=True)
            _run(own_client or client, problem, seed, batch_size, folder, ranges, pending, progress, path.name)
        finally:
            if own_client is not None:
                own_client.close()
            if cluster is not None:
                cluster.close()
    return write_index(path, problem, n, seed, shard_size)


def _remove_old(path: Path, folder: Path) -> None:
    path.unlink(missing_ok=True)
    S.partial_path(path).unlink(missing_ok=True)  # a serial run's leftover
    if folder.is_dir():
        for file in folder.iterdir():
            if SHARD_RE.match(file.name):
                file.unlink()


def _run(client, problem: Problem, seed: int, batch_size: int | None, folder: Path,
         ranges: list[tuple[int, int]], pending: list[int], progress: bool | None, desc: str) -> None:
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    folder = folder.resolve()
    futures = {}
    for i in pending:
        lo, hi = ranges[i]
        fut = client.submit(_generate_shard, problem.name, dict(problem.params), hi - lo, str(folder / shard_name(i)),
                            seed, lo, batch_size, key=f"sciops-shard-{i:05d}-{uuid.uuid4().hex}",
                            pure=False, priority=-i)
        futures[fut] = i
    done = ranges[-1][1] - sum(ranges[i][1] - ranges[i][0] for i in pending)
    with Progress(ranges[-1][1], done, desc=desc, mode=progress) as bar:
        try:
            for fut in as_completed(list(futures), loop=client.loop):
                try:
                    bar.update(fut.result())
                except KilledWorker:
                    raise RuntimeError(f"{folder / shard_name(futures[fut])}: the workers running it died repeatedly; "
                                       f"finished shards are kept, rerun with --resume") from None
        except BaseException:
            client.cancel(list(futures))
            raise

