"""The sciops HDF5 dataset schema, version 1: names, constants, decoding and validation of a file.

Layout of one dataset file::

    /                      root attributes, below
    /grid/<coord>          1-D float64 coordinate arrays, attribute ``units`` (and, for a problem that
                           sets ``grid_attrs``, others: ``grid/lat`` of shallow-water carries
                           ``quadrature_weights``, float64 (nlat,), sum_ij W_i f_ij = int f dOmega)
    /fields/<name>         float32 (N, *field dims[, C]), one sample per chunk, gzip level 1 + shuffle,
                           attributes ``dims`` (JSON list, "sample" first, "channel" last when the
                           field has channels), ``units``, ``role`` (input/output/diagnostic),
                           ``description``; unwritten samples read as NaN (the fill value)
    /samples/seed          uint64 (N,), the seed of sample i: ``sciops.problems.sample_seed(seed, i)``
    /samples/index         int64 (N,), the sample index i
    /checksums/<name>      uint32 (N,), CRC-32 of sample i of field <name> (see ``sciops.datasets.checksums``)

Root attributes: ``sciops_schema`` (1), ``problem`` (name), ``problem_params`` (JSON object that
``sciops.problems.get(problem, **params)`` accepts), ``sciops_version``, ``seed``, ``n_samples``
(the size the file was created for), ``n_written`` (samples 0 .. n_written-1 are written and
flushed), ``complete`` (bool), ``solver`` (JSON object, the problem's ``solver_info``),
``created`` (ISO 8601 UTC), ``solve_seconds`` (solver seconds, summed over resumed runs),
``wall_seconds`` (generation wall time, summed over resumed runs), and ``input_fields`` /
``output_fields`` (JSON lists: the channel order readers stack fields in). ``sample_start`` (0 when
absent): the index of the file's first sample, nonzero in the shards of a sharded dataset.
``provenance`` (JSON object, imported files only, see ``sciops.datasets.importing``): the source file,
its format and sha256, the keys read, the transformations applied and the import options.

Sharded datasets (``sciops.datasets.sharded``): each shard is a schema-1 file holding a contiguous
range of samples; the index file has the same root attributes and grid as a single file, plus
``shards`` (JSON list of shard paths relative to the index's folder), and its ``fields/`` and
``samples/`` are HDF5 virtual datasets over the shards, so every reader reads it unchanged.

Conventions:

* A file being generated is ``<name>.partial`` and is renamed to ``<name>`` only once complete;
  :func:`partial_path` gives the name.
* JSON-valued attributes (:data:`JSON_ATTRS`) are decoded by :func:`decode_attrs`; numpy scalars
  become Python scalars.
* :func:`validate` is the one check every reader goes through; it raises ``ValueError`` naming
  the file and what is wrong (not a sciops dataset, unsupported schema, incomplete, malformed).
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sciops.datasets.checksums import CHECKSUMS, CorruptDatasetError  # noqa: F401  (part of the schema)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = (1,)
PARTIAL_SUFFIX = ".partial"

# Root attribute names.
ATTR_SCHEMA = "sciops_schema"
ATTR_PROBLEM = "problem"
ATTR_PARAMS = "problem_params"
ATTR_VERSION = "sciops_version"
ATTR_SEED = "seed"
ATTR_N_SAMPLES = "n_samples"
ATTR_N_WRITTEN = "n_written"
ATTR_COMPLETE = "complete"
ATTR_SOLVER = "solver"
ATTR_CREATED = "created"
ATTR_SOLVE_SECONDS = "solve_seconds"
ATTR_WALL_SECONDS = "wall_seconds"
ATTR_INPUT_FIELDS = "input_fields"
ATTR_OUTPUT_FIELDS = "output_fields"
ATTR_START = "sample_start"
ATTR_SHARDS = "shards"
ATTR_PROVENANCE = "provenance"

REQUIRED_ATTRS = (ATTR_SCHEMA, ATTR_PROBLEM, ATTR_PARAMS, ATTR_SEED, ATTR_N_SAMPLES, ATTR_N_WRITTEN, ATTR_COMPLETE)
JSON_ATTRS = (ATTR_PARAMS, ATTR_SOLVER, ATTR_INPUT_FIELDS, ATTR_OUTPUT_FIELDS, ATTR_SHARDS, ATTR_PROVENANCE)

# netCDF-4 libraries (netCDF-C, h5netcdf) mark the HDF5 files they write with this root attribute.
NETCDF_MARK = "_NCProperties"

# Groups, per-field attributes and dimension names.
GRID = "grid"
FIELDS = "fields"
SAMPLES = "samples"
SAMPLE_SEED = "samples/seed"
SAMPLE_INDEX = "samples/index"
SAMPLE_DIM = "sample"
CHANNEL_DIM = "channel"
ROLES = ("input", "output", "diagnostic")

FIELD_DTYPE = np.float32
# gzip level 1 with the shuffle filter: on Darcy data it compresses better than lzf (the binary
# coefficient ~60x, the smooth solution ~1.4x versus 1.0x), reads as fast, writes within a few
# percent of the solver's time, and, unlike lzf, is readable by every HDF5 tool (netCDF-C, h5dump,
# MATLAB, Julia) without a plugin.
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
# File-format bounds: SWMR needs at least the 1.10 format; capping it at 1.10 keeps files
# readable by every HDF5 >= 1.10 (including the HDF5 1.x inside netCDF and older h5py wheels).
LIBVER = ("v110", "v110")


class IncompleteDatasetError(ValueError):
    """The file is a sciops dataset whose generation has not finished."""


class DatasetExistsError(FileExistsError, ValueError):
    """The output of ``generate`` exists already (a ValueError too, so CLIs report it as bad input)."""


def partial_path(path: str | os.PathLike) -> Path:
    """The file ``generate`` writes to before renaming it to ``path``."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def is_partial(path: str | os.PathLike) -> bool:
    return Path(path).name.endswith(PARTIAL_SUFFIX)


