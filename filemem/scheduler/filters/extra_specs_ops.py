"""nova's extra_specs_ops.match: does a host's value satisfy a flavor's requirement (pure)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any


def _floats(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def check(value: str, wanted: str) -> bool:
        try:
            return compare(float(value), float(wanted))
        except ValueError:
            # nova raises here and the host fails; a host whose metadata is not a number
            # simply does not match a numeric requirement.
            return False

    return check


# The operators of nova/scheduler/filters/extra_specs_ops.py; "<or>" is handled in match().
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": _floats(operator.ge),  # nova's "=" means "at least"
    "<in>": lambda value, wanted: wanted in value,
    "<all-in>": lambda value, wanted: all(item in value for item in wanted),
    "==": _floats(operator.eq),
    "!=": _floats(operator.ne),
    ">=": _floats(operator.ge),
    "<=": _floats(operator.le),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}
OR = "<or>"


def _any_of(value: str, words: Sequence[str]) -> bool:
    """ "<or> v1 <or> v2": the words after the first <or>, every other one a value."""
    return value in words[::2]


def match(value: str | None, requirement: str) -> bool:
    """Whether `value` satisfies `requirement`, e.g. "s== ssd", "<in> fast", ">= 4", "ssd".

    A requirement whose first word is no operator is compared verbatim, as in nova.
    """
    words = requirement.split()
    op = words[0] if words else None
    method = _OPERATORS.get(op) if op is not None else None
    if op != OR and method is None:
        return value == requirement
    if value is None:
        return False
    if op == OR:
        return _any_of(value, words[1:])
    if len(words) < 2:
        return False
    if op == "<all-in>":
        return method is not None and method(value, words[1:])
    return method is not None and method(value, words[1])
