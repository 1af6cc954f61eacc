"""An HTTP server that takes every request and never answers it (a proxy stuck upstream): each
handler waits until the server is stopped. ``requests`` counts what it was sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

__all__ = ["SilentHost", "silent_host"]


class SilentHost:
    def __init__(self, url: str) -> None:
        self.url = url
        self.requests: list[tuple[str, str]] = []


@asynccontextmanager
async def silent_host() -> AsyncIterator[SilentHost]:
    stopped = asyncio.Event()
    host: SilentHost

    async def never_answer(request: web.Request) -> web.Response:
        host.requests.append((request.method, request.path))
        await stopped.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never_answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    host = SilentHost(f"http://127.0.0.1:{port}")
    try:
        yield host
    finally:
        stopped.set()
        await runner.cleanup()
