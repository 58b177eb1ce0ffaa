"""neuraloperator ``.pt`` files: a dict of tensors ``{"x": (N, *space), "y": (N, *space)}``.

Loaded with ``torch.load(weights_only=True)`` (no code from the file runs), memory-mapped when the
file is in torch's zip format, so only the samples of a batch are read. Keys ``x``/``y``, ``a``/``u``
or those given; boolean inputs (neuraloperator's Darcy masks) become float32 0/1, which is noted in
the provenance: they are masks, not coefficients. Grid: the vertex grid on [0, 1], bounded.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from sciops.datasets.importers.source import (
    Source,
    as_float32,
    dtype_note,
    paired_fields,
    pick_pair,
)

PAIRS = (("x", "y"), ("a", "u"))


def _load(path: Path):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: torch.load with weights_only=True refuses it ({str(exc).splitlines()[0]}); "
                         f"sciops reads only plain tensors") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: torch cannot load it ({str(exc).strip().splitlines()[0]})") from None


def open_source(path: Path, input_key: str | None = None, output_key: str | None = None) -> Source:
    import torch

    data = _load(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}; expected a dict of tensors such as "
                         f"{{'x': ..., 'y': ...}}")
    keys = [str(k) for k in data]
    ikey, okey = pick_pair(path, keys, input_key, output_key, PAIRS)
    arrays = {}
    for key in (ikey, okey):
        value = data[key]
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: {key!r} is a {type(value).__name__}; expected a tensor")
        arrays[key] = value
    counts = {k: int(a.shape[0]) if a.ndim else 0 for k, a in arrays.items()}
    if counts[ikey] != counts[okey]:
        raise ValueError(f"{path}: the arrays do not pair: {ikey!r} holds {counts[ikey]} samples, {okey!r} "
                         f"{counts[okey]}")
    per = {k: tuple(a.shape[1:]) for k, a in arrays.items()}
    fields = paired_fields(path, per, ikey, okey)
    transformations = [n for k in (ikey, okey) for n in dtype_note(k, _numpy_dtype(arrays[k]))]

    def read(key, lo, hi):
        return as_float32(arrays[key][lo:hi].numpy(), key)

    return Source("pt", Path(path), counts[ikey], fields, read, {}, {}, "bounded", transformations)


def _numpy_dtype(tensor) -> np.dtype:
    return tensor[:0].numpy().dtype
