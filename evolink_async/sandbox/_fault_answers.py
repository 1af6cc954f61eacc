"""A drawn fault applied to one HTTP request: the same for both protocols' servers.

Only what an error looks like differs between them (Evolink's error object, a Spring-style body or
a Midjourney proxy's envelope), so each server passes its own :class:`ErrorAnswers`; when a fault
strikes (before the request takes effect, or after it did, by dropping or garbling the answer) is
decided here, in one place.
"""

from __future__ import annotations

from typing import Protocol

import anyio
from aiohttp import web

from ._config import format_seconds
from ._faults import FaultDecision, ServerErrorKind
from ._http import drop_connection
from ._state import SandboxState

__all__ = ["ErrorAnswers", "fault_after", "fault_before"]


class ErrorAnswers(Protocol):
    """How one protocol's server answers a server error and a rate limit (``retry_after``: header text)."""

    def server_error(self, request: web.Request, kind: ServerErrorKind, retry_after: str) -> web.Response: ...

    def rate_limited(self, request: web.Request, retry_after: str) -> web.Response: ...


async def fault_before(
    state: SandboxState, request: web.Request, answers: ErrorAnswers
) -> tuple[FaultDecision, web.Response | None]:
    """Draw this request's fault (counted in the ledger); the answer here when it preempts the request."""
    decision = state.faults.decide()
    config, counts = state.config, state.ledger.faults
    if decision.slow:
        counts["slow"] += 1
        await anyio.sleep(config.real(config.faults.slow_delay))
    if decision.kind != "none":
        counts[decision.kind] += 1
    retry_after = format_seconds(config.real(decision.retry_after))
    if decision.kind == "server_error":
        return decision, answers.server_error(request, decision.server_error, retry_after)
    if decision.kind == "rate_limit":
        return decision, answers.rate_limited(request, retry_after)
    if decision.kind == "reset_before":
        return decision, drop_connection(request)
    return decision, None


def fault_after(request: web.Request, decision: FaultDecision, response: web.Response) -> web.Response:
    """Faults that strike once the request took effect: the answer dropped, or cut in half."""
    if decision.kind == "reset_after":
        return drop_connection(request)
    if decision.kind == "malformed" and response.status == 200 and isinstance(response.body, bytes) and response.body:
        text = response.body
        return web.Response(body=text[: max(1, len(text) // 2)], status=200, content_type="application/json")
    return response
