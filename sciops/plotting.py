"""Writing matplotlib figures: :func:`save_figure` (PNG, atomically, Agg backend), and the figure every
kind's evaluation shares, :func:`plot_accuracy_cost` (the surrogate on its solver's ladder)."""
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


def plot_accuracy_cost(report: dict, path: str | Path) -> Path:
    """The surrogate on its solver's accuracy-cost curve: error against seconds per sample (log-log), the
    ladder's rungs as a line and the surrogate as a point, at the evaluation batch and at batch 1 (one
    panel each). The report's ``accuracy_cost`` entry names the metric and unit and holds the
    surrogate's point (every kind's evaluation writes it)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = [r for r in report.get("ladder") or [] if r.get("error") is not None]
    point = report["accuracy_cost"]
    error = point["surrogate_error"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, (suffix, key, where) in zip(axes, (("", "seconds_per_sample", f"batch {report['samples']}"),
                                              ("_batch1", "seconds_per_sample_batch1", "batch 1"))):
        points = sorted((r[key], r["error"], r["label"]) for r in rungs)
        if points:
            ax.plot([p[0] for p in points], [max(p[1], 1e-16) for p in points], "o-", color="tab:blue",
                    label="solver ladder")
            for cost, err, label in points:
                ax.annotate(label, (cost, max(err, 1e-16)), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.plot([point["surrogate_seconds"][bool(suffix)]], [error], "*", color="tab:red", markersize=14,
                label=f"{report['operator']} surrogate")
        value = report.get(f"speedup_equal_accuracy{suffix}")
        nominal = report.get(f"speedup{suffix}", float("nan"))
        ax.set_title(f"{where}: {nominal:.3g}x nominal, "
                     + (f"{value:.3g}x at equal accuracy" if value is not None else "no equal-accuracy figure"),
                     fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap on short ranges
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"seconds per {point['unit']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"{point['metric']} against the reference")
    fig.suptitle(f"{report['operator']} on {report['problem']['name']}: accuracy against cost", fontsize=10)
    return save_figure(fig, path)
