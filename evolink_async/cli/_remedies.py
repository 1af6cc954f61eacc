"""The command line's names for the library's remedies: ``retry_failed=True`` is ``--retry-failed`` here.

A library message names the library's own option (``errors.Remedy``), and the error, the
``FailedInput`` or the ``BatchEvent`` carries which one; every line the CLI prints from them goes
through :func:`cli_message`, so a library user is never told of a flag, nor a CLI user of a
keyword argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from ..batch import BatchEvent
from ..errors import Remedy

__all__ = ["FLAGS", "cli_event", "cli_failed_json", "cli_message"]

#: Each remedy as the command line spells it (with the value after it, where the message gives one).
FLAGS: Mapping[Remedy, str] = MappingProxyType({
    Remedy.RETRY_FAILED: "--retry-failed",
    Remedy.NEW_JOURNAL: "--new-journal",
    Remedy.FOLLOW_SYMLINKS: "--follow-symlinks",
    Remedy.RESUBMIT_UNCERTAIN: "--resubmit-uncertain",
    Remedy.NORMALIZE: "--normalize",
    Remedy.MAX_CREDITS: "--max-credits",
    Remedy.OUTPUT_DIR: "--out",
    Remedy.ROOT: "--root",
    Remedy.JOURNAL_OUTAGE: "--journal-outage ",
})  # fmt: skip


def cli_message(message: str, remedy: Remedy | str | None) -> str:
    """``message`` with its remedy named as the CLI's flag.

    The remedy is the last thing a library message names (outside text, such as a key or a server
    message, comes before it): the last occurrence is the library's own, whatever a file is called.
    """
    if remedy is None:
        return message
    remedy = Remedy(remedy)
    before, found, after = message.rpartition(remedy.value)
    return f"{before}{FLAGS[remedy]}{after}" if found else message


def cli_event(event: BatchEvent) -> BatchEvent:
    """The event as the CLI shows it: its message in the CLI's terms (and no library remedy left)."""
    if event.remedy is None:
        return event
    message = None if event.message is None else cli_message(event.message, event.remedy)
    return attrs.evolve(event, message=message, remedy=None)


def cli_failed_json(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``FailedInput`` objects as JSON (a summary's ``failed``, a plan's ``invalid``), in the CLI's terms."""
    shown = []
    for item in items:
        rest = {k: v for k, v in item.items() if k != "remedy"}
        shown.append(rest | {"message": cli_message(item["message"], item.get("remedy"))})
    return shown
