"""scripts/results.py: the JSON a benchmark writes beside its text, which the documentation's
benchmark pages render (docs/_ext/benchmark_tables.py)."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def results_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("results", None)
    return importlib.import_module("results")


def test_results_json_has_command_date_machine_versions_and_tables(results_module, tmp_path):
    res = results_module.Results("bench_x", settings={"n": 3, "json": "ignored"},
                                 argv=["/somewhere/scripts/bench_x.py", "--n", "3"])
    table = res.table("t", ["n", "rate"], title="rates")
    table.add([64, 12.3456789])
    res.note("a note")
    path = res.write(tmp_path / "bench_x.json")
    data = json.loads(path.read_text())
    assert data["schema"] == 1 and data["benchmark"] == "bench_x"
    assert data["command"] == "python scripts/bench_x.py --n 3"
    assert data["date"].endswith("+00:00") and "logical CPUs" in data["machine"]
    assert {"python", "sciops", "torch", "numpy", "scipy"} <= set(data["versions"])
    assert data["settings"] == {"n": 3}
    assert data["tables"] == [{"name": "t", "title": "rates", "columns": ["n", "rate"], "rows": [[64, 12.3457]]}]
    assert data["notes"] == ["a note"]


def test_a_row_must_fill_the_columns(results_module):
    table = results_module.Results("bench_x", argv=["bench_x.py"]).table("t", ["a", "b"])
    with pytest.raises(ValueError, match="2 columns"):
        table.add([1])


def test_committed_benchmark_json_files_follow_the_schema():
    for path in sorted((ROOT / "docs" / "benchmarks").glob("*.json")):
        data = json.loads(path.read_text())
        assert {"schema", "benchmark", "command", "date", "machine", "versions", "tables"} <= set(data), path
        for table in data["tables"]:
            assert all(len(row) == len(table["columns"]) for row in table["rows"]), path
