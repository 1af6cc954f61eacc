"""The receiver as a bare ASGI 3 application: ``fastapi_app.mount("/evolink", receiver.asgi)``.

No framework is imported: Starlette, FastAPI, Quart and plain uvicorn all speak this protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.asgi import Receive, Scope, Send, path_below_mount, send_json, serve_lifespan

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = ["AsgiCallbacks"]

class AsgiCallbacks:
    def __init__(self, receiver: CallbackReceiver) -> None:
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
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
    token = path_below_mount(scope)
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
    await send_json(send, status, {"ok": 200 <= status < 300})
