"""Bring your own data: :func:`import_file` and :func:`from_arrays` write schema-1 datasets.

The file written is an ordinary sciops dataset (checksums, ``.partial`` until complete, verified
and renamed by :func:`~sciops.datasets.h5io.commit`): it is written by the same
:func:`~sciops.datasets.writer.generate`, fed samples read from the source in batches instead of
solved, so large files stream, an interrupted import resumes (``resume=True``) and the rules for an
existing output are generate's (``overwrite=True`` replaces it).

Identity. By default the file carries ``problem="external"`` (``sciops.problems.external``): its
fields, grid, geometry and provenance, with no solver. ``as_problem="darcy", params={...}`` maps the
data to a sciops problem instead: the fields must have that problem's shapes, and the first
``check_samples`` inputs are solved with its solver; a relative L2 discrepancy above ``tolerance``
is refused unless ``force=True``. Either way the root attribute ``provenance`` records the source
file, format, sha256, the keys read, every transformation (axes moved, dtypes converted,
subsampling, coordinates supplied), the options and the check; a resume compares it, so a changed
source or option is refused, not mixed in.

Bad input (arrays that do not pair, NaN or Inf, a missing key, an unknown format, a failed check) is
a one-line ``ValueError`` and leaves nothing: a NaN found while streaming removes the ``.partial``.

Intended command line (the CLI parses arguments and calls these functions)::

    sciops import FILE -o OUT.h5 [--format F] [--input-key K --output-key K] [--subsample S]
                       [--grid x=0:1,y=0:1] [--geometry periodic] [--as darcy --param resolution=85]
                       [--force] [--resume] [--overwrite] [--batch-size B]
        -> import_file(FILE, OUT, format=F, input_key=..., output_key=..., subsample=S,
                       grid=parse_grid("x=0:1,y=0:1"), geometry=..., as_problem="darcy",
                       params={"resolution": "85"}, force=..., resume=..., overwrite=..., batch=B)
           then print(result.message)
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sciops.datasets import schema as S
from sciops.datasets.importers import FORMATS, open_source
from sciops.datasets.importers.source import CHANNEL, TIME, Source, SourceField, grid_for, infer_dims
from sciops.datasets.writer import generate
from sciops.problems import get
from sciops.problems.external import GEOMETRIES, encode_grid

RESERVED = ("sample", "seed", CHANNEL)


class BadDataError(ValueError):
    """Source data that cannot be imported (NaN, Inf, an unreadable block)."""


@dataclass
class ImportResult:
    path: Path
    n: int
    problem: str
    provenance: dict
    discrepancy: dict | None
    message: str


def parse_grid(text: str) -> dict[str, tuple[float, float]] | tuple[float, float]:
    """``"x=0:1,y=0:2"`` -> ``{"x": (0, 1), "y": (0, 2)}``; ``"0:1"`` -> ``(0, 1)`` (every space axis)."""
    def span(item: str) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"--grid {text!r}: expected LO:HI or NAME=LO:HI,... (e.g. x=0:1,y=0:1)") from None
        return lo, hi
    if "=" not in text:
        return span(text)
    out = {}
    for part in text.split(","):
        name, _, item = part.partition("=")
        out[name.strip()] = span(item)
    return out


def import_file(source: str | os.PathLike, out: str | os.PathLike, *, format: str | None = None,
                input_key: str | None = None, output_key: str | None = None, subsample: int = 1,
                grid=None, geometry: str | None = None, as_problem: str | None = None,
                params: Mapping[str, Any] | None = None, force: bool = False, resume: bool = False,
                overwrite: bool = False, batch: int | None = None, check_samples: int = 4,
                tolerance: float = 0.05, progress: bool | None = None) -> ImportResult:
    """Import ``source`` into the sciops dataset ``out``; see the module docstring.

    ``format``: one of :data:`~sciops.datasets.importers.FORMATS` (detected from the content when
    None). ``input_key``/``output_key``: the arrays to read where the format has a choice.
    ``subsample``: keep every s-th point along each space axis. ``grid``: coordinates, a mapping
    ``dim -> (lo, hi)`` or ``dim -> values``, or ``(lo, hi)`` for every space axis (see
    :func:`parse_grid`). ``geometry``: bounded, periodic or sphere. ``as_problem``/``params``: map
    the data to a sciops problem (checked against its solver). ``force``: import despite a failed
    check, and skip the memory/disk check. ``batch``: samples per batch.
    """
    source = Path(source)
    subsample = _positive_int("subsample", subsample)
    if geometry is not None and geometry not in GEOMETRIES:
        raise ValueError(f"geometry {geometry!r} is not known; expected one of {', '.join(GEOMETRIES)}")
    if as_problem is not None and (grid is not None or geometry is not None):
        raise ValueError(f"--as {as_problem}: the grid and geometry are {as_problem}'s; do not pass --grid or "
                         f"--geometry with --as")
    if as_problem is None and params:
        raise ValueError("--param sets the parameters of the problem named by --as; pass --as PROBLEM too")
    if Path(out).resolve() == source.resolve():
        raise ValueError(f"{out}: the output would overwrite the file being imported")
    src = open_source(source, format, input_key, output_key)
    try:
        options = {"format": src.format, "input_key": input_key, "output_key": output_key, "subsample": subsample,
                   "grid": _jsonable_grid(grid), "geometry": geometry, "as": as_problem,
                   "params": dict(params or {})}
        provenance = {"file": os.fspath(source), "format": src.format, "sha256": _sha256(source)}
        return _write(src, out, provenance, options, subsample, grid, geometry, as_problem, params, force, resume,
                      overwrite, batch, check_samples, tolerance, progress, _command(source, options))
    finally:
        src.close()


def from_arrays(inputs, outputs, *, path: str | os.PathLike, grid: Mapping[str, Any] | None = None,
                geometry: str = "bounded", units: Mapping[str, str] | None = None,
                dims: Mapping[str, tuple[str, ...]] | None = None, overwrite: bool = False,
                batch: int | None = None, progress: bool | None = False) -> Path:
    """Write arrays (sample axis first) as the sciops dataset ``path``; return ``path``.

    ``inputs``/``outputs``: an array (fields ``input``/``output``) or a dict ``name -> array``.
    ``grid``: ``dim -> coordinates or (lo, hi)``; its keys, in order, name the space axes (a ``t``
    key the time axis). ``dims``: ``name -> dims`` per sample where the shapes are ambiguous
    (default: inferred, see ``sciops.datasets.importers.source.infer_dims``). ``units``: for fields
    and coordinates. The file carries problem ``external`` with format ``arrays`` and the sha256 of
    the arrays' bytes.
    """
    arrays = {}
    for role, value in (("input", inputs), ("output", outputs)):
        items = value.items() if isinstance(value, Mapping) else [(role, value)]
        for name, arr in items:
            if name in arrays:
                raise ValueError(f"field {name!r} is given twice")
            arrays[str(name)] = (role, np.asarray(arr))
    for name, (_, arr) in arrays.items():
        if arr.ndim < 2:
            raise ValueError(f"field {name!r} has shape {arr.shape}; expected (samples, *space)")
    counts = {name: arr.shape[0] for name, (_, arr) in arrays.items()}
    if len(set(counts.values())) > 1:
        raise ValueError("the arrays do not pair: " + ", ".join(f"{k!r} holds {c} samples" for k, c in counts.items()))
    shapes = {name: tuple(arr.shape[1:]) for name, (_, arr) in arrays.items()}
    if dims is None:
        space = tuple(d for d in grid if d != TIME) if grid else None
        inferred = infer_dims(shapes, space)
    else:
        missing = [n for n in arrays if n not in dims]
        if missing:
            raise ValueError(f"dims names no dims for field {missing[0]!r}")
        inferred = {n: tuple(dims[n]) for n in arrays}
        for n, d in inferred.items():
            if len(d) != len(shapes[n]):
                raise ValueError(f"field {n!r} has shape {shapes[n]} per sample but dims {d}")
    units = dict(units or {})
    fields = {name: SourceField(name, role, inferred[name], shapes[name], units.get(name, ""))
              for name, (role, _) in arrays.items()}
    digest = hashlib.sha256()
    for name, (_, arr) in arrays.items():
        digest.update(name.encode() + np.ascontiguousarray(arr).tobytes())
    from sciops.datasets.importers.source import as_float32

    src = Source("arrays", None, next(iter(counts.values())), fields,
                 lambda name, lo, hi: as_float32(arrays[name][1][lo:hi], name), {}, units, geometry)
    options = {"format": "arrays", "grid": _jsonable_grid(grid), "geometry": geometry}
    provenance = {"file": None, "format": "arrays", "sha256": digest.hexdigest()}
    result = _write(src, path, provenance, options, 1, grid, geometry, None, None, False, False, overwrite, batch,
                    0, 0.0, progress, None)
    return result.path


# --- the pipeline ---------------------------------------------------------------------------------
def _write(src: Source, out, provenance, options, subsample, grid, geometry, as_problem, params, force, resume,
           overwrite, batch, check_samples, tolerance, progress, command) -> ImportResult:
    src = _rename_reserved(src)
    notes = list(src.transformations)
    geometry = geometry or src.geometry
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry {geometry!r} is not known; expected one of {', '.join(GEOMETRIES)}")
    _check_pairing(src)
    coords = grid_for(src.fields, geometry, src.grid, notes)
    src = _subsample(src, subsample, coords, notes)
    coords = _apply_grid(coords, grid, geometry, notes)
    provenance.update({"keys": {name: f.key for name, f in src.fields.items()}, "transformations": notes,
                       **src.notes, "options": options})
    if command:
        provenance["command"] = command
    discrepancy = None
    if as_problem is not None:
        problem, names, discrepancy = _as_problem(src, as_problem, params, coords, notes, force, tolerance,
                                                  check_samples)
        provenance["check"] = discrepancy
    else:
        problem, names = _external(src, coords, geometry, provenance), {n: n for n in src.fields}
    feed = _Feed(problem, src, names, {S.ATTR_PROVENANCE: provenance})
    partial = S.partial_path(out)
    try:
        path = generate(feed, src.n, out, resume=resume, overwrite=overwrite, batch_size=batch, progress=progress,
                        force=force)
    except BadDataError:
        partial.unlink(missing_ok=True)
        raise
    origin = provenance["file"] or "arrays"
    message = f"imported {src.n} samples of {origin} ({src.format}) into {path} as {problem.name}"
    if discrepancy is not None:
        forced = " (forced)" if discrepancy.get("forced") else ""
        message += (f"; {problem.name}'s solver against the data on {discrepancy['samples']} samples: relative L2 "
                    f"{discrepancy['max_relative_l2']:.3g} at most{forced}")
    return ImportResult(Path(path), src.n, problem.name, provenance, discrepancy, message)


def _rename_reserved(src: Source) -> Source:
    """Field names that are also coordinate names (``x``, ``y``, ``t``, ``sample``) would clash in
    xarray: such a field takes its role's name (``input``/``output``)."""
    taken = {d for f in src.fields.values() for d in f.dims} | set(RESERVED) | set(src.grid)
    renames = {}
    for name, f in src.fields.items():
        if name in taken:
            new = f.role if f.role not in src.fields and f.role not in renames.values() else f"{name}_{f.role}"
            renames[name] = new
    if not renames:
        return src
    fields = {renames.get(n, n): f for n, f in src.fields.items()}
    read = src.read
    back = {v: k for k, v in renames.items()}
    notes = src.transformations + [f"{old!r} stored as field {new!r}" for old, new in renames.items()]
    return Source(src.format, src.path, src.n, fields, lambda name, lo, hi: read(back.get(name, name), lo, hi),
                  src.grid, src.grid_units, src.geometry, notes, src.notes, src.close)


