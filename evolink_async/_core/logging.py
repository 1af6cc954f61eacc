"""The package logger: every record scrubbed of key-shaped strings and carrying structured fields.

Each record of ``evolink_async`` (and of its child loggers made by :func:`child_logger`) has the
attributes ``task_id``, ``request_id``, ``attempt``, ``key`` and ``model`` (``None`` where not
known), so a JSON formatter picks them up without knowing this SDK. A call site passes what it
knows in ``extra=``; the rest comes from the context (``LOG_CONTEXT``: the fan-out input being
submitted, ``LOG_TASK_ID``: the task being queried).

``EVOLINK_LOG=debug|info|warning`` turns the SDK's logging on without code: a stderr handler with
the fields appended as ``name=value``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar

from .secret import RedactingFilter, redact

__all__ = [
    "LOG_CONTEXT",
    "LOG_FIELDS",
    "LOG_TASK_ID",
    "FieldsFilter",
    "FieldsFormatter",
    "child_logger",
    "configure_from_env",
    "logger",
]

#: The structured fields every record carries.
LOG_FIELDS = ("task_id", "request_id", "attempt", "key", "model")
#: Fields of what this context works on (set with a token and reset, or in a task of its own).
LOG_CONTEXT: ContextVar[Mapping[str, object] | None] = ContextVar("evolink_log_context", default=None)
#: The task a tracker worker is querying (its own variable: one ``set`` per query, no dict).
LOG_TASK_ID: ContextVar[str | None] = ContextVar("evolink_log_task_id", default=None)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class FieldsFilter(logging.Filter):
    """Gives every record the ``LOG_FIELDS`` attributes, redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        context = LOG_CONTEXT.get()
        for name in LOG_FIELDS:
            value = fields.get(name)
            if value is None:
                if name == "task_id":
                    value = LOG_TASK_ID.get()
                if value is None and context is not None:
                    value = context.get(name)
            if value is not None and not isinstance(value, int | float):  # bool is an int
                value = redact(str(value))
            fields[name] = value
        return True


class FieldsFormatter(logging.Formatter):
    """``time level logger: message`` and the known fields as ``name=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        known = [f"{name}={record.__dict__[name]}" for name in LOG_FIELDS if record.__dict__.get(name) is not None]
        return f"{text} [{' '.join(known)}]" if known else text


def _instrument(target: logging.Logger | logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
    if not any(isinstance(f, FieldsFilter) for f in target.filters):
        target.addFilter(FieldsFilter())


def child_logger(name: str) -> logging.Logger:
    """``evolink_async.<name>``, with the package logger's redaction and fields (a logger's
    filters do not apply to its children's records)."""
    child = logging.getLogger(f"evolink_async.{name}")
    _instrument(child)
    return child


def configure_from_env(environ: Mapping[str, str] = os.environ) -> logging.Handler | None:
    """With ``EVOLINK_LOG`` set, a stderr handler on the package logger at that level."""
    value = environ.get("EVOLINK_LOG", "").strip().lower()
    if not value:
        return None
    level = _LEVELS.get(value)
    if level is None:
        print(f"evolink_async: EVOLINK_LOG={value!r} ignored (use debug, info or warning)", file=sys.stderr)
        return None
    if any(getattr(h, "evolink_log", False) for h in logger.handlers):
        return None  # already configured (the module imported twice, e.g. in a test)
    handler = logging.StreamHandler()
    handler.evolink_log = True  # type: ignore[attr-defined]
    handler.setFormatter(FieldsFormatter())
    _instrument(handler)  # records of child loggers reach it without the package logger's filters
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


logger = logging.getLogger("evolink_async")
_instrument(logger)
logger.addHandler(logging.NullHandler())
configure_from_env()
