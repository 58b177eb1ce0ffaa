"""sciops datasets: self-describing HDF5 files of reference solutions, and their readers.

Public API:

* :func:`generate` (``writer``): stream a problem's samples into a schema-1 HDF5 file, crash-safe
  and resumable (``<path>.partial`` until complete, then renamed).
* :func:`generate_sharded` (``sharded``): the same on a Dask cluster, as shards plus a
  virtual-dataset index that readers see as one file; :func:`merge` (``merge``) writes one
  contiguous file.
* :func:`open_dataset` / :class:`SciopsDataset` (``reader``): a torch ``Dataset`` of channel-first
  ``(x, y)`` float32 pairs, in memory or lazy, with ``get_batch``.
* :func:`open_xarray` (``xarray_view``): an ``xarray.Dataset`` with named dims and coordinates.
* :func:`describe` (``info``): the text that ``sciops info`` prints.
* :func:`import_file` / :func:`from_arrays` (``importing``, readers in ``importers/``): other projects'
  files (FNO .mat, neuraloperator .pt, PDEBench, The Well, .npz) or arrays as schema-1 datasets,
  with their provenance; :func:`export_netcdf` (``netcdf``): a CF netCDF-4 copy, written atomically.
* ``schema``: the file layout, attribute names, and :func:`validate`; ``h5io``: low-level file
  handling (recognising, locking, recovering after a crash); ``progress``: progress output.

Layering: this package imports ``sciops.problems`` (and through it ``sciops.solvers``), never the
operators, training or CLI code. ``open_dataset`` / ``SciopsDataset`` (torch) and ``open_xarray``
(xarray) are imported on first use, so ``import sciops.datasets`` stays light for ``sciops info``
and ``sciops generate``.
"""
from importlib import import_module

from sciops.datasets.info import describe
from sciops.datasets.schema import (
    PARTIAL_SUFFIX,
    SCHEMA_VERSION,
    DatasetExistsError,
    FieldInfo,
    IncompleteDatasetError,
    partial_path,
    validate,
)
from sciops.datasets.writer import default_batch_size, generate

_LAZY = {
    "AUTO_IN_MEMORY_BYTES": "sciops.datasets.reader",
    "SciopsDataset": "sciops.datasets.reader",
    "open_dataset": "sciops.datasets.reader",
    "open_xarray": "sciops.datasets.xarray_view",
    "generate_sharded": "sciops.datasets.sharded",
    "merge": "sciops.datasets.merge",
    "import_file": "sciops.datasets.importing",
    "from_arrays": "sciops.datasets.importing",
    "parse_grid": "sciops.datasets.importing",
    "export_netcdf": "sciops.datasets.netcdf",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AUTO_IN_MEMORY_BYTES",
    "DatasetExistsError",
    "FieldInfo",
    "IncompleteDatasetError",
    "PARTIAL_SUFFIX",
    "SCHEMA_VERSION",
    "SciopsDataset",
    "default_batch_size",
    "describe",
    "export_netcdf",
    "from_arrays",
    "generate",
    "generate_sharded",
    "import_file",
    "merge",
    "open_dataset",
    "open_xarray",
    "parse_grid",
    "partial_path",
    "validate",
]
