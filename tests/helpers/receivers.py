"""A CallbackReceiver served over real HTTP on loopback, for any test that needs callbacks."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import evolink_async as evolink


@contextlib.asynccontextmanager
async def aiohttp_receiver(**options: Any) -> AsyncIterator[evolink.CallbackReceiver]:
    """A receiver mounted at /hooks of an aiohttp server (the socket is bound first: the public
    URL must name its port)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    receiver = evolink.CallbackReceiver(f"http://127.0.0.1:{port}/hooks", allow_local=True, **options)
    app = web.Application()
    app.add_subapp("/hooks", receiver.aiohttp_app())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
        sock.close()