def _check_pairing(src: Source) -> None:
    sizes: dict[str, tuple[str, int]] = {}
    for name, f in src.fields.items():
        for dim, size in zip(f.dims, f.shape):
            if dim == CHANNEL:
                continue
            if dim in sizes and sizes[dim][1] != size:
                other, count = sizes[dim]
                raise ValueError(f"{src.path or 'the arrays'}: the arrays do not pair: {other!r} has {count} points "
                                 f"along {dim!r}, {name!r} has {size}")
            sizes.setdefault(dim, (name, size))


def _subsample(src: Source, s: int, coords: dict[str, np.ndarray], notes: list[str]) -> Source:
    if s == 1:
        return src
    space = [d for d in coords if d != TIME]
    read = src.read
    fields = {}
    for name, f in src.fields.items():
        shape = tuple(-(-size // s) if d in space else size for d, size in zip(f.dims, f.shape))
        fields[name] = SourceField(f.key, f.role, f.dims, shape, f.units, f.description)

    def take(name, lo, hi):
        sel = (slice(None),) + tuple(slice(None, None, s) if d in space else slice(None) for d in src.fields[name].dims)
        return np.ascontiguousarray(read(name, lo, hi)[sel])
    for d in space:
        coords[d] = coords[d][::s]
    notes.append(f"subsample {s}: every {s}th point along {', '.join(space)}")
    return Source(src.format, src.path, src.n, fields, take, src.grid, src.grid_units, src.geometry, notes, src.notes,
                  src.close)


def _apply_grid(coords: dict[str, np.ndarray], grid, geometry: str, notes: list[str]) -> dict[str, np.ndarray]:
    if grid is None:
        return coords
    if not isinstance(grid, Mapping):
        grid = {d: grid for d in coords if d != TIME}
    coords = dict(coords)
    for dim, spec in grid.items():
        if dim not in coords:
            raise ValueError(f"--grid names {dim!r}; the data's axes are {', '.join(coords)}")
        size = len(coords[dim])
        values = np.asarray(spec, dtype=np.float64).ravel()
        if values.size == 2 and size != 2:
            lo, hi = values
            values = lo + (hi - lo) * np.arange(size) / size if geometry == "periodic" and dim != TIME \
                else np.linspace(lo, hi, size)
            notes.append(f"{dim}: coordinates given, {size} points from {lo:g} to {hi:g}"
                         + (" (periodic, end excluded)" if geometry == "periodic" and dim != TIME else ""))
        elif values.size != size:
            raise ValueError(f"--grid {dim}: {values.size} coordinates for {size} points")
        else:
            notes.append(f"{dim}: coordinates given")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"--grid {dim}: coordinates must be finite")
        coords[dim] = values
    return coords


def _external(src: Source, coords, geometry, provenance):
    fields = {name: {"dims": [d for d in f.dims if d != CHANNEL], "units": f.units, "role": f.role,
                     "description": f.description} for name, f in src.fields.items()}
    return get("external", fields=fields, grid=encode_grid(coords, src.grid_units), geometry=geometry,
               source=provenance)


def _as_problem(src: Source, name: str, params, coords, notes, force, tolerance, count):
    problem = get(name, **dict(params or {}))
    if getattr(problem, "data_kind", "grid") != "grid":
        raise ValueError(f"--as {name}: imports map to problems with fields on a grid; {name} holds "
                         f"{problem.data_kind}")
    ins = [n for n, f in src.fields.items() if f.role == "input"]
    outs = [n for n, f in src.fields.items() if f.role == "output"]
    if len(ins) != len(problem.input_fields) or len(outs) != len(problem.output_fields):
        raise ValueError(f"--as {name}: the data have input(s) {', '.join(ins)} and output(s) {', '.join(outs)}; "
                         f"{name} takes input(s) {', '.join(problem.input_fields)} and output(s) "
                         f"{', '.join(problem.output_fields)}")
    names = {**dict(zip(ins, problem.input_fields)), **dict(zip(outs, problem.output_fields))}
    for src_name, target in names.items():
        got, want = src.fields[src_name].shape, problem.field_shape(target)
        if got[:len(want)] != want or len(got) > len(want) + 1:
            size = f" (its size parameters: {', '.join(problem.size_params)})" if problem.size_params else ""
            raise ValueError(f"--as {name}: the data's {src_name!r} has shape {got} per sample; {name} with these "
                             f"parameters takes {target!r} of shape {want}{size}")
    for dim, values in coords.items():
        mine = problem.grid.get(dim)
        if mine is not None and (len(mine) != len(values) or not np.allclose(mine, values, rtol=0, atol=1e-9)):
            notes.append(f"{dim}: {name}'s coordinates replace the data's")
    check = _check(src, problem, names, ins, outs, min(count, src.n), tolerance)
    if not check["max_relative_l2"] <= tolerance:
        if not force:
            raise ValueError(f"--as {name}: the sciops solver disagrees with the data: relative L2 "
                             f"{check['max_relative_l2']:.3g} (largest of {check['samples']} samples), above "
                             f"{tolerance:g}; the inputs may not be what {name}.solve takes, or the parameters differ "
                             f"(--param); pass --force to import anyway")
        check["forced"] = True
    return problem, names, check


def _check(src: Source, problem, names, ins, outs, k: int, tolerance: float) -> dict:
    inputs = {names[n]: _finite(src, n, 0, k) for n in ins}
    data = {names[n]: _finite(src, n, 0, k) for n in outs}
    arg = inputs[problem.input_fields[0]] if len(problem.input_fields) == 1 else inputs
    try:
        solved = problem.as_field_dict(problem.solve(arg), "output")
    except Exception as exc:  # any solver failure is the data's mismatch with the solver
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--as {problem.name}: {problem.name}'s solver fails on the data's inputs ({detail}); they "
                         f"may not be what {problem.name}.solve takes") from None
    errors = np.zeros(k)
    for target, ref in data.items():
        got = np.asarray(solved[target], dtype=np.float64).reshape(k, -1)
        ref = ref.astype(np.float64).reshape(k, -1)
        scale = np.linalg.norm(ref, axis=1)
        err = np.linalg.norm(got - ref, axis=1) / np.where(scale > 0, scale, 1.0)
        errors = np.maximum(errors, np.where(np.isfinite(err), err, np.inf))
    worst = float(f"{errors.max():.4g}") if k else 0.0  # rounded: a resume compares the provenance
    return {"problem": problem.name, "samples": k, "relative_l2": [float(f"{e:.4g}") for e in errors],
            "max_relative_l2": worst, "tolerance": tolerance}


