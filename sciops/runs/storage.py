"""Run directories: the on-disk form of a trained operator.

Layout of a run directory::

    config.json     operator name and hyperparameters, problem name and parameters, fields,
                    normalisation statistics, training settings, sciops version, history summary
    weights.pt      state_dict of the best model (by validation error)
    state.pt        last completed epoch: model, optimiser, scheduler, history (for --resume)
    metrics.jsonl   one JSON line per epoch

Every file is written atomically (temporary file in the same folder, fsync, ``os.replace``), so
a crash leaves either the old or the new version, never a torn one; :func:`save_epoch` orders an
epoch's files so that ``state.pt`` commits it. A write the machine refuses (a full disk) is a
one-line ``WriteError`` naming the file; the previous version stays in place. Tensors are loaded with
``torch.load(weights_only=True)``: a file whose pickle would construct arbitrary objects or run
code is refused with a ValueError instead of executed.
"""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from sciops.files import atomic_write

CONFIG, WEIGHTS, STATE, METRICS = "config.json", "weights.pt", "state.pt", "metrics.jsonl"


def save_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2, sort_keys=False) + "\n").encode()))


def save_tensors(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()  # serialised first: torch reports a failed file write without its errno
    torch.save(obj, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """``metrics.jsonl``: one JSON line per epoch of ``history``."""
    text = "".join(json.dumps(h) + "\n" for h in history)
    atomic_write(Path(run_dir) / METRICS, lambda f: f.write(text.encode()))


def save_epoch(run_dir: Path, state: dict, best_weights: dict | None = None) -> None:
    """The files of a finished epoch, ``state.pt`` last: it is the commit point. A kill between the
    writes leaves ``weights.pt`` and ``metrics.jsonl`` at most one epoch ahead of ``state.pt``; a
    resume restarts from ``state.pt`` (rewriting the metrics from its history) and recomputes that
    epoch exactly, so the files agree again and equal an uninterrupted run's."""
    run_dir = Path(run_dir)
    if best_weights is not None:
        save_tensors(run_dir / WEIGHTS, best_weights)
    write_metrics(run_dir, state["history"])
    save_tensors(run_dir / STATE, state)


def load_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None


def load_tensors(path: Path, map_location=None) -> Any:
    """torch.load with weights_only=True; truncated or unsafe files raise ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path} refused: it holds {_unsafe_object(exc)}, not only tensors and plain containers; "
                         f"unpickling it could run code, so sciops never loads it") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path} is truncated or not a torch checkpoint ({type(exc).__name__})") from None


def _unsafe_object(exc: Exception) -> str:
    """What torch's weights-only unpickler found ("GLOBAL os.system"), without its advice to turn the
    check off (which would run the file's code)."""
    import re

    found = re.search(r"(?:Unsupported global|GLOBAL|Unsupported operand)[: ]*([\w.]+)", str(exc))
    return f"the object {found.group(1)!r}" if found else "an object the safe loader does not allow"


def resumes(run_dir: Path, resume: bool) -> bool:
    """Whether a training run in ``run_dir`` continues a saved one: ``resume`` and a completed epoch
    (``state.pt``) to continue; without ``resume`` such a directory is refused. A ``config.json``
    alone is a run that failed before its first epoch: a new run takes its place."""
    for stale in Path(run_dir).glob(".*.tmp"):  # a temporary file of a write that a kill interrupted
        stale.unlink(missing_ok=True)
    saved = (Path(run_dir) / STATE).is_file()
    if saved and not resume:
        raise ValueError(f"run directory {run_dir} already holds a run; pass --resume to continue it "
                         "or choose another directory")
    return saved


def first_difference(saved, given, path: str) -> str:
    """"path.key: saved vs given" at the first place two JSON-like settings differ."""
    if isinstance(saved, dict) and isinstance(given, dict):
        for key in list(saved) + [k for k in given if k not in saved]:
            if saved.get(key) != given.get(key):
                return first_difference(saved.get(key), given.get(key), f"{path}.{key}")
    return f"{path}: {json.dumps(saved)} in the run, {json.dumps(given)} now"


def load_error(exc: Exception) -> str:
    """What ``load_state_dict``'s error says differs (its first line is a header naming the class)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
    return detail if len(detail) <= 300 else detail[:297] + "..."


def check_run_dir(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} not found")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise ValueError(f"{path} is not a sciops run directory: {name} is missing")
    return path
