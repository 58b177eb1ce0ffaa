"""Plain numpy ``.npz`` archives: one array per key, samples first.

Keys ``x``/``y``, ``a``/``u``, ``coeff``/``sol``, ``inputs``/``outputs`` or ``input``/``output``,
or those given. Dims are inferred from the shapes (see ``source.infer_dims``); bounded vertex grid
on [0, 1] unless ``grid``/``geometry`` say otherwise. numpy reads each key of an archive whole,
so the two arrays must fit in memory; pickled object arrays are refused.
"""
from __future__ import annotations

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

PAIRS = (("x", "y"), ("a", "u"), ("coeff", "sol"), ("inputs", "outputs"), ("input", "output"))


def open_source(path: Path, input_key: str | None = None, output_key: str | None = None) -> Source:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: numpy cannot read it as an .npz archive ({str(exc).splitlines()[0]})") from None
    try:
        ikey, okey = pick_pair(path, archive.files, input_key, output_key, PAIRS)
        try:
            arrays = {k: archive[k] for k in (ikey, okey)}
        except ValueError as exc:
            raise ValueError(f"{path}: {str(exc).splitlines()[0]}") from None
    finally:
        archive.close()
    counts = {k: a.shape[0] if a.ndim else 0 for k, a in arrays.items()}
    if counts[ikey] != counts[okey]:
        raise ValueError(f"{path}: the arrays do not pair: {ikey!r} holds {counts[ikey]} samples, {okey!r} "
                         f"{counts[okey]}")
    per = {k: a.shape[1:] for k, a in arrays.items()}
    fields = paired_fields(path, per, ikey, okey)
    transformations = [n for k in (ikey, okey) for n in dtype_note(k, arrays[k].dtype)]
    return Source("npz", Path(path), counts[ikey], fields, lambda key, lo, hi: as_float32(arrays[key][lo:hi], key),
                  {}, {}, "bounded", transformations)
