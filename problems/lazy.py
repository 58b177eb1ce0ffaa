"""Deferred module imports for the problem modules, so that listing problems (``sciops problems``,
``sciops --help``) does not import torch, scipy or the solvers.

``lazy_module(name)`` returns a stand-in whose attributes are the module's, the module being
imported (an ordinary import) when the first attribute is used. Nothing is registered in
``sys.modules`` before that, so a module imported early elsewhere, or one whose import is circular
(torch's own, the shallow-water solver's), imports exactly as without the stand-in. A problem
module keeps what its class body needs (parameter names and choices) in plain literals; a test
checks that those literals equal the solvers' own.
"""
from __future__ import annotations

from importlib import import_module


class lazy_module:  # noqa: N801  (used like the module it stands for)
    """The module ``name``, imported when one of its attributes is first used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"
