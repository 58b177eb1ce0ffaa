"""What a generation will need: batch sizes, memory and disk estimates, and the up-front refusal.

:func:`estimate` adds the problem's own solver model (``Problem.peak_memory``) to the batch's
fields for memory, and bounds the file by its uncompressed size plus the space the writer keeps
free while writing (:data:`RESERVE_BYTES`). :func:`check_resources` refuses (``ResourceError``) a
generation that exceeds what the machine has, naming the largest setting that fits.
``scripts/bench_generation_memory.py`` compares the estimates with measured batches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sciops.datasets.resources import ResourceError, available_memory, check_fits, format_bytes, free_disk
from sciops.problems import Problem, get

DEFAULT_BATCH_SIZE = 16
DEFAULT_BATCH_BYTES = 256 * 2**20  # a default batch holds at most this much float32 field data
# kept free while writing, with one batch's bytes, so that a full disk still lets HDF5 flush its
# metadata and close the file (see sciops.datasets.resources.SpaceReserve); the fault-injection
# tests fill disks of 40 KiB to 4 MiB at every stage with this margin
RESERVE_BYTES = 256 * 2**10


def sample_bytes(problem: Problem, names) -> int | None:
    """float32 bytes of one sample of the fields ``names`` (None when a dim has no grid coordinate)."""
    try:
        return sum(4 * int(np.prod(problem.field_shape(f))) for f in names)
    except (KeyError, TypeError, AttributeError):
        return None


def default_batch_size(problem: Problem) -> int:
    """16 samples, fewer when a sample's fields are large (at most ~256 MiB of fields per batch)."""
    per_sample = sample_bytes(problem, problem.input_fields + problem.output_fields)
    if per_sample is None:
        return DEFAULT_BATCH_SIZE
    return max(1, min(DEFAULT_BATCH_SIZE, DEFAULT_BATCH_BYTES // max(per_sample, 1)))


def estimate(problem: Problem, n: int, batch_size: int | None = None) -> dict[str, int]:
    """What generating ``n`` samples needs: ``memory`` (peak bytes, the problem's solver estimate for
    one batch plus the batch's fields), ``disk`` (bytes of the file before compression, an upper
    bound, and the space kept free while writing) and the ``batch_size`` used."""
    batch_size = min(n, default_batch_size(problem) if batch_size is None else batch_size)
    per_sample = (sample_bytes(problem, problem.fields) or 0) + 4 * len(problem.fields) + 16  # + checksums, seed, index
    return {"memory": int(problem.peak_memory(batch_size)) + 2 * batch_size * per_sample,
            "disk": n * per_sample + RESERVE_BYTES + batch_size * per_sample, "batch_size": batch_size}


def check_resources(problem: Problem, n: int, path: Path, *, batch_size: int | None = None, force: bool = False,
                    on_disk: int = 0, processes: int = 1) -> None:
    """Refuse up front (``ResourceError``) a generation whose :func:`estimate` exceeds the memory or
    free disk this machine has (``processes`` writers at once), naming the largest setting of the
    problem's ``size_params`` that fits."""
    need = estimate(problem, n, batch_size)
    try:
        check_fits(f"generating {n} samples of {problem.name}", processes * need["memory"],
                   max(0, need["disk"] - on_disk), path, force=force)
    except ValueError as exc:
        hint = _largest_fitting(problem, n, batch_size, path)
        raise type(exc)(f"{exc}{'; ' + hint if hint else ''}") from None


def _largest_fitting(problem: Problem, n: int, batch_size: int | None, path: Path) -> str:
    """The largest value of the first of the problem's ``size_params`` (then of ``n``) that fits,
    the other settings as given; "" when none does."""
    def fits(params: dict, count: int) -> bool:
        try:
            need = estimate(get(problem.name, **params), count, batch_size)
            check_fits("", need["memory"], need["disk"], path)
            return True
        except (ResourceError, ValueError):
            return False

    def largest(low: int, high: int, ok) -> int | None:  # the estimates grow with the setting
        best = None
        while low <= high:
            mid = (low + high) // 2
            best, low, high = (mid, mid + 1, high) if ok(mid) else (best, low, mid - 1)
        return best

    for name in problem.size_params:
        low = problem.param(name).min if problem.param(name).min is not None else 1
        value = largest(int(low), problem.params[name] - 1, lambda v: fits({**problem.params, name: v}, n))
        if value is not None:
            return f"the largest {name} that fits, the other settings as given: {value}"
    count = largest(1, n - 1, lambda m: fits(problem.params, m))
    return f"at most {count} samples fit" if count is not None else ""


def estimate_text(problem: Problem, n: int, batch_size: int | None, output: Path) -> str:
    """What ``sciops generate --dry-run`` prints: the estimates beside what the machine has."""
    need, have = estimate(problem, n, batch_size), available_memory()
    return (f"{n} samples of {problem.name} in batches of {need['batch_size']}: peak memory about "
            f"{format_bytes(need['memory'])} ({'unknown' if have is None else format_bytes(have)} available), file "
            f"at most {format_bytes(need['disk'])} before compression ({format_bytes(free_disk(output))} free); "
            f"nothing written")
