"""Backends of the MLS-MPM step: which are installed, which can serve a dtype and device, the default.

``BACKENDS`` lists them fastest first: ``"warp"`` (compiled NVIDIA Warp kernels on CPU and CUDA,
``sciops.solvers.mpm.warp_backend``; float32 and float64) and ``"torch"`` (the vectorised reference
of ``transfers`` and ``materials``; any dtype and device torch has, and autograd). The default of a
simulation is the first backend that can serve its dtype and device.
"""
from __future__ import annotations

import functools
import os
import sys

import torch

BACKENDS = ("warp", "torch")


@functools.cache
def _warp():
    """The warp module, initialised quietly, or None when it does not import."""
    try:
        import warp as wp

        wp.config.log_level = wp.LOG_WARNING
        _without_stderr(wp.init)  # its native library warns on stderr when a machine has no CUDA driver
    except Exception:  # noqa: BLE001 - a broken install is as good as none
        return None
    return wp


def _without_stderr(fn):
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        return fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def installed() -> tuple[str, ...]:
    """The backends whose library imports here."""
    return tuple(b for b in BACKENDS if b == "torch" or _warp() is not None)


def serves(backend: str, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``backend`` is installed and can step particles of ``dtype`` on ``device``."""
    if backend == "torch":
        return True
    if backend != "warp" or _warp() is None or dtype not in (torch.float32, torch.float64):
        return False
    return device.type == "cpu" or (device.type == "cuda" and _warp().is_cuda_available())


def usable(dtype: torch.dtype, device: torch.device) -> tuple[str, ...]:
    """The backends that can serve ``dtype`` on ``device``, fastest first."""
    return tuple(b for b in BACKENDS if serves(b, dtype, device))


def default(dtype: torch.dtype = torch.float64, device=None) -> str:
    """The fastest backend that can serve ``dtype`` on ``device`` (default CPU)."""
    return usable(dtype, torch.device(device if device is not None else "cpu"))[0]


def resolve(backend: str | None, dtype: torch.dtype, device: torch.device) -> str:
    """``backend`` checked against ``dtype`` and ``device``, or the default when None."""
    if backend is None:
        return default(dtype, device)
    ok = usable(dtype, device)
    if backend not in ok:
        why = "is not a backend" if backend not in BACKENDS else \
            "is not installed (pip install warp-lang)" if backend not in installed() else \
            f"cannot serve {str(dtype).replace('torch.', '')} on {device}"
        raise ValueError(f"backend={backend!r} {why}; expected one of {', '.join(ok)}")
    return backend
