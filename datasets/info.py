"""A human-readable summary of a dataset file, for ``sciops info``: :func:`describe`.

Every written sample is checked against its checksum (see ``sciops.datasets.checksums``): a file
that fails is a ``CorruptDatasetError``, never described as complete. Works on complete files, on incomplete ones and on ``.partial`` files being written or left by an
interrupted run (it reports ``n_written / n_samples`` and the resume command). Raises the same
errors as the readers for a missing file, a non-HDF5 file or an HDF5 file that is not a sciops
dataset. A netCDF file is summarised if it is a sciops export (``sciops.datasets.netcdf``) and named
for what it is otherwise; an imported file shows its source, keys, transformations and solver check.
"""
from __future__ import annotations

import os
from pathlib import Path

from sciops.datasets import schema as S
from sciops.datasets.checksums import has_checksums, verify_file
from sciops.datasets.h5io import open_read
from sciops.datasets.netcdf import is_netcdf
from sciops.datasets.resources import format_bytes


def _seconds(s: float) -> str:
    return f"{s:.3g} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _kv(d) -> str:
    if not isinstance(d, dict):
        return str(d)
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "-"


def _provenance_lines(provenance: dict) -> list[str]:
    """Where an imported file's data came from and what was done to them."""
    origin = provenance.get("file") or "arrays given in Python"
    digest = str(provenance.get("sha256", "?"))[:16]
    lines = [f"  source     {origin} ({provenance.get('format', '?')}, sha256 {digest}...)"]
    keys = provenance.get("keys") or {}
    if keys:
        lines.append("  keys       " + ", ".join(k if k == v else f"{v} -> {k}" for k, v in keys.items()))
    for note in provenance.get("transformations") or []:
        lines.append(f"  changed    {note}")
    check = provenance.get("check")
    if isinstance(check, dict):
        lines.append(f"  checked    {check.get('problem')}'s solver on {check.get('samples')} samples: relative L2 "
                     f"{check.get('max_relative_l2', float('nan')):.3g} at most (tolerance {check.get('tolerance')})"
                     + ("; imported with --force" if check.get("forced") else ""))
    return lines


def describe(path: str | os.PathLike) -> str:
    """A multi-line summary: problem, parameters, samples, fields, grid, solver, timings, size."""
    path = Path(path)
    if is_netcdf(path):
        from sciops.datasets.netcdf import describe_netcdf

        return describe_netcdf(path)
    with open_read(path, locking=not S.is_partial(path)) as h5:
        attrs, fields = S.validate(h5, path, require_complete=False)
        n, written = int(attrs[S.ATTR_N_SAMPLES]), int(attrs[S.ATTR_N_WRITTEN])
        complete = bool(attrs[S.ATTR_COMPLETE]) and written >= n and not S.is_partial(path)
        try:
            grid = {name: (ds[()], S.decode_value(ds.attrs.get("units", ""))) for name, ds in h5[S.GRID].items()} \
                if S.GRID in h5 else {}
            stored = {name: h5[S.FIELDS][name].id.get_storage_size() for name in fields}
            compression = {name: h5[S.FIELDS][name].compression for name in fields}
        except (OSError, RuntimeError, KeyError, AttributeError) as exc:
            raise S.CorruptDatasetError(f"{path}: its HDF5 structure is damaged ({type(exc).__name__}); the file is "
                                        f"corrupt: regenerate it") from None
        checked = has_checksums(h5)
        first_bad = verify_file(h5, path, rows=written) if checked else written
    if first_bad < written:  # a reader would refuse it: say so, never call it complete
        raise S.CorruptDatasetError(f"{path}: sample {first_bad} does not match its checksum; the file is corrupt: "
                                    f"regenerate it" + (f" (or resume it: `{S.resume_command(path, attrs)}`)"
                                                        if not complete else ""))
    provenance = attrs.get(S.ATTR_PROVENANCE)
    imported = isinstance(provenance, dict)
    params = attrs[S.ATTR_PARAMS]
    if attrs[S.ATTR_PROBLEM] == "external" and isinstance(params, dict):
        params = {"geometry": params.get("geometry")}
    lines = [f"{path}  ({format_bytes(path.stat().st_size)})",
             f"  problem    {attrs[S.ATTR_PROBLEM]}",
             f"  params     {_kv(params)}"]
    lines += _provenance_lines(provenance) if imported else [f"  seed       {attrs[S.ATTR_SEED]}"]
    lines.append(f"  samples    {written} / {n} written, " + ("complete" if complete else "INCOMPLETE"))
    if not complete:
        lines.append(f"  resume     {S.resume_command(path, attrs)}")
    shards = attrs.get(S.ATTR_SHARDS) or []
    if shards:
        size = sum((path.parent / s).stat().st_size for s in shards)
        lines.append(f"  layout     virtual index over {len(shards)} shards in {Path(shards[0]).parent}/ "
                     f"({format_bytes(size)}); `sciops merge` writes one file")
    elif attrs.get(S.ATTR_START):
        lines.append(f"  shard      samples {attrs[S.ATTR_START]}..{attrs[S.ATTR_START] + n - 1} of a sharded dataset")
    lines.append(f"  schema     {attrs[S.ATTR_SCHEMA]} (written by sciops {attrs.get(S.ATTR_VERSION, '?')}, "
                 f"created {attrs.get(S.ATTR_CREATED, '?')})")
    lines.append(f"  verified   {written} samples match their checksums" if checked else
                 "  verified   no: written before sciops stored checksums")
    solver = attrs.get(S.ATTR_SOLVER) or {}
    if isinstance(solver, dict) and "name" in solver:
        rest = {k: v for k, v in solver.items() if k != "name"}
        lines.append(f"  solver     {solver['name']}" + (f" ({_kv(rest)})" if rest else ""))
    else:
        lines.append(f"  solver     {_kv(solver)}")
    solve_s, wall_s = attrs.get(S.ATTR_SOLVE_SECONDS), attrs.get(S.ATTR_WALL_SECONDS)
    if imported and wall_s is not None:
        lines.append(f"  timings    import wall time {_seconds(wall_s)}")
    elif solve_s is not None and wall_s is not None:
        per = f", {1e3 * solve_s / written:.3g} ms/sample" if written else ""
        lines.append(f"  timings    solver {_seconds(solve_s)}{per}; generation wall time {_seconds(wall_s)}")
    lines.append("  fields")
    width = max((len(f) for f in fields), default=0)
    for name, f in fields.items():
        raw = f.sample_bytes * f.shape[0]
        ratio = f", {compression[name]} {raw / stored[name]:.1f}x" if stored[name] and compression[name] else ""
        desc = f"  {f.description}" if f.description else ""
        lines.append(f"    {name:<{width}}  {f.role:<6}  {f.dtype} {f.shape}  dims ({', '.join(f.dims)})  "
                     f"units {f.units!r}{ratio}{desc}")
    if grid:
        lines.append("  grid")
        width = max(len(g) for g in grid)
        for name, (coords, units) in grid.items():
            span = f"[{coords.min():.6g}, {coords.max():.6g}]" if coords.size else "[]"
            lines.append(f"    {name:<{width}}  {coords.size} points in {span}, units {units!r}")
    return "\n".join(lines)
