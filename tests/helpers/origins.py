"""Two origins on loopback (one host, two ports): an HTTP server that records the headers of every
request and answers each path as told, for tests of what follows a redirect to another origin."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from multidict import CIMultiDictProxy

__all__ = ["Origin", "recording_origin"]

#: How a path is answered: a response, or a coroutine that makes one (a slow answer).
Answer = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


class Origin:
    """``url`` of the server (``http://127.0.0.1:PORT``); ``seen``: (method, path, headers) per request."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[tuple[str, str, CIMultiDictProxy[str]]] = []
        self.answers: dict[str, Answer] = {}

    def headers_at(self, path: str) -> list[CIMultiDictProxy[str]]:
        return [headers for _, seen_path, headers in self.seen if seen_path == path]


@asynccontextmanager
async def recording_origin() -> AsyncIterator[Origin]:
    origin = Origin()

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        origin.seen.append((request.method, request.path, request.headers))
        answer = origin.answers.get(request.path)
        if answer is None:
            return web.json_response({"error": {"message": "no"}}, status=404)
        response = answer(request)
        return await response if inspect.isawaitable(response) else response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    origin.url = f"http://127.0.0.1:{port}"
    try:
        yield origin
    finally:
        await runner.cleanup()
