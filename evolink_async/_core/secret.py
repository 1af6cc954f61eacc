"""The API key, wrapped so that it cannot leak through a repr, a log line or an exception."""

from __future__ import annotations

import itertools
import logging
import re
import weakref
from typing import Final

__all__ = ["REDACTED", "RedactingFilter", "Secret", "redact", "scrub_known"]

REDACTED: Final = "***"

# Every key wrapped in this process and still in use, whatever its shape: log records and
# messages are scrubbed of them too, so a key that is not ``sk-evo-`` shaped is still never
# written out. Held weakly: a server that makes a client per tenant and drops it does not make
# every later message scan a growing list. Shorter values are not kept: scrubbing a 1-character
# "key" would mangle every message (keys are checked to be >= 8). Keyed by identity, not by value:
# secrets compare equal by value, and a WeakSet would keep only the first of two equal keys and
# forget the value once that first one died, while the second is still in use.
_LIVE_SECRETS: weakref.WeakValueDictionary[int, Secret] = weakref.WeakValueDictionary()
_MIN_REMEMBERED = 8
# The distinct values of ``_LIVE_SECRETS``, rebuilt only after a key was added or died: every
# API answer's request id is scrubbed, and walking the weak dictionary each time was a visible
# share of a query's CPU. ``_generation`` tells a rebuild that raced with a key being made or
# dying to not keep its (then stale) result.
_live_values: tuple[str, ...] | None = ()
_GENERATIONS = itertools.count(1)
_generation = 0

# Defence in depth for log records: anything shaped like an Evolink key or a bearer token.
_KEY_SHAPES = re.compile(r"(sk-evo-)[A-Za-z0-9_\-]+|(Bearer\s+)\S+", re.IGNORECASE)


class Secret:
    """A string that only :meth:`reveal` gives back; ``repr`` and ``str`` show ``***``."""

    __slots__ = ("__weakref__", "_encoded", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._encoded = value.encode("utf-8", "surrogatepass")
        if len(value) >= _MIN_REMEMBERED:
            _LIVE_SECRETS[id(self)] = self
            _forget_live_values()
            weakref.finalize(self, _forget_live_values)

    def reveal(self) -> str:
        """The plain value. Use it inline where it is needed (``f"Bearer {key.reveal()}"``), never
        bound to a local: error reporters record the locals of every frame on a traceback."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with this secret replaced by ``***`` (the value never leaves this object)."""
        if self._value and self._value in text:
            return text.replace(self._value, REDACTED)
        return text

    def scrub_bytes(self, raw: bytes) -> bytes:
        """``raw`` with this secret's UTF-8 bytes replaced by ``***``."""
        if self._encoded and self._encoded in raw:
            return raw.replace(self._encoded, REDACTED.encode())
        return raw

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


def _forget_live_values() -> None:
    global _live_values, _generation
    _generation = next(_GENERATIONS)  # ``next`` on a count is atomic; ``+= 1`` is not everywhere
    _live_values = None


def _known_values() -> tuple[str, ...]:
    global _live_values
    values = _live_values
    if values is None:
        generation = _generation
        values = tuple({live._value for live in list(_LIVE_SECRETS.values())})
        _live_values = values
        # Checked after storing, not before: a key made between a check and the store would
        # otherwise stay out of the cache until the next change, and go unscrubbed.
        if generation != _generation:
            _live_values = None
    return values


def redact(text: str, *secrets: str | Secret | None) -> str:
    """``text`` with each secret, every key this process holds, and anything key-shaped as ``***``."""
    text = _KEY_SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)
    for secret in secrets:
        if isinstance(secret, Secret):
            text = secret.scrub(text)
        elif secret and secret in text:
            text = text.replace(secret, REDACTED)
    return scrub_known(text)


def scrub_known(text: str) -> str:
    """``text`` without any key this process holds (cheaper than :func:`redact`: no pattern)."""
    for value in _known_values():
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs key-shaped strings from every record of the ``evolink_async`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
