"""Secrets read from the file a flag names (``--api-key-file``, ``--callback-secret-file``).

A file rather than the flag's value: a command line is visible to every local user in the
process list. The secret is the first line, stripped; it never appears in an error message.
"""

from __future__ import annotations

from ._text import printable

__all__ = ["read_secret_file"]


def read_secret_file(path: str, *, flag: str, error: type[Exception]) -> str:
    """The first line of ``path``; ``error`` (a usage error: exit 2) when unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise error(f"{flag} {printable(path)}: cannot be read ({reason})") from None
    if not secret:
        raise error(f"{flag} {printable(path)}: the file is empty")
    return secret
