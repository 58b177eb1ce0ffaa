"""Lazy module imports for the problem modules, so that listing problems (``sciops problems``,
``sciops --help``) does not import torch, scipy or the solvers.

``lazy_module(name)`` returns the module object at once and executes it on first attribute access
(``importlib.util.LazyLoader``, the mechanism of Scientific Python's SPEC 1). A problem module keeps
what its class body needs (parameter names and choices) in plain literals; a test checks that those
literals equal the solvers' own.
"""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, loaded when one of its attributes is first used (already loaded: as is)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
