"""Checks of numeric options: the right type, finite, in range, or a ``ValidationError`` naming them.

The one place for the numeric rules of the library and the command line alike: a library field
validates with a rule's :meth:`NumberRule.validator`, a CLI option parses its text with the same
rule's :meth:`NumberRule.parse`, so ``WorkerOptions(lease=...)`` and ``--lease`` cannot drift apart.

``bool`` is refused where a number is expected (``True`` is an ``int`` to Python, never a
timeout to a person), and NaN everywhere: a NaN deadline compares false with every time, which
once left the tracker spinning on a task it could neither query nor expire, and a NaN budget
(``spent > nan`` is never true) switched the budget off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ..errors import ValidationError

__all__ = [
    "COUNT",
    "CREDITS",
    "DELAY",
    "MAX_COUNT",
    "MAX_SCALE",
    "MAX_SECONDS",
    "MIN_SCALE",
    "SCALE",
    "SECONDS",
    "PROBABILITY",
    "PORT",
    "NumberRule",
    "check_count",
    "check_number",
    "check_path",
    "check_timeout",
    "count_at_least",
    "number_at_least",
]

#: The longest duration any option takes, in seconds (a year). Past it a number is a typo, and
#: waits overflow long before infinity does (a thread's timeout, a PostgreSQL interval).
MAX_SECONDS = 366 * 24 * 3600.0
#: The largest count (tasks in flight, inputs per claim, retries): fits a PostgreSQL ``integer``.
MAX_COUNT = 2**31 - 1
#: The range of a clock's scale (``--poll-scale``, ``PollPolicy.scaled``): below it a poll interval
#: is a busy loop; above it the poll policy's own bounds overflow.
MIN_SCALE, MAX_SCALE = 1e-4, 1e3


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_number(
    field: str, value: object, *, minimum: float = 0.0, above: bool = False, maximum: float | None = None
) -> float:
    """A finite real ``>= minimum`` (``> minimum`` with ``above``) and ``<= maximum`` when given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond any float, such as 10**400
        finite = False
    if not finite:
        raise ValidationError(field, f"must be a finite number, got {_shown(value)}")
    if value < minimum or (above and value == minimum):
        raise ValidationError(field, f"must be {'greater than' if above else 'at least'} {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValidationError(field, f"must be at most {maximum:g}, got {_shown(value)}")
    return float(value)


def check_timeout(field: str, value: object) -> float | None:
    """``None`` (no limit) or a finite number of seconds above zero (at most a year)."""
    return None if value is None else check_number(field, value, above=True, maximum=MAX_SECONDS)


def check_count(field: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number ``>= minimum`` and ``<= maximum`` when given (an int, not a bool or a float).

    No maximum by default: a size in bytes may pass ``MAX_COUNT``; a count of things gives one.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be a whole number, got {type(value).__name__}")
    if value < minimum:
        raise ValidationError(field, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValidationError(field, f"must be at most {maximum}, got {_shown(value)}")
    return value


@attrs.frozen
class NumberRule:
    """One numeric rule, for a library field and a command-line option alike.

    >>> SECONDS.check("lease", 30.0)
    30.0
    >>> SECONDS.parse("--lease", "nan")     # ValidationError: --lease: must be a finite number, got nan
    """

    whole: bool = False
    minimum: float = 0.0
    #: ``minimum`` itself is refused (a duration of zero seconds).
    above: bool = False
    maximum: float | None = None

    def check(self, field: str, value: object) -> Any:
        if self.whole:
            maximum = None if self.maximum is None else int(self.maximum)
            return check_count(field, value, minimum=int(self.minimum), maximum=maximum)
        return check_number(field, value, minimum=self.minimum, above=self.above, maximum=self.maximum)

    def check_optional(self, field: str, value: object) -> Any:
        return None if value is None else self.check(field, value)

    def parse(self, field: str, text: str) -> Any:
        """The value of ``text`` (a command-line option's), checked; ``ValidationError`` otherwise."""
        stripped = text.strip()
        try:
            # int(): whole numbers only ("1.5" and "1e3" are refused, not rounded); ASCII digits only.
            value: int | float = int(stripped, 10) if self.whole and stripped.isascii() else float(stripped)
        except (ValueError, OverflowError):
            kind = "a whole number" if self.whole else "a number"
            raise ValidationError(field, f"must be {kind}, got {_shown(text)!r}") from None
        return self.check(field, value)

    def argparse_type(self, name: str) -> Callable[[str], Any]:
        """An argparse ``type``: the option's text parsed by :meth:`parse` (argparse names the option).

        Here, not in the CLI, so that ``evolink`` and ``python -m evolink_async.sandbox`` (an app of
        its own, which the CLI imports) parse their options by the same rules.
        """
        import argparse  # only a command line needs it, not ``import evolink_async``

        def parse(text: str) -> Any:
            try:
                return self.parse("", text)
            except ValidationError as exc:  # "argument --lease: must be ..."; the text is shown by repr
                raise argparse.ArgumentTypeError(exc.rule) from None

        parse.__name__ = name  # what argparse calls the type in its own messages
        return parse

    def validator(self) -> Any:
        """An attrs validator applying this rule to the attribute (named after it)."""

        def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
            self.check(attribute.name, value)

        return validate

    def optional(self) -> Any:
        """An attrs validator: None, or this rule."""

        def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
            self.check_optional(attribute.name, value)

        return validate


#: A duration in seconds: above zero, at most a year (timeouts, leases, poll intervals).
SECONDS = NumberRule(above=True, maximum=MAX_SECONDS)
#: A count of things at once (tasks in flight, inputs per claim): 1 or more.
COUNT = NumberRule(whole=True, minimum=1, maximum=MAX_COUNT)
#: A credit budget: zero or more, finite (zero submits nothing).
CREDITS = NumberRule(minimum=0.0)
#: A wait that may be zero, in seconds, at most a year (a sandbox's slow answer, a hook's delay).
DELAY = NumberRule(minimum=0.0, maximum=MAX_SECONDS)
#: A probability, 0 to 1 (a sandbox's fault rates).
PROBABILITY = NumberRule(minimum=0.0, maximum=1.0)
#: A TCP port to listen on: 0 (any free one) to 65535.
PORT = NumberRule(whole=True, minimum=0, maximum=65535)
#: The factor of a scaled clock (``--poll-scale 0.01`` polls 100x as often, for a sandbox that fast).
SCALE = NumberRule(minimum=MIN_SCALE, maximum=MAX_SCALE)


def number_at_least(minimum: float, *, above: bool = False, maximum: float | None = None) -> Any:
    """An attrs validator: :func:`check_number` on the attribute."""
    return NumberRule(minimum=minimum, above=above, maximum=maximum).validator()


def count_at_least(minimum: int, *, maximum: int | None = MAX_COUNT) -> Any:
    """An attrs validator: :func:`check_count` on the attribute."""
    return NumberRule(whole=True, minimum=minimum, maximum=maximum).validator()


def check_path(field: str, value: object, *, what: str = "a folder path") -> Path:
    """``value`` as a ``Path``, or a ``ValidationError`` naming ``field``: a string or path-like only
    (``Path(1.5)`` is a TypeError), and never ``""`` (``Path("")`` is the current folder: a path
    left empty would put results, or a journal's files, where the command happened to run)."""
    if not isinstance(value, str | os.PathLike) or os.fspath(value) in ("", b""):
        raise ValidationError(field, f"must be {what}, got {value!r}")
    return Path(value)
