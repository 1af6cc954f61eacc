"""Per-request fault decisions, drawn from one seeded stream in request order.

Each request of the two task endpoints draws exactly four numbers, whatever is decided, so the
n-th request of a seeded run always gets the same decision no matter which faults are enabled
or what the earlier requests were answered.
"""

from __future__ import annotations

import random
from typing import Literal

import attrs

from ._config import Faults

__all__ = ["FaultDecision", "FaultInjector", "ServerErrorKind", "SERVER_ERRORS"]

FaultKind = Literal["none", "server_error", "rate_limit", "reset_before", "reset_after", "malformed"]


@attrs.frozen
class ServerErrorKind:
    status: int
    code: str
    type: str
    message: str


SERVER_ERRORS = (
    ServerErrorKind(500, "internal_error", "internal_server_error", "Internal server error (sandbox fault)."),
    ServerErrorKind(502, "upstream_error", "upstream_error", "Bad gateway (sandbox fault)."),
    ServerErrorKind(503, "service_unavailable", "service_unavailable_error", "Service unavailable (sandbox fault)."),
)


@attrs.frozen(kw_only=True)
class FaultDecision:
    """What to do to one request. ``retry_after`` is in API seconds (scale it before sending)."""

    kind: FaultKind = "none"
    slow: bool = False
    server_error: ServerErrorKind = SERVER_ERRORS[0]
    retry_after: float = 1.0


NO_FAULT = FaultDecision()


class FaultInjector:
    """Decides, request by request, which fault of ``faults`` to inject."""

    def __init__(self, faults: Faults, *, seed: int) -> None:
        self._faults = faults
        self._rng = random.Random(f"{seed}/faults")
        # Order matters: it is the partition of [0, 1) the main draw falls into.
        self._bands: tuple[tuple[FaultKind, float], ...] = (
            ("server_error", faults.server_error_rate),
            ("rate_limit", faults.rate_limit_rate),
            ("reset_before", faults.reset_before_rate),
            ("reset_after", faults.reset_after_rate),
            ("malformed", faults.malformed_rate),
        )

    def decide(self) -> FaultDecision:
        main, slow, which, wait = (self._rng.random() for _ in range(4))
        kind: FaultKind = "none"
        edge = 0.0
        for candidate, rate in self._bands:
            edge += rate
            if main < edge:
                kind = candidate
                break
        low, high = self._faults.retry_after
        return FaultDecision(
            kind=kind,
            slow=slow < self._faults.slow_rate,
            server_error=SERVER_ERRORS[int(which * len(SERVER_ERRORS))],
            retry_after=low + (high - low) * wait,
        )
