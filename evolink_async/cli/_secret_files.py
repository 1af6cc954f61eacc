"""Secrets read from the file a flag names (``--api-key-file``, ``--callback-secret-file``).

A file rather than the flag's value: a command line is visible to every local user in the
process list. The secret is the first line, stripped; it never appears in an error message.
At most :data:`MAX_SECRET_FILE_BYTES` are read: ``--api-key-file /dev/zero`` (or a mistyped
path to a huge file) must end in a clear error, not in a read until memory runs out.
"""

from __future__ import annotations

from ._text import printable

__all__ = ["MAX_SECRET_FILE_BYTES", "read_secret_file"]

#: The most a secret file may hold (a key is tens of bytes; a PEM bundle a few KiB).
MAX_SECRET_FILE_BYTES = 64 * 1024


def read_secret_file(path: str, *, flag: str, error: type[Exception]) -> str:
    """The first line of ``path``; ``error`` (a usage error: exit 2) when unreadable, too big or empty."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"{flag} {printable(path)}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise error(f"{flag} {printable(path)}: larger than {MAX_SECRET_FILE_BYTES // 1024} KiB; expected a file "
                    "whose first line is the secret")  # fmt: skip
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{flag} {printable(path)}: cannot be read (not UTF-8 text)") from None
    secret = text.split("\n", 1)[0].strip()
    if not secret:
        raise error(f"{flag} {printable(path)}: the file is empty")
    return secret
