"""Particle-trajectory datasets (the ``particles`` problem): GNS metadata and ParaView export.

* :func:`gns_metadata` reads a ``particles`` dataset and returns the DeepMind GNS
  ``metadata.json`` dict: ``bounds``, ``sequence_length``, ``default_connectivity_radius``,
  ``dim``, ``dt`` (the interval between stored frames), and ``vel_mean``, ``vel_std``,
  ``acc_mean``, ``acc_std`` pooled exactly over the trajectories from their per-trajectory
  diagnostic fields (every trajectory has the same number of frames and particles, so the pooled
  mean is the mean of the means and the pooled variance the mean of var + mean^2 minus the pooled
  mean squared). Velocities and accelerations are per-frame differences, as in GNS.
* :func:`read_trajectories` reads a ``particles`` dataset's positions (N, T, P, dim), particle
  types (N, P) and root attributes (what GIOROM training and evaluation take).
* :func:`export_paraview` writes one trajectory as one VTK point-cloud file per frame
  (``<name>_0000.vtu``, ... through meshio, vertex cells, 2D points padded with z = 0, point data
  such as ``particle_type``) plus ``<name>.pvd``, the ParaView time-series index that lists every
  frame with its time; open the ``.pvd`` in ParaView. :func:`export_dataset_trajectory` does it
  for sample i of a dataset file.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from sciops.datasets import schema as S
from sciops.datasets.h5io import open_read

_STATS = {"vel": "velocity", "acc": "acceleration"}


def _open_particles(path):
    h5 = open_read(path)
    try:
        attrs, fields = S.validate(h5, path)
        if attrs[S.ATTR_PROBLEM] != "particles":
            raise ValueError(f"{path} holds the {attrs[S.ATTR_PROBLEM]!r} problem; expected a 'particles' dataset")
    except Exception:
        h5.close()
        raise
    return h5, attrs, fields


def gns_metadata(path: str | os.PathLike) -> dict:
    """The GNS metadata dict of a ``particles`` dataset (module docstring)."""
    h5, attrs, _ = _open_particles(path)
    with h5:
        solver = attrs[S.ATTR_SOLVER]
        meta = {"bounds": solver["bounds"], "sequence_length": int(solver["sequence_length"]),
                "default_connectivity_radius": float(solver["default_connectivity_radius"]),
                "dim": int(solver["dim"]), "dt": float(solver["frame_dt"])}
        for short, name in _STATS.items():
            mean = np.asarray(h5[S.FIELDS][f"{name}_mean"][:], dtype=np.float64)
            std = np.asarray(h5[S.FIELDS][f"{name}_std"][:], dtype=np.float64)
            pooled = mean.mean(0)
            var = (std ** 2 + mean ** 2).mean(0) - pooled ** 2
            meta[f"{short}_mean"] = pooled.tolist()
            meta[f"{short}_std"] = np.sqrt(np.maximum(var, 0.0)).tolist()
    return meta


def read_trajectories(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Positions (N, T, P, dim) float32 in m, particle types (N, P) int64 and the root attributes
    (``problem_params``, ``seed``, ``solve_seconds``, ...) of a ``particles`` dataset, in memory."""
    h5, attrs, _ = _open_particles(path)
    with h5:
        positions = np.asarray(h5[S.FIELDS]["position"][:], dtype=np.float32)
        types = np.asarray(h5[S.FIELDS]["particle_type"][:]).astype(np.int64)
    return positions, types, attrs


def write_gns_metadata(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write :func:`gns_metadata` of ``path`` as JSON to ``out``."""
    out = Path(out)
    out.write_text(json.dumps(gns_metadata(path), indent=2) + "\n")
    return out


def export_paraview(positions, directory: str | os.PathLike, *, times=None, point_data: dict | None = None,
                    name: str = "frame") -> Path:
    """Write positions (T, P, dim) as T point-cloud ``.vtu`` files and a ``.pvd`` index in
    ``directory``; ``point_data`` maps names to (P,) or (P, k) arrays (or (T, P[, k]) per frame);
    ``times`` (T,) defaults to the frame numbers. Returns the ``.pvd`` path."""
    import meshio

    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] not in (2, 3) or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"positions have shape {x.shape}; expected (T, P, dim) with T, P >= 1 and dim 2 or 3")
    T, P, dim = x.shape
    t = np.arange(T, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if t.shape != (T,):
        raise ValueError(f"times have shape {t.shape}; expected ({T},), one per frame")
    data = {}
    for key, value in (point_data or {}).items():
        arr = np.asarray(value)
        if arr.shape[:1] == (P,):
            arr = np.broadcast_to(arr, (T,) + arr.shape)
        if arr.shape[:2] != (T, P):
            raise ValueError(f"point data {key!r} has shape {np.asarray(value).shape}; expected ({P}, ...) or ({T}, {P}, ...)")
        data[key] = arr
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cells = [("vertex", np.arange(P, dtype=np.int64)[:, None])]
    root = ET.Element("VTKFile", type="Collection", version="0.1")
    collection = ET.SubElement(root, "Collection")
    for k in range(T):
        pts = x[k] if dim == 3 else np.concatenate([x[k], np.zeros((P, 1))], 1)
        file = f"{name}_{k:04d}.vtu"
        meshio.write(directory / file, meshio.Mesh(pts, cells, point_data={key: np.ascontiguousarray(v[k])
                                                                          for key, v in data.items()}))
        ET.SubElement(collection, "DataSet", timestep=repr(float(t[k])), group="", part="0", file=file)
    index = directory / f"{name}.pvd"
    ET.ElementTree(root).write(index, xml_declaration=True, encoding="utf-8")
    return index


def export_dataset_trajectory(path: str | os.PathLike, sample: int, directory: str | os.PathLike,
                              name: str = "frame") -> Path:
    """:func:`export_paraview` of trajectory ``sample`` of a ``particles`` dataset, with its
    ``particle_type`` and ``volume`` as point data and the frame times of ``grid/t``."""
    h5, attrs, _ = _open_particles(path)
    with h5:
        n = int(attrs[S.ATTR_N_SAMPLES])
        if not 0 <= int(sample) < n:
            raise ValueError(f"sample={sample} is not in the dataset {path}; expected 0 <= sample < {n}")
        f = h5[S.FIELDS]
        positions = f["position"][int(sample)]
        data = {"particle_type": f["particle_type"][int(sample)].astype(np.int32), "volume": f["volume"][int(sample)]}
        times = h5[S.GRID]["t"][:]
    return export_paraview(positions, directory, times=times, point_data=data, name=name)
