"""Files and figures of a Darcy inversion: observation files in (CSV or HDF5), the result out
(HDF5, written atomically), its figure, and :func:`invert_files`, what ``sciops invert`` runs."""
from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np

from sciops.files import atomic_write
from sciops.workflows.inverse import InversionResult, check_observations, invert
from sciops.workflows.inverse_calibration import (
    MIN_CALIBRATION,
    calibrate,
    calibrated_bands,
    check_calibration_set,
    coverage,
    shared_prior,
    surrogate_error,
)


def invert_files(run_dir: str | Path, observations: str | Path, output: str | Path, *, plot: str | Path | None = None,
                 device=None, calibration: str | Path = "validation", calibration_size: int = 8,
                 model_error: float | None = None, **settings) -> str:
    """Invert the observations of a file with the DGNO run ``run_dir``, calibrate the bands on held-out
    labelled problems (``calibration``: "validation", the run's validation samples; a labelled
    dataset file; or "none"), write the result (and the figure); the summary lines. ``model_error``
    None: measured on the calibration problems (0 without them). ``settings`` are
    :func:`sciops.workflows.inverse.invert`'s."""
    import sciops

    obs = read_observations(observations)
    surrogate = sciops.load(run_dir, device=device)
    cal_set = calibration_set(surrogate, calibration, calibration_size)
    if model_error is None:
        model_error = 0.0 if cal_set is None else surrogate_error(surrogate, *cal_set, check_observations(
            obs["points"], obs["values"])[0])
    encoded = shared_prior(surrogate, settings.get("problem"), settings.get("n_prior", 512), settings.get("seed", 0))
    result = invert(surrogate, obs["points"], obs["values"], beta0=obs.get("beta0"), model_error=model_error,
                    encoded=encoded, **settings)
    if cal_set is not None:  # after the inversion, so that bad input fails before the calibration's work
        noise = {k: settings.get(k) for k in ("noise_std", "snr_db")}
        rest = {k: v for k, v in settings.items() if k not in ("noise_std", "snr_db", "resolution")}
        cal = calibrate(surrogate, obs["points"], *cal_set, model_error=model_error, encoded=encoded, **noise, **rest)
        calibrated_bands(surrogate, result, cal)
    a_true = obs.get("a_true")
    if a_true is not None and a_true.shape != result.a_mean.shape:
        a_true = None  # stored on another grid: not comparable pointwise
    save_result(result, output, a_true=a_true)
    if plot:
        plot_inversion(result, plot, a_true=a_true, points=obs["points"])
    line = (f"inverted {len(obs['values'])} observations into {output}: noise std {result.noise_std:.3g} "
            f"(model_error {model_error:.3g}), mean a std {float(result.a_std.mean()):.3g}, {result.seconds:.1f} s")
    if a_true is not None:
        line += f", rel. L2 error of a {np.linalg.norm(result.a_mean - a_true) / np.linalg.norm(a_true):.3g}"
        line += "".join(f", truth inside the {round(100 * p)} % band at {coverage(lo, hi, a_true):.1%} of points"
                        for p, (lo, hi) in result.bands.items())
    if cal_set is None:
        return line + "\nbands not calibrated (--calibration none): no coverage figure; the raw bands of the " \
                      "draws are usually far too narrow"
    return line + (f"\n95 % band coverage on the calibration set ({cal.n_problems} held-out problems, "
                   f"leave-one-out): {cal.coverage[0.95]:.1%} (50 % band: {cal.coverage[0.5]:.1%}); "
                   f"calibration {cal.seconds:.1f} s")


