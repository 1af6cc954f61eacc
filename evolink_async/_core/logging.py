"""The package logger. Every record passes through a filter that scrubs key-shaped strings."""

from __future__ import annotations

import logging

from .secret import RedactingFilter

logger = logging.getLogger("evolink_async")
if not any(isinstance(f, RedactingFilter) for f in logger.filters):
    logger.addFilter(RedactingFilter())
logger.addHandler(logging.NullHandler())
