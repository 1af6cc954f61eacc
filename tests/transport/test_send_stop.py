"""``SEND_STOP``: once the caller that set it stops, a request that spends (a submit, an upload) is
not sent; every other request (a query, a lookup by POST) still is. Against a real local server."""

from __future__ import annotations

import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async._core.transport import SEND_STOP, SendStop
from tests.helpers.hostile import client_for, hostile_server, json_answer


async def _answer(_request: web.Request) -> web.StreamResponse:
    return json_answer({"ok": True})


async def test_a_stopped_caller_sends_nothing_that_spends_and_everything_else() -> None:
    async with hostile_server(_answer) as server, client_for(server) as client:
        transport = client._transport  # the seam under test: below the clients
        stop = SendStop()
        token = SEND_STOP.set(stop)
        try:
            await transport.request("POST", f"{server.url}/spend", json_body={}, retry_safe=True, spends=True)
            stop.stopped = True
            with pytest.raises(evolink.NotSubmittedError, match="was not sent: the caller stopped"):
                await transport.request("POST", f"{server.url}/spend", json_body={}, retry_safe=True, spends=True)
            await transport.request("POST", f"{server.url}/look-up", json_body={}, retry_safe=True)
            await transport.request("GET", f"{server.url}/query", retry_safe=True)
        finally:
            SEND_STOP.reset(token)
        # Outside the stopped caller's context, spending goes out again.
        await transport.request("POST", f"{server.url}/spend", json_body={}, retry_safe=True, spends=True)
    assert server.requests == {"POST /spend": 2, "POST /look-up": 1, "GET /query": 1}
