"""What every format reader returns: a :class:`Source`, fields read sample by sample.

A reader describes each field it found (:class:`SourceField`: the key it came from, its role, its
dims after the reader's own rearranging, its per-sample shape) and gives ``read(name, lo, hi)``, the
samples ``lo .. hi-1`` of that field as a numpy array with the sample axis first. Large sources are
never read whole: h5py datasets and memory-mapped tensors are sliced per batch. Helpers shared by
the readers: :func:`require_key` (the one-line error listing the keys there), :func:`infer_dims`
(dim names from shapes alone) and :func:`default_coords`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHANNEL = "channel"
TIME = "t"
SPACE_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


@dataclass
class SourceField:
    key: str
    role: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    units: str = ""
    description: str = ""


@dataclass
class Source:
    format: str
    path: Path | None
    n: int
    fields: dict[str, SourceField]
    read: Callable[[str, int, int], np.ndarray]
    grid: dict[str, np.ndarray] = field(default_factory=dict)  # the coordinates the file holds
    grid_units: dict[str, str] = field(default_factory=dict)
    geometry: str = "bounded"
    transformations: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


def require_key(path, keys: Iterable[str], key: str, what: str = "key") -> str:
    keys = list(keys)
    if key not in keys:
        raise ValueError(f"{path} has no {what} {key!r}; the {what}s there are {', '.join(map(repr, keys)) or 'none'}")
    return key


def pick_pair(path, keys: Iterable[str], input_key: str | None, output_key: str | None,
              pairs: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """The (input, output) keys: those given, else the first of ``pairs`` present."""
    keys = list(keys)
    if input_key is None and output_key is None:
        for pair in pairs:
            if all(k in keys for k in pair):
                return pair
        expected = " or ".join("/".join(p) for p in pairs)
        raise ValueError(f"{path} has none of the key pairs {expected}; the keys there are "
                         f"{', '.join(map(repr, keys)) or 'none'}: name them with --input-key and --output-key")
    if input_key is None or output_key is None:
        raise ValueError("give both --input-key and --output-key, or neither")
    return require_key(path, keys, input_key), require_key(path, keys, output_key)


def infer_dims(shapes: dict[str, tuple[int, ...]], space: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """Dims of fields from their per-sample shapes: the fields with the fewest axes are on the grid;
    a field with one axis more has ``t`` first when its trailing axes are the grid's, else
    ``channel`` last when its leading axes are. ``space`` names the grid axes (``x``; ``y, x``;
    ``z, y, x`` by default)."""
    base_rank = min(len(s) for s in shapes.values())
    bases = {name: s for name, s in shapes.items() if len(s) == base_rank}
    base = next(iter(bases.values()))
    if any(s != base for s in bases.values()):
        raise ValueError(f"the arrays do not pair: {_shapes_text(bases)} (per sample); expected the same grid")
    if space is None:
        if base_rank not in SPACE_NAMES:
            raise ValueError(f"cannot name the {base_rank} axes of {_shapes_text(bases)} per sample; give the grid")
        space = SPACE_NAMES[base_rank]
    if len(space) != base_rank:
        raise ValueError(f"the grid names {len(space)} axes ({', '.join(space)}) but the arrays have {base_rank} per "
                         f"sample: {_shapes_text(bases)}")
    out = {}
    for name, shape in shapes.items():
        if shape == base:
            out[name] = tuple(space)
        elif len(shape) == base_rank + 1 and shape[1:] == base:
            out[name] = (TIME,) + tuple(space)
        elif len(shape) == base_rank + 1 and shape[:-1] == base:
            out[name] = tuple(space) + (CHANNEL,)
        else:
            raise ValueError(f"the arrays do not pair: {_shapes_text(shapes)} (per sample); expected one grid, "
                             f"with at most a leading time axis or a trailing channel axis more")
    return out


def _shapes_text(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {tuple(s)}" for name, s in shapes.items())


def default_coords(dim: str, size: int, geometry: str) -> np.ndarray:
    """``t``: 1 .. T; periodic: i / n on [0, 1); otherwise the vertex grid on [0, 1]."""
    if dim == TIME:
        return np.arange(1, size + 1, dtype=np.float64)
    if geometry == "periodic":
        return np.arange(size, dtype=np.float64) / size
    return np.linspace(0.0, 1.0, size)


def grid_for(fields: dict[str, SourceField], geometry: str, known: dict[str, np.ndarray] | None = None,
             transformations: list[str] | None = None) -> dict[str, np.ndarray]:
    """Coordinates for every dim of ``fields`` (except ``channel``): ``known`` ones, else defaults."""
    known = dict(known or {})
    grid, supplied = {}, []
    for f in fields.values():
        for dim, size in zip(f.dims, f.shape):
            if dim == CHANNEL or dim in grid:
                continue
            if dim in known and len(known[dim]) == size:
                grid[dim] = np.asarray(known[dim], dtype=np.float64).ravel()
            else:
                grid[dim] = default_coords(dim, size, geometry)
                supplied.append(dim)
    space = [d for d in supplied if d != TIME]
    if transformations is not None and space:
        kind = "i / n on [0, 1)" if geometry == "periodic" else "the vertex grid on [0, 1]"
        transformations.append(f"{', '.join(space)}: not in the file, coordinates {kind}")
    if transformations is not None and TIME in supplied:
        transformations.append("t: not in the file, the record numbers 1 .. T")
    return grid


def as_float32(arr, key: str) -> np.ndarray:
    arr = np.asarray(arr)
    if np.iscomplexobj(arr):
        raise ValueError(f"{key!r} holds complex numbers; sciops stores real float32 fields (split real and "
                         f"imaginary parts first)")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{key!r} holds {arr.dtype} values; expected numbers")
    return arr.astype(np.float32, copy=False)


def dtype_note(key: str, dtype) -> list[str]:
    dtype = np.dtype(dtype)
    return [] if dtype == np.float32 else [f"{key}: {dtype} converted to float32"]


def paired_fields(path, per: dict, ikey: str, okey: str) -> dict[str, SourceField]:
    """The input and output fields of a two-array source, their dims inferred from the per-sample
    shapes ``per`` (a ValueError naming ``path`` when they cannot be)."""
    try:
        dims = infer_dims(per)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return {ikey: SourceField(ikey, "input", dims[ikey], per[ikey]),
            okey: SourceField(okey, "output", dims[okey], per[okey])}
