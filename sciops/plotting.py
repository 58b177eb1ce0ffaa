"""Writing matplotlib figures: :func:`save_figure` (PNG, atomically, Agg backend)."""
from __future__ import annotations

from pathlib import Path


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (parent folders created), close it, return the path."""
    import io

    import matplotlib.pyplot as plt

    from sciops.files import atomic_write

    fig.tight_layout()
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format=path.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    return path
