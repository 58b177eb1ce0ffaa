"""Atomic file writes: :func:`atomic_write` (temporary file in the same folder, fsync, ``os.replace``).

A crash leaves either the old or the new version of a file, never a torn one. A write the machine
refuses (a full disk, a read-only or forbidden path) is a one-line
``sciops.datasets.resources.WriteError`` naming the file and saying whether the old one is kept.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sciops.datasets.resources import WriteError, is_write_failure


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file, then move it to ``path``. A write the machine
    refuses (full disk, read-only, permissions) is a ``WriteError`` that says the old file is kept."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would hide runs from the group
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, WriteError) or not is_write_failure(exc):
            raise
        kept = f"the previous {path.name} is kept" if path.exists() else f"{path.name} was not written"
        raise WriteError(path, exc, kept) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
