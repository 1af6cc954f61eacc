"""A token bucket per API key: the sandbox's real rate limit (``Sandbox(rate_limit=...)``)."""

from __future__ import annotations

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """``rate`` requests per second per key, bursts of up to ``burst`` requests.

    Both are in real seconds here; the sandbox passes ``rate_limit / time_scale`` so that a
    limit stated in API seconds compresses with the rest of the clock.
    """

    def __init__(self, *, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float) -> float:
        """Take one token; 0.0 when granted, else the seconds until one is available."""
        tokens, at = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self._rate
