"""Check the import layering with import-linter (contracts in pyproject.toml, [tool.importlinter]).

sciops installs the top-level folders solvers/, problems/ and datasets/ as sciops.solvers,
sciops.problems and sciops.datasets (``[tool.setuptools.package-dir]``), which static tools cannot
see. This script copies the Python sources into a temporary folder in the installed layout and runs
``lint-imports`` there; it exits with lint-imports' status.

    python scripts/lint_layers.py
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"solvers": "solvers", "problems": "problems", "datasets": "datasets"}  # folder -> sciops.<name>


def assemble(target: Path) -> Path:
    """The sciops package as installed, Python files only, under ``target``."""
    package = target / "sciops"
    shutil.copytree(ROOT / "sciops", package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for folder, name in MAPPED.items():
        shutil.copytree(ROOT / folder, package / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return package


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sciops-layers-") as tmp:
        assemble(Path(tmp))
        env_path = tmp
        command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                   "sys.exit(lint_imports_command())", str(ROOT / "pyproject.toml"), "--no-cache"]
        return subprocess.run(command, cwd=tmp, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}).returncode


if __name__ == "__main__":
    sys.exit(main())
