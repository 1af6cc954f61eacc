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

__all__ = ["FLAGS", "cli_event", "cli_failed_json", "cli_field", "cli_message", "key_variable"]

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
    Remedy.PROMPT_SOURCE: "--protocol midjourney",
    Remedy.REQUEST_SOURCE: "--protocol evolink (the default)",
})  # fmt: skip


#: Library fields whose value came from an option of the command line: (the option's ``dest``, the flag).
_FIELD_OPTIONS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "pattern": ("glob", "--glob"),
    "base_url": ("base_url", "--base-url"),
    "files_base_url": ("files_base_url", "--files-base-url"),
    "max_in_flight": ("max_in_flight", "--max-in-flight"),
    "max_credits": ("max_credits", "--max-credits"),
    "timeout": ("timeout", "--timeout"),
    "model": ("model", "--model"),
    "api_key": ("api_key", "--api-key"),
    "input_dir": ("input_dir", "DIR"),
    "output_dir": ("out", "--out"),
    "out_dir": ("out", "--out"),
    "root": ("root", "--root"),
    "wal": ("wal", "--wal"),
})  # fmt: skip


def key_variable(args: object) -> str:
    """The environment variable the command's API key comes from (a Midjourney command sets its own)."""
    return str(getattr(args, "key_env", "EVOLINK_API_KEY"))


def cli_field(field: str, args: object) -> str:
    """A ``ValidationError``'s field as the user gave it: the flag, the key file or the variable.

    Only when the command has that option and the user set it; a value taken from the environment
    or a default keeps the library's name (the message still says what is wrong with it).
    """
    if field == "api_key" and getattr(args, "api_key_file", None) is not None:
        return "--api-key-file"
    if field == "api_key" and getattr(args, "api_key", None) is None:
        return f"${key_variable(args)}"
    dest, flag = _FIELD_OPTIONS.get(field, (None, None))
    if dest is None or flag is None or getattr(args, dest, None) is None:
        return field
    return flag


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
