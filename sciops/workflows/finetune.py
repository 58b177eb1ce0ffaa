"""``sciops finetune``: the Spectral-Refiner (:mod:`sciops.workflows.refine`) on a trained space-time
FNO, with its inputs chosen (a dataset's, or fresh ones on unused seeds) and the gain checked."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

import sciops
from sciops.datasets import open_dataset
from sciops.grid.evaluation import check_same_geometry
from sciops.workflows.refine import check_refinable, refine

MIN_REFINE_GAIN = 1e-3  # a fine-tuning that lowers the residual by less than this is reported as no gain


def _reference_records(surrogate, data: Path):
    """(start states, first records) of up to 4 samples of ``data`` for the time-resolution check."""
    dataset = open_dataset(data)
    check_same_geometry(dataset.problem, surrogate.problem, data)
    x, y = dataset.get_batch(list(range(min(4, dataset.n_samples))))
    start = x[:, 0] if x.dim() == y.dim() - 1 else x[:, 0, -1]
    return start, y[:, 0]


def finetune_run(run_dir: str | Path, output: str | Path, *, inputs: str | Path | None = None,
                 samples: int | None = None, data: str | Path | None = None, iterations: int = 30,
                 batch_size: int = 8, device=None, quiet: bool = False) -> str:
    """Refine ``run_dir`` into ``output``; the summary line (a warning is printed when nothing was gained)."""
    surrogate = sciops.load(run_dir, device=device)
    check_refinable(surrogate.spec, run_dir)  # before any data is read or sampled
    reference_file = Path(data or surrogate.spec.data.path)
    if data and not reference_file.is_file():
        raise FileNotFoundError(f"--data {reference_file} not found")
    reference = None
    if reference_file.is_file():
        reference = _reference_records(surrogate, reference_file)
    else:
        print(f"warning: {reference_file} not found; the time-resolution check of the residual is skipped",
              file=sys.stderr)
    if inputs:  # the inputs of a dataset (e.g. those to predict next); its outputs are not used
        with open_dataset(inputs) as dataset:
            check_same_geometry(dataset.problem, surrogate.problem, inputs)
            count = dataset.n_samples if samples is None else min(samples, dataset.n_samples)
            x = dataset.get_inputs(list(range(count)))[:, 0]
    else:  # unlabeled inputs drawn from the problem, on seeds used neither in training nor by evaluate --fresh
        count = 64 if samples is None else samples
        x = torch.as_tensor(surrogate.problem.sample_inputs(count, surrogate.spec.fresh_seed(count) + 1))
    summary = refine(run_dir, output, inputs=x, reference=reference, iterations=iterations, batch_size=batch_size,
                     device=device, progress=None if not quiet else False)
    before, after = summary["relative_residual_before"], summary["relative_residual_after"]
    if not after < (1 - MIN_REFINE_GAIN) * before:
        print(f"warning: fine-tuning lowered the residual by less than {MIN_REFINE_GAIN:.1%}; {output} predicts "
              f"as {run_dir} does. The refiner trains only the modes the run truncates, so it gains where those "
              f"carry error (fewer modes than the grid resolves, records fine in time); see sciops.workflows.refine",
              file=sys.stderr)
    return (f"refined {run_dir} into {output}: relative H^-1 residual {before:.4g} -> {after:.4g} "
            f"in {summary['iterations']} iterations ({summary['seconds']:.1f} s)")