def final_path(path: str | os.PathLike) -> Path:
    """The path a ``.partial`` file will be renamed to (``path`` itself otherwise)."""
    path = Path(path)
    return path.with_name(path.name[: -len(PARTIAL_SUFFIX)]) if is_partial(path) else path


def encode_json(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def decode_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def decode_attrs(attrs) -> dict[str, Any]:
    """Root attributes as Python values, with the JSON-valued ones (:data:`JSON_ATTRS`) parsed."""
    out = {}
    for key in attrs:
        value = decode_value(attrs[key])
        if key in JSON_ATTRS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def same_json(a: Any, b: Any) -> bool:
    """Equality after a JSON round trip (tuples vs lists, numpy vs Python scalars)."""
    return json.loads(encode_json(a)) == json.loads(encode_json(b))


@dataclass(frozen=True)
class FieldInfo:
    """One stored field: its dims (``sample`` first), shape (N first) and metadata."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    units: str
    role: str
    description: str = ""
    dtype: str = "float32"

    @property
    def channels(self) -> int:
        """Channels the field contributes when stacked channel-first (1 for a scalar field)."""
        return self.shape[-1] if self.dims[-1] == CHANNEL_DIM else 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The per-sample shape without the sample and channel dims."""
        end = -1 if self.dims[-1] == CHANNEL_DIM else len(self.shape)
        return tuple(self.shape[1:end])

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * np.dtype(self.dtype).itemsize


def read_fields(h5, path: str | os.PathLike = "") -> dict[str, FieldInfo]:
    """FieldInfo for every dataset under ``fields/`` (creation order), checking its attributes."""
    if FIELDS not in h5:
        return {}
    out = {}
    for name, ds in h5[FIELDS].items():
        where = f"{path}: field {name!r}"
        for key in ("dims", "units", "role"):
            if key not in ds.attrs:
                raise ValueError(f"{where} has no {key!r} attribute; the file is not a valid sciops dataset")
        try:
            dims = tuple(json.loads(decode_value(ds.attrs["dims"])))
        except (TypeError, json.JSONDecodeError):
            raise ValueError(f"{where} has a 'dims' attribute that is not a JSON list") from None
        if len(dims) != ds.ndim or dims[0] != SAMPLE_DIM:
            raise ValueError(f"{where} has dims {list(dims)} but shape {ds.shape}; expected one name per "
                             f"axis with {SAMPLE_DIM!r} first")
        role = decode_value(ds.attrs["role"])
        if role not in ROLES:
            raise ValueError(f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
        out[name] = FieldInfo(name, dims, tuple(ds.shape), decode_value(ds.attrs["units"]), role,
                              decode_value(ds.attrs.get("description", "")), str(ds.dtype))
    return out


def field_order(attrs: dict[str, Any], fields: dict[str, FieldInfo], role: str) -> list[str]:
    """Names of the fields with ``role`` in channel order (root attribute, else creation order)."""
    key = ATTR_INPUT_FIELDS if role == "input" else ATTR_OUTPUT_FIELDS
    names = attrs.get(key)
    if isinstance(names, list) and all(n in fields for n in names):
        return list(names)
    return [n for n, f in fields.items() if f.role == role]


def resume_command(path: str | os.PathLike, attrs: dict[str, Any]) -> str:
    """The ``sciops generate ... --resume`` (or ``sciops import ... --resume``) command that finishes this file."""
    provenance = attrs.get(ATTR_PROVENANCE)
    if isinstance(provenance, dict) and provenance.get("command"):
        return " ".join(shlex.quote(p) for p in provenance["command"] + ["-o", os.fspath(final_path(path))]) + \
            " --resume"
    name = attrs.get(ATTR_PROBLEM, "PROBLEM")
    params = attrs.get(ATTR_PARAMS) or {}
    try:  # only the parameters that differ from the problem's defaults
        from sciops.problems import get

        defaults = get(name).params
        params = {k: v for k, v in params.items() if k not in defaults or not same_json(v, defaults[k])}
    except Exception:  # unknown problem in this installation: spell out every parameter
        pass
    n, output, extra = str(attrs.get(ATTR_N_SAMPLES, "N")), final_path(path), []
    folder = output.parent
    if attrs.get(ATTR_START) and folder.name.endswith(".shards"):  # a shard: rerun its sharded run
        n, output, extra = "N", folder.with_name(folder.name[: -len(".shards")]), ["--workers", "W"]
    parts = ["sciops", "generate", str(name), "-n", n, "-o", os.fspath(output), "--seed", str(attrs.get(ATTR_SEED, 0))]
    for key, value in params.items():
        parts += ["--param", f"{key}={'none' if value is None else value}"]
    return " ".join(shlex.quote(p) for p in parts + extra) + " --resume"


def validate(h5, path: str | os.PathLike, *, require_complete: bool = True) -> tuple[dict[str, Any], dict[str, FieldInfo]]:
    """Check an open h5py file against schema 1; return its decoded root attributes and fields.

    Raises ``ValueError`` (``IncompleteDatasetError`` for an unfinished file when
    ``require_complete``) naming ``path`` and what is wrong; damaged HDF5 structure (a link or an
    attribute HDF5 cannot decode) is a ``CorruptDatasetError``.
    """
    try:
        return _validate(h5, path, require_complete)
    except (OSError, RuntimeError, KeyError, AttributeError, TypeError, UnicodeDecodeError) as exc:
        detail = (str(exc).strip().splitlines()[0] if isinstance(exc, (OSError, RuntimeError)) and str(exc).strip()
                  else "a link or an attribute cannot be decoded")
        raise CorruptDatasetError(f"{path}: its HDF5 structure is damaged ({detail}); the file is corrupt: "
                                  f"regenerate it") from None


def _validate(h5, path, require_complete: bool) -> tuple[dict[str, Any], dict[str, FieldInfo]]:
    if NETCDF_MARK in h5.attrs:
        what = "a netCDF export of a sciops dataset" if ATTR_SCHEMA in h5.attrs else "a netCDF file"
        raise ValueError(f"{path} is {what}, not a sciops dataset (the HDF5 file sciops reads): open it with "
                         f"xarray.open_dataset, or use the HDF5 file it was exported from")
    if ATTR_SCHEMA not in h5.attrs:
        raise ValueError(f"{path} is not a sciops dataset (an HDF5 file without a {ATTR_SCHEMA!r} attribute)")
    attrs = decode_attrs(h5.attrs)
    version = attrs[ATTR_SCHEMA]
    if version not in SUPPORTED_SCHEMAS:
        hint = "; upgrade sciops to read it" if isinstance(version, int) and version > SCHEMA_VERSION else ""
        raise ValueError(f"{path} has {ATTR_SCHEMA}={version!r}; this sciops reads schema version "
                         f"{', '.join(map(str, SUPPORTED_SCHEMAS))}{hint}")
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"{path} is not a valid sciops dataset: missing root attribute(s) {', '.join(missing)}")
    n, written = int(attrs[ATTR_N_SAMPLES]), int(attrs[ATTR_N_WRITTEN])
    if require_complete and (not attrs[ATTR_COMPLETE] or written < n or is_partial(path)):
        state = f"{written}/{n} samples written" + ("" if written < n else ", not yet renamed")
        raise IncompleteDatasetError(
            f"{path} is an incomplete sciops dataset ({state}); finish it with "
            f"`{resume_command(path, attrs)}`")
    fields = read_fields(h5, path)
    if not fields and written > 0:
        raise ValueError(f"{path} is not a valid sciops dataset: no datasets under {FIELDS}/")
    for info in fields.values():
        if info.shape[0] != n:
            raise ValueError(f"{path}: field {info.name!r} holds {info.shape[0]} samples; expected "
                             f"{ATTR_N_SAMPLES}={n}")
    if SAMPLE_SEED in h5 and h5[SAMPLE_SEED].shape != (n,):
        raise ValueError(f"{path}: {SAMPLE_SEED} has shape {h5[SAMPLE_SEED].shape}; expected ({n},)")
    shards = attrs.get(ATTR_SHARDS) or []
    missing = [s for s in shards if not (Path(h5.filename).parent / s).is_file()]
    if missing:  # HDF5 would silently read a missing shard's samples as fill values
        raise ValueError(f"{path} is a sharded dataset whose shard {missing[0]} is missing ({len(missing)} of "
                         f"{len(shards)} missing); keep the index beside its .shards folder")
    _check_shards(path, attrs, [Path(h5.filename).parent / s for s in shards])
    return attrs, fields


def _check_shards(path, attrs: dict[str, Any], files: list[Path]) -> None:
    """Each shard of an index must hold the index's problem, parameters and seed, and the samples
    that follow the previous shard's: a shard swapped in from another run has its own checksums,
    so only its identity shows it."""
    import h5py

    start = 0
    for file in files:
        with h5py.File(file, "r", locking=False) as shard:
            got = decode_attrs(shard.attrs)
        for key in (ATTR_PROBLEM, ATTR_SEED):
            if got.get(key) != attrs.get(key):
                raise CorruptDatasetError(f"{path}: shard {file.name} holds {key}={got.get(key)!r}, the index "
                                          f"{attrs.get(key)!r}; it belongs to another run: regenerate it")
        if not same_json(got.get(ATTR_PARAMS), attrs.get(ATTR_PARAMS)) or int(got.get(ATTR_START, 0)) != start:
            raise CorruptDatasetError(f"{path}: shard {file.name} holds other parameters or samples than the index "
                                      f"expects (from sample {start}); it belongs to another run: regenerate it")
        start += int(got.get(ATTR_N_SAMPLES, 0))
