"""The one-line machine description that benchmark scripts print above their figures.

Imported by the scripts in this folder (``python scripts/<bench>.py`` puts the folder on sys.path).
"""
from __future__ import annotations

import os
import platform

import torch


def machine_line() -> str:
    """CPU model, logical CPUs, load average, OS, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"machine: {cpu}, {os.cpu_count()} logical CPUs{load}, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")
