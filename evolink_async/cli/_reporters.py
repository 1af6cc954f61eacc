"""Which reporter a command gets: JSON lines, the rich live view, or plain lines."""

from __future__ import annotations

import sys
from typing import IO

from ._progress import JsonReporter, Reporter

__all__ = ["make_reporter"]


def make_reporter(*, json_lines: bool, stream: IO[str] | None = None) -> Reporter:
    """JSON lines if asked; the rich live view on a terminal when rich is installed; plain lines otherwise."""
    stream = stream or sys.stdout
    if json_lines:
        return JsonReporter(stream)
    if stream.isatty():
        try:
            from ._live import LiveReporter
        except ImportError:  # rich is an optional extra: degrade, never fail
            return Reporter(stream)
        return LiveReporter(stream)
    return Reporter(stream)
