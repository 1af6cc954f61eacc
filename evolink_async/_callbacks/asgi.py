"""The receiver as a bare ASGI 3 application: ``fastapi_app.mount("/evolink", receiver.asgi)``.

No framework is imported: Starlette, FastAPI, Quart and plain uvicorn all speak this protocol.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = ["AsgiCallbacks"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AsgiCallbacks:
    def __init__(self, receiver: CallbackReceiver) -> None:
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        token = _token(scope)
        if scope["method"] != "POST":
            await _answer(send, 405)
            return
        if token is None:
            await _answer(send, 404)
            return
        body = await _read(receive, self._receiver.max_body_bytes)
        status = 413 if body is None else await self._receiver.handle(token, body)
        await _answer(send, status)


def _token(scope: Scope) -> str | None:
    path: str = scope.get("path", "")
    # Mounted apps see either the path below the mount (older Starlette) or the full path with
    # the mount in ``root_path`` (newer): strip it in the second case.
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    token = path.strip("/")
    return token if token and "/" not in token else None


async def _read(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int) -> None:
    body = json.dumps({"ok": 200 <= status < 300}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
