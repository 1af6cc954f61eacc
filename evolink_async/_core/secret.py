"""The API key, wrapped so that it cannot leak through a repr, a log line or an exception."""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["REDACTED", "Secret", "RedactingFilter", "redact"]

REDACTED: Final = "***"

# Defence in depth for log records: anything shaped like an Evolink key or a bearer token.
_KEY_SHAPES = re.compile(r"(sk-evo-)[A-Za-z0-9_\-]+|(Bearer\s+)\S+", re.IGNORECASE)


class Secret:
    """A string that only :meth:`reveal` gives back; ``repr`` and ``str`` show ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key to wherever the pickle goes (a file, a queue).
        raise TypeError("Secret objects cannot be pickled")


def redact(text: str, *secrets: str) -> str:
    """``text`` with every occurrence of each secret (and anything key-shaped) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Scrubs key-shaped strings from every record of the ``evolink_async`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
