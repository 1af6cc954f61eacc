"""The relay as a bare ASGI 3 application: ``fastapi_app.mount("/progress", relay.asgi)``.

No framework is imported: Starlette, FastAPI, Quart and plain uvicorn all speak this protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

import anyio

from .._core.asgi import Receive, Scope, Send, path_below_mount, send_json, serve_lifespan
from .channels import SSE_HEADERS, parse_last_event_id

if TYPE_CHECKING:
    from .relay import ProgressRelay

__all__ = ["AsgiRelay"]


class AsgiRelay:
    def __init__(self, relay: ProgressRelay) -> None:
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        relay = self._relay
        task_id = _task_id(scope)
        if scope["method"] != "GET":
            await _refuse(send, 405, "method not allowed")
            return
        if task_id is None:
            await _refuse(send, 404, "no such path")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = query.get("token", [None])[0]
        if not relay.authorized(task_id, token):
            await _refuse(send, 403, "bad or expired token")
            return
        if not relay.running:
            await _refuse(send, 503, "the relay is not running (enter it with 'async with')")
            return
        if relay.full:
            await _refuse(send, 503, "too many viewers")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        last_id = parse_last_event_id(headers.get("last-event-id") or query.get("lastEventId", [None])[0])
        await send({"type": "http.response.start", "status": 200, "headers": _encode(SSE_HEADERS)})
        async with anyio.create_task_group() as group:
            # The viewer's stream ends at the terminal event, or when the page goes away.
            group.start_soon(_until_disconnect, receive, group.cancel_scope)
            async with relay.viewer(task_id, last_event_id=last_id) as frames:
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()


async def _until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _task_id(scope: Scope) -> str | None:
    task_id = unquote(path_below_mount(scope))
    return task_id if task_id and "/" not in task_id else None


def _encode(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers]


async def _refuse(send: Send, status: int, reason: str) -> None:
    await send_json(send, status, {"error": reason})
