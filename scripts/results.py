"""Benchmark results as JSON, written beside the text a benchmark script prints.

The documentation's benchmark pages are rendered from these files (``docs/benchmarks/*.json``, by
``docs/_ext/benchmark_tables.py``), so a figure on a page is always the one a script printed, with
the command that printed it, the date, the machine and the library versions.

Usage in a script (``python scripts/<bench>.py`` puts this folder on sys.path)::

    from results import Results
    res = Results("bench_darcy_solver", settings=vars(args))
    table = res.table("throughput", ["n", "plain [1/s]", "sciops [1/s]"], title="Samples per second")
    table.add([64, 14.8, 211.0])
    res.note("sciops uses 2 threads, the baselines one")
    res.write(args.json)            # default: docs/benchmarks/<name>.json

The schema (``"schema": 1``): ``benchmark``, ``command`` (the command line as run), ``date`` (UTC,
ISO 8601), ``machine`` (:func:`machine.machine_line`), ``versions`` (Python, sciops, torch,
numpy, scipy and any extra the script names), ``settings``, ``tables`` (each ``name``, ``title``,
``columns``, ``rows``), ``notes``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from machine import machine_line

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "docs" / "benchmarks"
SCHEMA = 1


def versions(*extra: str) -> dict[str, str]:
    """Installed versions of the libraries a benchmark's figures depend on."""
    out = {"python": platform.python_version()}
    for name in ("sciops", "torch", "numpy", "scipy", *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _plain(value):
    """JSON-ready numbers: numpy scalars to Python, floats rounded to 6 significant digits."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


class Table:
    def __init__(self, name: str, columns: list[str], title: str = "") -> None:
        self.name, self.columns, self.title, self.rows = name, list(columns), title, []

    def add(self, row) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"table {self.name}: a row of {len(row)} values for {len(self.columns)} columns")
        self.rows.append([_plain(v) for v in row])

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "columns": self.columns, "rows": self.rows}


class Results:
    """One benchmark run's figures; :meth:`write` stores them as JSON."""

    def __init__(self, benchmark: str, *, settings: dict | None = None, extra_versions: tuple[str, ...] = (),
                 argv: list[str] | None = None) -> None:
        argv = sys.argv if argv is None else argv
        script = Path(argv[0])
        shown = f"scripts/{script.name}" if script.suffix == ".py" else str(script)
        self.data = {
            "schema": SCHEMA,
            "benchmark": benchmark,
            "command": shlex.join(["python", shown, *argv[1:]]),
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "machine": machine_line().removeprefix("machine: "),
            "versions": versions(*extra_versions),
            "settings": {k: _plain(v) for k, v in (settings or {}).items() if k != "json"},
            "tables": [],
            "notes": [],
        }
        self._tables: list[Table] = []

    def table(self, name: str, columns: list[str], title: str = "") -> Table:
        t = Table(name, columns, title)
        self._tables.append(t)
        return t

    def note(self, text: str) -> None:
        self.data["notes"].append(text)

    def write(self, path: str | os.PathLike | None = None) -> Path:
        """Write the JSON (atomically) to ``path``, default ``docs/benchmarks/<benchmark>.json``."""
        path = Path(path) if path else DEFAULT_DIR / f"{self.data['benchmark']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.data["tables"] = [t.as_dict() for t in self._tables]
        text = json.dumps(self.data, indent=1) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
        print(f"results: {path}")
        return path
