"""Receivers served over real HTTP on loopback: mounted in an aiohttp app, or as a bare ASGI app
under a real uvicorn server (what a FastAPI/Starlette ``mount`` hands it)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

import evolink_async as evolink
from tests.helpers.receivers import aiohttp_receiver

ServeReceiver = Callable[..., contextlib.AbstractAsyncContextManager[evolink.CallbackReceiver]]


@contextlib.asynccontextmanager
async def asgi_receiver(**options: Any) -> AsyncIterator[evolink.CallbackReceiver]:
    """A receiver's bare ASGI app at /hooks under uvicorn, with Starlette's Mount ``root_path``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    receiver = evolink.CallbackReceiver(f"http://127.0.0.1:{port}/hooks", allow_local=True, **options)

    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope, root_path="/hooks")
        await receiver.asgi(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(mounted, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield receiver
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


@pytest.fixture(params=["aiohttp", "asgi"])
def serve_receiver(request: pytest.FixtureRequest) -> ServeReceiver:
    """Starts a receiver served over real HTTP by each entry point in turn."""
    return aiohttp_receiver if request.param == "aiohttp" else asgi_receiver
