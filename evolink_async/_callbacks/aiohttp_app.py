"""The receiver as an aiohttp application (``app.add_subapp(prefix, receiver.aiohttp_app())``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = ["build_app"]


def build_app(receiver: CallbackReceiver) -> web.Application:
    async def take(request: web.Request) -> web.Response:
        body = await _read(request, receiver.max_body_bytes)
        status = 413 if body is None else await receiver.handle(request.match_info["token"], body)
        return web.json_response({"ok": 200 <= status < 300}, status=status)

    app = web.Application(client_max_size=receiver.max_body_bytes + 1)
    app.router.add_post("/{token}", take)
    return app


async def _read(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
