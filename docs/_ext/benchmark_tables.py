"""The ``benchmark`` directive: a benchmark page's figures rendered from the JSON its script wrote.

    ```{benchmark} bench_darcy_solver.json
    ```

reads ``docs/benchmarks/bench_darcy_solver.json`` (written by ``scripts/results.py``) and renders
the command, date, machine and library versions, then every table and note, so the page cannot
carry a figure the script did not print.
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _table(spec: dict) -> nodes.table:
    columns, rows = spec["columns"], spec["rows"]
    table = nodes.table(classes=["benchmark-table"])
    if spec.get("title"):
        table += nodes.title(text=spec["title"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    for _ in columns:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for name in columns:
        entry = nodes.entry()
        entry += nodes.paragraph(text=str(name))
        row += entry
    head += row
    body = nodes.tbody()
    group += body
    for values in rows:
        row = nodes.row()
        for value in values:
            entry = nodes.entry()
            entry += nodes.paragraph(text=_cell(value))
            row += entry
        body += row
    return table


class Benchmark(Directive):
    required_arguments = 1
    has_content = False

    def run(self):
        env = self.state.document.settings.env
        rel, path = env.relfn2path(self.arguments[0], env.docname)
        env.note_dependency(rel)
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise self.error(f"benchmark results {self.arguments[0]}: {exc}") from None
        out = []
        facts = nodes.field_list()
        versions = ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items())
        for name, value in (("command", data["command"]), ("date", data["date"]), ("machine", data["machine"]),
                            ("versions", versions)):
            field = nodes.field()
            field += nodes.field_name(text=name)
            body = nodes.field_body()
            para = nodes.paragraph()
            para += nodes.literal(text=value) if name == "command" else nodes.Text(value)
            body += para
            field += body
            facts += field
        out.append(facts)
        for spec in data.get("tables", []):
            out.append(_table(spec))
        for note in data.get("notes", []):
            out.append(nodes.paragraph(text=note))
        return out


def setup(app):
    app.add_directive("benchmark", Benchmark)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