def calibration_set(surrogate, source: str | Path, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, u) of up to ``size`` held-out labelled problems (K, n, n): the run's validation samples
    ("validation"), the first samples of a dataset file, or None ("none")."""
    if str(source) == "none":
        return None
    if size < MIN_CALIBRATION:
        raise ValueError(f"calibration size {size} is too small: use at least {MIN_CALIBRATION} problems")
    from sciops.datasets import open_dataset

    if str(source) == "validation":
        spec = getattr(surrogate, "spec", None)
        data = None if spec is None else spec.data
        if data is None or not Path(data.path).is_file():
            where = "" if data is None else f" ({data.path})"
            raise ValueError(f"the run's validation data{where} is not there for the calibration: pass --calibration "
                             "FILE (labelled samples of the problem, e.g. from sciops generate) or --calibration none")
        indices = list(range(data.n_samples - data.n_val, data.n_samples))[:size]
        path = Path(data.path)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"calibration file {path} not found: give a labelled dataset, validation or none")
        indices = None
    ds = open_dataset(path)
    indices = indices if indices is not None else list(range(min(size, ds.n_samples)))
    a, u = ds.get_batch(indices)
    if a.dim() != 4 or a.shape != u.shape or a.shape[1] != 1:
        raise ValueError(f"calibration file {path} must hold a coefficient a and a solution u on one grid, "
                         f"got shapes {tuple(a.shape)} and {tuple(u.shape)}")
    return check_calibration_set(a[:, 0].numpy(), u[:, 0].numpy())


def save_result(result: InversionResult, path: str | Path, a_true: np.ndarray | None = None) -> Path:
    """Write an HDF5 file: datasets a_mean, a_std, a_map, u_mean, u_std, grid/x, grid/y, beta_map,
    chain_energies, band50/lo, band50/hi, band95/lo, band95/hi (and a_true if given); attributes
    noise_std, seconds, the settings (JSON) and, when calibrated, calibration_coverage50/95 (the
    leave-one-out coverage of the bands on the calibration set)."""
    path = Path(path)
    buffer = io.BytesIO()  # built in memory: a full disk then fails a plain write, not HDF5's close
    with h5py.File(buffer, "w") as h5:
        for name in ("a_mean", "a_std", "a_map", "u_mean", "u_std", "beta_map", "chain_energies"):
            h5.create_dataset(name, data=getattr(result, name))
        h5.create_dataset("grid/x", data=result.grid)
        h5.create_dataset("grid/y", data=result.grid)
        if a_true is not None:
            h5.create_dataset("a_true", data=np.asarray(a_true, dtype=np.float32))
        for p, (lo, hi) in result.bands.items():
            h5.create_dataset(f"band{round(100 * p)}/lo", data=lo)
            h5.create_dataset(f"band{round(100 * p)}/hi", data=hi)
        for key, value in result.settings.get("calibration", {}).items():
            if key.startswith("coverage"):
                h5.attrs[f"calibration_{key}"] = value
        h5.attrs["noise_std"] = result.noise_std
        h5.attrs["seconds"] = result.seconds
        h5.attrs["settings"] = json.dumps(result.settings)
        h5.attrs["dims"] = json.dumps(["y", "x"])
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    return path


def read_observations(path: str | Path) -> dict:
    """Observations from a CSV file (header with columns x, y, value) or an HDF5 file (datasets
    ``points`` (M, 2) and ``values`` (M,), optional ``a_true`` (n, n) and ``beta0`` (m,)).
    Returns a dict with points, values and, when present, a_true and beta0."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"observation file {path} not found")
    from sciops.datasets.h5io import is_hdf5

    if is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as h5:
            missing = [k for k in ("points", "values") if k not in h5]
            if missing:
                raise ValueError(f"{path}: HDF5 observation file needs datasets 'points' (M, 2) and 'values' (M,); "
                                 f"{missing[0]!r} is missing")
            out = {}
            for k in ("points", "values", "a_true", "beta0"):
                if k in h5:
                    try:
                        out[k] = np.asarray(h5[k][()], dtype=np.float64)
                    except (TypeError, ValueError):
                        raise ValueError(f"{path}: dataset {k!r} is not numeric") from None
        return out
    import csv

    # utf-8-sig: a spreadsheet's CSV export may start with a byte-order mark; anything else is not a CSV
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is neither an HDF5 file nor a text CSV with columns x, y, value") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if not {"x", "y", "value"} <= set(columns):
            raise ValueError(f"{path}: CSV observation file needs a header with columns x, y, value; got {columns}")
        rows = []
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            try:
                rows.append([float(row["x"]), float(row["y"]), float(row["value"])])
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {line} has a non-numeric x, y or value: {row}") from None
    data = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return {"points": data[:, :2], "values": data[:, 2]}


def plot_inversion(result: InversionResult, path: str | Path, *, a_true: np.ndarray | None = None,
                   points: np.ndarray | None = None) -> Path:
    """PNG with the true coefficient (if given), the posterior mean and the posterior std of a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciops.plotting import save_figure

    panels = ([("true a", a_true, "viridis")] if a_true is not None else []) + [
        ("posterior mean of a", result.a_mean, "viridis"), ("posterior std of a", result.a_std, "magma"),
        ("posterior mean of u", result.u_mean, "viridis")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (title, field, cmap) in zip(axes, panels):
        im = ax.imshow(field, origin="lower", extent=(0, 1, 0, 1), cmap=cmap)
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if points is not None and title.endswith("of u"):
            ax.plot(points[:, 0], points[:, 1], "k.", markersize=2)
        ax.set_title(title, fontsize=10)
    note = ""
    if a_true is not None and np.shape(a_true) == result.a_mean.shape:
        err = np.linalg.norm(result.a_mean - a_true) / np.linalg.norm(a_true)
        note = f", rel. L2 error of a {err:.3g}"
    fig.suptitle(f"DGNO inversion: {result.settings.get('n_observations')} observations, "
                 f"noise std {result.noise_std:.3g}, {result.seconds:.1f} s{note}")
    return save_figure(fig, path)