def _finite(src: Source, name: str, lo: int, hi: int) -> np.ndarray:
    """Samples ``lo .. hi-1`` of a field, read and checked (BadDataError names the sample)."""
    f = src.fields[name]
    origin = src.path or "the arrays"
    try:
        arr = src.read(name, lo, hi)
    except (OSError, RuntimeError, KeyError) as exc:
        raise BadDataError(f"{origin}: cannot read {f.key!r} samples {lo}..{hi - 1} "
                           f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
                           f"nothing written") from None
    if arr.shape != (hi - lo,) + f.shape:
        raise BadDataError(f"{origin}: {f.key!r} samples {lo}..{hi - 1} read with shape {arr.shape}; expected "
                           f"{(hi - lo,) + f.shape}; nothing written")
    finite = np.isfinite(arr.reshape(hi - lo, -1)).all(axis=1)
    if not finite.all():
        raise BadDataError(f"{origin}: {f.key!r} sample {lo + int(np.argmin(finite))} contains NaN or Inf; "
                           f"nothing written")
    return arr


class _Feed:
    """What the writer sees: the target problem's identity and metadata, samples read from the source."""

    def __init__(self, problem, src: Source, names: dict[str, str], file_attrs: dict) -> None:
        self._problem, self._src, self._names, self.file_attrs = problem, src, names, file_attrs

    def __getattr__(self, name: str):
        return getattr(self._problem, name)

    def peak_memory(self, batch_size: int) -> int:
        return 2 * batch_size * sum(4 * int(np.prod(f.shape)) for f in self._src.fields.values())

    def generate(self, n: int, seed: int, start: int = 0):
        inputs, outputs = {}, {}
        for name, f in self._src.fields.items():
            (inputs if f.role == "input" else outputs)[self._names[name]] = _finite(self._src, name, start, start + n)
        return inputs, outputs, 0.0


