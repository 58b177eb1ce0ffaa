"""Render sciops docstrings verbatim in the API reference.

The docstrings of sciops are written as plain text for readers of the source and of ``help()``:
ASCII mathematics (``|x|``, ``a^2``, ``r^T L^-1 r``), aligned diagrams and indented lists, which
reStructuredText would misread (``|x|`` is a substitution there, ``*`` emphasis). They are shown
as preformatted text, exactly as written. A module converted to numpydoc / Google style is listed
in ``RST_MODULES`` (in docs/conf.py: ``plain_docstrings_rst_modules``); its docstrings then go
through napoleon and are rendered as reStructuredText.
"""
from __future__ import annotations

_ORIGINAL: dict[tuple[str, str], list[str]] = {}


def _rst(app, name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in app.config.plain_docstrings_rst_modules)


def _stash(app, what, name, obj, options, lines):
    _ORIGINAL[(what, name)] = list(lines)


def _verbatim(app, what, name, obj, options, lines):
    original = _ORIGINAL.pop((what, name), None)
    if _rst(app, name) or original is None:
        return
    while original and not original[-1].strip():
        original.pop()
    if not original:
        lines[:] = []
        return
    lines[:] = [".. code-block:: text", ""] + [("   " + line) if line.strip() else "" for line in original] + [""]


def setup(app):
    app.add_config_value("plain_docstrings_rst_modules", [], "env")
    app.connect("autodoc-process-docstring", _stash, priority=100)   # before napoleon (500)
    app.connect("autodoc-process-docstring", _verbatim, priority=900)  # after it
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
