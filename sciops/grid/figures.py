"""Figures: input, reference, prediction and error of one sample side by side.

Uses matplotlib's Agg backend (no display needed). 2D fields are drawn as images with the
(y, x) array order shown with y upwards, over the domain's extent (the report's ``extent``, else
the unit square); 3D fields show their middle slice along the first axis. Trajectories (reports
with ``times``, outputs (T, y, x)): one row per shown time (first, middle, last record) with
reference, prediction and |error| at that time on a shared colour scale, the input in the first
column of the first row and the relative L2 error against time under it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sciops.plotting import save_figure


def _image(ax, field: np.ndarray, title: str, cmap: str = "viridis", extent=1.0, vmin=None, vmax=None,
           lonlat=None, volume_axes=None):
    import matplotlib.pyplot as plt

    if lonlat is not None:  # a field on the sphere, (lat, lon) with lonlat = (first, last latitude)
        im = ax.imshow(field, origin="upper" if lonlat[0] > lonlat[1] else "lower", cmap=cmap, vmin=vmin, vmax=vmax,
                       extent=(0, 360, min(lonlat), max(lonlat)), aspect="auto")
        ax.set_xlabel("longitude (degrees east)", fontsize=8)
        ax.set_ylabel("latitude (degrees north)", fontsize=8)
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title, fontsize=10)
        return
    if isinstance(extent, (tuple, list)):  # per spatial dim, (..., y, x)
        ly, lx = (extent[-2], extent[-1]) if len(extent) >= 2 else (extent[0], extent[0])
    else:
        lx = ly = extent
    if field.ndim == 4:  # a 3D field with channels (radar's real and imaginary parts): its magnitude
        field = np.linalg.norm(field, axis=-1)
    if field.ndim == 3:  # a volume: its middle slice along the first axis, said in the title
        k = field.shape[0] // 2
        if volume_axes is not None:  # coordinates in metres: the slice's position and the axes
            (d0, (a, b)), (d1, (y0, y1)), (d2, (x0, x1)) = volume_axes.items()
            at = a + (b - a) * k / max(field.shape[0] - 1, 1)
            im = ax.imshow(field[k], origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xlabel(f"{d2} (m)", fontsize=8)
            ax.set_ylabel(f"{d1} (m)", fontsize=8)
            plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(f"{title}\n(slice {d0} = {at:.3g} m)", fontsize=10)
            return
        title = f"{title}\n(slice {k} of {field.shape[0]} along the first axis)"
        field = field[k]
    if field.ndim == 1:
        ax.plot(np.linspace(0, lx, len(field)), field)
    else:
        im = ax.imshow(field, origin="lower", extent=(0, lx, 0, ly), cmap=cmap, vmin=vmin, vmax=vmax)
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)


def _plot_trajectory(report: dict, name_in: str, field_in: np.ndarray, name_out: str, ref: np.ndarray,
                     pred: np.ndarray):
    import matplotlib.pyplot as plt

    arrays, extent = report["_arrays"], report["_arrays"].get("extent", 1.0)
    if len(arrays["reference"]) > 1:
        return _plot_fields(report)
    times = arrays["times"]
    shown = sorted({0, len(times) // 2, len(times) - 1})
    fig, axes = plt.subplots(len(shown), 4, figsize=(16, 3.6 * len(shown)), squeeze=False)
    _image(axes[0, 0], field_in, f"input {name_in}", extent=extent)
    if len(shown) > 1:
        ax = axes[1, 0]
        ax.plot(times, arrays["per_time_rel_l2"], "o-", label="this sample")
        ax.plot(times, report["per_time"]["rel_l2"]["mean"], "s--", label=f"mean of {report['samples']}")
        ax.set_xlabel("t")
        ax.set_title("relative L2 error vs time", fontsize=10)
        ax.legend(fontsize=8)
    for ax in axes[2:, 0]:
        ax.axis("off")
    for row, j in enumerate(shown):
        lo, hi = float(min(ref[j].min(), pred[j].min())), float(max(ref[j].max(), pred[j].max()))
        t = f"t = {times[j]:.3g}"
        _image(axes[row, 1], ref[j], f"reference {name_out} (solver), {t}", extent=extent, vmin=lo, vmax=hi)
        _image(axes[row, 2], pred[j], f"prediction ({report['operator']}), {t}", extent=extent, vmin=lo, vmax=hi)
        _image(axes[row, 3], np.abs(pred[j] - ref[j]),
               f"|error|, rel. L2 {arrays['per_time_rel_l2'][j]:.3g}", cmap="magma", extent=extent)
    fig.suptitle(f"{report['problem']['name']}: sample {arrays['index']} (median trajectory error of "
                 f"{report['samples']}, relative L2(0,T;L2) {arrays['rel_l2']:.3g})")
    return fig


def _plot_fields(report: dict):
    """Trajectories of several output fields (shallow water's phi, u, v): each field's last record,
    reference, prediction and |error| on one scale per field, and the error against time."""
    import matplotlib.pyplot as plt

    arrays = report["_arrays"]
    names, lonlat, times = list(arrays["reference"]), arrays.get("lonlat"), arrays["times"]
    fig, axes = plt.subplots(len(names), 4, figsize=(17, 3.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        ref, pred = np.asarray(arrays["reference"][name])[-1], np.asarray(arrays["prediction"][name])[-1]
        scale = dict(vmin=float(min(ref.min(), pred.min())), vmax=float(max(ref.max(), pred.max())))
        t = f"t = {times[-1]:.4g}"
        _image(axes[row, 0], ref, f"reference {name} (solver), {t}", lonlat=lonlat, **scale)
        _image(axes[row, 1], pred, f"prediction {name} ({report['operator']})", lonlat=lonlat, **scale)
        error = np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), 1e-30)
        _image(axes[row, 2], np.abs(pred - ref), f"|error| of {name}, rel. L2 {error:.3g}", cmap="magma", lonlat=lonlat)
        axes[row, 3].axis("off")
    ax = axes[0, 3]
    ax.axis("on")
    ax.plot(times, arrays["per_time_rel_l2"], "o-", label="this sample")
    ax.plot(times, report["per_time"]["rel_l2"]["mean"], "s--", label=f"mean of {report['samples']}")
    ax.set_xlabel("t")
    ax.set_title("relative L2 error (all fields) vs time", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(f"{report['problem']['name']}: sample {arrays['index']} (median trajectory error of "
                 f"{report['samples']}, relative L2(0,T;L2) {arrays['rel_l2']:.3g}), last record")
    return fig


def plot_comparison(report: dict, path: str | Path) -> Path:
    """Write a PNG of the report's example sample (the one with the median error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = report["_arrays"]
    name_in, field_in = next(iter(arrays["inputs"].items()))
    name_out = next(iter(arrays["reference"]))
    ref, pred = np.asarray(arrays["reference"][name_out]), np.asarray(arrays["prediction"][name_out])
    if "times" in arrays:
        fig = _plot_trajectory(report, name_in, np.asarray(field_in), name_out, ref, pred)
    else:
        extent, volume = arrays.get("extent", 1.0), dict(volume_axes=arrays.get("volume_axes"))
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
        _image(axes[0], field_in, f"input {name_in}", extent=extent, **volume)
        scale = dict(vmin=float(min(ref.min(), pred.min())), vmax=float(max(ref.max(), pred.max())))  # one scale
        _image(axes[1], ref, f"reference {name_out} (solver)", extent=extent, **scale, **volume)
        _image(axes[2], pred, f"prediction {name_out} ({report['operator']})", extent=extent, **scale, **volume)
        _image(axes[3], np.abs(pred - ref), f"|error|, rel. L2 {arrays['rel_l2']:.3g}", cmap="magma", extent=extent,
               **volume)
        fig.suptitle(f"{report['problem']['name']}: sample {arrays['index']} (median error of {report['samples']})")
    return save_figure(fig, path)