# --- provenance -------------------------------------------------------------------------------------
def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable_grid(grid):
    if grid is None:
        return None
    if not isinstance(grid, Mapping):
        return np.asarray(grid, dtype=np.float64).tolist()
    return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in grid.items()}


def _command(source: Path, options: dict) -> list[str]:
    """The ``sciops import`` arguments that repeat this import (``-o OUT --resume`` added by
    ``schema.resume_command``)."""
    parts = ["sciops", "import", os.fspath(source), "--format", options["format"]]
    for key in ("input_key", "output_key", "geometry"):
        if options[key] is not None:
            parts += [f"--{key.replace('_', '-')}", str(options[key])]
    if options["subsample"] != 1:
        parts += ["--subsample", str(options["subsample"])]
    grid = options["grid"]
    if isinstance(grid, dict) and all(len(v) == 2 for v in grid.values()):
        parts += ["--grid", ",".join(f"{k}={v[0]:g}:{v[1]:g}" for k, v in grid.items())]
    elif isinstance(grid, list) and len(grid) == 2:
        parts += ["--grid", f"{grid[0]:g}:{grid[1]:g}"]
    if options["as"]:
        parts += ["--as", options["as"]]
        for key, value in options["params"].items():
            parts += ["--param", f"{key}={value}"]
    return parts


__all__ = ["BadDataError", "FORMATS", "ImportResult", "from_arrays", "import_file", "parse_grid"]
