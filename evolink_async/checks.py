"""The rules the SDK checks numbers (and paths) by: every option of every client, batch and command follows one.

A command line or a configuration file built on the SDK checks its numbers with the same rules,
and so refuses what the SDK would refuse, with the same words::

    >>> from evolink_async.checks import SECONDS
    >>> SECONDS.check("timeout", float("nan"))
    Traceback (most recent call last):
    evolink_async.errors.ValidationError: timeout: must be a finite number, got nan
"""

from ._core.checks import (
    COUNT,
    CREDITS,
    DELAY,
    MAX_COUNT,
    MAX_SECONDS,
    PORT,
    PROBABILITY,
    SCALE,
    SECONDS,
    NumberRule,
    check_path,
)

__all__ = [
    "COUNT", "CREDITS", "DELAY", "MAX_COUNT", "MAX_SECONDS", "PORT", "PROBABILITY", "SCALE", "SECONDS", "NumberRule",
    "check_path",
]  # fmt: skip
