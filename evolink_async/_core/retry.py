"""When to retry a request and how long to wait first (pure decisions, no I/O)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

import attrs

from ..errors import ValidationError
from .checks import MAX_SECONDS, count_at_least, number_at_least

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "is_retryable_status", "parse_retry_after", "retry_from"]

#: Statuses worth another attempt: the server did not do the work, or will answer later.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

_RNG = random.Random()

# A 409 that means "this key was used with another body" will answer the same forever.
_FINAL_CONFLICT_CODES = frozenset({"idempotency_conflict"})


def is_retryable_status(status: int, code: str | None = None) -> bool:
    """The retry decision for an HTTP answer; 400/401/402/403/404/413 are never retried."""
    if status == 409 and code in _FINAL_CONFLICT_CODES:
        return False
    return status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (int or float) or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, honouring ``Retry-After``.

    >>> RetryPolicy(max_retries=5, initial_delay=0.25, max_delay=4.0)
    """

    #: Extra attempts after the first (0 disables retries). A 429 with a ``Retry-After`` is the
    #: server's schedule, not a failed attempt: its retries do not count here (``max_retry_after``
    #: bounds them).
    max_retries: int = attrs.field(default=3, validator=count_at_least(0))
    #: Base of the exponential backoff, in seconds.
    initial_delay: float = attrs.field(default=0.5, validator=number_at_least(0, maximum=MAX_SECONDS))
    #: No computed backoff waits longer than this.
    max_delay: float = attrs.field(default=8.0, validator=number_at_least(0, maximum=MAX_SECONDS))
    #: A ``Retry-After`` longer than this is not waited for: the error is raised instead; nor are
    #: 429s beyond this many seconds of waiting in one call (their ``Retry-After`` summed).
    max_retry_after: float = attrs.field(default=60.0, validator=number_at_least(0, maximum=MAX_SECONDS))

    def __attrs_post_init__(self) -> None:
        if self.initial_delay > self.max_delay:  # the first wait would already be cut to max_delay
            raise ValidationError("initial_delay", f"must not exceed max_delay ({self.max_delay:g})")

    def backoff(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds before retry number ``attempt`` (0-based): "equal jitter" in [d/2, d]."""
        delay = min(self.max_delay, self.initial_delay * (2.0**attempt))
        return delay / 2 + (rng or _RNG).uniform(0, delay / 2)


def retry_from(retry: RetryPolicy | None, max_retries: int | None, *, base: RetryPolicy | None = None) -> RetryPolicy:
    """The policy a client takes from its two ways of saying it (``retry=`` whole, or ``max_retries=``).

    Both at once is refused: which one should win is a guess, and the one silently dropped was
    once the one the caller meant. ``max_retries`` alone changes only that count of ``base``.
    """
    if retry is not None and max_retries is not None:
        raise ValidationError("max_retries", "give max_retries or retry=RetryPolicy(...), not both")
    if retry is not None:
        return retry
    base = RetryPolicy() if base is None else base
    return base if max_retries is None else attrs.evolve(base, max_retries=max_retries)
