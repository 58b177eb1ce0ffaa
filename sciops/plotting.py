"""Figures: input, reference, prediction and error of one sample side by side.

Uses matplotlib's Agg backend (no display needed). 2D fields are drawn as images with the
(y, x) array order shown with y upwards; 3D fields show their middle slice along the first axis.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _image(ax, field: np.ndarray, title: str, cmap: str = "viridis"):
    import matplotlib.pyplot as plt

    if field.ndim == 3:
        field = field[field.shape[0] // 2]
    if field.ndim == 1:
        ax.plot(np.linspace(0, 1, len(field)), field)
    else:
        im = ax.imshow(field, origin="lower", extent=(0, 1, 0, 1), cmap=cmap)
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)


def plot_comparison(report: dict, path: str | Path) -> Path:
    """Write a PNG of the report's example sample (the one with the median error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = report["_arrays"]
    name_in, field_in = next(iter(arrays["inputs"].items()))
    name_out = next(iter(arrays["reference"]))
    ref, pred = arrays["reference"][name_out], arrays["prediction"][name_out]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    _image(axes[0], field_in, f"input {name_in}")
    _image(axes[1], ref, f"reference {name_out} (solver)")
    _image(axes[2], pred, f"prediction {name_out} ({report['operator']})")
    _image(axes[3], np.abs(pred - ref), f"|error|, rel. L2 {arrays['rel_l2']:.3g}", cmap="magma")
    fig.suptitle(f"{report['problem']['name']}: sample {arrays['index']} (median error of {report['samples']})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
