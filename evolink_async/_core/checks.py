"""Checks of numeric options: the right type, finite, in range, or a ``ValidationError`` naming them.

``bool`` is refused where a number is expected (``True`` is an ``int`` to Python, never a
timeout to a person), and NaN everywhere: a NaN deadline compares false with every time, which
once left the tracker spinning on a task it could neither query nor expire.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from ..errors import ValidationError

__all__ = ["check_count", "check_number", "check_timeout", "count_at_least", "number_at_least"]


def check_number(field: str, value: object, *, minimum: float = 0.0, above: bool = False) -> float:
    """A finite real ``>= minimum`` (``> minimum`` with ``above``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond any float, such as 10**400
        finite = False
    if not finite:
        raise ValidationError(field, f"must be a finite number, got {str(value)[:40]}")
    if value < minimum or (above and value == minimum):
        raise ValidationError(field, f"must be {'greater than' if above else 'at least'} {minimum:g}, got {value!r}")
    return float(value)


def check_timeout(field: str, value: object) -> float | None:
    """``None`` (no limit) or a finite number of seconds above zero."""
    return None if value is None else check_number(field, value, above=True)


def check_count(field: str, value: object, *, minimum: int = 1) -> int:
    """A whole number ``>= minimum`` (an int, not a bool or a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be a whole number, got {type(value).__name__}")
    if value < minimum:
        raise ValidationError(field, f"must be at least {minimum}, got {value}")
    return value


def number_at_least(minimum: float, *, above: bool = False) -> Any:
    """An attrs validator: :func:`check_number` on the attribute."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_number(attribute.name, value, minimum=minimum, above=above)

    return validate


def count_at_least(minimum: int) -> Any:
    """An attrs validator: :func:`check_count` on the attribute."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_count(attribute.name, value, minimum=minimum)

    return validate
