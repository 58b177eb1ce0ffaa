"""Reading a dataset for training: :func:`open_dataset` and :class:`SciopsDataset` (a torch Dataset).

``dataset[i]`` is ``(x, y)``: float32 tensors, channel first. ``x`` stacks the input fields as
channels in the file's ``input_fields`` order, ``y`` the output fields: a scalar field stored as
(N, *space) contributes one channel, a vector field stored as (N, *space, C) with last dim
"channel" contributes C channels (moved to the front). ``get_batch(indices)`` returns
``(X, Y)`` shaped (B, C, *space) in one read; a DataLoader uses it through ``__getitems__``.

Every sample read is checked against the checksum written with it (``sciops.datasets.checksums``):
in memory when the file is opened, lazily on each read. Only complete files open (see
``sciops.datasets.schema.validate``); a ``.partial`` or a file with
``complete`` false is refused with the ``sciops generate ... --resume`` command that finishes it.

Memory: ``in_memory=True`` reads every input and output field into two tensors at open, block by
block (peak memory about the size of the data); ``False`` reads from the file on each access;
``"auto"`` (default) loads when the fields take less than :data:`AUTO_IN_MEMORY_BYTES` (2 GiB).
In memory, ``dataset[i]`` returns views into those tensors (as ``TensorDataset`` does).

Lazy mode and DataLoader workers: the HDF5 file is opened on first access in each process (the
handle is keyed by process id and never pickled), so forked or spawned workers each open their own.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from sciops.datasets import schema as S
from sciops.datasets.checksums import verify_rows
from sciops.datasets.h5io import open_read

AUTO_IN_MEMORY_BYTES = 2 * 2**30
_LOAD_BLOCK_BYTES = 64 * 2**20


def open_dataset(path: str | os.PathLike, *, in_memory: bool | str = "auto") -> "SciopsDataset":
    """Open a complete sciops HDF5 dataset as a :class:`SciopsDataset`."""
    return SciopsDataset(path, in_memory=in_memory)


def _read_field(path, name: str, ds: h5py.Dataset, sel) -> np.ndarray:
    """``ds[sel]``, checked against the samples' checksums; a read HDF5 cannot decode or a sample that
    does not match (a corrupt file) is a ValueError naming the file, field and sample."""
    try:
        data = ds[sel]
    except OSError as exc:
        raise ValueError(f"{path}: field {name!r} cannot be read ({exc}); the file is corrupt, regenerate it") from None
    verify_rows(ds.file, name, sel, data, path)
    return data


def _channel_first(arr: np.ndarray, info: S.FieldInfo, batched: bool) -> np.ndarray:
    """(B, *space[, C]) -> (B, C, *space), or (*space[, C]) -> (C, *space)."""
    axis = 1 if batched else 0
    if info.dims[-1] == S.CHANNEL_DIM:
        return np.moveaxis(arr, -1, axis)
    return np.expand_dims(arr, axis)


class SciopsDataset(Dataset):
    """A sciops dataset file as ``(x, y)`` pairs; see the module docstring."""

    def __init__(self, path: str | os.PathLike, *, in_memory: bool | str = "auto") -> None:
        if in_memory not in (True, False, "auto"):
            raise ValueError(f"in_memory must be True, False or 'auto', got {in_memory!r}")
        self.path = Path(path)
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._problem = None
        with open_read(self.path) as h5:
            self.attrs, self.fields = S.validate(h5, self.path)
            self.input_fields = S.field_order(self.attrs, self.fields, "input")
            self.output_fields = S.field_order(self.attrs, self.fields, "output")
            for role, names in (("input", self.input_fields), ("output", self.output_fields)):
                if not names:
                    raise ValueError(f"{self.path} has no {role} field; a SciopsDataset needs at least one "
                                     f"input and one output field")
                shapes = {n: self.fields[n].spatial_shape for n in names}
                if len(set(shapes.values())) > 1:
                    raise ValueError(f"{self.path}: the {role} fields have different shapes {shapes}; they "
                                     f"cannot be stacked as channels")
            self.n_samples = int(self.attrs[S.ATTR_N_SAMPLES])
            if S.SAMPLE_SEED in h5:
                self.seeds = np.asarray(h5[S.SAMPLE_SEED][:], dtype=np.uint64)
            else:
                from sciops.problems import sample_seed

                self.seeds = np.array([sample_seed(self.attrs[S.ATTR_SEED], i) for i in range(self.n_samples)],
                                      dtype=np.uint64)
            nbytes = sum(self.fields[n].sample_bytes for n in self.input_fields + self.output_fields) * self.n_samples
            self.in_memory = nbytes < AUTO_IN_MEMORY_BYTES if in_memory == "auto" else bool(in_memory)
            self._x = self._y = None
            if self.in_memory:
                self._x = self._load(h5, self.input_fields)
                self._y = self._load(h5, self.output_fields)

    # --- metadata ---------------------------------------------------------------------------------
    @property
    def problem(self):
        """The Problem the file was generated from, rebuilt with ``sciops.problems.get``."""
        if self._problem is None:
            from sciops.problems import get

            self._problem = get(self.attrs[S.ATTR_PROBLEM], **(self.attrs[S.ATTR_PARAMS] or {}))
        return self._problem

    @property
    def in_channels(self) -> int:
        return sum(self.fields[n].channels for n in self.input_fields)

    @property
    def out_channels(self) -> int:
        return sum(self.fields[n].channels for n in self.output_fields)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the input fields without the channel dim."""
        return self.fields[self.input_fields[0]].spatial_shape

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        mode = "in memory" if self.in_memory else "lazy"
        return (f"SciopsDataset({str(self.path)!r}, problem={self.attrs[S.ATTR_PROBLEM]!r}, n={self.n_samples}, "
                f"inputs={self.input_fields}, outputs={self.output_fields}, {mode})")

    # --- reading ----------------------------------------------------------------------------------
    def _load(self, h5: h5py.File, names: list[str]) -> torch.Tensor:
        channels = sum(self.fields[n].channels for n in names)
        space = self.fields[names[0]].spatial_shape
        out = np.empty((self.n_samples, channels) + space, dtype=np.float32)
        c = 0
        for name in names:
            info, ds = self.fields[name], h5[S.FIELDS][name]
            block = max(1, _LOAD_BLOCK_BYTES // max(info.sample_bytes, 1))
            for lo in range(0, self.n_samples, block):
                hi = min(self.n_samples, lo + block)
                out[lo:hi, c:c + info.channels] = _channel_first(_read_field(self.path, name, ds, slice(lo, hi)),
                                                                 info, batched=True)
            c += info.channels
        return torch.from_numpy(out)

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")  # a handle inherited through fork is dropped, not used
            self._pid = os.getpid()
        return self._h5

    def _read(self, names: list[str], sel: Any, batched: bool) -> np.ndarray:
        h5 = self._file()
        parts = [_channel_first(np.asarray(_read_field(self.path, n, h5[S.FIELDS][n], sel), dtype=np.float32),
                                self.fields[n], batched) for n in names]
        return np.concatenate(parts, axis=1 if batched else 0) if len(parts) > 1 else parts[0]

    def _index(self, i: Any) -> int:
        if isinstance(i, torch.Tensor):
            i = i.item()
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset index must be an integer, got {type(i).__name__}")
        j = int(i) + self.n_samples if i < 0 else int(i)
        if not 0 <= j < self.n_samples:
            raise IndexError(f"index {i} is out of range for a dataset of {self.n_samples} samples")
        return j

    def _indices(self, indices: Iterable[int] | slice | np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(indices, slice):
            return np.arange(self.n_samples)[indices]
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()
        idx = np.asarray(indices)
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be a 1-D sequence of integers, got shape {idx.shape} of {idx.dtype}")
        idx = np.where(idx < 0, idx + self.n_samples, idx).astype(np.int64)
        bad = (idx < 0) | (idx >= self.n_samples)
        if bad.any():
            raise IndexError(f"index {np.asarray(indices)[bad][0]} is out of range for a dataset of "
                             f"{self.n_samples} samples")
        return idx

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self._index(i)
        if self.in_memory:
            return self._x[j], self._y[j]
        return (torch.from_numpy(self._read(self.input_fields, j, batched=False)),
                torch.from_numpy(self._read(self.output_fields, j, batched=False)))

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, Y)`` of shape (B, C, *space) for ``indices`` (any order, repeats allowed)."""
        idx = self._indices(indices)
        if self.in_memory:
            t = torch.from_numpy(idx)
            return self._x[t], self._y[t]
        return self._read_indices(self.input_fields, idx), self._read_indices(self.output_fields, idx)

    def get_inputs(self, indices) -> torch.Tensor:
        """``X`` of ``get_batch(indices)`` without reading the outputs."""
        idx = self._indices(indices)
        if self.in_memory:
            return self._x[torch.from_numpy(idx)]
        return self._read_indices(self.input_fields, idx)

    def split_fields(self, stacked: torch.Tensor, names: list[str]) -> dict[str, np.ndarray]:
        """Channels ``stacked`` (B, C, *space) of the fields ``names`` (as ``get_batch`` stacks them)
        -> {name: (B, *space[, channels])}, each field in its stored layout."""
        out, c = {}, 0
        for name in names:
            info = self.fields[name]
            block = stacked[:, c:c + info.channels].numpy()
            out[name] = np.moveaxis(block, 1, -1) if info.dims[-1] == S.CHANNEL_DIM else block[:, 0]
            c += info.channels
        return out

    def _read_indices(self, names: list[str], idx: np.ndarray) -> torch.Tensor:
        """The fields ``names`` stacked as channels for the sample indices ``idx``, read in one
        contiguous slice when the sorted indices are consecutive."""
        if idx.size == 0:
            channels = sum(self.fields[name].channels for name in names)
            return torch.zeros((0, channels) + self.fields[names[0]].spatial_shape)
        uniq, inverse = np.unique(idx, return_inverse=True)
        sel = slice(int(uniq[0]), int(uniq[-1]) + 1) if uniq[-1] - uniq[0] + 1 == uniq.size else uniq
        data = self._read(names, sel, batched=True)
        if uniq.size != idx.size or not np.array_equal(uniq, idx):
            data = data[inverse]
        return torch.from_numpy(np.ascontiguousarray(data))

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Batched fetch used by ``torch.utils.data.DataLoader``: one read per field per batch."""
        x, y = self.get_batch(indices)
        return list(zip(x, y))

    # --- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None
        self._pid = None

    def __enter__(self) -> "SciopsDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        state["_problem"] = None
        return state
