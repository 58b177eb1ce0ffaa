"""Type checks of values users set (operator hyperparameters, training settings), so that a wrong
type is a one-line error naming the value instead of a TypeError deep inside a constructor.

Conventions: a bool is not an integer, an integer is a number (it fits a float setting).
"""
from __future__ import annotations

EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fits(value, kind: type) -> bool:
    """Whether ``value`` is a ``kind`` (one of ``EXPECTED``'s keys) under the conventions above."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return is_int(value)
    if kind is float:
        return is_int(value) or isinstance(value, float)
    return isinstance(value, kind)


def kind_of(default) -> type | None:
    """The ``EXPECTED`` type of a default value (bool before int: a bool is an int), or None."""
    return next((t for t in EXPECTED if isinstance(default, t)), None)
